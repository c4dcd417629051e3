"""A request window far shorter than any the pacer keeps a budget over (issue 26: a tenant
under load answers 429 earlier): the emulator's throttle at 20 requests per 1 s per mailbox
against ``[limits]``' 10,000 per 600 s, whose shortest kept window is 6 s
(``learn.Aimd.shortest_window``). Driven one request at a time (``tests/one_mailbox.py``)."""

from __future__ import annotations

import random

from copyengine.emulator.throttle import Limits, Throttle
from copyengine.pacing.policy import PacerLimits
from copyengine.pacing.remember import seeded
from copyengine.pacing.step import Budgets, Kind, step
from tests.one_mailbox import drive

CONFIGURED = PacerLimits(upload_bytes=10**12)  # requests: 10,000 per 600 s
PER_S = CONFIGURED.requests / CONFIGURED.request_window


def _run(service_per_s: int, seconds: float = 60.0) -> tuple[float, float, Budgets]:
    b = Budgets(CONFIGURED)
    th = Throttle(Limits.profile("unlimited", requests=service_per_s, request_window=1.0))
    through, sent, refused = drive(b, th, random.Random(1), 0.0, seconds, sizes=(1000, 2000))
    return len(through) / seconds, refused / sent, b


def test_a_request_window_shorter_than_the_shortest_kept_is_paced_near_limits() -> None:
    """The service gives 20 a second over 1 s (more than ``[limits]``' average): its first
    refusal, of the opening burst, was measured over the 6 s kept where the mailbox had
    sent for a fraction of a second, cut to the deepest step (a quarter of ``[limits]``)
    and crept back at 1% per window: 3 requests a second, 18% of ``[limits]``, 15% of the
    service's rate. Measured over the time it sent, the cut is a step under ``[limits]``,
    spent in even parts of the window kept (and counted in buckets finer than those parts):
    above 80% of ``[limits]`` (the most the pacer lets itself send), under 5% of 429s."""
    rate, refused, b = _run(20)
    assert rate >= 0.8 * PER_S, (rate, b.learned_requests)
    assert refused < 0.05, refused


def test_a_stricter_short_request_window_is_kept_under() -> None:
    """The service gives 8 a second over 1 s (under half of ``[limits]``' average): the cut
    measured over the time the mailbox sent is to about what it gives, which the pass then
    reaches (at least 80% of it) with few 429s."""
    rate, refused, _ = _run(8)
    assert rate >= 0.8 * 8, rate
    assert refused < 0.05, refused


def test_a_budget_kept_over_the_shortest_window_is_not_remembered() -> None:
    """A pass that ended with its request budget kept over the shortest window the pacer
    keeps (the service's own was 1 s, perhaps shorter) is not seeded into the next: seeded,
    the delta pass after a 429 storm against a service that gave all again crept at 0.25
    of ``[limits]`` doubling per 6 s (21 s where ~1 s did it), and from a step under
    ``[limits]`` never climbed back to it (the last step is the slow one). Over a window
    longer than the shortest (the x60 profile's 10 s), it still is."""
    b = Budgets(CONFIGURED)
    of = (float(CONFIGURED.requests), CONFIGURED.request_window)
    assert seeded(b.learned_requests, 0.25, of, window=6.0) is None
    assert b.remember("requests", 0.25, of, True, 6.0) == 0.0
    longer = seeded(b.learned_requests, 0.25, of, window=10.0)
    assert longer is not None and longer.window == 10.0
    # the next pass bursts at the configured budget: 300 requests go at once
    for _ in range(300):
        assert step(b, 0.0, 0, 0, None).kind is Kind.GO
        b.take(0)
        b.release(0.0, 0)
        b.answered(0, 0.0)
