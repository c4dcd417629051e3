"""The pacer's decision as a pure step (as rclone's ``Calculate``): from one mailbox's
budgets, the time and one request, whether it goes now or what it waits for, and which limit
binds. ``pacer.py`` is the thin loop that applies it: it sleeps, waits for an answer or a
free slot, and asks again.

``Budgets`` is the pacer's state: what the windows hold, what is in flight, the room
reserved for a body that has waited long, the Retry-After block and, per limit, the budget
in effect (``learn.Learned``: cut by the service's 429s, crept back on answers). The
step reads it and changes nothing (a window dropping what has left it is not a change: it
would be dropped at the next look anyway); the loop applies the transitions (``reserve``,
``take``, ``release``).

An upload budget the service cut, over the configured window, is shaped as the configured
one is (``plan``, ``shape.py``): what its last window will carry at once, the rest of the
free room over the window. Sent whole windows at a time (before), a cut budget burst and
waited most of a window at 0 MB/s, window after window (``stricter``: about 280 service s at
1/2 to 1/60 of the configured budget); an even rate (GCRA) instead had no such gaps but
finished up to a window later (the last window spread, not sent at once) and, beside
another writer, forgot the time the service held the mailbox (a greedy writer catching up
after each Retry-After then took the room first: 63-79% of the real budget). The first cut
is to what the refused burst let through (``FIRST``: the shape is planned for it), a
refusal of the shaped budget a small step (``EVEN``).

Shaped, each mailbox still spent its learned window in a few pieces beside another writer
(the emulator's, on its own clock): 215-283 service s without an import mid-job in
``stricter``, all 8 mailboxes in step. So a cut budget is spent through a token bucket at
its own rate (``evens``: the budget in effect per configured window, ``EVEN_DEPTH`` of it
deep, or as deep as the body that goes when larger: a body after a large one waits for its
own bytes, ``shape.even_wait``; the waiting bodies go in the order they began to wait,
``_ahead``), the learning untouched: in steady state the window
holds the learned budget and room comes back as evenly as it went. Even pacing ends about a
window later than the burst bound (``shape``'s docstring), so the mailbox's last window
goes at once (what is left fits the window's room). The depth trades that window against
the gaps: a deeper bucket lets more of the room go at once where the Retry-After left the
window empty, and one window later that piece leaves the window at once, the mailboxes in
step (``learn_model``, 24 seeds, 0.1 deep: 84-89% beside the writer, at most 24 s mid-job,
and 31 s alone at 1/2; 0.07 deep: 83-88% and 28 s beside it, 12 s alone; 0.05 deep:
82-87%). Recorded in ``stricter`` (with the learning's floor, ``learn.throttled``'s
``through``): beside the writer 68-102 service s after the first window, mostly at the last
mailboxes' last imports, against 215-283 s, at 82-86% of the real budget; alone 76-86%
(``benchmarks/results/stricter.md``). Beside another writer whose bytes
take the room in one piece (a Retry-After of a quarter of the window or more while ours
leave a part at a time, ``LUMP``): no cut, and whole windows from then on (a shape there
is refused each time the writer catches up: 4.6-5.3% of 429s in ``learn_model``, against
2.7-3.5% so).

A cut to what one refusal let through can sit under what the service gives for the rest of
the job (beside another writer, ``stricter`` at 1/10: 1.09 MB per 5 s where the writer left
1.31, one second into the job, the last mailbox's large bodies one at a time at 83% of its
rate), and the slow climb (``learn.answered``) takes tens of windows. The level the service
refused at (ours over the window, in flight and the refused body: ``Budgets.above``) bounds
what it gives from above; a body whose wait through the bucket is long goes when the middle
of that level and the budget in effect says it fits (a probe, ``Budgets._probe_wait``).
Accepted, what went through rises and the budget climbs back to it fast; refused, it costs
one 429 and the service's Retry-After (the time until the body fits), cuts nothing, lowers
the level, and no probe goes for two windows, then four, eight. (The emulator counts a
refused body's request, not its bytes; were its bytes counted too, as the contract's
"throttled calls still count against the limits" may mean, a refused probe would also cost
its bytes over one window: one body per two windows at most.)

A refusal that contradicts the short window the Retry-Afters showed takes the configured
window for the service's only when the configured one is at most ``BELIEVED`` times what
was shown; far longer (Exchange's documented 5 minutes against a service 60 times
shorter), twice what was shown is tried, and a cut budget over it is spent and cut as one
over the configured window is (``Budgets._widened_under_shown``: 2% -> 79-82% of the real
budget under the documented ``[limits]`` beside the other writer in ``learn_model``).

Issue 26's trap (the demo job under the documented ``[limits]`` beside the writer: a
mailbox at 1-4% of ``[limits]`` for the whole job where the service left 50-70%): a refusal
explained by the body's size (``Budgets._too_large``) was taken for a contradiction of the
short window, and where the mailbox had sent long enough the configured window was
believed, cut to what had gone through over it, with nothing to undo it (the level a probe
may reach was left under the cut, and a refused probe waited two configured windows, then
four). Now such a refusal cuts nothing, and a configured window believed where it is far
longer than the window before and any Retry-After is doubted (``Budgets._believed``):
probes go, one body at a time, up to the level refused at and above it (doubling as the
service accepts, ``_uploads_answered``), backed off in Retry-Afters; the service letting
through more than the level it refused at restores the window before (``_retest``); refused
``DOUBTS`` times, the belief stands (the real service's window is the configured one, and
beside a writer on its own clock its Retry-Afters are short too).
"""

from __future__ import annotations

import math
from dataclasses import replace
from enum import Enum, StrEnum
from typing import NamedTuple

from . import learn, remember, shape
from .learn import Learned
from .policy import AdaptiveRate, PacerLimits, SlidingWindow
from .shape import Smooth

# the 429 reasons that name one limit of a mailbox (contract §5)
REQUEST_RATE, INCOMING_BYTES, MAILBOX_CONCURRENCY = (
    "RequestRate",
    "IncomingBytes",
    "MailboxConcurrency",
)


class Kind(Enum):
    GO = "go"  # take a slot now
    SLEEP = "sleep"  # wait ``wait`` seconds on a budget or a Retry-After, then ask again
    ANSWER = "answer"  # only an answer to one of our requests in flight can make room
    SLOT = "slot"  # every slot is taken: wait for one to be freed
    RESERVE = "reserve"  # keep the room this body needs for it, then ask again


class Limit(StrEnum):
    """What holds a request back."""

    NONE = ""
    RETRY_AFTER = "retry_after"  # the service's Retry-After, for the whole mailbox
    REQUESTS = "requests"  # the request budget over its window
    UPLOAD = "upload"  # the upload-bytes budget over its window
    CONCURRENCY = "concurrency"  # the requests in flight per mailbox


class Decision(NamedTuple):
    kind: Kind
    wait: float = 0.0  # seconds (SLEEP; ``inf`` for ANSWER)
    binds: Limit = Limit.NONE


