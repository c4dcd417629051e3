"""One pacer per (app, mailbox), shared by every task that touches that mailbox.

It keeps the mailbox under all of Exchange's limits at once: at most ``concurrency`` of our
requests in flight, the request and upload-bytes budgets over their sliding windows, any
``Retry-After`` the service gave, and (through ``aiolimiter``) the app-wide rate. Time is
injected (``clock``/``sleep``) so tests run without sleeping.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from aiolimiter import AsyncLimiter

from ..wakeup import Turns, Wakeup
from .policy import AdaptiveRate, PacerLimits, SlidingWindow

CONCURRENCY_REASON = "MailboxConcurrency"
MAX_WAIT_ROUNDS = 100_000


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
    the spell's shortest time is at least their durations (from send to answer, as this
    client saw them) over the concurrency. A spell that sent everything the moment it had
    it scores 100%.

    It is a ratio of times, not of bytes to the budget's average rate: a sliding window hands
    its budget back in whole windows, so a mailbox of 3.1 windows needs a fourth whatever
    the client; over those four windows the average rate offers a full fourth window, and a
    bytes measure scored the best client 88% unless it held its last item back until the
    window emptied (98%, and the job ended no sooner)."""

    __slots__ = (
        "_busy",
        "_busy_at_last",
        "_old",
        "_old_total",
        "_sent",
        "active_s",
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
        self.demand = 0
        self.since = 0.0
        self.active_s = 0.0
        self.best_s = 0.0  # shortest times possible for what the ended spells sent
        self.taken_s = 0.0  # what those spells took, from their start to their last send
        # the window's entries when the spell began: (counted as sent at, amount, opened)
        self._old: list[tuple[float, int, float]] = []
        self._old_total = 0
        self._sent = 0
        self.last = 0.0

    def enter(self, now: float) -> None:
        if self.demand == 0:
            self.since = now
            self._sent = 0
            self._busy = self._busy_at_last = 0.0
            # what the window held when the spell began (a plain copy: this runs whenever
            # a mailbox goes from idle to busy; what has left by then is skipped later)
            self.window.expire(now)
            self._old_total = self.window.total
            self._old = list(self.window.events()) if self._old_total else []
        self.demand += 1

    def sent(self, now: float, amount: int) -> None:
        self._sent += amount
        self.last = now
        self._busy_at_last = self._busy

    def answered(self, duration: float) -> None:
        """A request answered after ``duration`` seconds in flight (any kind: it held a
        slot)."""
        if self.demand:
            self._busy += duration

    def leave(self, now: float) -> None:
        self.demand -= 1
        if self.demand == 0:
            self.active_s += now - self.since
            best, taken = self._spell()
            self.best_s += best
            self.taken_s += taken
            self._old = []

    def _spell(self) -> tuple[float, float]:
        if self._sent == 0:
            return 0.0, 0.0
        taken = max(0.0, self.last - self.since)
        best = max(self.shortest(self._sent), self._busy_at_last / self.slots)
        return min(best, taken), taken

    def shortest(self, amount: int) -> float:
        """Seconds from the spell's start until a client sending whatever the budget allows
        the moment it allows it has sent ``amount``."""
        lim = max(1, self.limit)
        whole = max(0, math.ceil(amount / lim) - 1)  # windows wholly used before the last
        need = amount - whole * lim  # in (0, limit]
        period, since = self.period, self.since
        if lim - self._old_total >= need:
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
        included."""
        if self.demand == 0:
            return self.active_s, self.best_s, self.taken_s
        best, taken = self._spell()
        return self.active_s + now - self.since, self.best_s + best, self.taken_s + taken


@dataclass
class PacerStats:
    requests: int = 0
    throttled: Counter[str] = field(default_factory=Counter)
    throttle_wait_s: float = 0.0  # task-seconds spent waiting on budgets and Retry-After
    # wall-clock seconds during which at least one task waited on budgets or Retry-After
    # (what an operator means by "time lost to throttling"; never more than the run lasted)
    throttle_wall_s: float = 0.0
    upload_bytes: int = 0  # request bodies sent (what the upload budget counts)
    slot_wait_s: float = 0.0  # time spent waiting for one of our own calls to finish
    max_inflight: int = 0
    # spells in which a request, and an upload (a request with a body: on a target mailbox,
    # an item ready to import), wanted a slot or was in flight
    activity: Activity | None = None
    upload_activity: Activity | None = None

    @property
    def active_s(self) -> float:
        return self.activity.active_s if self.activity else 0.0

    @property
    def upload_active_s(self) -> float:
        return self.upload_activity.active_s if self.upload_activity else 0.0


def _wait(w: SlidingWindow, now: float, amount: int, held: int, cap: float) -> float:
    """Seconds until ``amount`` more fits in window ``w`` with ``held`` in flight (not yet in
    the window: they enter it when answered); ``inf`` when only an answer can make room. An
    amount larger than the whole budget goes alone, once the window is empty."""
    w.expire(now)
    if amount >= cap:
        if held:
            return math.inf
        return w.delay(now, amount, cap)
    need = w.total + held + amount - cap
    if need <= 0:
        return 0.0
    if held + amount > cap:
        return math.inf
    return w.delay(now, held + amount, cap)


class MailboxPacer:
    def __init__(
        self,
        key: str,
        limits: PacerLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        app_limiter: AsyncLimiter | None = None,
    ) -> None:
        self.key = key
        self.limits = limits or PacerLimits()
        self._clock = clock
        self._sleep = sleep
        self._app = app_limiter
        lim = self.limits
        self._req = SlidingWindow(lim.requests, lim.request_window + lim.window_slack)
        self._bytes = SlidingWindow(lim.upload_bytes, lim.upload_window + lim.window_slack)
        self._inflight = 0
        self._released = Wakeup()  # one of our calls to this mailbox finished
        # tasks waiting only for a free request slot: a call answered frees one slot, so it
        # wakes one of them (all would wake for one to win)
        self._slot_free = Turns()
        self._held_requests = 0  # in flight: counted against the budgets until answered
        self._held_bytes = 0
        self._reserved = 0  # upload room kept for the body that has waited longest
        # how long a body waits for room before it gets that room reserved
        self._reserve_after = lim.upload_window * lim.reserve_after_share
        self.blocked_until = 0.0
        self.rate = AdaptiveRate()
        self._req_act = Activity(self._req, lim.requests, lim.request_window, lim.concurrency)
        self._up_act = Activity(self._bytes, lim.upload_bytes, lim.upload_window, lim.concurrency)
        self.stats = PacerStats(activity=self._req_act, upload_activity=self._up_act)
        self._waiters = 0
        self._wait_since = 0.0

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def waiting(self) -> bool:
        """Whether a task is held back by a budget or a Retry-After right now."""
        return self._waiters > 0

    def throttled_total(self) -> int:
        return sum(self.stats.throttled.values())

    def throttled_by_reason(self) -> dict[str, int]:
        return dict(self.stats.throttled)

    def requests_total(self) -> int:
        return self.stats.requests

    def active_s(self) -> float:
        """Seconds during which a request to this mailbox wanted a slot or was in flight
        (the current spell included: live)."""
        return self._req_act.totals(self._clock())[0]

    def ceiling_share(self) -> float | None:
        """How close this mailbox ran to its budget while it had work (1.0 = at the
        ceiling): over the spells in which an upload was ready (waiting for a slot, on the
        budget, or in flight), the shortest time any client could have taken to upload what
        they uploaded, starting from the window each found, against the time they took; or
        the same for requests over the spells in which any request was, whichever is nearer
        its limit (see ``Activity``). None before any request; 1.0 when every spell sent
        what it had the moment it had it."""
        st = self.stats
        if st.requests == 0:
            return None
        now = self._clock()
        shares = []
        for act in (self._up_act, self._req_act):
            _, best, taken = act.totals(now)
            if taken > 0:
                shares.append(best / taken)
        if not shares:
            return 1.0  # every spell sent what it had the moment it had it
        return min(1.0, max(shares))

    def _enter(self, body_bytes: int) -> None:
        now = self._clock()
        self._req_act.enter(now)
        if body_bytes:
            self._up_act.enter(now)

    def _leave(self, body_bytes: int, now: float) -> None:
        self._req_act.leave(now)
        if body_bytes:
            self._up_act.leave(now)

    def throttle_wall_s(self) -> float:
        """Wall-clock time throttled so far, the current wait included (live)."""
        extra = self._clock() - self._wait_since if self._waiters else 0.0
        return self.stats.throttle_wall_s + extra

    async def _throttle_sleep(self, wait: float) -> None:
        if self._waiters == 0:
            self._wait_since = self._clock()
        self._waiters += 1
        try:
            await self._sleep(wait)
        finally:
            self._waiters -= 1
            if self._waiters == 0:
                self.stats.throttle_wall_s += self._clock() - self._wait_since
        self.stats.throttle_wait_s += wait

    def delay(self, now: float, body_bytes: int, reserving: bool = False) -> float:
        """Seconds until a request with ``body_bytes`` of body may be sent (pure in ``now``;
        ``inf``: not before one of our requests in flight has been answered). A body goes
        beside the room reserved for another (``reserving``: it holds the reservation)."""
        lim = self.limits
        f = self.rate.factor * lim.margin
        wait = max(
            self.blocked_until - now,
            _wait(self._req, now, 1, self._held_requests, max(1.0, lim.requests * f)),
        )
        if body_bytes:
            cap = max(1.0, self._upload_cap())
            held = self._held_bytes + (0 if reserving else self._reserved)
            wait = max(wait, _wait(self._bytes, now, body_bytes, held, cap))
        return max(0.0, wait)

    def _reserve(self, body_bytes: int) -> int:
        """Keep the room ``body_bytes`` needs for it (at most the whole budget); 0 when
        another body holds the reservation."""
        if self._reserved:
            return 0
        self._reserved = int(min(body_bytes, self._upload_cap()))
        return self._reserved

    def _upload_cap(self) -> float:
        """The upload budget we allow ourselves now (cut after a 429)."""
        return self.limits.upload_bytes * self.rate.factor * self.limits.margin

    def upload_room(self) -> float:
        """Request-body bytes that could be sent now without waiting on the upload budget
        (infinite while the window is empty and nothing is in flight: anything passes)."""
        w = self._bytes
        w.expire(self._clock())
        if w.total == 0 and self._held_bytes == 0:
            return float("inf")
        return self._upload_cap() - w.total - self._held_bytes - self._reserved

    @asynccontextmanager
    async def slot(self, body_bytes: int = 0) -> AsyncIterator[None]:
        """Hold one of the mailbox's request slots for one request."""
        self._enter(body_bytes)
        reserved = 0  # the room kept for this body, once it has waited long enough for it
        waiting_since: float | None = None
        reserve_after = self._reserve_after
        turn = False  # woken for a slot freed: passed on if this task does not take it
        try:
            for _ in range(MAX_WAIT_ROUNDS):
                now = self._clock()
                wait = self.delay(now, body_bytes, reserving=reserved > 0)
                if wait > 0 and body_bytes and not reserved:
                    if waiting_since is None:
                        waiting_since = now
                    elif now - waiting_since >= reserve_after:
                        reserved = self._reserve(body_bytes)
                        if reserved:
                            continue
                if wait > 0 and turn:
                    turn = False
                    self._slot_free.wake_one()
                if wait == math.inf:  # the budget frees up once a request in flight is answered
                    t0 = self._clock()
                    await self._released.wait()
                    self.stats.throttle_wait_s += self._clock() - t0
                    continue
                if wait > 0:
                    await self._throttle_sleep(
                        min(wait, reserve_after) if not reserved and body_bytes else wait
                    )
                    continue
                if self._inflight >= self.limits.concurrency:
                    # a turn woken for a slot another task took at once: that task used it
                    turn = False
                    t0 = self._clock()
                    await self._slot_free.wait()
                    turn = True
                    self.stats.slot_wait_s += self._clock() - t0
                    continue
                break
            else:  # pragma: no cover - bounded loop guard
                raise RuntimeError(f"pacer {self.key}: could not obtain a slot")
        except BaseException:
            if turn:
                self._slot_free.wake_one()
            if reserved:  # given up: the bodies it held back may fit now
                self._reserved = 0
                self._released.set()
            self._leave(body_bytes, self._clock())
            raise
        if reserved:
            self._reserved = 0  # its room is now held by the body itself
        # No await between the checks above and the reservation: this is atomic.
        now = self._clock()
        self._inflight += 1
        self.stats.max_inflight = max(self.stats.max_inflight, self._inflight)
        # Held while in flight, and counted in the windows from the answer on: the service
        # counts a request when it arrives, which is after we send it and before we have its
        # answer, so its budget is never given back earlier than the service gives it back.
        self._held_requests += 1
        self._held_bytes += body_bytes
        st = self.stats
        st.requests += 1
        st.upload_bytes += body_bytes
        self._req_act.sent(now, 1)
        if body_bytes:
            self._up_act.sent(now, body_bytes)
        try:
            if self._app is not None:
                await self._app.acquire()
            yield
        finally:
            self._inflight -= 1
            self._held_requests -= 1
            self._held_bytes -= body_bytes
            done = self._clock()
            self._req.record(done, 1)
            if body_bytes:
                self._bytes.record(done, body_bytes)
            self._req_act.answered(done - now)
            self._up_act.answered(done - now)
            self._released.set()
            self._slot_free.wake_one()
            self._leave(body_bytes, done)

    def on_success(self) -> None:
        self.rate = self.rate.on_success()

    def on_throttled(self, reason: str, retry_after: float | None) -> None:
        """Record a 429. Time-based reasons block the whole mailbox until Retry-After."""
        self.stats.throttled[reason] += 1
        if reason == CONCURRENCY_REASON:
            return
        wait = retry_after if retry_after is not None else 1.0
        self.blocked_until = max(self.blocked_until, self._clock() + wait)
        self.rate = self.rate.on_throttled()

    async def wait_for_release(self, at_least: float = 0.0, at_most: float = 5.0) -> None:
        """After a MailboxConcurrency 429: wait until one of our own calls to this mailbox
        finishes (bounded), and no less than ``at_least``."""
        t0 = self._clock()
        if self._inflight > 0:
            with anyio.move_on_after(at_most):
                await self._released.wait()
        rest = at_least - (self._clock() - t0)
        if rest > 0:
            await self._sleep(rest)
        self.stats.slot_wait_s += self._clock() - t0


class Pacers:
    """The registry: one pacer per (app, mailbox), one app-wide limiter per app."""

    def __init__(
        self,
        limits: PacerLimits | None = None,
        app_rate: tuple[float, float] = (120_000, 10.0),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.limits = limits or PacerLimits()
        self._app_rate = app_rate
        self._clock = clock
        self._sleep = sleep
        self._pacers: dict[tuple[str, str], MailboxPacer] = {}
        self._apps: dict[str, AsyncLimiter] = {}

    def get(self, app: str, mailbox: str) -> MailboxPacer:
        key = (app, mailbox)
        p = self._pacers.get(key)
        if p is None:
            lim = self._apps.get(app)
            if lim is None:
                lim = self._apps[app] = AsyncLimiter(*self._app_rate)
            p = self._pacers[key] = MailboxPacer(
                f"{app}/{mailbox}",
                self.limits,
                clock=self._clock,
                sleep=self._sleep,
                app_limiter=lim,
            )
        return p

    def all(self) -> list[MailboxPacer]:
        return list(self._pacers.values())
