"""A freed request slot goes straight to the next ready body (issue 26, ``fleet``): an
importer takes a body from the pair's ready pool only when its request could take a slot
(``ReadyItems`` with ``slot_open``), so the importer whose answer frees a slot finds the
next body in the pool and sends it in the same step of the loop. An importer that took its
body while every slot was in flight waited in the pacer holding it, the freeing importer
found the pool empty, and the body went out a loop iteration later, behind everything the
loop had queued (8.5 ms per hand-over at 400 pairs)."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from copyengine.pacing.pacer import MailboxPacer
from copyengine.pacing.policy import PacerLimits
from copyengine.pipeline.ready import ReadyItems
from copyengine.pipeline.work import Exportable
from tests.test_ready import _item as ready_item

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the engine's loop: the test counts its iterations


def _item(name: str, nbytes: int = 1_000) -> Exportable:
    return ready_item(name, nbytes)


def _pacer() -> MailboxPacer:
    # budgets that never bind: only the 4 slots hold a body back
    return MailboxPacer(
        "app/mbx",
        PacerLimits(requests=10**9, upload_bytes=10**12, concurrency=4),
    )


async def _run(gated: bool, items: int = 6, importers: int = 6) -> tuple[list[bool], float]:
    """``items`` bodies ready at once, ``importers`` importers, 4 slots, each request
    answered after its own time: per send after the first four, whether a loop iteration
    passed between the slot freed and the send; and the seconds bodies waited in the pacer
    for a slot."""
    pacer = _pacer()
    ready = ReadyItems(
        64, pacer.upload_room, overdue_s=10.0, slot_open=pacer.slot_open if gated else None
    )
    stop = pacer.on_free(ready.slot_freed) if gated else (lambda: None)
    loop = asyncio.get_running_loop()
    # the loop's iterations, counted by a callback that queues itself again each time it
    # runs (once per iteration), and the count when the last slot was freed
    ticks = [0, 0]
    ticking = [True]

    def tick() -> None:
        ticks[0] += 1
        if ticking[0]:
            loop.call_soon(tick)

    loop.call_soon(tick)

    def freed() -> None:
        ticks[1] = ticks[0]

    pacer.on_free(freed)
    hops: list[bool] = []
    sent = 0
    durations = iter([0.010 * (i + 1) for i in range(items)])

    async def importer() -> None:
        nonlocal sent
        while (e := await ready.get()) is not None:
            async with pacer.slot(len(e.data or b"")):
                sent += 1
                if sent > 4:
                    hops.append(ticks[0] != ticks[1])
                await anyio.sleep(next(durations))

    ready.producer()
    for i in range(items):
        await ready.put(_item(f"i{i}"))
    ready.done()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(importers):
                tg.start_soon(importer)
    ticking[0] = False
    stop()
    assert sent == items
    return hops, pacer.account.slot_wait_s


async def test_the_importer_that_frees_a_slot_sends_the_next_body_in_the_same_step() -> None:
    hops, slot_wait = await _run(gated=True)
    assert hops == [False, False]
    assert slot_wait == 0.0  # no body waited in the pacer for a slot
    # taken as before (every importer takes what it can at once), the two bodies beyond the
    # slots waited in the pacer and went out a loop iteration after their slots came free
    hops, slot_wait = await _run(gated=False)
    assert hops == [True, True]
    assert slot_wait > 0.0


async def test_an_importer_waits_in_the_pool_while_every_slot_is_in_flight() -> None:
    open_ = [False]
    ready = ReadyItems(8, lambda: float("inf"), overdue_s=10.0, slot_open=lambda: open_[0])
    ready.producer()
    await ready.put(_item("a"))
    got: list[str] = []

    async def take() -> None:
        e = await ready.get()
        assert e is not None
        got.append(str(e.item))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(take)
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            assert got == [] and len(ready) == 1  # the body stays in the pool
            ready.slot_freed()  # woken, but no slot is open yet: it waits again
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            assert got == []
            open_[0] = True
            ready.slot_freed()
    assert got == ["a"]
    ready.done()
    assert await ready.get() is None


async def test_more_slots_in_effect_wake_a_waiting_importer() -> None:
    pacer = _pacer()
    woken: list[int] = []
    stop = pacer.on_free(lambda: woken.append(1))
    b = pacer.budgets
    before = b.learned_slots
    # a MailboxConcurrency 429 cut the slots; answers give them back
    pacer.on_throttled("MailboxConcurrency", None)
    assert b.learned_slots is not before
    for _ in range(200):
        if b.slots() >= 4:
            break
        pacer.on_success()
    assert woken  # each rise of the slots in effect told the pool
    stop()
    n = len(woken)
    pacer.on_throttled("MailboxConcurrency", None)
    for _ in range(200):
        pacer.on_success()
    assert len(woken) == n  # stopped: told no more


async def test_the_gate_stays_open_while_a_budget_holds_bodies_back() -> None:
    """A body taken while a budget (or a Retry-After) holds bodies back would wait on it
    first, in its turn (``Budgets.queue``): it is taken as before, whatever the slots."""
    pacer = _pacer()
    assert pacer.slot_open()
    pacer.budgets.inflight = 4  # every slot in flight
    assert not pacer.slot_open()
    pacer.account.wait_began(0.0)  # a body sleeps on the upload budget
    assert pacer.slot_open()
    pacer.account.wait_ended(0.1)
    assert not pacer.slot_open()
