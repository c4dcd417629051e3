"""Issue 26: a mailbox trapped for the whole job at 1-4% of the upload budget the service
gives (the demo job under Exchange's documented ``[limits]``, 150 MB per 300 s, against the
emulator's x60 service, 2.5 MB per 5 s, beside another writer taking half of it). Two paths
in, each a refusal taken for proof that the configured window is the service's, the budget
cut to what had gone through over it 24 s into the job; and no way out (the level a probe
may reach was under the cut, and a refused probe waited 600 s and more).

Each test drives one mailbox's ``step.Budgets`` against the emulator's own throttle
(``tests.one_mailbox``), with the refusal the trace showed put in at 24 s."""

from __future__ import annotations

import math
import random

import pytest

from copyengine.emulator.throttle import Background, Limits, Throttle
from copyengine.pacing import PacerLimits
from copyengine.pacing.step import DOUBTS, Budgets
from tests.one_mailbox import drive

MB = 1024 * 1024


def _documented() -> Budgets:
    return Budgets(PacerLimits(upload_bytes=150 * MB, upload_window=300.0, window_slack=0.5))


def _start(seed: int) -> tuple[Budgets, Throttle, random.Random]:
    """24 s of the job beside the writer (half of the x60 service's 2.5 MB per 5 s)."""
    th = Throttle(Limits.profile("exchange-fast", 60.0, app_requests=None))
    th.background = Background(0.5)
    b = _documented()
    rnd = random.Random(seed)
    drive(b, th, rnd, 0.0, 24.0)
    return b, th, rnd


def _job(seed: int, refused_body: int) -> tuple[Budgets, Throttle, random.Random, float]:
    """``_start``, then a body of ``refused_body`` bytes refused with none of ours in the
    service's window, a Retry-After of 0.66 s (the trace's): the writer's catch-up holds
    the room. (budgets, throttle, generator, now)"""
    b, th, rnd = _start(seed)
    # after a pause (the exporters behind): none of ours in the window the Retry-Afters
    # showed nor just older (``Budgets._just_older``)
    now = 24.0 + 1.5 * b.learned_uploads.window + 0.1
    b.take(refused_body)
    b.release(now, refused_body)
    b.throttled(now, "IncomingBytes", 0.66, refused_body)
    b.blocked_from, b.blocked_until = now, now + 0.66
    return b, th, rnd, now + 0.66


def _leaves() -> float:
    """What the writer leaves the mailbox, bytes per 5 s."""
    svc = Limits.profile("exchange-fast", 60.0, app_requests=None)
    assert svc.upload_bytes
    return svc.upload_bytes * 0.5


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("share", [1.04, 0.96, 0.6])
def test_a_body_over_half_the_budget_over_the_window_in_effect_cuts_nothing(
    seed: int, share: float
) -> None:
    """The lead's trace (chen, 24 s into the job): over the window in effect (one tried, or
    shown, 7-10 s), a 1.48 MB body larger than the budget over it (1.29 MB), and than the
    room the writer leaves, refused (as 2.05 MB bodies at 0.96 of it beside a writer taking
    0.3, which no room it leaves can hold): its size explains the refusal (over a window
    tried, twice the longest shown, over half the budget over it is). Before, the window
    was taken to be contradicted and the configured one believed: cut to what went through
    over 300 s, 1.35% of ``[limits]``."""
    b, _, _ = _start(seed)
    lim = b.learned_uploads
    assert lim.window < lim.period  # the job learned a short window in its first seconds
    budget, _ = lim.in_window()
    if share < 1 and not b._on_tried():
        b.tried = lim.window  # as the trace's: the window tried in place of the configured
    body = int(share * budget)
    now = 30.0
    b.take(body)
    b.release(now, body)
    b.throttled(now, "IncomingBytes", 0.66, body)
    after = b.learned_uploads
    assert after.window == lim.window
    assert after.cap >= 0.9 * lim.cap


@pytest.mark.parametrize("seed", range(8))
def test_a_mailbox_taken_for_the_configured_window_beside_a_writer_is_not_trapped(
    seed: int,
) -> None:
    """The other path: a 500 KB body, under half the budget over the window in effect,
    refused with none of ours in the service's 5 s (the writer's catch-up held the room),
    24 s into the job. The configured window is believed (it may be the service's: beside
    a writer on its own clock the real service's Retry-Afters are short too), the budget
    cut to what went through over it, 3% of ``[limits]``, and the belief doubted: the
    service then lets through more than the level it refused at, and the window before is
    taken again. From 30 s after the cut to 90 s, >= 60% of what the writer leaves goes
    through (69-75% for seeds 0-7), under 5% of the requests refused. Before: nothing at
    all (what went through over the configured window already filled the cut budget, and
    no probe went: the level refused at was under it)."""
    b, th, rnd, now = _job(seed, 500_000)
    assert b.learned_uploads.window == 300.0  # believed
    through, sent, refused = drive(b, th, rnd, now, now + 90.0)
    went = sum(n for t, n in through if now + 30.0 <= t < now + 90.0) / 12  # per 5 s
    assert went >= 0.6 * _leaves(), (went / _leaves(), b.learned_uploads)
    assert refused / sent < 0.05
    assert not math.isnan(went)


def test_a_probe_refused_backs_off_in_the_time_the_service_showed() -> None:
    """A probe refused over the configured window believed beside the writer (its level
    under what went through before: no contradiction of the belief) waits ``PROBE_BACKOFF``
    times the longest Retry-After (0.7 s): seconds, not 600 s (two configured windows) as
    before, then 1,200 s. After ``DOUBTS`` refused so, the belief stands (the service's
    window may be the configured one: each probe more would be a 429 for nothing), and the
    back-off is in configured windows again."""
    b, _, _, now = _job(0, 500_000)
    lim = b.learned_uploads
    assert lim.window == 300.0 and b.doubted is not None
    b.above = 4 * lim.cap
    at = now + 1.0
    for k in range(DOUBTS):
        b.take(300_000)
        b.release(at, 300_000)
        b.throttled(at, "IncomingBytes", 0.2, 300_000)
        assert b.learned_uploads.cap == lim.cap  # nothing cut
        ask = b.learned_uploads.longest_ask
        if k < DOUBTS - 1:
            assert b.probe_after == pytest.approx(at + 0.2 + 2 * ask * 2**k)
            assert b.probe_after < now + 10.0
        else:
            assert b.doubted is None
            assert b.probe_after >= at + 2 * 300.0
        at = b.probe_after