GO = Decision(Kind.GO)
SHORTEST_WAIT = 1e-3  # seconds: a wait on the shape is never shorter (the clock moves on)
SLOT = Decision(Kind.SLOT, 0.0, Limit.CONCURRENCY)
# at a cut budget, a Retry-After longer than this share of the window is another writer's
LUMP = 0.25
FIRST = learn.Aimd(deepest=0.0)  # the first cut: to what the refused burst measured
EVEN = learn.Aimd(cut=0.97, keep=0.97)  # a cut of a shaped budget: a small step
# a cut upload budget is spent through a token bucket refilled at the budget in effect per
# configured window, this share of that budget deep (and at least the body that asks)
EVEN_DEPTH = 0.1
# ... and in the mailbox's last window's worth of bytes (``Budgets.left`` at most the budget;
# over the configured window, not one tried in its place) at this share of that rate: the
# window, full of our own bytes at the full rate, gave room back only as what went a window
# before left it, so the wait for a large body then (up to 1.1 s of 1.29 MB per 5 s for
# 293 KB) came back a window later as a span with nothing sent
# whatever was ready, where the mailbox ends alone (issue 26, ``stricter`` beside the other
# writer: 38-48 service s at the job's tail); kept room lets small bodies go through it
TAIL_RATE = 0.9
# an upload refusal with ours and its body at most this share of the budget over the short
# window the Retry-Afters showed contradicts that window (``Budgets._under_shown``)
UNDER = 0.5
# ... unless our own bytes just older than that window, in one up to this many times as
# long, explain it: the window learned was a little short (``Budgets._just_older``)
NEAR = 1.5
# ... where a Retry-After at least this share of the window shown showed it (a refused
# burst's: the window measured, short by a grain) and the configured one is over
# ``BELIEVED`` times longer (otherwise the configured window may be the service's, and the
# refusal says so: beside a writer on its own clock, windows of 0.6 s shown of 5 s)
ASKED = 0.9
# ... and the configured window is then taken for the service's when it is at most this many
# times the longest the service's answers and our own sends showed (beside a writer on its
# own clock a Retry-After is as short as a twentieth of the service's window); far longer
# (Exchange's documented 5 minutes against a tenant's, or the emulator's, shorter one), a
# window twice that long is tried instead (``Budgets._widened_under_shown``)
BELIEVED = 20.0
# ... and the budget over the window tried climbs back fast up to this share of the rate that
# went through since our oldest bytes (``Budgets._widened_under_shown``)
TRIED_CLIMB = 0.6
# ... and above that at this share of the budget per window tried (``learn.Aimd.rise``)
TRIED_RISE = learn.Aimd(rise=0.005)
AIMD = learn.Aimd()
# A first refusal over a window shorter than the shortest a budget is kept over
# (``learn.Aimd.shortest_window``: a request window of 1 s against ``[limits]``' 600 s): the
# rate is measured over the time the mailbox sent (at least the window shown, ``UNKEPT``),
# not over the window kept, and the cut is to what that rate says (``keep`` of it), at most
# a step under the configured budget (``BURST``): spent in even parts of the window kept
# (``learn.spread``), the burst the service refused is not sent again. Measured over the
# window kept (six times the service's 1 s, where the mailbox had sent for a quarter of a
# second), a pass paced at 20 requests a second per mailbox was cut to the deepest step, a
# quarter of ``[limits]``, and crept back at 1% per window: 15% of the service's rate
# (4 pairs of 40-60 items through the CLI: 16-27 s a pair, now 4-6.5 s;
# ``tests/test_pacer_short_request_window.py``)
UNKEPT = learn.Aimd(shortest_window=0.0)
BURST = learn.Aimd(cut=1 - AIMD.rise)
# the request window's buckets are at most this share of a part of a spread budget long
# (``Budgets.release``)
SPLIT = 4
# an upload refusal that came with more than this many times what the service let through
# over the window its Retry-Afters showed is of our own rate there (``Budgets._own_rate``);
# within it, beside another writer, ours at what went through and a small body on top
# (``learn_model`` 1/1 beside the writer: 1.02-1.06 times what went through)
OWN = 1.1
# a body whose wait through a cut budget's bucket is longer than this share of the window
# goes when the level the service last refused at (``Budgets.above``) says it fits: a probe
# (``Budgets._probe_wait``)
PROBE_WAIT = 0.02
# ... and when that level is at least this much above the budget in effect (a refused body
# a few hundredths of the budget, the cut to what went through, says little), the probe going
# at the middle of the two (halving what the service's answers leave open)
PROBE_GAP = 0.1
# ... and after a probe refused, no other for this many windows, doubled at each
PROBE_BACKOFF = 2.0
# the configured window believed in place of a far shorter one is re-tested by at most this
# many probes refused (``Budgets._retest``)
DOUBTS = 2
# upload windows: a body that has waited this long gets its room kept however long that room
# then stays idle (as the ready pool takes an item passed over this long first)
OVERDUE = 2.0
# a waiting body not worth reserving looks again at the latest after this many reserve_after
LOOK_AGAIN = 4
# A body refused for ``IncomingBytes`` this many times while nothing else of ours was in the
# service's upload window, over at least this many of its windows, cannot pass: another
# writer leaves less room than it needs (Exchange counts every app's uploads to a mailbox
# together); the item fails with that reason (``graph.transport``). Between the two, a body
# at least as large as one refused alone is held (``Budgets.alone``): tried again at
# each Retry-After (the time until the writer's oldest bytes leave, its next ones taking
# their place) such a body was refused until its retries ran out (issue 26, the demo job
# beside the writer: 429s at 5.2-8.7% of its requests)
UNFIT_REFUSALS = 2
UNFIT_WINDOWS = 2.0
ALONE_KEPT = 16
# ... a body is taken for one the room cannot hold only when larger than the most of ours the
# service held in its window over this many of them (``Budgets._room_shown``)
ROOM_SHOWN = 12
# While the job's uploads (every mailbox's, ``Quiet``) have all been answered and none has
# been answered for this share of the configured upload window, a body at most ``PASS``
# of the one the room is kept for passes it through a cut budget's bucket when it conforms
# beside what is in flight (``Budgets._quiet_pass``; 15 service s of Exchange's 300)
QUIET = 0.05
PASS = 0.25


class Quiet:
    """The job's uploads, every mailbox's together (``Pacers``): how many are in flight and
    when one was last answered. A cut budget's bucket holds a mailbox's smaller bodies while
    it waits for a large one (up to 70 service s for 293 KB at the rate another writer
    leaves, ``stricter``), and the 8 mailboxes of a job waited so at once by chance: a span
    of 30-36 service s with no import while every mailbox had bodies waiting (issue 26,
    helper spans2's traces). One of those smaller bodies passing then ends the span, costing
    its mailbox's large body only its own bytes' time through the bucket."""

    __slots__ = ("inflight", "last")

    def __init__(self) -> None:
        self.inflight = 0
        self.last = -math.inf  # when an upload of the job was last answered

    def quiet(self, now: float) -> float:
        """Seconds since the job's last upload was answered (0 while one is in flight)."""
        return 0.0 if self.inflight else now - self.last


def window_wait(w: SlidingWindow, now: float, amount: int, held: int, cap: float) -> float:
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


