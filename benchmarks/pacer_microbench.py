"""A microbenchmark of the pacer's hot path (a diagnostic, not a scenario): CPU per request
through ``MailboxPacer.slot`` when nothing holds it back (``throughput``'s case: the
``unlimited`` profile) and under an upload budget that binds (with the clock moved only by
the pacer's own sleeps, a few percent of the requests sleep, where ``fleet``'s each sleep
about once: read it for the slot's own cost), and per ``unsent.Hold.waiting()`` (what each
budget wait enters) against a plain ``anyio.CancelScope()``. On asyncio; no time passes
while it is measured.

    python -m benchmarks.pacer_microbench
"""

from __future__ import annotations

import asyncio
import time

import anyio

from copyengine import unsent
from copyengine.pacing.pacer import MailboxPacer
from copyengine.pacing.policy import PacerLimits

N = 20_000
BODY = 72_000  # fleet's mean item


class Clock:
    """Time that moves only when the pacer sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        await asyncio.sleep(0)


async def _slots(limits: PacerLimits, tasks: int) -> tuple[float, float]:
    """(CPU us per request, the pacer's sleeps per request) of ``N`` requests made by
    ``tasks`` tasks at once (each answered a millisecond after its slot)."""
    clock = Clock()
    pacer = MailboxPacer("bench", limits, clock=clock, sleep=clock.sleep)
    per_task = N // tasks
    done = [0]
    # what is left to upload, as a pair tells its target's pacer: the pacer shapes the
    # window from it (the room given back evenly rather than in bursts)
    pacer.follow(lambda: float((N - done[0]) * BODY))

    async def one() -> None:
        for _ in range(per_task):
            async with pacer.slot(BODY):
                clock.now += 0.001
            pacer.on_success(BODY)
            done[0] += 1

    c0 = time.process_time()
    async with anyio.create_task_group() as tg:
        for _ in range(tasks):
            tg.start_soon(one)
    cpu = time.process_time() - c0
    n = per_task * tasks
    return cpu / n * 1e6, clock.sleeps / n


async def _scopes() -> tuple[float, float]:
    """(us per ``Hold.waiting()``, us per ``anyio.CancelScope()``), entered and left."""
    hold = unsent.Hold()
    c0 = time.process_time()
    for _ in range(N):
        with hold.waiting():
            pass
    c1 = time.process_time()
    for _ in range(N):
        with anyio.CancelScope():  # noqa: ASYNC100 (the scope itself is what is measured)
            pass
    c2 = time.process_time()
    return (c1 - c0) / N * 1e6, (c2 - c1) / N * 1e6


async def main() -> None:
    free = PacerLimits(upload_bytes=1 << 50, requests=1 << 40)
    # about one body per 50 ms of the budget: every request waits on it
    bound = PacerLimits(upload_bytes=BODY * 100, upload_window=5.0, requests=1 << 40)
    us, _ = await _slots(free, 4)
    print(f"slot, nothing holds it back:       {us:6.1f} us per request")
    us, sleeps = await _slots(bound, 4)
    print(f"slot, upload budget binds:         {us:6.1f} us per request ({sleeps:.2f} sleeps each)")
    held, plain = await _scopes()
    print(f"Hold.waiting() {held:5.2f} us, anyio.CancelScope() {plain:5.2f} us (entered and left)")


if __name__ == "__main__":
    asyncio.run(main())
