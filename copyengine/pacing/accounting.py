"""Accounting apart from pacing (as rclone keeps ``fs/accounting`` apart from its pacer):
what one mailbox's pacer let through, counted as it happens, never consulted by the pacer's
decisions. The stats (``report.PairStats``), the live table and the metrics read a mailbox's
account through ``AccountView``; the pacer only writes to it.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, deque
from collections.abc import Callable
from typing import Protocol

from . import learn
from .learn import Learned
from .policy import SlidingWindow
from .proof import Evidence, Proof
from .step import INCOMING_BYTES, REQUEST_RATE


class AccountView(Protocol):
    """What the stats read from a mailbox's account, live."""

    @property
    def waiting(self) -> bool: ...

    @property
    def waiting_on_service(self) -> bool: ...

    @property
    def inflight(self) -> int: ...

    def throttle_wall_s(self) -> float: ...

    def throttled_total(self) -> int: ...

    def throttled_by_reason(self) -> dict[str, int]: ...

    def requests_total(self) -> int: ...

    def ceiling_share(self) -> float | None: ...

    def limit_share(self) -> float | None: ...

    def budget_in_effect(self) -> dict[str, Learned]: ...

    def evidence(self) -> dict[str, Evidence]: ...


# seconds: a mailbox's spells that no budget or slot bound (shortest 0) and that took less
# than this in all measure the engine's own bookkeeping from ready to send, not a ceiling
PROMPT = 0.05