class Budgets:
    """One mailbox's pacing state (see the module's docstring)."""

    __slots__ = (
        "above",
        "alone",
        "blocked_from",
        "blocked_until",
        "doubted",
        "held_bytes",
        "inflight",
        "job",
        "largest",
        "learned_requests",
        "learned_slots",
        "learned_uploads",
        "left",
        "limits",
        "probe_after",
        "probes_refused",
        "refused",
        "requests",
        "reserve_after",
        "reserved",
        "reserver",
        "shape",
        "shared",
        "shown_full",
        "smooth",
        "told",
        "tried",
        "uploads",
        "waiting",
    )

    def __init__(self, limits: PacerLimits, job: Quiet | None = None) -> None:
        self.limits = lim = limits
        self.job = job  # the job's uploads, every mailbox's (None: this mailbox's alone)
        self.requests = SlidingWindow(lim.requests, lim.request_window + lim.window_slack)
        self.uploads = SlidingWindow(lim.upload_bytes, lim.upload_window + lim.window_slack)
        # in flight: counted against the budgets until answered, then in the windows
        self.inflight = 0
        self.held_bytes = 0
        self.reserved = 0  # upload room kept for the body that has waited longest
        # how long a body waits for room before it gets that room reserved
        self.reserve_after = lim.upload_window * lim.reserve_after_share
        self.blocked_until = 0.0  # Retry-After: nothing goes before
        self.blocked_from = 0.0  # ... since (the latest block)
        # the budgets in effect: what the service really gives, learned from its 429s
        self.learned_requests = Learned.of(lim.requests, lim.request_window)
        self.learned_uploads = Learned.of(lim.upload_bytes, lim.upload_window)
        self.learned_slots = Learned.of(lim.concurrency)
        # the free upload room held back and given back evenly (``shape``): so that the
        # windows after the first do not burst and idle
        self.shape = shape.NONE
        self.smooth = Smooth()
        # the service has let nearly a whole configured window through: it gives the budget
        self.shown_full = False
        self.largest = 0  # the largest body sent
        # another writer's bytes took the room in one piece: a cut budget is not shaped
        self.shared = False
        # the bytes still to upload, those in flight included, as ``plan`` was last told
        # (None: not known)
        self.left: float | None = None
        # the service refused an upload of this pacer's: a cut it learned, not one remembered
        # from the last pass (which climbs back shaped until refused: ``evens``)
        self.refused = False
        # the upload window tried in place of a configured one far longer than what the
        # service showed (``_widened_under_shown``): a cut budget over it is spent and cut
        # as one over the configured window is (0.0: none)
        self.tried = 0.0
        # the bodies waiting for their turn: (since when, bytes), and when the one the room
        # is kept for began to wait (``queue``, ``went``; ``_ahead``)
        self.waiting: list[tuple[float, int]] = []
        self.reserver: float | None = None
        # the upload level (our bytes over the configured window, in flight and the refused
        # body included) the service last refused at, above a cut budget: a probe may go up
        # to it (``_probe_wait``); not before ``probe_after``, backed off per probe refused
        self.above = 0.0
        self.probe_after = 0.0
        self.probes_refused = 0
        # the configured window believed in place of a far shorter one, to be re-tested
        # (``_retest``): the budget before, the window tried then (0.0: none), the level
        # the service refused at when it was believed, and the probes refused since
        # (``DOUBTS`` at most); None: not so
        self.doubted: tuple[Learned, float, float, int] | None = None
        # the bodies the service refused while nothing else of ours was in its upload window
        # (the room another writer leaves is smaller than each): (bytes, when), the latest
        # ``ALONE_KEPT``; one is forgotten once the service lets as much of ours through
        # (``answered``). A body at least as large as one of them is held, then goes alone
        # (``_unfit_wait``), and fails once they show it cannot pass (``unfit``)
        self.alone: list[tuple[int, float]] = []
        # the uploads larger than the service has held of ours at once (``_room_shown``) it
        # refused, each with when its Retry-After said room comes back for it: (bytes,
        # until), while that is later than the mailbox's block (a ``max_retry_after``
        # shorter than the service's wait). A body at least as large waits until then
        # (``_told_wait``). Smaller ones are not held so: their learning took the fewer
        # refusals for a budget lower than the service's (``test_pacer_capped_retry_after``:
        # 0.54-0.62 of it at the stop, against 0.70-0.74)
        self.told: list[tuple[int, float]] = []

    @property
    def rate(self) -> AdaptiveRate:
        """The request and upload budgets in effect as one factor (the smaller share)."""
        return AdaptiveRate(factor=min(self.learned_requests.share, self.learned_uploads.share))

    @rate.setter
    def rate(self, rate: AdaptiveRate) -> None:
        """Both budgets in effect at ``rate.factor`` of the configured ones."""
        for name in ("learned_requests", "learned_uploads"):
            lim: Learned = getattr(self, name)
            setattr(self, name, replace(lim, cap=lim.configured * rate.factor))

    def upload_cap(self) -> float:
        """The upload budget we allow ourselves now, per configured window."""
        return self.learned_uploads.cap * self.limits.margin

    def request_cap(self) -> float:
        return max(1.0, self.learned_requests.cap * self.limits.margin)

    def _wait_on(
        self, lim: Learned, w: SlidingWindow, now: float, amount: int, held: int, inflight: int
    ) -> float:
        """``window_wait`` under the budget in effect, over the window it is kept over
        (``held``: in flight and kept for another; ``inflight``: in flight only)."""
        budget, seconds = lim.in_window()
        cap = max(1.0, budget * self.limits.margin)
        if seconds >= lim.period:
            wait = window_wait(w, now, amount, held, cap)
        else:
            w.expire(now)
            wait = w.recent_delay(now, seconds, amount, held, cap)
        part = learn.spread(lim)
        if part is not None and wait < math.inf:
            # a cut budget in even parts of its window: a request goes while what is in
            # flight (not the room kept for another body) and what went in the last part
            # are under the part's share (it may end over it: the window keeps the budget)
            budget, seconds = part
            share = max(1.0, budget * self.limits.margin)
            wait = max(wait, w.recent_delay(now, seconds, 1, inflight, share))
        return wait

    def _upload_window(self, now: float, soon: float = 0.0) -> tuple[float, float, float]:
        """(budget, seconds, sent): the upload budget in effect over the window it is kept
        over, that window's length as the pacer counts it, and what it holds beyond the
        next ``soon`` seconds (what leaves it by then is not counted)."""
        lim, w = self.learned_uploads, self.uploads
        budget, seconds = lim.in_window()
        cap = max(1.0, budget * self.limits.margin)
        w.expire(now)
        if seconds >= lim.period:
            seconds = w.width
        return cap, seconds, w.since(now - seconds + soon * seconds)

    def _shaped_wait(self, now: float, body_bytes: int, held: int) -> float:
        """Seconds until a body fits beside the room the shape still holds back, counting
        what leaves the window meanwhile (0 when the window alone binds: the step asks again
        once it has room)."""
        hb = self.shape.held(now)
        if hb <= 0:
            return 0.0
        cap, seconds, sent = self._upload_window(now)
        if body_bytes >= cap:
            return 0.0  # a body the budget cannot hold goes alone, as ever
        need = sent + held + body_bytes + hb - cap
        if need < 1.0:  # (a byte: the shape gives back a fraction at a time)
            return 0.0
        start = now - seconds
        leaving = ((t + seconds, a) for t, a, _ in self.uploads.events() if t > start)
        wait = self.shape.wait(now, need, leaving)
        return 0.0 if wait == math.inf else max(wait, SHORTEST_WAIT)

    def shapes_cut(self) -> bool:
        """The upload budget is cut by the service over the configured window and no other
        writer has shown: ``plan`` shapes it as the configured one (the module's
        docstring)."""
        lim = self.learned_uploads
        return lim.is_cut and lim.over_configured and not self.shared

    def _on_tried(self) -> bool:
        """The upload budget is kept over the window tried in place of the configured one
        (``_widened_under_shown``)."""
        lim = self.learned_uploads
        return 0 < self.tried == lim.window < lim.period

    def evens(self, now: float) -> bool:
        """The spending of a cut upload budget goes through a token bucket at its rate
        (``shape.even_wait``): the upload budget is cut over the configured window (or the
        one tried in its place), and what the mailbox has left does not fit in the room its
        window has now (its last window goes at once: nothing after it needs the room)."""
        lim = self.learned_uploads
        if not (self.refused and lim.is_cut and lim.period > 0):
            return False
        if lim.window < lim.period and not self._on_tried():
            return False
        if self.left is not None:
            cap, _, sent = self._upload_window(now)
            if self.left <= cap - sent - self.reserved:
                return False
        return True

    def _even(self, body_bytes: int = 0) -> tuple[float, float]:
        """(rate, depth) of the bucket a cut budget is spent through: bytes per second, bytes
        (the depth a share of the budget over the window it is kept over)."""
        lim = self.learned_uploads
        cap = max(1.0, lim.cap * self.limits.margin)
        budget, _ = lim.in_window()
        last = max(1.0, budget * self.limits.margin)  # over the window it is kept over
        depth = max(float(body_bytes), EVEN_DEPTH * last)
        rate = cap / lim.period
        if self.left is not None and self.left <= last and lim.window >= lim.period:
            rate *= TAIL_RATE  # the mailbox's last window: room kept in it (``TAIL_RATE``)
        return rate, depth

    def _even_wait(self, now: float, body_bytes: int, held: int) -> float:
        """Seconds until a body conforms to the bucket of a cut budget (0: no bucket)."""
        if not self.evens(now):
            return 0.0
        rate, depth = self._even()
        sent = ((t, a) for t, a, _ in self.uploads.events())
        wait = shape.even_wait(
            now, sent, held, body_bytes, rate, depth, self.held_bytes, self.largest
        )
        return 0.0 if wait <= 0 else max(wait, SHORTEST_WAIT)

    def plan(self, now: float, remaining: float | None) -> None:
        """Shape the free upload room (``shape.plan``) unless a shape is still running;
        ``remaining``: the bytes the mailbox still has to upload, those in flight included
        (None: not known)."""
        self.left = remaining
        cut = self.learned_uploads.is_cut
        if now < self.shape.ends or (cut and not self.shapes_cut()) or self.evens(now):
            # a shape runs its window; a budget cut over a window shorter than the configured
            # one goes in even parts of it (``learn.spread``); beside another writer's lumps
            # whole windows carry more
            return
        if not self.shown_full and not cut:
            # nor before the service has let (nearly) a whole window through: a service
            # stricter than configured refuses the first window's burst, and a plan for the
            # configured budget would only slow the learning (a cut budget is what the
            # service let through)
            cap, _, sent = self._upload_window(now)
            if sent + self.held_bytes < self.smooth.shown * cap:
                return
            self.shown_full = True
        # the room free now and about to be: a window's room comes back in the parts it was
        # taken in, each used as it comes, so the room of a burst is never all free at once
        cap, seconds, sent = self._upload_window(now, self.smooth.soon)
        free = cap - sent - self.held_bytes - self.reserved
        left = None if remaining is None else max(0.0, remaining - self.held_bytes)
        self.shape = shape.plan(now, free, left, cap, seconds, self.smooth, self.largest)

    def slots(self) -> int:
        """Requests allowed in flight now (the concurrency in effect)."""
        return learn.slots(self.learned_slots)

    def binding(
        self, now: float, body_bytes: int, reserving: bool, since: float | None = None
    ) -> tuple[float, Limit]:
        """Seconds until a request with ``body_bytes`` of body fits every budget (``inf``:
        not before one of our requests in flight has been answered), and the budget that
        holds it longest. A body goes beside the room reserved for another (``reserving``: it
        holds the reservation), or in it when that does not hold the other back
        (``_beside``); through a cut budget's bucket, after the bodies that began to wait
        before it (``since``: when it began; None: it has not, ``_ahead``)."""
        wait, binds = self.blocked_until - now, Limit.RETRY_AFTER
        n = self.inflight
        w = self._wait_on(self.learned_requests, self.requests, now, 1, n, n)
        if w > wait:
            wait, binds = w, Limit.REQUESTS
        if body_bytes:
            w = self._upload_wait(now, body_bytes, reserving, since)
            if w > PROBE_WAIT * self.limits.upload_window and self._probes(now):
                w = min(w, self._probe_wait(now, body_bytes, reserving, since))
            if self.alone and self._refused_alone(body_bytes)[0]:
                w = max(w, self._unfit_wait(now, body_bytes))
            if self.told:
                w = max(w, self._told_wait(now, body_bytes))
            if w > wait:
                wait, binds = w, Limit.UPLOAD
        return wait, binds

    def _upload_wait(
        self, now: float, body_bytes: int, reserving: bool, since: float | None
    ) -> float:
        """``binding``'s wait on the upload budget in effect (see there)."""
        held = self.held_bytes + (0 if reserving else self.reserved)
        w = self._wait_on(
            self.learned_uploads, self.uploads, now, body_bytes, held, self.held_bytes
        )
        if w > 0 and self.reserved and not reserving and self._beside(now, body_bytes):
            w = 0.0
        if reserving:
            ahead = held
        elif (self.reserved and self._even_beside(now, body_bytes)) or self._quiet_pass(
            now, body_bytes, since
        ):
            ahead = self.held_bytes
        else:
            ahead = held + self._ahead(since)
        return max(
            w, self._shaped_wait(now, body_bytes, held), self._even_wait(now, body_bytes, ahead)
        )

    def _probes(self, now: float) -> bool:
        """Whether a long wait through the bucket of a cut budget (``evens``, over the
        configured window) may be cut short by a probe (``_probe_wait``): the service last
        refused above the budget in effect (or, the window doubted, ``_bound``), and no
        probe was refused lately."""
        lim = self.learned_uploads
        return (
            now >= self.probe_after
            and self._bound() > lim.cap * (1 + PROBE_GAP)
            and lim.over_configured
            and self.evens(now)
        )

    def _probe_wait(
        self, now: float, body_bytes: int, reserving: bool, since: float | None
    ) -> float:
        """The wait of a body under the level the service last refused at (``above``) in
        place of the budget in effect: a probe. The costs are both known: a body paced at a
        budget cut under what the service gives (one refusal's snapshot beside another
        writer: 1.09 MB per 5 s where it left 1.31, never climbed back, the last mailbox's
        190-293 KB bodies one at a time at 83% of its rate) waits the difference, every
        body; a probe refused costs one 429 and the service's Retry-After, which says when
        the body fits (a refused body takes nothing of the service's upload window), and
        cuts nothing (``_probe_refused``). Accepted, what went through rises above the
        budget in effect, which climbs back to it fast (``learn.answered``'s ``proven``).

        Over a window far longer than any the service's answers showed (``_far``: the
        configured one believed beside a writer on its own clock), through the bucket at
        the level's rate a probe tested nothing for minutes (the level per 300 s, where the
        x60 service's window is 5 s): there it waits only for the level's room in the
        window, and what the service accepts shows within its own window."""
        lim = self.learned_uploads
        probe = replace(lim, cap=self._probe_level())
        self.learned_uploads = probe
        try:
            if self._far(lim):
                # and one body at least (nothing else in flight): a level under ours and
                # the body waiting held the re-test off for good (the demo job: 3.96 MB of
                # ours over 300 s, a 473 KB body, the level 4.2 MB)
                h = self.held_bytes + (0 if reserving else self.reserved)
                ours = self.uploads.since(now - lim.period) + h + body_bytes
                self.learned_uploads = replace(probe, cap=max(probe.cap, ours + 1.0))
                return self._wait_on(
                    self.learned_uploads, self.uploads, now, body_bytes, h, self.held_bytes
                )
            return self._upload_wait(now, body_bytes, reserving, since)
        finally:
            self.learned_uploads = lim

    def _bound(self) -> float:
        """The level probes search under: the one the service last refused at (``above``),
        or twice it once the budget in effect is within ``PROBE_GAP`` of it (the probes'
        back-off over: a level refused once bounds what the service gives until another
        writer or the window changes; the search goes on above it, a probe per back-off)."""
        cap = self.learned_uploads.cap
        if self.doubted is None or self.above > cap * (1 + PROBE_GAP):
            return self.above
        return 2 * self.above

    def _probe_level(self) -> float:
        """The level a probe goes up to: the middle of the budget in effect and the level
        probes search under (``_bound``)."""
        lim = self.learned_uploads
        return min((lim.cap + self._bound()) / 2, lim.configured)

    def _far(self, lim: Learned) -> bool:
        """The budget is kept over the configured window believed in place of a far shorter
        one (``doubted``), over ``BELIEVED`` times the longest Retry-After the service gave,
        and nothing of ours is in flight (one probe at a time)."""
        return (
            self.doubted is not None
            and self.held_bytes == 0
            and 0 < BELIEVED * lim.longest_ask < lim.window
        )

    def _even_beside(self, now: float, body_bytes: int) -> bool:
        """Whether a body may pass the one the room is kept for through the bucket: it
        conforms now beside what is in flight, and the kept body still goes when it would
        (the window's room, not the bucket, holds it longer). Without it the bucket's room
        idled while a large body waited for the window (``learn_model`` beside the writer:
        88% of the real budget against 89% before the order; 89% with it)."""
        h, kept = self.held_bytes, self.reserved
        if self._even_wait(now, body_bytes, h) > 0:
            return False
        lim, w = self.learned_uploads, self.uploads
        before = max(self._wait_on(lim, w, now, kept, h, h), self._even_wait(now, kept, h))
        h += body_bytes
        after = max(self._wait_on(lim, w, now, kept, h, h), self._even_wait(now, kept, h))
        return after <= before

    def _quiet_pass(self, now: float, body_bytes: int, since: float | None) -> bool:
        """Whether a body may pass those waiting before it through the bucket (the one the
        room is kept for among them) because the job has sent nothing for a while
        (``Quiet``): at most ``PASS`` of the largest of them, and it conforms now beside
        what is in flight."""
        job = self.job
        if job is None or job.quiet(now) < QUIET * self.limits.upload_window:
            return False
        if body_bytes > PASS * self._largest_ahead(since):
            return False
        return self._even_wait(now, body_bytes, self.held_bytes) <= 0

    def _largest_ahead(self, since: float | None) -> int:
        """The largest body that began to wait before ``since`` (all: None), or the one the
        room is kept for (0: none)."""
        before = (n for s, n in self.waiting if since is None or s < since)
        return max(before, default=self.reserved) if self.job is not None else 0

    def _quiet_look(self, now: float, body_bytes: int, since: float | None) -> float:
        """Seconds until a body small enough to pass those waiting before it
        (``_quiet_pass``) may first do so by the job's quiet alone (inf: it may not)."""
        job = self.job
        if job is None or not body_bytes or body_bytes > PASS * self._largest_ahead(since):
            return math.inf
        q = QUIET * self.limits.upload_window
        return max(q - job.quiet(now), SHORTEST_WAIT) if not job.inflight else q

    def _ahead(self, since: float | None) -> int:
        """The bytes of the bodies that began to wait before ``since`` (all: None), the one
        the room is kept for aside (held already): through the bucket, bodies go in the
        order they began to wait, its rate the same whichever goes first (a body passes
        the one the room is kept for only where that one loses nothing: ``_even_beside``).
        Smaller bodies passing a large one (they conform sooner, and take the reservation
        in turn) left the largest for the job's tail (issue 26, ``stricter`` beside the
        other writer: 218-293 KB bodies that had waited 7-12 s sent last, each a span of up
        to 75 service s; ``learn_model``: the last 3 bodies of a mailbox 1.5-2.0 times its
        mean body, 0.3 times so)."""
        kept = self.reserver if self.reserved else None
        return sum(n for s, n in self.waiting if (since is None or s < since) and s != kept)

    def queue(self, since: float, body_bytes: int) -> None:
        """A body began at ``since`` to wait for its turn (``went`` when it goes or gives up)."""
        if body_bytes:
            self.waiting.append((since, body_bytes))

    def went(self, body_bytes: int, since: float | None, reserved: int) -> bool:
        """The body that began to wait at ``since`` (None: it did not) goes, or gives up: the
        room kept for it (``reserved``) is its own or free, and it waits no more. Whether
        room was kept (given up: the bodies it held back may fit now, a parked one's too:
        a held pair's parked body held back every other pair importing here until the pair
        was cut short, review6)."""
        if reserved:
            self.reserved = 0
        if since is not None and (since, body_bytes) in self.waiting:
            self.waiting.remove((since, body_bytes))
        return bool(reserved)

    def _beside(self, now: float, body_bytes: int) -> bool:
        """Whether a body may take room kept for another: it fits now, and the body the room
        is kept for still goes when it would have (what comes back by then holds both). The
        room kept was otherwise idle until then, a window's room in one traced mailbox."""
        lim, w, h = self.learned_uploads, self.uploads, self.held_bytes
        if self._wait_on(lim, w, now, body_bytes, h, h) > 0:
            return False
        kept = self._wait_on(lim, w, now, self.reserved, h, h)
        held = h + body_bytes
        return kept < math.inf and self._wait_on(lim, w, now, self.reserved, held, held) <= kept

    def worth_reserving(
        self, body_bytes: int, wait: float, waited: float, now: float, since: float | None = None
    ) -> bool:
        """Whether a body that has waited ``waited`` seconds and would wait ``wait`` more
        gets its room kept now: once it has waited ``reserve_after``, when that room comes
        back within ``reserve_after`` (kept longer, what is free meanwhile sits idle, while
        smaller bodies could use it: the room it lacks then comes back a window later), when
        it needs the whole budget (an empty window: the room idles as long whenever it is
        kept), when a cut budget is spent at its even rate (``evens``, at ``now``: the
        bucket's rate is the same whichever body goes first, nothing idles while it waits,
        and smaller bodies passing it left the largest for the job's tail: issue 26, the
        last 8 uploads of a mailbox 192 KB against 82 KB over the job, each alone at the
        rate beside another writer), and at the latest after ``OVERDUE`` windows (it never
        waits for ever behind smaller bodies); one body at a time."""
        if not self.reservable(body_bytes):
            return False
        if self.alone and self._refused_alone(body_bytes)[0]:  # once its hold is over
            return self._unfit_hold(now, body_bytes) <= now
        if self.evens(now):  # at once, for the body that has waited longest (``_ahead``)
            return since is None or not any(s < since for s, _ in self.waiting)
        if waited < self.reserve_after:
            return False
        return (
            wait <= self.reserve_after
            or body_bytes >= self.upload_cap()
            or waited >= OVERDUE * self.limits.upload_window
            or self.evens(now)
        )

    def look_again(self, now: float, body_bytes: int, wait: float, since: float | None) -> float:
        """Seconds a body that would wait ``wait`` more, not worth reserving now, sleeps
        before it asks again: until ``worth_reserving`` may first say yes with time alone
        (it has waited ``reserve_after`` and its room comes back within ``reserve_after``,
        or it needs the whole budget, or it is overdue), never longer than ``reserve_after``
        times ``LOOK_AGAIN``; at a cut budget's even rate (``evens``), where the body that
        has waited longest reserves at once, every ``reserve_after`` as before. Every
        ``reserve_after`` was 5 naps per wait in ``fleet``, each a timer and a step for
        nothing: a wait shortened meanwhile (a budget climbing, room given back) is seen at
        the next look, up to ``LOOK_AGAIN`` ``reserve_after`` later (nothing wakes a sleeping
        body: 120 s at the default 300 s window, where it was 30 s)."""
        ra = self.reserve_after
        if self.evens(now):  # the next oldest reserves as soon as the one ahead goes
            return min(ra, self._quiet_look(now, body_bytes, since))
        waited = 0.0 if since is None else now - since
        first = ra - waited  # until it has waited reserve_after
        if body_bytes < self.upload_cap():
            first = max(first, min(wait - ra, OVERDUE * self.limits.upload_window - waited))
        # none of them ahead: what holds it is not time (another body's room kept): as before
        return ra if first <= 0 else min(max(first, SHORTEST_WAIT), ra * LOOK_AGAIN)

    def doubt_look(self) -> float:
        """Seconds a body waiting on the configured window believed and doubted (``doubted``)
        sleeps at most before it asks again: the window the service's answers showed before
        (``_service_window``). Nothing wakes a sleeping body, and the belief is undone by an
        answer (``_retest``): a body that had its room kept slept the 176 s the believed
        window asked while the room kept for it held every other body back, the window
        before restored 0.2 s after it lay down (``learn_model`` beside a writer taking
        0.3 under the documented ``[limits]``, realistic bodies up to 1.7 MB, seed 1: 10,536
        service s without an import, 26% of the real budget)."""
        return max(self._service_window(), SHORTEST_WAIT)

    def in_order(self, now: float) -> bool:
        """Whether the ready items are best taken in order, not by the room (oldest first
        while more are to come, then the largest: ``ReadyItems.choose``): a cut budget spent
        at its even rate (``evens``), which sends as much whichever goes first; taking the
        largest that fits the bucket's room, else the smallest, left the largest for the
        job's tail, where one or two mailboxes send them one at a time at the rate
        (``worth_reserving``)."""
        return self.evens(now)

    def delay(self, now: float, body_bytes: int, reserving: bool = False) -> float:
        """Seconds until a request with ``body_bytes`` of body may be sent (0: now)."""
        return max(0.0, self.binding(now, body_bytes, reserving)[0])

    def upload_room(self, now: float) -> float:
        """Request-body bytes that could be sent now without waiting on the upload budget
        (infinite while the window is empty and nothing is in flight: anything passes)."""
        w = self.uploads
        w.expire(now)
        hb = self.shape.held(now)
        if w.total == 0 and self.held_bytes == 0 and hb <= 0:
            return math.inf
        room = self.upload_cap() - w.total - self.held_bytes - self.reserved - hb
        if self.evens(now):
            rate, depth = self._even()
            sent = ((t, a) for t, a, _ in w.events())
            held = self.held_bytes + self.reserved
            room = min(
                room,
                shape.even_room(now, sent, held, rate, depth, self.held_bytes, self.largest),
            )
        return room

    def reservable(self, body_bytes: int) -> int:
        """The room ``reserve`` would keep for ``body_bytes`` (at most the whole budget); 0
        when another body holds the reservation."""
        if self.reserved:
            return 0
        if self.alone and self._refused_alone(body_bytes)[0]:
            return int(self.upload_cap())  # it goes alone: nothing of ours beside it
        return int(min(body_bytes, self.upload_cap()))

    # -- transitions, applied by the loop -------------------------------------------------------
    def reserve(self, body_bytes: int, since: float | None = None) -> int:
        """Keep the room ``body_bytes`` needs for it (waiting since ``since``); the room kept
        (0: none)."""
        room = self.reservable(body_bytes)
        if room:
            self.reserved = room
            self.reserver = since
        return room

    def take(self, body_bytes: int) -> None:
        """A request takes its slot: held against the budgets while in flight."""
        self.inflight += 1
        self.held_bytes += body_bytes
        if body_bytes and self.job is not None:
            self.job.inflight += 1
        if body_bytes > self.largest:
            self.largest = body_bytes

    def release(self, done: float, body_bytes: int) -> None:
        """It was answered at ``done``: counted in the windows from then on. The service
        counts a request when it arrives, which is after we send it and before we have its
        answer, so its budget is never given back earlier than the service gives it back."""
        self.inflight -= 1
        self.held_bytes -= body_bytes
        part = learn.spread(self.learned_requests)
        # a cut request budget spent in even parts of a short window (half a second of the
        # 6 s kept against a 1 s service window): sends a grain apart counted at the latest
        # of them (``SlidingWindow.record``, 0.6 s under a 600 s window) held each part back
        # by the grain too, 8.8 requests a second where the budget gave 16.5
        self.requests.record(done, 1, None if part is None else part[1] / SPLIT)
        if body_bytes:
            self.uploads.record(done, body_bytes)
            if self.job is not None:
                self.job.inflight -= 1
                self.job.last = max(self.job.last, done)

    def answered(self, body_bytes: int, now: float | None = None) -> None:
        """A request was answered without a 429: each budget in effect creeps back up (fast
        up to what the service let through over its window, measured at ``now``)."""
        lim = self.learned_requests
        if lim.is_cut:
            through = _through(lim, self.requests, now)
            self.learned_requests = learn.answered(lim, 1, through)
        if self.alone and body_bytes and now is not None:
            # the service let this much of ours into its window: room for a body as large
            let = self.uploads.since(now - self._service_window())
            self.alone = [(n, t) for n, t in self.alone if n > let]
        lim = self.learned_uploads
        retested = now is not None and self._retest(now, 1 + PROBE_GAP)
        if body_bytes and lim.is_cut and not retested:
            self._uploads_answered(body_bytes, now)
        self.learned_slots = learn.concurrency_answered(self.learned_slots)

    def _uploads_answered(self, body_bytes: int, now: float | None) -> None:
        """``answered`` for the upload budget, cut (see there)."""
        lim = self.learned_uploads
        through = _through(lim, self.uploads, now)
        level = self._probe_level()
        # over the window tried too, the slow climb goes at that window's pace (half as
        # fast as over a window shown, ``TRIED_RISE``: at 1% ``test_pacer_trap`` had 6.5%
        # of 429s): per configured window (before) a budget cut there stayed for the job
        # (issue 26, the demo job beside a writer taking 0.3: 0.29 and 0.37 of [limits]
        # over 24 and 9.4 s tried, for 270 s, where the writer left 0.7); refusals there
        # are small steps (``_tried_step``)
        lim = learn.answered(lim, body_bytes, through, TRIED_RISE if self._on_tried() else AIMD)
        if lim.over_configured and self._far(lim) and through > lim.cap:
            # over a window far longer than any the service showed (``_far``), what it let
            # through over it is what it gives: a probe accepted is taken
            lim = replace(lim, cap=min(through, lim.configured), proven=through)
        self.learned_uploads = lim
        if (
            self._far(lim)
            and self.above > 0
            and (1 + PROBE_GAP) * max(lim.cap, through) >= min(self.above, level * (1 + PROBE_GAP))
        ):
            # the service let the budget (or what went through) reach the level it last
            # refused at, or a probe's: that level no longer bounds what it gives (another
            # writer's share, or the window, changed), and the probes search above it
            # (doubling, as TCP's slow start; bisection again from the next level refused)
            self.above = min(2 * self.above, lim.configured)

    def throttled(self, now: float, reason: str, retry_after: float, body_bytes: int) -> None:
        """A 429 (already released) naming ``reason``: that limit's budget in effect is cut
        towards what this mailbox had in use. An ``IncomingBytes`` refusal took no bytes in,
        so its body leaves the upload window.

        ``retry_after``: the service's, not the wait the pacer holds the mailbox for (at
        most ``max_retry_after``): the room comes back when the service said, so the
        window it shows and the episode it begins are that long. Learned from the capped
        wait (``max_retry_after_s`` = 2 against the service's 5 s window, cut-short seed
        943), the windows learned were 3 and 4 s and each refusal of the mailbox sent
        again before the room came back began a new episode and cut again. One longer
        than both the cap and the limit's configured window says no more than the window
        does (``learn.window_after``), and would hold off the next cut that long."""
        lim = self.limits
        window = lim.upload_window if reason == INCOMING_BYTES else lim.request_window
        retry_after = min(retry_after, max(lim.max_retry_after, window))
        if reason == INCOMING_BYTES:
            self._uploads_throttled(now, retry_after, body_bytes)
        elif reason == REQUEST_RATE:
            self.learned_requests = _learn(
                self.learned_requests,
                self.requests,
                now,
                retry_after,
                1,
                self.inflight,
                self.blocked(now),
            )
        elif reason == MAILBOX_CONCURRENCY:
            self.learned_slots = learn.concurrency_throttled(
                self.learned_slots, now, self.inflight, retry_after
            )

    def _uploads_throttled(self, now: float, retry_after: float, body_bytes: int) -> None:
        """An ``IncomingBytes`` 429 (``throttled``)."""
        self.uploads.forget(now, body_bytes)
        if retry_after > self.limits.max_retry_after and body_bytes > self._room_shown(
            now, self._service_window()
        ):
            self.told = [*self.told[1 - ALONE_KEPT :], (body_bytes, now + retry_after)]
        span = self.alone_window(now)
        if span is not None and body_bytes > self._room_shown(now, span):
            self.alone = [*self.alone[1 - ALONE_KEPT :], (body_bytes, now)]
        if self._probe_refused(now, retry_after, body_bytes):
            return
        self.refused = True
        self.shape = shape.NONE  # planned for a budget the service did not give
        lim = self.learned_uploads
        ours = _ours_in_window(lim, self.uploads, now) + self.held_bytes
        under = ours < body_bytes or self._under_shown(lim, ours, body_bytes)
        under = under and not self._own_rate(lim, ours, body_bytes)
        under = under and not self._too_large(lim, now, body_bytes)
        if under and (wider := self._just_older(lim, now, retry_after, body_bytes)):
            lim = self.learned_uploads = wider  # the window shown was short: not contradicted
            under = False
        if under and self._longer_window(lim, now, body_bytes):
            # the window the Retry-Afters showed is contradicted: ours left it (or kept
            # well under its budget there) and still no room. Beside a writer on its own
            # clock (its writes a window old leave as its new ones come) a Retry-After is
            # the time until its oldest leave, a small part of the service's window: the
            # configured one is the service's, and what went through over it is what the
            # service gives (a first cut, as of a refused burst). Unless the configured
            # one is far longer than anything the service or our sends showed
            if not self._widened_under_shown(lim, now, retry_after):
                self._believed(lim, now, retry_after, body_bytes)
            return
        if ours < body_bytes:
            # fewer of our bytes in the service's window than this one body: not our
            # rate, another writer's bytes hold the room (Exchange counts every app's
            # uploads to a mailbox together). Nothing to learn of our budget or of the
            # window; cutting here collapsed the budget to 1/264 on one body too large
            # for the room left, window after window, and the hint passed that on
            ask = max(lim.longest_ask, retry_after)
            self.learned_uploads = replace(lim, episode_until=now + retry_after, longest_ask=ask)
            return
        if (
            self.shapes_cut()
            and now >= lim.episode_until
            and retry_after > LUMP * lim.window
            and self._others_leave_first(now, retry_after)
        ):
            # a long wait for room that ends before any of our bytes leave the window:
            # another writer's bytes, taken in one piece (one catching up after a wait
            # is first when room comes back). Not our rate; and
            # beside such a writer a shape is refused each time it catches up
            self.shared = True
            self.learned_uploads = replace(
                lim,
                episode_until=now + retry_after,
                longest_ask=max(lim.longest_ask, retry_after),
            )
            return
        if self._on_tried() and self._tried_step(lim, now, retry_after, body_bytes):
            return
        if lim.over_configured:  # the level refused at: where a probe may reach
            self.above = self._refused_level(lim, now, body_bytes)
            self.probes_refused = 0  # a new level: the probes' back-off starts again
        self.learned_uploads = _learn(
            lim,
            self.uploads,
            now,
            retry_after,
            body_bytes,
            self.held_bytes,
            self.blocked(now),
            shaped=not self.shared,
            through=True,
        )

    def _retest(self, now: float, margin: float) -> bool:
        """Whether the configured window believed in place of a shorter one (``doubted``)
        is contradicted by what the service has let through since: more of ours over it
        than the level it refused at when it was believed (``margin`` times it). A service
        whose window is the configured one gives no more over it (but for another writer
        leaving room); one whose window is far shorter lets through what that window has
        room for, window after window (issue 26, the demo job beside the writer: believed
        24 s in at 1-4% of ``[limits]``, the x60 service's 5 s window letting 1.3 MB
        through each). Then the budget over the window before is restored (applied)."""
        if self.doubted is None:
            return False
        lim, tried, level, _ = self.doubted
        if self.uploads.since(now - lim.period) + self.held_bytes <= margin * level:
            return False
        cur = self.learned_uploads
        self.doubted = None
        self.tried = tried
        ask = max(lim.longest_ask, cur.longest_ask)
        self.learned_uploads = replace(lim, episode_until=cur.episode_until, longest_ask=ask)
        self.above = 0.0
        self.probes_refused = 0
        return True

    def _believed(self, lim: Learned, now: float, retry_after: float, body_bytes: int) -> None:
        """The configured window taken for the service's (``_uploads_throttled``): what went
        through over it is what the service gives (a first cut, as of a refused burst), and
        the level refused at (ours over it, in flight and the body) is where a probe may
        reach (before, ``above`` was left where the first refusal set it, under the cut:
        no probe ever went). Where the configured window is far longer than the window in
        effect before and than any Retry-After, the belief is doubted: re-tested by what
        the service lets through (``_retest``)."""
        level = self._refused_level(lim, now, body_bytes)
        if lim.period > BELIEVED * max(lim.longest_ask, retry_after, lim.window):
            self.doubted = (lim, self.tried, level, 0)
            # a new level: no back-off of earlier probes (over the configured window at
            # the job's start) holds the re-test off
            self.probe_after = min(self.probe_after, now + retry_after)
        self.tried = 0.0
        whole = replace(lim, window=lim.period, shown=lim.period, episode_until=-math.inf)
        self.above = level
        self.probes_refused = 0
        through = self.uploads.since(now - whole.period)
        self.learned_uploads = learn.throttled(
            whole,
            now,
            through + self.held_bytes,
            retry_after,
            whole.period,
            whole.period,
            FIRST,
            through,
        )

    def _refused_level(self, lim: Learned, now: float, body_bytes: int) -> float:
        """The level an upload of ``body_bytes`` was refused at: ours over the configured
        window, in flight, and the refused body."""
        return self.uploads.since(now - lim.period) + self.held_bytes + body_bytes

    def _probe_backoff(self, lim: Learned, retry_after: float) -> float:
        """Seconds without a probe after one refused: ``PROBE_BACKOFF`` configured windows,
        doubled per probe refused; over a configured window believed and doubted
        (``doubted``), ``PROBE_BACKOFF`` times the time the service's answers show (its
        longest Retry-After), doubled. In configured windows, a refused probe over the
        configured window believed beside a writer on its own clock (Retry-Afters of 0.7 s
        against the x60 service's 5 s window, the configured 300 s) put the next off 600
        s, then 1,200 s: the budget cut to 1-2% of ``[limits]`` stayed there for the job
        (issue 26, the demo job)."""
        times = PROBE_BACKOFF * 2.0**self.probes_refused
        if self.doubted is None:
            return lim.period * times
        return max(lim.longest_ask, retry_after) * times

    def _probe_refused(self, now: float, retry_after: float, body_bytes: int) -> bool:
        """An ``IncomingBytes`` 429 of a probe (``_probe_wait``): ours over the configured
        window, in flight and the refused body above the budget in effect, which the pacer
        never sends beyond otherwise (but for bodies sent before a cut, refused in its
        episode). The service gives less than that level, not less than
        the budget in effect: nothing is cut; the level is the new ``above``, and no other
        probe goes for a while (``_probe_backoff``), twice that after each refused. Over a
        configured window believed and doubted, first the belief is re-tested
        (``_retest``); refused ``DOUBTS`` times without contradicting it, it stands."""
        lim = self.learned_uploads
        if not (self.refused and lim.is_cut and lim.over_configured):
            return False
        if now < lim.episode_until:  # sent at the budget before the cut, refused with it
            return False
        level = self._refused_level(lim, now, body_bytes)
        if level <= lim.cap * self.limits.margin + 1.0:
            return False
        if self._retest(now, 1.0):  # the service's window is the shorter one after all
            lim = self.learned_uploads
            ask = max(lim.longest_ask, retry_after)
            self.learned_uploads = replace(lim, episode_until=now + retry_after, longest_ask=ask)
            return True
        if self.doubted is not None:
            d = self.doubted
            self.doubted = None if d[3] + 1 >= DOUBTS else (d[0], d[1], d[2], d[3] + 1)
        self.above = min(self._bound(), level)
        self.probe_after = now + retry_after + self._probe_backoff(lim, retry_after)
        self.probes_refused += 1
        ask = max(lim.longest_ask, retry_after)
        self.learned_uploads = replace(lim, episode_until=now + retry_after, longest_ask=ask)
        return True

    def _widened_under_shown(self, lim: Learned, now: float, retry_after: float) -> bool:
        """An ``_under_shown`` refusal (the window the Retry-Afters showed is too short)
        where the configured window is over ``BELIEVED`` times the longest that the
        service's answers and our own sends showed: the window shown (at least the
        learning's shortest) and the time since our oldest bytes in the configured window
        went. Whether the budget was learned here; False: the configured window is
        believed (``_uploads_throttled``).

        Under Exchange's documented ``[limits]`` (150 MB per 300 s) against a service
        with a window 60 times shorter and another writer (``learn_model --ratio 60
        --window 300 --background 0.5``), the configured window was taken for the
        service's 195 service s into the job, cut to what went through over it: 1.23 MB
        of ours in those 195 s, said per 300 s of the pacer's (18,000 service s), 2% of
        what the writer leaves, and kept there: over the configured window the budget
        climbs back only as fast as it lets bytes through (``learn.answered``'s
        ``proven``), by e at most per configured window. A longer window than shown is
        tried instead: twice the longest shown, the budget what went through over it (a
        rate under the service's while ours went for less than that window), climbing
        back fast up to ``TRIED_CLIMB`` of the rate that went through since our oldest
        bytes (over the window shown at least: a rate over the service's, the refused
        burst counted, sent into room the other writer had not filled yet; climbing back
        up to all of it overshot and was refused step by step: ``learn_model``, 8 x 250
        items, 4.9-5.7% of 429s against 2.7-3.8%, 80-84% of the real budget against
        79-82%; without it the budget stayed where it was cut, 61-63%). Over that window
        the budget is spent through the bucket at its rate and a refusal of it is a small
        step (``_tried_step``), as over the configured window; spread in parts of a window
        tried longer than the service's and cut by a tenth at each refusal, it stayed at
        71-73% of the real budget (the parts, each ending over its share, are refused while
        the window as a whole is under its budget)."""
        shown = lim.shown or lim.window
        w = self.uploads
        w.expire(now)
        ours = [
            max(opened, now - lim.period) for t, _, opened in w.events() if t > now - lim.period
        ]
        seen = max(shown, now - min(ours)) if ours else shown
        if lim.period <= BELIEVED * seen:
            return False
        win = 2 * seen
        through = w.since(now - win)
        cut = learn.throttled(
            replace(lim, window=win, shown=win, episode_until=-math.inf),
            now,
            through + self.held_bytes,
            retry_after,
            win,
            win,
            FIRST,
            w.since(now - lim.period),
        )
        gave = TRIED_CLIMB * w.since(now - seen) * lim.period / seen
        self.learned_uploads = replace(cut, proven=min(max(cut.proven, gave), lim.configured))
        self.tried = win
        return True

    def _tried_step(self, lim: Learned, now: float, retry_after: float, body_bytes: int) -> bool:
        """An ``IncomingBytes`` 429 of a budget kept over the window tried in place of the
        configured one (``_widened_under_shown``) that shows no longer window: a small step
        (``EVEN``), as a refusal of a cut budget spent through its bucket over the
        configured window is. Whether it was applied; False: learned as any other."""
        if self.shared or now < lim.episode_until:
            return False
        last, events = self.uploads.last(), self.uploads.events()
        first = now - events[0][2] if events else None
        win = learn.window_after(lim, retry_after, None if last is None else now - last, first)
        if win > lim.window or body_bytes >= lim.cap * win / lim.period:
            return False
        budget, _ = lim.in_window()
        let = self.uploads.since(now - lim.period)
        self.learned_uploads = learn.throttled(
            lim, now, budget, retry_after, lim.window, lim.window, EVEN, let
        )
        return True

    def _others_leave_first(self, now: float, retry_after: float) -> bool:
        """Whether the room a Retry-After waits for comes back before any of our bytes
        leave the (configured) window: then what leaves is another writer's. Alone, the
        room comes back as our own oldest bytes leave: a shape sends what its last window
        carries at once, and a refused burst leaves at once (``learn_model`` on main, alone
        at 1/2: a Retry-After of 277-282 service s ending within 0.4 s of our oldest
        bytes leaving, taken for another writer in 3 of 24 mailboxes). Our bytes leave at
        most a request's latency before their answer's time plus the window: the end is
        taken as ours within ``window_slack`` and a fiftieth of the window."""
        lim, w = self.learned_uploads, self.uploads
        w.expire(now)
        ours = [
            max(opened, now - lim.period) for t, _, opened in w.events() if t > now - lim.period
        ]
        if not ours:
            return True
        slack = self.limits.window_slack + lim.period / 50
        return now + retry_after < min(ours) + lim.period - slack

    def _under_shown(self, lim: Learned, ours: float, body_bytes: int) -> bool:
        """Whether an ``IncomingBytes`` refusal came with ``ours`` (our bytes in the window
        the service's Retry-Afters showed, those in flight included) and its body at most
        ``UNDER`` of the budget in effect over that window, shorter than the configured
        one: the pacer kept well under that budget and the service still had no room, so
        the window (or another writer in it) is longer than shown. Beside a writer on its
        own clock the short windows its Retry-Afters show (a twentieth of the service's)
        were otherwise widened a Retry-After at a time, every slot refused in each step:
        up to 17% of a mailbox's requests answered 429 (``learn_model``, 1/10 and 1/60
        beside the writer, seeds 24-47). Alone, the pacer spends the budget it learned
        over the window it learned: refused, it had that budget in it, not a part."""
        budget, seconds = lim.in_window()
        return 0 < seconds < lim.period and ours + body_bytes <= UNDER * budget * self.limits.margin

    def _own_rate(self, lim: Learned, ours: float, body_bytes: int) -> bool:
        """Whether an ``IncomingBytes`` refusal came with more of ours and its body than
        ``OWN`` times what the service has let through over the window its Retry-Afters
        showed since the last cut (``Learned.proven``, said per configured window), some
        of it: the mailbox was refused for its own rate over that window, which the
        refusal does not contradict (``_under_shown``, or fewer of ours than the body:
        ``_uploads_throttled``). A cut of at most a quarter in one episode
        (``learn.Aimd.deepest``) may leave a budget several times the service's; spent
        under half of it, or refused a body larger than ours in the window, the mailbox
        was taken to be held by a longer window and cut to what went through over twice
        the time since its first bytes, the Retry-After's wait counted as sent (cut-short
        seed 943's first run, 20 s: 1/34 of ``[limits]`` where the service gave 1/13; over
        the configured window, where the window tried was not believed, down to 1/230 in
        ``tests/test_pacer_capped_retry_after.py``). Beside another writer holding the room,
        the case the contradiction is for, the refusals came with nothing of ours let
        through over the window shown or with about what was (``OWN``). A limit with no
        window (``period`` 0) has no rate over one: never."""
        if lim.period <= 0:
            return False
        shown = lim.shown or lim.window
        let = lim.proven * shown / lim.period
        return 0 < OWN * let < ours + body_bytes

    def _just_older(
        self, lim: Learned, now: float, retry_after: float, body_bytes: int
    ) -> Learned | None:
        """``lim`` over a window a little longer than the one the service's answers showed,
        where an ``IncomingBytes`` refusal that came with little of ours in that window
        (``_under_shown``, or fewer than its body) is explained by our own bytes just older
        than it: the room comes back, ``retry_after`` from now, as those leave a window up to
        ``NEAR`` times the one shown, which held more than ``UNDER`` of the budget in effect
        over it. None: not so (the refusal contradicts the window shown). The refusal is
        then one over the window widened (``_uploads_throttled``): nothing cut when fewer
        of ours than its body were in the window shown, else the step of any refusal there
        (``_learn``: 0.626 of ``[limits]`` to 0.563 in ``tests/test_pacer_learn.py``).

        A window learned from a Retry-After is a lower bound, short by the latency and by
        our window's grain (a thousandth of the configured window: 0.3 s against the
        emulator's x60 5 s). A body sent as that window emptied was refused for our own
        bytes still in the service's (demo job, the issue's own case: 4.83 s learned
        against 5 s, a Retry-After of 0.1 s), taken for a window far longer than shown,
        and the budget was cut to what went through over the configured one: 6% of
        ``[limits]`` where the service gave all of it, for the rest of the job."""
        shown = lim.shown or lim.window
        if lim.period <= BELIEVED * shown or lim.longest_ask < ASKED * shown:
            return None  # the configured window may be the service's (``_longer_window``)
        w = self.uploads
        older = [t for t, _, _ in w.events() if now - NEAR * shown < t <= now - shown]
        if not older:
            return None
        win = now + retry_after - max(older)  # when those leave, room comes back
        if win > NEAR * shown:
            return None
        ours = w.since(now - win) + self.held_bytes + body_bytes
        if ours <= UNDER * lim.cap * win / lim.period * self.limits.margin:
            return None  # well under its budget over that window too
        return learn.widened(lim, now, retry_after, win)

    def _too_large(self, lim: Learned, now: float, body_bytes: int) -> bool:
        """Whether a refused body is larger than the budget in effect over a window shorter
        than the configured one (the one the Retry-Afters showed), or over ``UNDER`` of it
        over the window tried in place of the configured one (twice the longest shown: the
        service's room is that of a window half as long). It went alone, or nearly, and
        the room another writer left was smaller than it: its size explains the refusal,
        which contradicts no window. Taken for a contradiction (issue 26, the demo job
        beside another writer: 1.48-2.05 MB bodies refused over windows of 7.5-10 s
        holding 1.05-2.13 MB, the room the writer left 1.31 or 1.83 MB per 5 s), the
        configured window was believed and the budget cut to what went through over it:
        1-4% of ``[limits]`` for the rest of the job where the service left 50-70%."""
        budget, seconds = lim.in_window()
        if not 0 < seconds < lim.period:
            return False
        share = UNDER if self._on_tried() else 1.0
        if body_bytes >= share * budget * self.limits.margin:
            return True
        # ... or, over the window tried where the configured window is far longer than the
        # service's answers showed (over ``BELIEVED`` times: a contradiction would be a
        # leap), over ``UNDER`` of the most of ours the service held in its window at once
        # lately (``_room_shown``): beside a writer catching up (what it is owed after
        # refusals, up to a window's share) such a body meets a room that small with
        # nothing of ours there. Over the window tried the budget had climbed back above
        # the room (0.78 of [limits] over 11 s where the writer left 0.7 per 5 s): a 1.6 MB
        # body beside 0.3 MB of ours, the writer's room 1.75 MB, was taken for a
        # contradiction, the configured window believed, the belief stood after two probes
        # and the mailbox went at 0.11 of [limits] for the rest of the demo job (issue 26)
        shown = self._service_window()
        if not self._on_tried() or lim.period <= BELIEVED * shown:
            # (over the window shown at the job's start, where the most held is its first
            # burst, a body so refused still widens the window early: held off, the window
            # tried later was twice the job's age, 17 s, ``learn_model`` at 1.7 MB bodies)
            return False
        return body_bytes >= UNDER * self._room_shown(now, shown) > 0

    def _longer_window(self, lim: Learned, now: float, body_bytes: int) -> bool:
        """Whether an ``IncomingBytes`` refusal with fewer of our bytes than its body in
        the window the service's Retry-Afters showed, shorter than the configured one,
        has enough of ours in the configured window to be our rate over a longer one."""
        shown = lim.shown or lim.window
        return 0 < shown < lim.period and (
            self.uploads.since(now - lim.period) + self.held_bytes >= body_bytes
        )

    def alone_window(self, now: float) -> float | None:
        """After an ``IncomingBytes`` 429 (its body already taken back): the upload window
        the service's answers show, in seconds, when none of our bytes went into it (those
        in flight may yet be refused too: two bodies too large for the room must not keep
        each other from being seen alone), so the room the service left was smaller than
        that body alone (another writer holds the rest); None when our own bytes share it.
        Alone over the configured window, the longest the service's can be: a Retry-After
        shows a window no shorter than itself only, and beside a writer on its own clock,
        whose writes a window old leave one by one, it is a small part of the service's."""
        span = self._service_window()
        if self.uploads.since(now - span):
            return None
        return span

    def _told_wait(self, now: float, body_bytes: int) -> float:
        """Seconds until the room the service said would come back for a refused body no
        larger than ``body_bytes`` has come back (``told``): what its window holds leaves
        on time and what comes in only adds, so no body as large fits sooner. The mailbox's
        block is at most ``max_retry_after``: with 0.5 s against the service's 5 s (cut-short
        seed 959, a 200 KB budget per 5 s), bodies of 246 and 361 KB were refused every
        0.5 s, their Retry-After 5 s each time, and smaller ones with them."""
        self.told = [(n, t) for n, t in self.told if t > now]
        return max((t - now for n, t in self.told if n <= body_bytes), default=0.0)

    def _service_window(self) -> float:
        """The upload window the service's answers showed (the configured one until they
        show a shorter one): the longest of its Retry-Afters' windows, or the window tried
        in place of the configured one (twice that long), and no shorter than its longest
        Retry-After (the window shown beside a writer on its own clock can be a fifth of the
        service's: ``stricter`` at 1/2 beside the writer, a 0.3 MB body in a room of 0.6 MB
        taken for one the room cannot hold, "alone" over 1 s while ours of 2 s before were
        in the 5 s window, and failed). Over the configured window
        believed and doubted (``doubted``), the one before: "alone" over Exchange's
        documented 300 s beside the x60 service's 5 s was never so in a pair with work,
        and a body the writer left no room for was refused until its 50 retries ran out
        (issue 26, the demo job)."""
        lim = self.doubted[0] if self.doubted is not None else self.learned_uploads
        shown = max(lim.shown or lim.window, lim.longest_ask)
        return shown if 0 < shown < lim.period else lim.period

    def _room_shown(self, now: float, span: float) -> int:
        """The most of ours the service held in its window (``span`` long) at once over the
        last ``ROOM_SHOWN`` of them: a body refused alone no larger met the other writer
        catching up (its writes owed after refusals, taken as room came back), not a room
        too small for it (``learn_model`` beside the writer: 200 KB bodies in a room of
        1.25 MB refused alone and held, 82% of the real budget against 85-89%)."""
        # over the configured window at least, the longest the service's can be: the window
        # its answers showed can be a Retry-After's few seconds while the mailbox was held
        # longer than ``ROOM_SHOWN`` of them by its own refusals (``learn_model`` at 1/10
        # beside the writer, seed 6: 12 x 4.2 s after 25 s held, a 64 KB body refused as the
        # writer caught up taken for one the room cannot hold though 1 MB of ours had passed
        # a minute before; bodies from 64 KB up held 600 s, the mailbox alone at the job's
        # tail 360 s later: 53 s without an import, ``test_pacer_in_order``)
        back = max(ROOM_SHOWN * span, self.learned_uploads.period)
        ev = [(t, a) for t, a, _ in self.uploads.events() if t > now - back]
        most = level = 0
        k = 0
        for t, a in ev:
            level += a
            while ev[k][0] <= t - span:
                level -= ev[k][1]
                k += 1
            most = max(most, level)
        return most

    def _refused_alone(self, body_bytes: int) -> tuple[int, float]:
        """(how many, since when): the refusals alone (``alone``) of bodies no larger than
        ``body_bytes``, each saying the room another writer leaves is smaller than it."""
        first, n = math.inf, 0
        for size, when in self.alone:
            if size <= body_bytes:
                n += 1
                first = min(first, when)
        return n, first

    def _unfit_hold(self, now: float, body_bytes: int) -> float:
        """When a body at least as large as one refused alone may be tried (alone) again:
        ``UNFIT_WINDOWS`` of the service's windows after the first such refusal, or now
        once ``UNFIT_REFUSALS`` over that long show it cannot pass (it goes to be refused
        once more, and fails: ``unfit``)."""
        n, first = self._refused_alone(body_bytes)
        until = first + UNFIT_WINDOWS * self._service_window()
        return now if n >= UNFIT_REFUSALS and until <= now else until

    def _unfit_wait(self, now: float, body_bytes: int) -> float:
        """Seconds a body at least as large as one refused alone waits (``binding``): until
        its hold is over (``_unfit_hold``: retried at each Retry-After, the time until the
        writer's oldest bytes leave and its next take their place, it was refused again and
        again), then until nothing else of ours is in flight or in the service's window
        (``inf``: only an answer makes room), the room kept for it (``reservable``), so the
        service's answer tells whether it can pass at all."""
        until = self._unfit_hold(now, body_bytes)
        if now < until:
            return until - now
        if self.held_bytes:
            return math.inf
        last = self.uploads.last()
        span = self._service_window()
        return 0.0 if last is None or last <= now - span else last + span - now

    def unfit(self, now: float, body_bytes: int) -> tuple[int, float, float] | None:
        """After an ``IncomingBytes`` 429 of ``body_bytes`` (applied): None unless nothing
        else of ours was in the service's window; else (refusals alone of bodies no larger,
        seconds since the first, the service's window). The transport fails the item once
        there are ``UNFIT_REFUSALS`` over ``UNFIT_WINDOWS`` windows."""
        span = self.alone_window(now)
        if span is None:
            return None
        n, first = self._refused_alone(body_bytes)
        return n, now - first, span

    def blocked(self, now: float) -> tuple[float, float]:
        """The latest Retry-After block, up to ``now``: (from, until)."""
        return self.blocked_from, min(now, self.blocked_until)

    def remember(
        self,
        limit: str,
        share: float,
        of: tuple[float, float],
        cut: bool,
        window: float | None = None,
        tried: bool = False,
    ) -> float:
        """Start ``limit`` at a budget an earlier pass learned (``remember.remember``); 0: not."""
        return remember.remember(self, limit, share, of, cut, window, tried) or 0.0

    def learned(self) -> dict[str, Learned]:
        """The budget in effect per limit (``Limit`` values); the upload budget says when its
        window is one tried (``Learned.tried``), or the configured one believed on trial in
        place of a shorter one (``Learned.doubted``)."""
        up = self.learned_uploads
        if self._on_tried():
            up = replace(up, tried=True)
        elif self.doubted is not None and 0 < (was := self.doubted[0].window) < up.period:
            # the window before the belief: one shown, or one tried (``Learned.doubted``)
            up = replace(up, doubted=was, tried=was == self.doubted[1])
        return {
            Limit.REQUESTS.value: self.learned_requests,
            Limit.UPLOAD.value: up,
            Limit.CONCURRENCY.value: self.learned_slots,
        }


