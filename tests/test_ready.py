"""Which exported item an importer takes next (pipeline/ready.py): first in, first out while
the upload budget does not bind; the largest that fits when it does; the smallest when none
fits; an item passed over too long first."""

from __future__ import annotations

from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest

from copyengine.pipeline.ready import BODY_OVERHEAD, ReadyItems
from copyengine.pipeline.work import Exportable

pytestmark = pytest.mark.anyio


class _Target:
    id = "F"


class _Folder:
    target = _Target()


def _item(name: str, nbytes: int) -> Exportable:
    e = Exportable.__new__(Exportable)
    e.item = name  # type: ignore[assignment]
    e.folder = _Folder()  # type: ignore[assignment]
    e.data = b"x" * (nbytes - BODY_OVERHEAD - 1)
    e.update = None
    e.share = None
    return e


def _name(e: Exportable) -> str:
    return cast(str, e.item)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def _fill(ready: ReadyItems, sizes: dict[str, int]) -> None:
    ready.producer()
    for name, n in sizes.items():
        await ready.put(_item(name, n))
    ready.done()


async def _order(room: Any, sizes: dict[str, int], clock: Clock | None = None) -> list[str]:
    ready = ReadyItems(64, room, overdue_s=10.0, clock=clock or Clock())
    await _fill(ready, sizes)
    out = []
    while (e := await ready.get()) is not None:
        out.append(_name(e))
    return out


async def test_first_in_first_out_when_everything_fits() -> None:
    sizes = {"a": 500, "b": 100, "c": 900, "d": 50}
    assert await _order(lambda: float("inf"), sizes) == ["a", "b", "c", "d"]
    assert await _order(lambda: 1000.0, sizes) == ["a", "b", "c", "d"]


async def test_largest_that_fits_when_the_budget_binds() -> None:
    sizes = {"big": 900, "mid": 400, "small": 100, "tiny": 50}
    # room for 450 bytes: the mid item, not the oldest (900 would wait) nor a small one
    assert (await _order(lambda: 450.0, sizes))[0] == "mid"


async def test_smallest_when_nothing_fits() -> None:
    sizes = {"big": 900, "mid": 400, "small": 100}
    assert (await _order(lambda: 10.0, sizes))[0] == "small"


async def test_an_item_passed_over_too_long_goes_first() -> None:
    clock = Clock()
    ready = ReadyItems(64, lambda: 450.0, overdue_s=10.0, clock=clock)
    await _fill(ready, {"big": 900, "mid": 400, "small": 100})
    first = await ready.get()
    assert first is not None and _name(first) == "mid"
    clock.now = 11.0  # "big" has waited more than overdue_s
    second = await ready.get()
    assert second is not None and _name(second) == "big"


async def test_put_waits_for_capacity_and_get_ends_when_producers_are_done() -> None:
    ready = ReadyItems(2, lambda: float("inf"), overdue_s=10.0)
    ready.producer()
    got: list[str] = []

    async def consume() -> None:
        while (e := await ready.get()) is not None:
            got.append(_name(e))
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        for i in range(10):
            await ready.put(_item(f"i{i}", 200))
            assert len(ready) <= 2
        ready.done()
    assert got == [f"i{i}" for i in range(10)]


@pytest.mark.parametrize("capacity", [1, 3])
async def test_every_item_comes_out_once(capacity: int) -> None:
    ready = ReadyItems(capacity, lambda: 300.0, overdue_s=10.0)
    sizes = {f"i{i}": 100 + (i * 97) % 600 for i in range(40)}
    out: list[str] = []

    async def consume() -> None:
        while (e := await ready.get()) is not None:
            out.append(_name(e))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(consume)
        await _fill(ready, sizes)
    assert sorted(out) == sorted(sizes)


async def test_a_pair_holds_at_most_its_fair_part_of_the_byte_budget() -> None:
    """With the budget shared by several pairs, a pair whose earlier responses are not yet
    imported waits for them before holding more than its part; batches larger than half its
    part are exported in parts (one imported while the next is exported)."""
    from copyengine.pipeline.budget import ByteBudget
    from copyengine.pipeline.work import ByteShares

    budget = ByteBudget(1000)
    a, b = ByteShares(budget, min_part=0), ByteShares(budget, min_part=0)
    first = await a.take(1, 400)  # alone so far: its part is the whole budget
    await b.take(1, 100)  # now two pairs: 500 each
    assert a.split(list(range(6)), [100] * 6) == [[0, 1], [2, 3], [4, 5]]
    took = anyio.Event()

    async def more() -> None:
        await a.take(1, 200)  # 400 + 200 > 500: waits for its own first response
        took.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(more)
        await anyio.wait_all_tasks_blocked()
        assert not took.is_set()
        await a.done(first)
        await took.wait()
    assert a.held == 200 and budget.in_use == 300
    await a.release_all()
    await b.release_all()
    assert budget.in_use == 0 and budget.holders == 0


async def test_export_parts_are_never_smaller_than_the_floor() -> None:
    """With a thousand pairs a fair share is a few kB; a batch is still exported in parts
    of at least ``min_part`` bytes, not one request per item."""
    from copyengine.pipeline.budget import ByteBudget
    from copyengine.pipeline.work import ByteShares

    budget = ByteBudget(10_000)
    shares = [ByteShares(budget, min_part=1_000) for _ in range(100)]
    for s in shares:
        await s.take(1, 10)  # 100 pairs hold some: a fair share is 100 bytes
    parts = shares[0].split(list(range(20)), [300] * 20)
    assert parts == [
        [0, 1, 2],
        [3, 4, 5],
        [6, 7, 8],
        [9, 10, 11],
        [12, 13, 14],
        [15, 16, 17],
        [18, 19],
    ]
    assert shares[1].split([0, 1], [300, 300]) == [[0, 1]]  # within the floor: one request
    for s in shares:
        await s.release_all()


async def test_readiness_is_not_told_where_the_pool_held_an_exporter_back() -> None:
    """When an item was ready (``READY``, read by the pacer's account as a bound: no client
    sends a body before it has it) is told only where the pool did not hold an exporter
    back: the data was in hand, the mailbox's own pace held it. Issue 26, the demo job
    beside the writer: a pool kept full by a slow mailbox told each body ready just before
    it went, and the account excused every spell up to its last send (91-93% of the
    ceiling; 64-78% without the bound)."""
    from copyengine.readiness import READY

    clock = [0.0]
    pool = ReadyItems(2, lambda: 1e9, overdue_s=100.0, clock=lambda: clock[0])
    pool.producer()
    await pool.put(_item("a", 500))
    clock[0] = 1.0
    assert _name(await _get(pool)) == "a"
    assert READY.get() == 0.0  # not held back: when it entered the pool
    await pool.put(_item("b", 500))
    await pool.put(_item("c", 500))
    async with anyio.create_task_group() as tg:
        tg.start_soon(pool.put, _item("d", 500))  # the pool is full: it waits
        await anyio.wait_all_tasks_blocked()
        assert _name(await _get(pool)) == "b"
        assert READY.get() is None  # an exporter was held back: not told
    assert _name(await _get(pool)) == "c"
    assert READY.get() == 1.0  # nobody waits now, and c did not
    assert _name(await _get(pool)) == "d"
    assert READY.get() is None  # d waited for room itself


async def _get(pool: ReadyItems) -> Exportable:
    e = await pool.get()
    assert e is not None
    return e