class Activity:
    """Spells during which at least one request of a kind wanted a slot or was in flight,
    and how close each ran to the fastest any client could have been.

    A spell that sent ``B`` (bytes, or requests) between its start ``a`` and its last send
    took ``t_last - a``. The fastest any client could send ``B`` from the window the spell
    found is that of a client that sends whatever the budget allows the moment it allows it:
    the room at ``a`` at once, each amount still in the window again when it leaves it, and
    the whole budget every ``period`` after. The measure is the sum of those shortest times
    over the sum of the times taken (time with nothing ready is in neither).

    Exchange also allows only ``concurrency`` requests in flight per mailbox, so no client
    sends its last request before the requests answered until then have had their slots:
    the spell's shortest time is the moment a client that sent the same requests in the
    same order, each as soon as it was ready (``READY``) and one of the ``concurrency``
    slots was free, with the durations the service gave them (from send to answer, as this
    client saw them), and, under the configured budget, the window had room for the whole
    of it (each body in it until a window after its answer: ``_hold``), sent the last
    (``_schedule``, ``_place``; where a send's
    answer is not known, at least the durations answered by the last send over the
    concurrency). Those durations
    over the concurrency alone took them as if they could be cut to fill the slots evenly,
    and counted answers that came only because this client was late: of a spell that sent
    four at once and the fifth and sixth the moment the first two answers came (after 0.10
    and 0.11 s), the fastest client takes 0.11 s and they said 0.05 s, so a client without
    a moment's delay scored 48% of it (``fleet`` at 400 pairs, where a pair's share of the
    byte budget makes spells of one or two answers: most of what its mailboxes lost).
    Nor does any client send the last window's
    requests at once: they go through the same slots from the moment that window opens, so
    the budget's bound is followed by theirs (the spell's last requests that carry what the
    last window does, at most ``TAIL`` of them, each taking the spell's mean duration). A
    spell that sent everything the moment it had it scores 100%.

    Nor does any client send a body before it has it: an item exported while the spell
    ran (the spell going on only because an earlier import was still in flight) cannot go
    before it was ready, so the spell's shortest time is at least the latest such moment
    among the bodies it sent (``READY``: when the item entered the ready pool, not when an
    importer took it, so that a body the engine's own pool or importers held back is not
    excused). Without it a spell whose bodies each went the moment they were exported,
    one after another while the service answered slowly, scored next to nothing (``fleet``
    at 400 pairs on a loaded machine: a third of the time the mailboxes under 95% lost).

    The budget is the one the pacer allowed itself while the spell ran (``follow``): the
    configured ``[limits]`` while the service gives them, less where its 429s cut them (the
    budget in effect, over the window the service showed, in the even parts the pacer sends
    a cut budget in: ``learn.allowed``). A spell under one budget is measured against it; a
    spell during which it changed, against its mean over the spell (the rate, the window
    and the slots, each weighted by how long it held up to the spell's last send): a client
    that sent at whatever the budget allowed as it moved scores 100%. So the share says
    "of what the service let us have". The same spells against the configured budget
    (``limit_totals``) say "of ``[limits]``"; both are the same while nothing was cut.

    It is a ratio of times, not of bytes to the budget's average rate: a sliding window hands
    its budget back in whole windows, so a mailbox of 3.1 windows needs a fourth whatever
    the client; over those four windows the average rate offers a full fourth window, and a
    bytes measure scored the best client 88% unless it held its last item back until the
    window emptied (98%, and the job ended no sooner)."""

    TAIL = 64  # the last sends kept: what the last window's requests are counted from
    # sends of a spell kept for its schedule while one sent before them is unanswered
    # (past this many the spell is measured without its schedule, as before)
    PENDING = 256

    __slots__ = (
        "_allowed",
        "_answered",
        "_answered_at_last",
        "_at",
        "_busy",
        "_busy_at_last",
        "_closed",
        "_lanes",
        "_means_at_last",
        "_old",
        "_old_total",
        "_pending",
        "_ready",
        "_room",
        "_room_total",
        "_sched",
        "_sent",
        "_spell_allowed",
        "_sums",
        "_tail",
        "_varied",
        "active_s",
        "best_limit_s",
        "best_s",
        "demand",
        "last",
        "limit",
        "period",
        "since",
        "slots",
        "taken_s",
        "window",
    )

    def __init__(self, window: SlidingWindow, limit: int, period: float, slots: int = 4) -> None:
        self.window = window
        self.limit = limit
        self.period = period
        self.slots = max(1, slots)
        self._busy = 0.0  # request-seconds answered in this spell
        self._busy_at_last = 0.0  # ... by its latest send
        self._answered = 0  # requests answered in this spell
        self._answered_at_last = 0  # ... by its latest send
        self._tail: deque[int] = deque(maxlen=self.TAIL)  # the spell's last sends' amounts
        self.demand = 0
        self.since = 0.0
        self.active_s = 0.0
        self.best_s = 0.0  # shortest times possible for what the ended spells sent
        self.best_limit_s = 0.0  # ... under the configured budget
        self.taken_s = 0.0  # what those spells took, from their start to their last send
        # the window's entries when the spell began: (counted as sent at, amount, opened)
        self._old: list[tuple[float, int, float]] = []
        self._old_total = 0
        self._sent = 0
        self._ready = 0.0  # the latest moment a body sent in this spell was ready (READY)
        # the spell's schedule (``_schedule``): the sends not yet placed, in send order, each
        # [sent at, ready at, duration (-1: not answered), its moment in the schedule (-1:
        # not placed), amount]; when each of the slots comes free in it; the latest moment
        # placed.
        # ``_pending`` None: not kept (idle, or past ``PENDING``)
        self._pending: deque[list[float]] | None = None
        self._lanes: list[float] = []
        self._sched = 0.0
        # the schedule's window: (leaves at, amount) of what it holds, oldest first, and
        # their sum (``_place``)
        self._room: deque[tuple[float, int]] = deque()
        self._room_total = 0
        self.last = 0.0
        # the budget the pacer allows itself now: (amount, over seconds, slots); at the
        # spell's start; whether it changed during the spell, and then, since the spell's
        # start, the time integrals of its rate, window and slots (up to ``_at``; at the
        # latest send: ``_means_at_last``)
        self._allowed = (float(limit), float(period), float(self.slots))
        self._spell_allowed = self._allowed
        self._varied = False
        self._at = 0.0
        self._sums = (0.0, 0.0, 0.0)
        self._means_at_last: tuple[float, float, float] | None = None
        # the last spell ended: (shortest, taken, shortest under the configured budget) as
        # added to the totals, until the next begins (``refused`` may still correct it)
        self._closed: tuple[float, float, float] | None = None

    def follow(self, now: float, amount: float, seconds: float, slots: int) -> None:
        """The pacer allows itself ``amount`` in any ``seconds`` and ``slots`` requests in
        flight from ``now`` on (``learn.allowed``, ``learn.slots``)."""
        allowed = (float(amount), float(seconds), float(max(1, slots)))
        if allowed == self._allowed:
            return
        if self.demand:
            if not self._varied:
                self._varied, self._at, self._sums = True, self.since, (0.0, 0.0, 0.0)
                self._means_at_last = None
            self._integrate(now)
        self._allowed = allowed

    def _integrate(self, now: float) -> None:
        dt = now - self._at
        if dt > 0:
            amount, seconds, slots = self._allowed
            rate = amount / seconds if seconds > 0 else amount
            r, w, n = self._sums
            self._sums = (r + rate * dt, w + seconds * dt, n + slots * dt)
            self._at = now

    def enter(self, now: float) -> None:
        if self.demand == 0:
            self.since = now
            self._closed = None
            self._sent = 0
            self._ready = now
            self._busy = self._busy_at_last = 0.0
            self._answered = self._answered_at_last = 0
            self._tail.clear()
            self._pending = deque()
            self._lanes = [now] * max(1, round(self._allowed[2]))
            self._sched = now
            self._spell_allowed, self._varied = self._allowed, False
            # what the window held when the spell began (a plain copy: this runs whenever
            # a mailbox goes from idle to busy; what has left by then is skipped later)
            self.window.expire(now)
            self._old_total = self.window.total
            self._old = list(self.window.events()) if self._old_total else []
            period = self.period
            self._room = deque((t + period, n) for t, n, _ in self._old if t + period > now)
            self._room_total = sum(n for _, n in self._room)
        self.demand += 1

    def sent(self, now: float, amount: int, ready: float | None = None) -> None:
        """``amount`` went out at ``now``; ``ready``: when what it carries was ready to send
        (None: not known, no bound from it)."""
        self._sent += amount
        self.last = now
        at = self.since
        if ready is not None and ready > at:
            at = min(ready, now)
            if at > self._ready:
                self._ready = at
        pend = self._pending
        if pend is not None:
            if len(pend) >= self.PENDING:
                self._pending, self._lanes = None, []
            else:
                if pend:
                    pend.append([now, at, -1.0, -1.0, amount])
                else:  # the sends before it answered and placed: placed now
                    pend.append([now, at, -1.0, self._place(at, amount), amount])
        self._busy_at_last = self._busy
        self._answered_at_last = self._answered
        self._tail.append(amount)
        if self._varied:
            self._integrate(now)
            self._means_at_last = self._sums

    def answered(self, duration: float, at: float | None = None) -> None:
        """A request answered after ``duration`` seconds in flight (any kind: it held a
        slot); ``at``: when, for one of this spell's sends (None: none of them, or not
        known: its duration counts over the slots only)."""
        if self.demand:
            self._busy += duration
            self._answered += 1
            pend = self._pending
            if at is not None and pend:
                # the send it answers: the unanswered one sent nearest ``at - duration``
                # (in send order: none after one sent later than that by more than the best)
                t = at - duration
                best: list[float] | None = None
                gap = math.inf
                for e in pend:
                    d = e[0] - t
                    if d > gap:
                        break
                    if e[2] < 0:
                        d = -d if d < 0 else d
                        if d < gap:
                            best, gap = e, d
                if best is not None:
                    best[2] = duration
                    if best is pend[0]:
                        self._schedule()

    def _schedule(self) -> None:
        """Place the spell's sends, in the order they went, in the schedule of the fastest
        client: each when it was ready, one of the slots was free and the one before it
        had gone (a slot frees its duration after the send it carried). A send is placed
        once the sends before it are answered (its slot is then known)."""
        pend, lanes = self._pending, self._lanes
        if pend is None:
            return
        while pend:
            e = pend[0]
            if e[3] < 0:
                e[3] = self._place(e[1], int(e[4]))
            if e[2] < 0:
                return
            heapq.heapreplace(lanes, e[3] + e[2])
            pend.popleft()
            self._hold(e[3] + e[2] + self.period, int(e[4]))

    def _place(self, ready: float, amount: int) -> float:
        """The moment the fastest client sends the next of the spell's sends (``amount``,
        ready at ``ready``): once the one before it went and a slot is free, and while the
        configured budget is in effect, once the window has room for all of it (no client
        sends part of a body: the budget's bound alone took the bytes as a fluid, each
        window's room used whole, and scored a client that sent each body the moment the
        window had room for it 50% of three bodies of 0.6 of the budget)."""
        t = max(self._lanes[0], ready, self._sched)
        room, total = self._room, self._room_total
        while room and room[0][0] <= t:
            total -= room.popleft()[1]
        allowed = self._allowed
        if allowed[0] == self.limit and allowed[1] == self.period:
            while room and total + amount > self.limit:
                t = room[0][0]
                while room and room[0][0] <= t:
                    total -= room.popleft()[1]
        self._room_total = total
        self._sched = t
        return t

    def _hold(self, leaves: float, amount: int) -> None:
        """A placed send's ``amount`` in the schedule's window until ``leaves``: a window
        after its answer, not its send. No client knows when between the two the service
        counted a body, so one that never goes over the budget gives its room back a window
        after the answer, as the pacer does; crediting one that knew made the time the
        requests took count against the engine once per window (on a loaded machine's
        fleet, 0.1-0.5 s answers against the scaled profile's 5 s window: 96 of the 134 s
        the mailboxes under 95% lost at 100 pairs, ``benchmarks.spellgaps``)."""
        room = self._room
        i = len(room)
        while i and room[i - 1][0] > leaves:  # answers come out of send order
            i -= 1
        if i and leaves - room[i - 1][0] < self.period / SlidingWindow.BUCKETS:
            # one entry for sends this close, leaving with the first of them (room back no
            # later than it comes): about ``BUCKETS`` a window, as the pacer's own window
            room[i - 1] = (room[i - 1][0], room[i - 1][1] + amount)
        else:
            room.insert(i, (leaves, amount))
        self._room_total += amount

    def leave(self, now: float) -> None:
        self.demand -= 1
        if self.demand == 0:
            self.active_s += now - self.since
            if self._pending:  # a send left unanswered: the schedule is not known
                self._lanes = []
            best, taken, best_limit = self._closed = self._spell()
            self.best_s += best
            self.best_limit_s += best_limit
            self.taken_s += taken
            self._varied = False
            self._pending = None  # an idle mailbox keeps none of it (the slots' four times)
            self._room.clear()

    def settled(self) -> None:
        """The outcome of the request that ended the last spell is told: what the spell
        found in the window is no longer needed (``refused`` recounts the spell with it).
        An idle mailbox keeps none of it (a thousand pairs' windows, ``scale``)."""
        if self.demand == 0 and self._old:
            self._old = []

    def refused(self, amount: int) -> None:
        """``amount``, counted as sent, was refused (an upload answered 429 for the bytes
        it would have added): the service took none of it, so the spell did not send it.
        Counted, a body too large for the room another writer left, refused again and
        again, made a mailbox that sent a tenth of its room read 100% of its ceiling (the
        demo job beside the writer: 145 MB counted where 44 MB went)."""
        if amount <= 0 or self._sent <= 0:
            return
        amount = min(amount, self._sent)
        closed = self._closed if self.demand == 0 else None
        room = self._room
        for i in range(len(room) - 1, -1, -1):  # nor in the schedule's window from now on
            leaves, n = room[i]
            if n >= amount:
                room[i] = (leaves, n - amount)
                self._room_total -= amount
                break
        self._sent -= amount
        if amount in self._tail:  # the latest send of that amount: it
            tail = list(self._tail)
            del tail[len(tail) - 1 - tail[::-1].index(amount)]
            self._tail.clear()
            self._tail.extend(tail)
        if closed is not None:  # the spell it ended is in the totals: counted again
            best, taken, best_limit = self._closed = self._spell()
            self.best_s += best - closed[0]
            self.best_limit_s += best_limit - closed[2]
            self.taken_s += taken - closed[1]

    def spell_budget(self) -> tuple[float, float, float]:
        """(amount, seconds, slots) the current (or last) spell is measured against: the
        budget the pacer allowed itself at its start, or its mean up to its latest send."""
        taken = self.last - self.since
        sums = self._means_at_last
        if not self._varied or sums is None or taken <= 0:
            return self._spell_allowed
        rate, seconds, slots = (x / taken for x in sums)
        return rate * seconds, seconds, slots

    def _spell(self) -> tuple[float, float, float]:
        """(shortest, taken, shortest under the configured budget) of the current spell."""
        if self._sent == 0:
            return 0.0, 0.0, 0.0
        taken = max(0.0, self.last - self.since)
        busy = self._busy_at_last
        sent = self._sent
        ready = self._ready - self.since  # no client sends a body before it has it
        # through the slots: the fastest client's last send once every send is placed
        # (``_schedule``; the durations over the slots count answers that came only because
        # this client was late), else no sooner than either
        sched = self._sched - self.since
        exact = bool(self._lanes) and not self._pending
        through = sched if exact else max(sched, busy / self.slots)
        tail = self.last_window(sent, self.limit, self.slots)
        limit = min(max(self.shortest(sent) + tail, through, ready), taken)
        amount, seconds, slots = self.spell_budget()
        if (amount, seconds, slots) == (self.limit, self.period, self.slots):
            return limit, taken, limit
        if not exact:
            through = max(sched, busy / slots)
        tail = self.last_window(sent, amount, slots)
        best = max(self.shortest(sent, amount, seconds) + tail, through, ready)
        return min(best, taken), taken, limit

    def last_window(self, amount: int, budget: float, slots: float) -> float:
        """Seconds the last window's requests need through the slots once it opens: the
        spell's last sends that carry what it does (``amount`` past the whole windows of
        ``budget``), beyond the first ``slots`` of them, at the spell's mean duration per
        request."""
        if not self._answered_at_last:
            return 0.0
        lim = max(1.0, budget)
        need = amount - max(0, math.ceil(amount / lim) - 1) * lim
        count, carried = 0, 0
        for n in reversed(self._tail):
            count += 1
            carried += n
            if carried >= need:
                break
        mean = self._busy_at_last / self._answered_at_last
        return max(0.0, count - slots) * mean / max(1.0, slots)

    def shortest(
        self, amount: int, budget: float | None = None, period: float | None = None
    ) -> float:
        """Seconds from the spell's start until a client sending whatever the budget allows
        the moment it allows it has sent ``amount``: ``budget`` in any ``period`` seconds
        (the configured budget when not given)."""
        lim = max(1, self.limit) if budget is None else max(1.0, budget)
        period = self.period if period is None else period
        whole = max(0, math.ceil(amount / lim) - 1)  # windows wholly used before the last
        need = amount - whole * lim  # in (0, limit]
        since = self.since
        held = self._old_total
        if period < self.period and held:  # a shorter window: only what is still in it
            held = sum(n for t, n, _ in self._old if t + period > since)
        if lim - held >= need:
            return whole * period  # the room the spell found was enough
        old = [(t + period, n) for t, n, _ in self._old if t + period > since]
        left = sum(n for _, n in old)  # still in the service's window at the spell's start
        at = since
        for leaves, n in old:
            if lim - left >= need:
                break
            left -= n
            at = leaves
        return whole * period + (at - since)

    def totals(self, now: float) -> tuple[float, float, float]:
        """(active seconds, shortest seconds possible, seconds taken), the current spell
        included; under the budget the pacer allowed itself."""
        if self.demand == 0:
            return self.active_s, self.best_s, self.taken_s
        best, taken, _ = self._spell()
        return self.active_s + now - self.since, self.best_s + best, self.taken_s + taken

    def limit_totals(self) -> tuple[float, float]:
        """(shortest seconds possible under the configured budget, seconds taken), the
        current spell included."""
        if self.demand == 0:
            return self.best_limit_s, self.taken_s
        _, taken, limit = self._spell()
        return self.best_limit_s + limit, self.taken_s + taken


