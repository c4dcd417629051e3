"""A cut upload budget spent at its even rate takes the ready bodies first in, first out, and
the largest first once every item is ready (issue 26, ``step.Budgets.in_order``,
``worth_reserving``; ``ReadyItems.choose``): the bucket's rate is
the same whichever body goes first, and taking the largest that fits the bucket's small
room, else the smallest, left the largest bodies for the job's tail, where one or two
mailboxes send them one at a time at the rate (the last 8 uploads of a mailbox 192 KB
against 82 KB over the job in ``stricter``)."""

from __future__ import annotations

import statistics

import pytest

from benchmarks import learn_model
from copyengine.pacing import PacerLimits
from copyengine.pacing.step import Budgets
from copyengine.pipeline.ready import Ready, ReadyItems


def _refused_burst() -> Budgets:
    """6,000 bytes let through of a configured 100,000 per 10 s, the 7th body refused: a cut
    budget, spent through a bucket at 600 bytes a second, 600 deep."""
    b = Budgets(PacerLimits(upload_bytes=100_000, upload_window=10.0, window_slack=0.0))
    for k in range(6):
        b.take(1000)
        b.release(0.1 + 0.05 * k, 1000)
    b.take(1000)
    b.release(0.5, 1000)
    b.throttled(0.5, "IncomingBytes", 9.5, 1000)
    return b


def test_in_even_mode_the_ready_items_are_taken_whatever_the_room() -> None:
    b = _refused_burst()
    now = [12.0]
    b.take(400)
    b.release(11.9, 400)  # what the bucket let go just now
    b.plan(now[0], 100_000)
    assert b.evens(now[0]) and b.in_order(now[0])
    pool = ReadyItems(
        8,
        lambda: b.upload_room(now[0]),
        overdue_s=20.0,
        clock=lambda: now[0],
        in_order=lambda: b.in_order(now[0]),
    )
    for k, n in enumerate((300, 50, 2000, 100)):
        pool.add(Ready(k, n, now[0]))  # type: ignore[arg-type]
    assert 100 < b.upload_room(now[0]) < 300  # the largest that fits: 100 bytes
    assert pool.choose() == 0  # more to come: first in, first out
    pool.producer()
    pool.done()  # every item is here: the largest first, the smallest left for the tail
    assert pool.choose() == 2
    # the window's budget itself (not shaped, not cut): the largest that fits, as before
    full = Budgets(PacerLimits(upload_bytes=1000, upload_window=10.0, window_slack=0.0))
    full.take(700)
    full.release(now[0], 700)
    assert not full.in_order(now[0])
    pool = ReadyItems(8, lambda: full.upload_room(now[0]), 20.0, lambda: now[0], lambda: False)
    for k, n in enumerate((50, 2000, 300, 100)):
        pool.add(Ready(k, n, now[0]))  # type: ignore[arg-type]
    assert pool.choose() == 2  # 300 of the 300 bytes of room


@pytest.mark.parametrize("background", [0.0, 0.5])
def test_the_tail_of_a_cut_budget_carries_bodies_of_the_job_s_size(background: float) -> None:
    """8 mailboxes of 250 items against the emulator's throttle at 1/60 of the configured
    budgets (``benchmarks.learn_model``: the pacer's step and the ready items' choice, six
    importers), alone and beside another writer taking half: the last 8 bodies of each
    mailbox average at most 1.3 times its bodies over the job (0.9-1.0 times; first in,
    first out throughout 1.4-1.6 times; before: 2.1-2.3 times), at no cost in the share of the real
    budget (>= 85%) or in 429s (under 8%, as before)."""
    runs = [learn_model.run(60, background, None, 250, seed, slots=6) for seed in range(8)]
    tail = statistics.mean(statistics.mean(r.bodies[-8:]) for r in runs)
    job = statistics.mean(statistics.mean(r.bodies) for r in runs)
    assert tail <= 1.3 * job
    j = learn_model.job(runs)
    assert j.share >= 0.85
    assert j.share_429 < 0.08
