"""The budget the service really gives one mailbox, learned from its 429s. Pure: values and
functions over an explicit ``now``; ``step.Budgets`` holds one ``Learned`` per limit and the
pacer applies these transitions.

The configured ``[limits]`` are an upper bound (Exchange's documented ones by default). The
service may give less: its upload budget is per mailbox across every app writing to it, and a
tenant under load answers 429 earlier. Each limit of each mailbox (its request budget, its
upload budget, its requests in flight) has a budget *in effect*, at most the configured one:

- a 429 naming that limit (``RequestRate``, ``IncomingBytes``, ``MailboxConcurrency``) cuts it
  (multiplicative decrease), towards what the mailbox had in use when the service refused
  (what the service let through is the best measure of what it gives), never below a
  quarter of the budget before the cut nor below ``floor_share`` of the configured one. 429s answered
  while the service's Retry-After of the cut still runs belong to the same episode (requests
  sent together are refused together) and do not cut again;
- every answered request gives back a small share of what it used (additive increase:
  ``rise`` of its amount, about ``rise`` of the budget per window of use), so a budget cut
  by a passing cause (another writer, a burst) creeps back to the configured one; up to what
  the service has been seen to let through over its window since the last cut (``proven``),
  it climbs back faster (``fast``), as TCP's slow start does up to its threshold;
- the longest Retry-After the service gave for the limit is kept: the window the service
  counts over is at least that long (below).

The service's window may be shorter than the configured one as well (a tenant's own
policy; the emulator's time-scaled profile under the documented ``[limits]``): a Retry-After
is never longer than the window it is about, so a cut budget is kept over the window the
service's answers show (``window``: at most the configured one, at least the longest
Retry-After the service gave), at the same rate: ``cap`` is always said per configured
window, and ``cap * window / period`` is what may go in the last ``window`` seconds. Pacing
a 300 s budget learned from a service with a 5 s window would otherwise trade a burst of a
few seconds for a wait of minutes. Over such a window the budget goes in even parts of it
(``spread``), climbs back fast at that window's pace up to what went through (an amount
answered is ``period / window`` times more of a budget said per configured window) and
slowly above it at that pace too (``rise`` of the budget per window of its own, not per
configured window: 60 times slower under the documented ``[limits]`` against the x60
service, a cut stayed for the job), a cut over it climbs back fast to ``back`` of what
went through over it before (``back``), and the window the service showed is
remembered (``shown``) when the budget is back at the configured one, so the next 429 does
not take the configured window for the service's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

from .proof import NOTHING, Evidence


@dataclass(frozen=True, slots=True)
class Aimd:
    """How a budget in effect moves."""

    cut: float = 0.9  # a 429 leaves at most this share of the budget in effect ...
    deepest: float = 0.25  # ... and at least this share (one episode)
    keep: float = 0.9  # of what was in use when refused: the new budget's target
    rise: float = 0.01  # budget given back per amount answered
    fast: float = 0.25  # ... while under what the service has been seen to let through
    floor_share: float = 0.002  # of the configured budget: never less
    shortest_window: float = 0.01  # of the configured window: the learned one never shorter
    same_window: float = 0.5  # a window learned this near the configured one is that one
    spread: int = 12  # a cut budget goes in this many even parts of its window (``spread``)
    far_shorter: float = 0.1  # of the configured window: a learned window far shorter
    # a cut over a window far shorter than the configured one climbs back fast up to this
    # share of the most the service let through over that window before it (``back``)
    back: float = 0.97
    # a budget an earlier pass ended with (``remember``), not refused yet in this pass,
    # climbs back this much of each amount answered (``Learned.probing``): what goes in a
    # window then grows to ``1 / (1 - probe)`` times the budget that began it, fivefold
    # where ``fast`` gives a third more; 1 or more would let each answer's room refill at
    # once, without bound. Doubling (0.5, as TCP's slow start after idle), a run after one
    # cut short at 1/30 of [limits] over a window of 22 s took 5-7 of them to climb back
    # where the service gave all of it again (cut-short seed 6, 95-160 s); against a
    # service that still gives the budget remembered, the probe's refusal comes as its
    # window fills either way (as many 429s, the same cut, ``test_pacer_remember``); at
    # 0.9 (tenfold) the overshoot over a short window was cut to half of what the service
    # gave (at 1/20 and 1/10 of [limits]), at 0.8 not
    probe: float = 0.8


@dataclass(frozen=True, slots=True)
class Learned:
    """The budget in effect for one limit of one mailbox (requests or bytes per window, or
    requests in flight)."""

    configured: float
    cap: float  # the budget in effect, per configured window (``period``)
    period: float = 0.0  # the configured window, seconds (0: a limit without one)
    window: float = 0.0  # the window the budget in effect is kept over (``period`` until cut)
    episode_until: float = -math.inf  # 429s until then belong to the last cut
    longest_ask: float = 0.0  # the longest Retry-After the service gave for this limit
    shown: float = 0.0  # the longest window shorter than the configured one 429s showed
    cuts: int = 0
    # the most the service has let through over the window (said per configured window),
    # since the last cut: the budget in effect climbs back to it fast
    proven: float = 0.0
    # started at what an earlier pass ended with (``remember.seeded``) and not refused in
    # this pass yet: it climbs at ``Aimd.probe``, not ``fast``. An earlier pass cut short
    # within its first 429s ended far under the service's budget (cut-short seed 934: 1/45
    # of [limits] where the service gave 1/12), and at a quarter per window the next pass
    # took 17 windows to climb back where the service gave all of it again; and never
    # under room for a few bodies as large as the last answered (``answered``)
    probing: bool = False
    # said only in what ``step.Budgets.learned`` reports (the stats, the report): the
    # window is one tried in place of the configured one (``Budgets._widened_under_shown``),
    # not one the service's 429s showed; remembered for a later pass apart from those
    # (``remember.window_of``), kept over as tried again
    tried: bool = False
    # said only in what ``step.Budgets.learned`` reports too: the configured window is
    # believed in place of this far shorter one the service's answers showed, on trial
    # (``Budgets.doubted``, re-tested by what the service lets through); 0.0: not so. A
    # later pass keeps the budget over this window (``remember.window_of``): remembered
    # over the configured one, a belief a run cut short never re-tested (at 1/91 of
    # [limits] where the x60 service gave 1/13, cut-short seed 943) climbed back per 300 s
    doubted: float = 0.0

    @classmethod
    def of(cls, configured: float, period: float = 0.0) -> Learned:
        return cls(float(configured), float(configured), period, period)

    def in_window(self) -> tuple[float, float]:
        """(budget, seconds): what may go in the last ``seconds``."""
        if self.period <= 0 or self.window >= self.period:
            return self.cap, self.period
        return self.cap * self.window / self.period, self.window

    @property
    def share(self) -> float:
        """The budget in effect as a share of the configured one (1.0: all of it)."""
        return self.cap / self.configured if self.configured > 0 else 1.0

    @property
    def is_cut(self) -> bool:
        return self.cap < self.configured

    @property
    def over_configured(self) -> bool:
        """Kept over the configured window (not a shorter one the service showed)."""
        return 0 < self.period <= self.window


def window_after(
    lim: Learned,
    retry_after: float,
    since_last: float | None = None,
    since_first: float | None = None,
    p: Aimd = Aimd(),
) -> float:
    """The window a 429 asking ``retry_after`` shows, ``since_last`` seconds after the
    latest of our sends still counted: room comes back when the oldest amount in the
    service's window leaves it, and that amount went no later than our latest send, so the
    service's window is at least ``since_last + retry_after`` long (and at least what earlier
    429s showed); the configured one is the longest we believe.

    Far shorter than the configured one, that lower bound is the window itself short by
    the time our sends took: pacing at the rate of a window a tenth shorter than the
    service's overruns it by a tenth, and every 429 after cuts again. When everything we
    have in the window went within the Retry-After (``since_first - since_last`` at most
    ``retry_after``: a burst, all of it still in the service's window), the room comes back
    as our first sends leave it, so the window is ``since_first + retry_after`` long (longer
    when older amounts of another writer's free it)."""
    if lim.period <= 0:
        return 0.0
    seen = max(lim.longest_ask, retry_after, retry_after + (since_last or 0.0))
    if (
        since_first is not None
        and seen < lim.period * p.far_shorter
        and since_first - (since_last or 0.0) <= retry_after
    ):
        seen = max(seen, retry_after + since_first)
    seen = max(seen, lim.shown)
    if seen >= lim.period * p.same_window:
        # the answers show a lower bound only: a window paced a little shorter than the
        # service's lets a burst through twice, so near the configured one, it is that one
        return lim.period
    return max(seen, lim.period * p.shortest_window)


def widened(lim: Learned, now: float, retry_after: float, window: float) -> Learned:
    """A 429 for an amount the budget in effect could not hold anyway (a body larger than
    it goes alone once the window is empty): not a budget to cut, only a longer window
    than ours (``window_after``)."""
    ask = max(lim.longest_ask, retry_after)
    shown = max(lim.shown, window) if window < lim.period else lim.shown
    return replace(lim, window=max(lim.window, window), longest_ask=ask, shown=shown)


def throttled(
    lim: Learned,
    now: float,
    in_use: float,
    retry_after: float,
    window: float | None = None,
    span: float | None = None,
    p: Aimd = Aimd(),
    through: float = 0.0,
) -> Learned:
    """A 429 naming this limit at ``now``, with the service asking ``retry_after`` seconds.
    ``in_use``: what went over the last ``span`` seconds (the configured window when not
    given) and is in flight, the refused request not included; the budget in effect is then
    kept over ``window`` (``window_after``) at that rate.

    ``through``: what the service let through of ours over the configured window up to
    ``now`` (answered, not refused): the cut never goes below it (nor above the budget in
    effect). Whatever the service's window (at most the configured one), it gave at least
    that rate; a cut under it is a rate the service never asked for. Without this bound
    each 429 of an episode measured over a window believed too short, or of a budget
    already under what went through (beside another writer on its own clock, its
    catch-ups refuse a mailbox sending at its share), took another tenth off: a ratchet
    the slow climb back (``rise``) never undid (``stricter``, 1/1 and 1/10 beside the
    writer: one mailbox at 0.5 MB of the 1.25 MB a window the service left it, 46% of
    the real budget)."""
    ask = max(lim.longest_ask, retry_after)
    if now < lim.episode_until:
        return replace(lim, longest_ask=ask)
    win = lim.period if window is None else window
    over = win if span is None else span
    per_period = in_use * lim.period / over if 0 < over < lim.period else in_use
    target = per_period * p.keep
    cap = min(lim.cap * p.cut, max(target, lim.cap * p.deepest))
    cap = max(cap, min(through, lim.cap), lim.configured * p.floor_share)
    return replace(
        lim,
        cap=cap,
        window=win,
        shown=max(lim.shown, win) if win < lim.period else lim.shown,
        episode_until=now + retry_after,
        longest_ask=ask,
        cuts=lim.cuts + 1,
        proven=min(lim.proven, target),
        probing=False,
    )


def answered(
    lim: Learned, amount: float, through: float = 0.0, p: Aimd = Aimd(), paced: bool = True
) -> Learned:
    """A request that used ``amount`` of this limit was answered (not refused for it), with
    ``through`` of the limit (per configured window) let through over the window now. Under
    what the service has been seen to let through the budget climbs back fast (``fast`` of
    the budget per window of use, over the window in effect), above it slowly (``rise`` of
    the budget per window of use, over the window in effect too, up to a little under the
    configured budget); back at the configured budget, the configured window again.

    Said per configured window, the slow climb over a window 60 times shorter (Exchange's
    documented 5 minutes against the x60 service's 5 s) was 60 times slower per window of
    its own: a mailbox whose first burst proved 89-91% of the service's budget (refused a
    body short of its room) stayed there for the job (``stricter``'s ``documented`` alone,
    traced: the two last mailboxes at 2.29-2.35 MB per 5 s of the 2.62 the service gives,
    82% of the real budget). ``paced=False``: the slow climb per configured window
    (once over the window tried in place of the configured one, ``step.TRIED_CLIMB``,
    where climbing past what went through overshot in ``stricter``'s ``documented:0.5``;
    the budget cut there then stayed for the job: issue 26's demo job beside a writer
    taking 0.3 at 0.29-0.41 of [limits] where it left 0.7)."""
    if not lim.is_cut or amount <= 0:
        return lim
    proven = max(lim.proven, through)
    # ``cap`` is said per configured window: over a shorter window in effect, an amount is
    # that much more of it
    scale = lim.period / lim.window if 0 < lim.window < lim.period else 1.0
    top = lim.configured * (1 - p.rise)
    if lim.cap < min(proven, top):
        # what went through over a window shorter than the configured one proves no more
        # than a little under the configured budget: the last step to it (and to its
        # window, a probe of whether the service gives it again) is the slow one
        fast = p.probe if lim.probing else p.fast
        grown = lim.cap + fast * amount * scale
        if lim.probing:
            # room for more than this body: ``probe`` grows what goes in a window by the
            # bytes answered, and a budget under two bodies lets one through per window
            # (each waits for the last to leave it), a body more each (cut-short seed 6:
            # 0.8 MB bodies at 0.4 MB of room per 22 s, climbing by a body per window)
            grown = max(grown, amount * scale / (1 - p.probe))
        cap = max(min(grown, proven, top), lim.cap)
    elif lim.cap < top and paced:
        cap = min(lim.cap + p.rise * amount * scale, top)
    else:
        cap = lim.cap + p.rise * amount
    if cap >= lim.configured or (lim.probing and cap >= top):
        # a remembered budget's probe at the configured one without a refusal: what the
        # earlier pass ended with no longer holds, the configured budget and window again
        # (at 0.99 of it over the window remembered, 5 s of 300, the slow last step kept a
        # run after a cut-short one at 2.5 MB per 5 s where a pass that remembered nothing
        # sent its 30 MB at once: cut-short seed 6, 85 s against 17 s)
        return replace(lim, cap=lim.configured, window=lim.period, proven=0.0)
    return replace(lim, cap=cap, proven=proven)


def back(cut: Learned, before: Learned, through: float, p: Aimd = Aimd()) -> Learned:
    """A cut (``throttled``) of ``before`` over a window far shorter than the configured one
    (``far_shorter``): it climbs back fast (``answered``) up to ``back`` of the most the
    service was seen to let through over its window, before the cut (``before.proven``) or
    at it (``through``, per configured window, the refused body not counted).

    Before (and before ``answered``'s slow climb went at the pace of the window in
    effect: 60 times slower per window of its own under Exchange's documented 5 minutes
    against the x60 service's 5 s), a cut was kept for the rest of the job: a burst cut
    to 90% of the 2.5 MB the service let through stayed at 2.25 MB per 5 s
    (``learn_model --ratio 60 --window 300``: 6 of 24 mailboxes at 78-81% of the real
    budget, against 83-96% since), and one refusal mid-job of a budget at 99% of the
    service's rate, cut to 90% of what had gone in the 4.6-4.8 s window learned, stayed
    at 72-82% of it (``stricter``'s ``documented`` alone, traced: 72% of the real budget
    with one mailbox refused mid-job and cut to 107 MB, 91% with none). The cut
    itself stays (the service refused what was in use); a stricter service or another
    writer shows in what it lets through at the next refusal, which sets the level again."""
    if cut.cuts == before.cuts or not 0 < cut.window < cut.period * p.far_shorter:
        return cut
    # a remembered budget not refused yet in this pass (``probing``) was seeded with the
    # configured budget as ``proven``, which the service never showed: what went through
    # is all it did (taken as shown, each refusal after the first raised the climb back to
    # 97%, 94%, 91%, ... of the configured budget: a 429 about every service window until
    # it decayed to what the service gives, 52 in the first 60 windows at a fifth)
    seen = through if before.probing else max(before.proven, through)
    most = min(p.back * seen, cut.configured)
    return replace(cut, proven=max(cut.proven, most))


def spread(lim: Learned, p: Aimd = Aimd()) -> tuple[float, float] | None:
    """While the service gives less than configured: (budget, seconds), the budget in effect
    spread evenly over its window, as a token bucket spreads a rate. Filling the window at
    once and waiting for it to empty is what a sliding window allows, but with a budget
    learned from 429s it is a burst the service may refuse (another writer takes its share
    while we wait, and is first when room comes back) and minutes at 0 MB/s; spread, each
    part of the window carries its share. None: the configured budget, whole windows (the
    documented ceiling is reached by filling each window at once)."""
    if lim.period <= 0 or p.spread <= 1 or lim.window >= lim.period:
        return None
    budget, seconds = lim.in_window()
    return budget / p.spread, seconds / p.spread


def allowed(lim: Learned, p: Aimd = Aimd()) -> tuple[float, float]:
    """(amount, seconds): the most the pacer lets itself send in any ``seconds`` under the
    budget in effect: the configured budget over its window, a cut one over the window the
    service showed, in the even parts of it it is spread in (``spread``)."""
    part = spread(lim, p)
    return part if part is not None else lim.in_window()


def concurrency_throttled(lim: Learned, now: float, others: int, retry_after: float) -> Learned:
    """A ``MailboxConcurrency`` 429 with ``others`` of our requests still in flight: the
    service allowed at most that many (one less than the budget in effect at least), never
    fewer than one."""
    if now < lim.episode_until:
        return lim
    cap = float(max(1, min(math.floor(lim.cap) - 1, max(others, 1))))
    return replace(
        lim,
        cap=cap,
        episode_until=now + max(retry_after, 1.0),
        cuts=lim.cuts + 1,
        probing=False,
    )


def concurrency_answered(lim: Learned, p: Aimd = Aimd()) -> Learned:
    """One request answered: a hundredth of a slot back (a whole one per hundred)."""
    if not lim.is_cut:
        return lim
    return replace(lim, cap=min(lim.configured, lim.cap + p.rise))


def slots(lim: Learned) -> int:
    """Requests allowed in flight now."""
    return max(1, math.floor(lim.cap + 1e-9))


HINT_BELOW = 0.8  # a budget in effect under this share of the configured one is worth a hint
# a limit as the operator sets it: its ``[limits]`` key and how the configured value reads
LIMIT_KEYS = {
    "upload": ("upload_mb_per_window", 1024 * 1024),
    "requests": ("requests_per_window", 1),
    "concurrency": ("in_flight_per_mailbox", 1),
}


# a limit whose window the operator sets: its ``[limits]`` key
WINDOW_KEYS = {"upload": "upload_window_s", "requests": "request_window_s"}
# a window the service showed under this share of the configured one is worth saying
WINDOW_HINT_BELOW = 0.5


class Advice(NamedTuple):
    """What one mailbox's budget in effect says of one ``[limits]`` key."""

    mailbox: str
    limit: str  # a ``LIMIT_KEYS`` key
    share: float  # the budget in effect, as a share of the configured one
    value: float  # about what to set the key to (its unit), per ``window``
    window: float = 0.0  # the service's window, when far shorter than the configured one
    period: float = 0.0  # the configured window
    # proved by the service's answers (``proof.Evidence``): ``value`` went through within
    # one of its windows, which its Retry-After puts at ``lo`` seconds at least (and at
    # most ``window`` when ``bounded``); 0: the budget in effect (no evidence kept)
    lo: float = 0.0
    bounded: bool = False


def advice(name: str, limit: str, lim: Learned, ev: Evidence) -> Advice | None:
    """What to change when the service gave mailbox ``name`` clearly less than the
    configured ``limit``; None otherwise. A service that keeps the budget over a window far
    shorter than the configured one (the x60 emulator, a tenant's stricter policy) is
    answered with that window and the budget in it: a budget per configured window alone
    would still be sent in bursts the service refuses, and every run would hint lower.

    With the service's evidence (``ev``, ``proof.Proof``), the rule: the value is the most
    of our own amount the service accepted within one of its windows (amounts all sent
    after, and answered by, a moment less than its longest Retry-After apart: counted on
    arrival, between the two, they were in its window together), rounded down to three
    significant digits, so never above what it let through; the window is the longest the
    evidence allows (``Evidence.hi``, rounded up to three digits: a window advised shorter
    than the service's would let a second burst in), or, where no refusal bounded it, the
    window the pacer learned (at least the longest Retry-After). A limit paced at that
    value over that window is never refused by a service that gives what it gave, and
    runs at the rate it proved. Evidence that does not pin the window still proves its
    amount within a window no longer than the configured one: at ``HINT_BELOW`` of the
    configured budget or more, no hint. Otherwise the budget in effect (a controller's
    state, below what the service gives), per the configured window: a Retry-After bounds
    the service's window from below only, so the window the pacer keeps a cut budget over
    is not the service's, and is not said (``proof.NOTHING``: a limit nothing was proved
    of); only where that budget is kept over the configured window. Kept over a shorter
    one (shown, or tried in its place), no hint: the service's answers show no less room
    than configured over the configured window, and a value under it would slow the job."""
    if lim.cuts == 0 or limit not in LIMIT_KEYS:
        return None
    unit = LIMIT_KEYS[limit][1]
    if ev.amount > 0 and _pinned(ev, lim.period):
        return _proved(name, limit, lim, ev)
    if ev.amount >= HINT_BELOW * lim.configured or lim.share >= HINT_BELOW:
        return None
    if 0 < lim.window < lim.period or lim.tried or lim.doubted:
        # kept over a window shorter than the configured one (shown, or tried in its place,
        # or the configured one believed on trial in place of a shorter one shown:
        # ``Learned.doubted``, a cut never re-tested) that no refusal pinned: the budget per configured window is the pacer's own rate
        # there, under what the service gives (it learns from below, and its window is
        # longer than the service's), and nothing the service answered bounds the room over
        # the configured window. Advised, it would slow the job: the demo job beside a
        # writer taking 0.3 was told "lower it (to about 59)" (0.39 of [limits]) where the
        # writer left 0.7 (issue 26)
        return None
    # never below what the answers proved (within a window no longer than the configured)
    cap = max(lim.cap, ev.amount)
    return Advice(name, limit, cap / lim.configured, cap / unit, 0.0, lim.period)


PINNED = 1.25  # the evidence names a window when its bounds are within this of each other


def _pinned(ev: Evidence, period: float) -> bool:
    """Whether the evidence pins the service's window (its bounds, the configured window
    the longest it can be, within ``PINNED`` of each other). The amount is proved within
    ``lo`` only: advised per a window far longer than that (a short Retry-After of a
    request limit and no refusal bounding it: 38 requests proved in 0.69 s, advised per
    149 s) it would be a rate far below what the service gave."""
    return ev.lo > 0 and min(ev.hi, period) <= PINNED * ev.lo


def _proved(name: str, limit: str, lim: Learned, ev: Evidence) -> Advice | None:
    """``advice`` from what the service's answers proved (see there)."""
    unit = LIMIT_KEYS[limit][1]
    value = _down(ev.amount / unit) if limit == "upload" else float(math.floor(ev.amount))
    bounded = math.isfinite(ev.hi)
    window = ev.hi if bounded else max(ev.lo, lim.shown or lim.window)
    share = ev.amount / lim.configured if lim.configured > 0 else 1.0
    if limit in WINDOW_KEYS and 0 < window < lim.period * WINDOW_HINT_BELOW:
        rate = share * lim.period / window  # of the configured rate
        return Advice(name, limit, rate, value, _up(window), lim.period, ev.lo, bounded)
    if share >= HINT_BELOW:
        return None
    return Advice(name, limit, share, value, 0.0, lim.period, ev.lo, bounded)


def _down(x: float) -> float:
    """``x`` rounded down to three significant digits."""
    if x <= 0:
        return 0.0
    step = 10.0 ** (math.floor(math.log10(x)) - 2)
    return math.floor(x / step + 1e-9) * step


def _up(x: float) -> float:
    """``x`` rounded up to three significant digits."""
    if x <= 0:
        return 0.0
    step = 10.0 ** (math.floor(math.log10(x)) - 2)
    return math.ceil(x / step - 1e-9) * step


def _said(limit: str, about: float) -> str:
    if limit != "upload":  # counts: a whole number, at least one
        return f"{max(1, int(about)):,}"
    return f"{about:,.0f}" if about >= 10 else f"{about:.2g}"


def _exact(x: float) -> str:
    """A proved value as it goes into ``[limits]`` (three significant digits)."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _toml(said: str) -> str:
    """A number as said (``4,990``) as it is written in ``[limits]`` (``4990``)."""
    return said.replace(",", "")


def _seconds(s: float) -> str:
    return f"{s:,.0f}" if s >= 10 else f"{s:.2g}"


def say(advices: list[Advice]) -> list[str]:
    """The hints, one per ``[limits]`` key (the keys are job-wide): the mailbox, or how many
    and the strictest, and the value the strictest needs (a run at it goes without 429s)."""
    by_limit: dict[str, list[Advice]] = {}
    for a in advices:
        by_limit.setdefault(a.limit, []).append(a)
    out = []
    for group in by_limit.values():
        proved = [a for a in group if a.lo > 0]
        if proved:
            out.append(_proved_said(*_together(proved)))
            continue
        timed = [a for a in group if a.window > 0]
        # the strictest: the least rate (its window and value said together, one mailbox's)
        least = min(timed, key=lambda a: a.value / a.window) if timed else None
        least = least or min(group, key=lambda a: a.value)
        names = sorted({a.mailbox for a in group})
        who = (
            f"mailbox {least.mailbox}"
            if len(names) == 1
            else f"{len(names)} mailboxes (the strictest: {least.mailbox})"
        )
        out.append(_proved_said(least, who) if least.lo > 0 else _learned_said(least, who))
    return out


def _together(proved: list[Advice]) -> tuple[Advice, str]:
    """The mailboxes' evidence on one key as one (the key is job-wide, and Exchange's
    limits are the same for every mailbox: each mailbox's answers are evidence of the same
    rule): the most any mailbox was let take (a mailbox that proved less sent less, or
    shares its budget with another writer, and its pacer still learns that from
    ``[limits]``), within the window every mailbox's answers allow (the longest
    Retry-After of any, the least upper bound not below it)."""
    lo = max(a.lo for a in proved)
    most = max(proved, key=lambda a: a.value)
    windowed = [a for a in proved if a.window > 0]
    if not windowed:
        return most._replace(lo=lo), _who(proved, most, "the most: ")
    bounded = [a.window for a in windowed if a.bounded and a.window >= lo]
    window = min(bounded) if bounded else max(a.window for a in windowed)
    said = most._replace(lo=lo, window=window, bounded=bool(bounded))
    return said, _who(proved, most, "the most: ")


def _who(group: list[Advice], named: Advice, what: str) -> str:
    names = sorted({a.mailbox for a in group})
    if len(names) == 1:
        return f"mailbox {named.mailbox}"
    return f"{len(names)} mailboxes ({what}{named.mailbox})"


def _learned_said(a: Advice, who: str) -> str:
    key, value = LIMIT_KEYS[a.limit][0], _said(a.limit, a.value)
    if a.window > 0:
        return (
            f"the service kept {who}'s {a.limit} budget over a {_seconds(a.window)} s "
            f"window, not [limits] {WINDOW_KEYS[a.limit]} = {_seconds(a.period)}; set "
            f"{WINDOW_KEYS[a.limit]} = {_toml(_seconds(a.window))} and {key} = {_toml(value)}"
        )
    return f"the service gave {who} {fraction(a.share)} of [limits] {key}; lower it (to about {_toml(value)})"


def _proved_said(a: Advice, who: str) -> str:
    """A hint from the service's answers: what it let through, within what window (as
    precisely as its Retry-After and the sends before it bound it)."""
    key = LIMIT_KEYS[a.limit][0]
    value = _exact(a.value) if a.limit == "upload" else f"{int(a.value):,}"
    took = f"{value} MB of uploads" if a.limit == "upload" else f"{value} requests"
    if a.window <= 0:
        return (
            f"the service let {who} take {took} within one window, "
            f"{fraction(a.share)} of [limits] {key}; lower it to {_toml(value)}"
        )
    wkey, w = WINDOW_KEYS[a.limit], _exact(a.window)
    span = (
        f"at most {w} s (its 429s show at least {_exact(a.lo)} s)"
        if a.bounded
        else f"at least {_exact(a.lo)} s (its 429s show no more; the pacer kept {w} s)"
    )
    return (
        f"the service let {who} take {took} within one window of {span}, not [limits] "
        f"{wkey} = {_seconds(a.period)}; set {wkey} = {_toml(w)} and {key} = {_toml(value)}"
    )


def hint(name: str, limit: str, lim: Learned, ev: Evidence = NOTHING) -> str | None:
    """The hint for one mailbox's ``limit`` (``say`` of its ``advice``); None: none."""
    a = advice(name, limit, lim, ev)
    return None if a is None else say([a])[0]


def fraction(share: float) -> str:
    """A share said as people say it: 1/2, 1/10, 1/60; a percentage above a half."""
    if share <= 0:
        return "none"
    if share > 0.5:
        return f"{share:.0%}"
    return f"1/{round(1 / share)}"