class MailboxAccount:
    """One mailbox's counters: requests and bytes sent, 429s by reason, time held back, and
    the spells of activity from which its share of the ceiling is computed. The pacer reports
    each step of a request (``enter``, ``sent``, ``answered``, ``leave``) and each wait; what
    the pacer decides never depends on what is here."""

    __slots__ = (
        "_clock",
        "_just",
        "_service_waiters",
        "_wait_since",
        "_waiters",
        "_wall_s",
        "activity",
        "inflight",
        "learned",
        "max_inflight",
        "proofs",
        "requests",
        "slot_wait_s",
        "throttle_wait_s",
        "throttled",
        "upload_activity",
        "upload_bytes",
    )

    def __init__(
        self,
        requests: Activity,
        uploads: Activity,
        clock: Callable[[], float],
    ) -> None:
        self._clock = clock
        self.requests = 0
        self.throttled: Counter[str] = Counter()
        self.throttle_wait_s = 0.0  # task-seconds spent waiting on budgets and Retry-After
        # wall-clock seconds during which at least one task waited on budgets or Retry-After
        # (what an operator means by "time lost to throttling"; never more than the run lasted)
        self._wall_s = 0.0
        self.upload_bytes = 0  # request bodies sent (what the upload budget counts)
        self.slot_wait_s = 0.0  # time spent waiting for one of our own calls to finish
        self.inflight = 0
        self.max_inflight = 0
        # spells in which a request, and an upload (a request with a body: on a target
        # mailbox, an item ready to import), wanted a slot or was in flight
        self.activity = requests
        self.upload_activity = uploads
        self._waiters = 0
        self._service_waiters = 0  # of them, held back by the service's Retry-After
        self._wait_since = 0.0
        # the pacer's budgets in effect per limit, read live (the pacer sets it)
        self.learned: Callable[[], dict[str, Learned]] | None = None
        # what the service's answers proved it gives, per limit: what a hint names
        self.proofs = {"requests": Proof(requests.period), "upload": Proof(uploads.period)}
        # (sent, answered, body bytes) of the request just answered, until its outcome is
        # told: ``succeeded`` or ``on_throttled`` right after (no await between them)
        self._just: tuple[float, float, int] | None = None

    # -- what the pacer reports ------------------------------------------------------------
    def enter(self, now: float, body_bytes: int) -> None:
        """A request wants a slot."""
        self.activity.enter(now)
        if body_bytes:
            self.upload_activity.enter(now)

    def sent(self, now: float, body_bytes: int, ready: float | None = None) -> None:
        """It took its slot and goes out (``ready``: when its body was ready to send)."""
        self.inflight += 1
        if self.inflight > self.max_inflight:
            self.max_inflight = self.inflight
        self.requests += 1
        self.upload_bytes += body_bytes
        self.activity.sent(now, 1)
        if body_bytes:
            self.upload_activity.sent(now, body_bytes, ready)

    def answered(self, duration: float, body_bytes: int = 0) -> None:
        """It was answered after ``duration`` seconds in flight (it held a slot: both kinds
        count it), or failed; what it proves waits for its outcome (``succeeded``,
        ``on_throttled``): a 5xx, a dropped connection or a timeout proves nothing taken."""
        self.inflight -= 1
        now = self._clock()
        self.activity.answered(duration, now)
        self.upload_activity.answered(duration, now if body_bytes else None)
        self._just = (now - duration, now, body_bytes)

    def succeeded(self) -> None:
        """The request just answered was accepted (2xx): the service took it (``proof``)."""
        just, self._just = self._just, None
        if just is None:
            return
        sent, answered, body_bytes = just
        self.proofs["requests"].accepted(sent, answered, 1)
        if body_bytes:
            self.proofs["upload"].accepted(sent, answered, body_bytes)
        self.activity.settled()
        self.upload_activity.settled()

    def leave(self, now: float, body_bytes: int) -> None:
        """It is done with the pacer (answered, or given up while it waited)."""
        self.activity.leave(now)
        if body_bytes:
            self.upload_activity.leave(now)

    def wait_began(self, now: float, service: bool = False) -> None:
        """A task is held back by a budget, or (``service``) the service's Retry-After."""
        if self._waiters == 0:
            self._wait_since = now
        self._waiters += 1
        self._service_waiters += service

    def wait_ended(self, now: float, service: bool = False) -> None:
        self._waiters -= 1
        self._service_waiters -= service
        if self._waiters == 0:
            self._wall_s += now - self._wait_since

    def on_throttled(
        self, reason: str, retry_after: float | None = None, body_bytes: int = 0
    ) -> None:
        """The request just answered was a 429 naming ``reason``: it proved nothing taken
        (a refused body was not counted), and one naming a limit is evidence of its window."""
        self.throttled[reason] += 1
        just, self._just = self._just, None
        if just is None:
            return
        sent, answered, _ = just
        ask = retry_after or 0.0
        if body_bytes:  # a 429 takes no bytes in, whatever it names
            self.upload_activity.refused(body_bytes)
        if body_bytes and reason == INCOMING_BYTES:
            self.proofs["upload"].refused(sent, answered, body_bytes, ask)
        if reason == REQUEST_RATE:
            self.proofs["requests"].refused(sent, answered, 1, ask)
        self.activity.settled()
        self.upload_activity.settled()

    def budget_changed(
        self, now: float, requests: Learned, uploads: Learned, in_flight: Learned
    ) -> None:
        """The pacer's budgets in effect changed at ``now`` (a 429 cut one, answers gave
        some back): the spells are measured against what it allows itself from now on."""
        slots = learn.slots(in_flight)
        self.activity.follow(now, *learn.allowed(requests), slots)
        self.upload_activity.follow(now, *learn.allowed(uploads), slots)

    # -- what the stats read (``AccountView``) -----------------------------------------------
    @property
    def waiting(self) -> bool:
        """Whether a task is held back by a budget or a Retry-After right now."""
        return self._waiters > 0

    @property
    def waiting_on_service(self) -> bool:
        """Whether a task waits on the service's Retry-After (a 429) right now; ``waiting``
        without it: on our own budget (``[limits]``, or what the 429s left of it)."""
        return self._service_waiters > 0

    @property
    def upload_active_s(self) -> float:
        return self.upload_activity.active_s

    def throttle_wall_s(self) -> float:
        """Wall-clock time throttled so far, the current wait included (live)."""
        extra = self._clock() - self._wait_since if self._waiters else 0.0
        return self._wall_s + extra

    def throttled_total(self) -> int:
        return sum(self.throttled.values())

    def throttled_by_reason(self) -> dict[str, int]:
        return dict(self.throttled)

    def budget_in_effect(self) -> dict[str, Learned]:
        """Per limit (requests, upload, concurrency), the budget the pacer allows itself
        now: the configured one, or less where the service's 429s cut it."""
        return self.learned() if self.learned is not None else {}

    def requests_total(self) -> int:
        return self.requests

    def evidence(self) -> dict[str, Evidence]:
        """Per limit the service refused: what its answers proved it gives (``proof``)."""
        return {k: e for k, p in self.proofs.items() if (e := p.evidence()) is not None}

    def active_s(self) -> float:
        """Seconds during which a request to this mailbox wanted a slot or was in flight
        (the current spell included: live)."""
        return self.activity.totals(self._clock())[0]

    def ceiling_share(self) -> float | None:
        """How close this mailbox ran to its budget while it had work (1.0 = at the
        ceiling): over the spells in which an upload was ready (waiting for a slot, on the
        budget, or in flight), the shortest time any client could have taken to upload what
        they uploaded, starting from the window each found, against the time they took; or
        the same for requests over the spells in which any request was, whichever is nearer
        its limit (see ``Activity``). The budget is the one in effect while each spell ran
        (what the service let us have: the configured one unless its 429s cut it);
        ``limit_share`` is the same against the configured ``[limits]``. None before any
        request; 1.0 when every spell sent what it had the moment it had it."""
        if self.requests == 0:
            return None
        now = self._clock()
        return _nearest([act.totals(now)[1:] for act in (self.upload_activity, self.activity)])

    def limit_share(self) -> float | None:
        """``ceiling_share`` against the configured ``[limits]`` throughout (the same while
        the service's 429s cut no budget; less where they did: a mailbox the service gave a
        tenth reads about a tenth)."""
        if self.requests == 0:
            return None
        return _nearest([act.limit_totals() for act in (self.upload_activity, self.activity)])


def _nearest(spells: list[tuple[float, float]]) -> float | None:
    """Of (shortest, taken) per kind, the share of the kind nearest its budget. A kind
    any client could have sent in no time (shortest 0: nothing waited on the budget or a
    slot) that took under ``PROMPT`` in all says nothing of a ceiling: None where no kind
    does (a delta pass that listed and copied nothing read 0% of ceiling, its few
    lookups' microseconds from ready to send over 0)."""
    if not any(taken > 0 for _, taken in spells):
        return 1.0  # every spell sent what it had the moment it had it
    shares = [best / taken for best, taken in spells if taken > 0 and (best > 0 or taken >= PROMPT)]
    return min(1.0, max(shares)) if shares else None
