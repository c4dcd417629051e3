"""The hot paths' wake-up calls (wakeup.py): ``Wakeup`` wakes every waiter, ``Turns`` one at
a time in the order they came, and a turn is never lost to a cancelled task."""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel
import pytest

from copyengine.wakeup import Turns, Wakeup

pytestmark = pytest.mark.anyio


async def _settle() -> None:
    for _ in range(5):
        await anyio.lowlevel.checkpoint()


async def _wait_and_note(w: Turns, k: int, woke: list[int]) -> None:
    await w.wait()
    woke.append(k)


async def test_wakeup_wakes_every_waiter_and_a_set_with_nobody_waiting_is_not_kept() -> None:
    w = Wakeup()
    w.set()  # nobody waits: nothing to remember
    woke: list[int] = []
    async with anyio.create_task_group() as tg:
        for k in range(3):
            tg.start_soon(_wait_and_note, w, k, woke)
        await _settle()
        assert woke == []
        w.set()
        await _settle()
        assert sorted(woke) == [0, 1, 2]


async def test_turns_wake_one_waiter_per_call_in_the_order_they_came() -> None:
    t = Turns()
    woke: list[int] = []
    async with anyio.create_task_group() as tg:
        for k in range(3):
            tg.start_soon(_wait_and_note, t, k, woke)
            await _settle()
        assert len(t) == 3
        t.wake_one()
        await _settle()
        assert woke == [0]
        t.wake_one()
        t.wake_one()
        await _settle()
        assert woke == [0, 1, 2]
        t.wake_one()  # nobody waits: a no-op


async def test_a_turn_given_to_a_task_cancelled_before_it_ran_goes_to_the_next() -> None:
    # asyncio's own cancel (anyio's scopes do not cancel a task whose wait is already over)
    t = Turns()
    woke: list[str] = []

    async def waiter(name: str) -> None:
        await t.wait()
        woke.append(name)

    first = asyncio.ensure_future(waiter("first"))
    await _settle()
    second = asyncio.ensure_future(waiter("second"))
    await _settle()
    t.wake_one()  # the first's turn...
    first.cancel()  # ...but it is cancelled before it runs
    await _settle()
    assert first.cancelled()
    assert woke == ["second"]
    assert len(t) == 0
    await second


@pytest.mark.parametrize("kind", [Turns, Wakeup])
async def test_a_cancelled_waiter_leaves_the_queue(kind: type[Turns]) -> None:
    t = kind()
    with anyio.move_on_after(0.01):
        await t.wait()
    assert len(t) == 0
