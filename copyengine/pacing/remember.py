"""A later pass of a pair starts at the budget its last pass learned (issue 26). Pure but
for ``remember``, which applies ``seeded`` to a pacer that has not sent lately.

A client that does not know the service's budget fills what it believes is its window, is
refused within it and held by the Retry-After for up to a whole window (``benchmarks/
stricter.py``): that first window is the price of learning. A delta, ``--full`` or cutover
pass of a pair whose last pass learned a cut pays it again for nothing. The state keeps
each pair's budget in effect at the end of its pass (``state.pairpasses.PairPass.budget``:
role: limit: share of ``[limits]``, with the ``[limits]`` it is a share of,
``PairPass.limits``); at pair start the pipeline hands it to each fresh pacer of the pair
(``pipeline.remember``), which starts as if the service had cut it there:

- the budget in effect is the share remembered, ``MARGIN`` under it when the pass that
  learned it was refused (the budget a pass ends with has crept up since its last cut, and
  may be above what the service gives; a pass that was not refused ended at a budget the
  service gave: taken as it is, so that passes without 429s do not lower it pass by pass);
- it counts as a cut (``Learned.cuts``): the upload budget is shaped as the configured one
  (``step.Budgets.shapes_cut``), a 429 cuts it by a small step (``step.EVEN``), and the
  hint, the report's and ``status``'s budget in effect say it as after a cut;
- it climbs back on answers, fivefold per window (``learn.Aimd.probe``; with room for a few
  bodies as large as the last answered) until the service refuses it in this pass
  (``learn.Learned.probing``: a pass cut short within its first 429s ended far under what
  the service gives; at a quarter per window, cut-short seed 934's next pass took 17
  windows to climb from 1/45 back to a service that gave all of it again; doubling, seed
  6's took 5-7 windows of 22 s from 1/30, past the test's 120 s), then at the
  fast rate (``learn.answered`` under ``proven``, the configured budget: about a quarter
  more per window),
  not the slow one of a budget the service refused in this pass (1% per window: 156 of
  Exchange's 5-minute windows from a quarter, 13 hours). What a pass ended with may have
  been a tenant's load or another writer since gone; where the service still gives what
  it gave, the probe is refused within a window as it fills (over a shaped budget,
  not the configured burst), and that 429 cuts it to what the service let through over
  its window (``step._learn``: as a refused burst, not the small step of a shaped budget
  sent at what was learned) and sets ``proven`` there: from then on the slow climb of any
  cut; a probe that reaches the configured rate unrefused is the configured budget over
  the configured window again (``learn.answered``), not 99% of it over the window
  remembered, whose last step is the slow one;
- a share of other ``[limits]`` is converted to the ones in effect (the same amount the
  service gave, per the same window); a limit whose window changed is not seeded (the
  share was per another window, and what the service gives per this one is not known); a
  share at ``WHOLE`` or more of the configured budget is not seeded (the service gave
  about all of it);
- a budget the pass kept over a window shorter than the configured one (the service's
  429s showed it: a tenant's policy, the emulator's time-scaled profile under the
  documented ``[limits]``) starts over that window (``windows`` in the state beside the
  share): spread in even parts of it and climbing back at its pace. Over the configured
  window instead the climb is that many times slower (a quarter per 300 s window where the
  service's is 5 s: a second pass against a service that gives all of it again crept at a
  twelfth of ``[limits]`` for its whole 5 minutes, ``tests/test_cut_short.py`` seed 911);
- a budget kept over the shortest window the pacer keeps (``learn.Aimd.shortest_window``:
  the service's 429s showed a window no longer, perhaps far shorter: a request window of
  1 s against ``[limits]``' 600 s) is not seeded. Learning it again costs a Retry-After of
  at most that window; seeded, it is spent in parts of a window the pass cannot keep and
  climbs back as such a budget does, never to the configured one (the last step is the slow
  one, ``learn.answered``): a delta pass after a 429 storm (20 requests per 1 s per mailbox)
  against a service giving all of it again took 21 s where ~1 s did it, at 0.25 of
  ``[limits]`` doubling per 6 s, and 10-11 s at 0.94 (4 pairs through the CLI, the
  emulator at 20 requests per 1 s, then unlimited: now 1.1 s;
  ``tests/test_pacer_short_request_window.py``);
- a budget kept over a window the pass tried in place of the configured one
  (``step.Budgets._widened_under_shown``; ``tried`` in the state, apart from ``windows``)
  starts over that window as tried again: spent through the bucket, a refusal a small step
  (``step.Budgets._tried_step``). Left to the configured window, cut-short seed 1014's
  next run (at 192b4f2) climbed from 1/30 of ``[limits]`` doubling per 300 s, past its
  300 s; restored as a window shown, ``learn_model`` 1/60 beside a writer ran second
  passes at 71.5% of the real budget, as tried at 82.0% (78.1% over the configured
  window; ``tests/test_remembered_tried_window.py``);
- a budget cut over the configured window believed in place of a far shorter one the
  service's answers showed, on trial when the pass ended (``step.Budgets.doubted``,
  ``learn.Learned.doubted``), starts over that shorter window (``windows`` in the state):
  the belief cut to what went through over the configured window in the seconds the pass
  had sent (1/91 of ``[limits]`` where the x60 service gave 1/13 over 5 s, cut-short seeds
  943 and 1425), and a run cut short before the re-test (``Budgets._retest``) left it so;
  over the configured window the next run climbed back per 300 s, past its 300 s;
- a pacer with requests in flight or in its request window knows more than the state (a
  mailbox shared by two pairs, a worker's next segment): it is left as it is.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from .learn import Aimd, Learned

if TYPE_CHECKING:
    from .step import Budgets

MARGIN = 0.95  # of the share a refused pass ended with: the budget a later pass starts at
WHOLE = 0.95  # a share of the configured budget at or above this is not seeded
# a ``step.Budgets`` attribute per limit as the state says it (``step.Limit`` values)
ATTRIBUTES = {
    "requests": "learned_requests",
    "upload": "learned_uploads",
    "concurrency": "learned_slots",
}


def seeded(
    lim: Learned,
    share: float,
    of: tuple[float, float] | None,
    refused: bool = True,
    margin: float = MARGIN,
    window: float | None = None,
) -> Learned | None:
    """``lim`` (a fresh budget: configured, never cut) started at ``share`` of the
    configured ``of`` (amount, window seconds) that an earlier pass ended with; None where
    it is not seeded (the module's docstring). ``refused``: the pass that ended with it had
    429s (the margin applies); ``window``: the window shorter than the configured one that
    pass kept the budget over (None: the configured one)."""
    if lim.cuts or lim.is_cut or of is None or not share > 0 or lim.configured <= 0:
        return None
    configured, period = of
    if not math.isclose(period, lim.period) or not configured > 0:
        return None
    share = share * configured / lim.configured  # the same amount, of these [limits]
    if share >= WHOLE:
        return None
    if lim.period <= 0:  # requests in flight: a count the service allowed, whole
        cap = float(max(1, math.floor(share * lim.configured + 1e-9)))
        return replace(lim, cap=cap, cuts=1) if cap < lim.configured else None
    shortest = lim.period * Aimd().shortest_window
    if window is not None and window <= shortest * (1 + 1e-9):
        return None  # kept over the shortest window kept: the service's may be shorter
    cap = share * lim.configured * (margin if refused else 1.0)
    cap = max(cap, lim.configured * Aimd().floor_share)
    seeded = replace(lim, cap=cap, cuts=1, proven=lim.configured, probing=True)
    if window is not None and shortest <= window < lim.period:
        # the window the service showed: kept over it, and not taken for the configured
        # one at the next 429 (``learn``'s ``shown``)
        seeded = replace(seeded, window=window, shown=window)
    return seeded


def window_of(lim: Learned, tried: bool = False) -> float | None:
    """The window to remember with a cut budget (``seeded``'s ``window``): one shorter than
    the configured one that the service's 429s showed; None for the configured one, and for
    a window only tried in its place beside another writer (``Learned.tried``: restored as
    one shown, the next pass spent the budget in even parts of it at 71.6% of the real
    budget against 76.8% over the configured window, ``learn_model`` 1/60 beside a writer,
    review6). ``tried``: that window tried instead (None for any other), remembered apart
    and restored as tried (``remember``). The configured window believed on trial in
    place of a shorter one (``Learned.doubted``): that shorter one, which a run cut short
    before the re-test left unsettled (the module's docstring)."""
    window = lim.doubted or lim.window
    if lim.cuts and 0 < window < lim.period and lim.tried == tried:
        return window
    return None


def remember(
    b: Budgets,
    limit: str,
    share: float,
    of: tuple[float, float],
    refused: bool = True,
    window: float | None = None,
    tried: bool = False,
) -> float | None:
    """Start one mailbox's ``limit`` (its budgets ``b``) at a budget an earlier pass learned
    (``seeded``), unless it has sent a request within its request window; the share of
    ``[limits]`` it starts at (None: not seeded). ``step.Budgets.remember``: the pacer's
    account follows at the first answer (the budget in effect creeps then). ``tried``:
    ``window`` is the upload window the pass tried in place of the configured one
    (``window_of``), kept over as tried again (``step.Budgets._on_tried``)."""
    name = ATTRIBUTES.get(limit)
    if name is None or b.inflight or b.requests.total:
        return None
    lim = seeded(getattr(b, name), share, of, refused, window=window)
    if lim is None:
        return None
    setattr(b, name, lim)
    if tried and name == "learned_uploads" and window is not None and lim.window == window:
        b.tried = window
    return lim.share
