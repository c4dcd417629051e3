"""The embedded store's one statement thread (``state.writer``): calls run in the order they
were asked for, an error comes back to its caller, and a cancelled caller goes on only once
its statement has run (a write asked for is done before its caller moves on)."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from copyengine.state.writer import StatementThread

pytestmark = pytest.mark.anyio


async def test_calls_run_in_order_in_one_thread_and_results_come_back() -> None:
    t = StatementThread("test")
    seen: list[tuple[int, str]] = []

    def call(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * 2

    async with anyio.create_task_group() as tg:
        results: dict[int, int] = {}

        async def one(i: int) -> None:
            results[i] = await t.run(lambda: call(i))

        for i in range(50):
            tg.start_soon(one, i)
    t.stop()
    assert [i for i, _ in seen] == list(range(50))  # started in this order: asked in it
    assert {name for _, name in seen} == {"test"}
    assert results == {i: 2 * i for i in range(50)}


async def test_an_error_is_raised_to_its_caller_and_the_thread_goes_on() -> None:
    t = StatementThread("test")

    def boom() -> None:
        raise ValueError("disk on fire")

    with pytest.raises(ValueError, match="disk on fire"):
        await t.run(boom)
    assert await t.run(lambda: 7) == 7
    t.stop()


async def test_a_cancelled_caller_waits_for_its_statement_to_finish() -> None:
    t = StatementThread("test")
    gate = threading.Event()
    done: list[str] = []
    after: list[list[str]] = []

    def slow() -> None:
        gate.wait(5)
        time.sleep(0.05)
        done.append("written")

    async def caller() -> None:
        try:
            await t.run(slow)
        finally:
            after.append(list(done))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
            gate.set()
    assert after == [["written"]]  # when the caller went on, the write was done
    t.stop()
