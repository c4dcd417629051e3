"""The waiting bodies' order through a cut budget's bucket (``step.Budgets.queue``, ``went``,
``_ahead``; ``pacer.MailboxPacer._wait_turn``), as tasks that wait are cancelled, retried and
parked: no entry is left behind, and a body parked by a pair's hold does not hold back the
bodies of other pairs importing into the same mailbox (review of 876ca19)."""

from __future__ import annotations

import asyncio
import random

from copyengine import unsent
from copyengine.pacing import PacerLimits
from copyengine.pacing.pacer import MailboxPacer
from tests.bursts import refused_burst


class _Time:
    """A clock the test moves on; the pacer's sleeps wait for it."""

    def __init__(self, start: float) -> None:
        self.now = start

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:  # noqa: ASYNC110 (the test moves the clock)
            await asyncio.sleep(0)


def _cut_pacer(t: _Time) -> MailboxPacer:
    """6,000 bytes let through of a configured 100,000 per 10 s, the 7th body refused: a cut
    budget spent through a bucket at 600 bytes a second, 600 deep; the bucket emptied by
    600 bytes sent at 12 s."""
    p = MailboxPacer(
        "app/m",
        PacerLimits(upload_bytes=100_000, upload_window=10.0, window_slack=0.0),
        clock=t.clock,
        sleep=t.sleep,
    )
    b = refused_burst(p.budgets)
    t.now = 12.0
    b.take(600)
    b.release(12.0, 600)
    assert b.evens(t.now)
    return p


def test_cancelled_and_retried_waits_leave_nothing_queued() -> None:
    """Seeded: bodies of many sizes wait on the bucket, a third of them cancelled at a random
    moment and asked again (a retry); every body goes in the end, and nothing is left
    waiting or kept."""

    async def main(seed: int) -> None:
        rng = random.Random(seed)
        t = _Time(0.0)
        p = _cut_pacer(t)
        b = p.budgets
        sent: list[int] = []

        async def body(n: int) -> None:
            async with p.slot(n):
                await asyncio.sleep(0)
            sent.append(n)

        sizes = [rng.choice((50, 200, 400, 900, 1500)) for _ in range(24)]
        tasks = {k: asyncio.create_task(body(n)) for k, n in enumerate(sizes)}
        doomed = set(rng.sample(range(len(sizes)), 8))
        for _ in range(40_000):
            t.now += 0.01
            await asyncio.sleep(0)
            for k in list(doomed):
                if rng.random() < 0.01 and not tasks[k].done():
                    tasks[k].cancel()
                    doomed.discard(k)
                    await asyncio.sleep(0)
                    tasks[k] = asyncio.create_task(body(sizes[k]))  # retried
            if all(x.done() for x in tasks.values()):
                break
        assert all(x.done() and not x.cancelled() for x in tasks.values())
        assert sorted(sent) == sorted(sizes)
        assert b.waiting == [] and b.reserved == 0 and b.held_bytes == 0

    for seed in range(4):
        asyncio.run(main(seed))


def test_a_body_parked_by_its_pairs_hold_does_not_hold_back_another_pairs() -> None:
    """Two pairs import into one mailbox whose cut budget is spent through its bucket. Pair
    1's 900-byte body waits on the bucket; pair 1 is held (``unsent.Hold.drain``: its body
    parks, unsent, until the pair is cut short). Pair 2's 200-byte body, asked then, goes
    once the bucket holds it (well within a second at 600 bytes a second), as at e83ef6a
    (0.34 s); since 876ca19 it waited behind the parked body's bytes (and the room kept
    for it at once, ``worth_reserving``) until pair 1 was cut short: 60 s here and more."""

    async def main() -> None:
        t = _Time(0.0)
        p = _cut_pacer(t)
        b = p.budgets
        went: dict[str, float] = {}
        holds: list[unsent.Hold] = []

        async def held_pair() -> None:
            with unsent.opened() as h:
                holds.append(h)
                async with p.slot(900):
                    went["1"] = t.now

        async def other_pair() -> None:
            async with p.slot(200):
                went["2"] = t.now

        first = asyncio.create_task(held_pair())
        for _ in range(5):
            await asyncio.sleep(0)
        assert "1" not in went  # waiting on the bucket
        holds[0].drain()
        for _ in range(5):
            await asyncio.sleep(0)
        start = t.now
        second = asyncio.create_task(other_pair())
        for _ in range(6_000):  # 60 s
            t.now += 0.01
            await asyncio.sleep(0)
            if "2" in went:
                break
        first.cancel()  # the pair cut short
        for _ in range(500):
            t.now += 0.01
            await asyncio.sleep(0)
            if second.done():
                break
        await asyncio.gather(first, second, return_exceptions=True)
        assert "1" not in went
        assert b.waiting == [] and b.reserved == 0
        assert went["2"] - start < 2.0

    asyncio.run(main())
