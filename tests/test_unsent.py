"""``unsent.Hold.waiting``: the wait a drain ends. A drain ends the waits in progress, its
children's too; a wait entered while draining ends at once; a wait left is forgotten; an
error inside goes through; cancellation from outside still reaches the task."""

from __future__ import annotations

import anyio
import pytest

from copyengine import unsent

pytestmark = pytest.mark.anyio


async def test_a_drain_ends_the_waits_in_progress_its_childrens_too() -> None:
    ended: list[bool] = []

    async def wait(hold: unsent.Hold) -> None:
        with hold.waiting() as scope:
            await anyio.sleep(30)
        ended.append(scope.cancelled_caught)

    with anyio.fail_after(5), unsent.opened() as run, unsent.opened() as pair:
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait, run)
            tg.start_soon(wait, pair)
            await anyio.sleep(0.05)
            run.drain()
    assert ended == [True, True]
    assert not run._scopes and not pair._scopes  # left: forgotten


async def test_a_wait_entered_while_draining_ends_at_once() -> None:
    hold = unsent.Hold()
    hold.drain()
    with anyio.fail_after(5):
        with hold.waiting() as scope:
            await anyio.sleep(30)
    assert scope.cancelled_caught


async def test_outside_a_drain_an_error_goes_through_and_a_cancel_reaches_the_task() -> None:
    hold = unsent.Hold()
    with pytest.raises(ValueError), hold.waiting():
        raise ValueError("inside")
    assert not hold._scopes
    with anyio.move_on_after(0.05) as outer:
        with hold.waiting() as scope:
            await anyio.sleep(30)
    assert outer.cancelled_caught and not scope.cancelled_caught


async def test_a_nap_sleeps_through_unless_a_drain_ends_it_its_parents_too() -> None:
    """``Hold.nap`` (the pacer's sleep on a budget): asyncio's sleep that a drain ends (False
    then), without a cancel scope."""
    with anyio.fail_after(5), unsent.opened() as run, unsent.opened() as pair:
        assert await pair.nap(0.01)  # slept through
        ended: list[bool] = []

        async def nap(hold: unsent.Hold) -> None:
            ended.append(await hold.nap(30))

        async with anyio.create_task_group() as tg:
            tg.start_soon(nap, run)
            tg.start_soon(nap, pair)
            await anyio.sleep(0.05)
            assert len(run._naps) == 1 and len(pair._naps) == 1
            run.drain()
        assert ended == [False, False]
        assert not run._naps and not pair._naps  # ended: forgotten
        assert not await pair.nap(30)  # entered while draining: at once


async def test_a_nap_cancelled_from_outside_reaches_the_task_and_is_forgotten() -> None:
    hold = unsent.Hold()
    with anyio.fail_after(5):
        with anyio.move_on_after(0.05) as outer:
            await hold.nap(30)
    assert outer.cancelled_caught
    assert not hold._naps and not hold.draining