def _ours_in_window(lim: Learned, w: SlidingWindow, now: float) -> int:
    """Our bytes the service still counts: over the window its answers showed (the
    configured one until they show a shorter one)."""
    return w.since(now - (lim.shown or lim.window))


def _through(lim: Learned, w: SlidingWindow, now: float | None) -> float:
    """What the service let through over the window in effect, per configured window."""
    if now is None or lim.window <= 0:
        return 0.0
    return w.since(now - lim.window) * lim.period / lim.window


def _learn(
    lim: Learned,
    w: SlidingWindow,
    now: float,
    retry_after: float,
    amount: int,
    held: int,
    blocked: tuple[float, float],
    shaped: bool = False,
    through: bool = False,
) -> Learned:
    """A 429 refusing ``amount`` of a limit whose window is ``w`` (``held`` in flight), the
    mailbox held back by the service between ``blocked`` (from, until). ``shaped``: an upload
    budget that is shaped once cut (``Budgets.shapes_cut``). ``through``: the window holds
    only what the service let through (an upload window: a refused body leaves it; a
    request window counts refused requests, as the service does), so the cut never goes
    below what it holds over the configured window (``learn.throttled``)."""
    let = w.since(now - lim.period) if through and lim.period > 0 else 0.0
    last, events = w.last(), w.events()
    first = now - events[0][2] if events else None
    since_last = None if last is None else now - last
    win = learn.window_after(lim, retry_after, since_last, first)
    if amount >= lim.cap * win / lim.period:  # it could only go alone: the window is longer
        return learn.widened(lim, now, retry_after, win)
    # a request budget (an upload one is learned from what went through, ``learn.back``)
    # kept at the shortest window the pacer keeps: the window this refusal shows, not
    # raised to it (nor to the one shown before, itself raised); shorter than ``win``, the
    # service's window is one the budget cannot be kept over (``BURST``)
    shown = win
    if not through and win <= lim.period * AIMD.shortest_window:
        unkept = replace(lim, shown=0.0)
        shown = learn.window_after(unkept, retry_after, since_last, first, UNKEPT)
    if shaped and win >= lim.period:
        if lim.is_cut and not lim.probing:  # sent at the budget in effect, shaped: a
            # little too much
            return learn.throttled(lim, now, lim.cap, retry_after, win, win, EVEN, let)
        # a refused burst, or a remembered budget's probe (fivefold per window, up to
        # five times what the service gives): what the service let through over its window is
        # what it gives
        in_use = w.since(now - win) + held
        return learn.throttled(lim, now, in_use, retry_after, win, win, FIRST, let)
    # what went over twice that window (at most the configured one) says the rate the
    # service gave: over the window alone, an estimate a little short of the service's own
    # would miss a burst sent as its window opened
    span = min(lim.period, 2 * win)
    if learn.spread(lim) is not None:
        span = win  # sent in even parts of its window: no burst at its start to miss
        if events and shown < win:
            # ... kept longer than the service's (``BURST``): a mailbox that began sending
            # less than that ago sent at the rate of the time it sent (the refusals of a
            # burst's tail, 0.7 s after the first cut, measured over the 6 s kept, cut to a
            # quarter of ``[limits]``)
            span = max(shown, min(span, now - events[0][2]))
    elif events and win < lim.period * learn.Aimd().far_shorter:
        # a window far shorter than the configured one, and a mailbox that began sending
        # less than twice it ago: the rate of the time it sent (the window at least)
        span = max(shown, min(span, now - events[0][2]))
    # time the service held the mailbox back sent nothing: the rate is of the time it could
    idle = max(0.0, blocked[1] - max(blocked[0], now - span))
    in_use = w.since(now - span - idle) + held
    p = BURST if shown < win and not lim.is_cut else AIMD
    cut = learn.throttled(lim, now, in_use, retry_after, win, span, p, let)
    return learn.back(cut, lim, _through(cut, w, now)) if through else cut


def step(b: Budgets, now: float, body_bytes: int, reserved: int, since: float | None) -> Decision:
    """What a request with ``body_bytes`` of body does next. ``reserved``: the room kept for
    it so far (0: none); ``since``: when it first waited on a budget (None: it has not)."""
    wait, binds = b.binding(now, body_bytes, reserved > 0, since)
    if wait > 0:
        if body_bytes and not reserved:
            # a body that has waited long enough gets its room kept when it is worth it
            # (``Budgets.worth_reserving``); until then it looks again at least that often,
            # so as not to sleep past the moment it may reserve
            if since is not None and b.worth_reserving(body_bytes, wait, now - since, now, since):
                return Decision(Kind.RESERVE, 0.0, binds)
            if wait != math.inf:
                wait = min(wait, b.look_again(now, body_bytes, wait, since))
        if body_bytes and b.doubted is not None and wait != math.inf:
            wait = min(wait, b.doubt_look())
        if wait == math.inf:
            return Decision(Kind.ANSWER, wait, binds)
        return Decision(Kind.SLEEP, wait, binds)
    if b.inflight >= b.slots():
        return SLOT
    return GO
