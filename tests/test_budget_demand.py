"""The byte budget follows what the job needs (``budget.Demand``): it starts on its floor,
goes down while imports queue, up while exports starve and nothing queues, and all of it
comes back the moment a mailbox is paced;
an item larger than what the budget followed down to still passes without waiting for the
job to drain."""

from __future__ import annotations

import anyio
import pytest

from copyengine.pipeline.budget import ByteBudget, Demand

pytestmark = pytest.mark.anyio

MB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def budget(limit: int = 256 * MB, floor: int = 16 * MB) -> tuple[ByteBudget, Clock]:
    clock = Clock()
    return ByteBudget(limit, Demand(limit, floor=floor, interval_s=1.0, clock=clock)), clock


def interval(b: ByteBudget, clock: Clock, seconds: list[float], paced: bool = False) -> None:
    """One interval's imports, then the interval ends."""
    for s in seconds:
        b.observe(s, paced)
    clock.now += 1.0
    b.observe(seconds[-1], paced)


def test_a_job_starts_on_the_floor_and_queued_imports_take_it_back_there() -> None:
    b, clock = budget()
    assert b.effective == 16 * MB
    interval(b, clock, [0.010] * 10, paced=True)  # a mailbox paced: the whole budget
    assert b.effective == 256 * MB
    interval(b, clock, [0.010] * 10)  # the time an import takes when nothing queues
    assert b.effective == 256 * MB
    for _ in range(18):  # held while a mailbox was paced in the last 20 intervals
        interval(b, clock, [0.010, 0.050, 0.050])
    assert b.effective == 256 * MB
    for _ in range(40):
        interval(b, clock, [0.010, 0.050, 0.050])  # mean 3.7x the shortest: queueing
    assert b.effective == 16 * MB


def test_an_unqueued_starved_budget_grows_and_a_merely_busy_one_stays() -> None:
    b, clock = budget()
    interval(b, clock, [0.010] * 5)
    interval(b, clock, [0.011, 0.012])  # nothing queues, but no export waited for bytes
    assert b.effective == 16 * MB
    b.demand.starved = True  # an export waited for bytes
    interval(b, clock, [0.011, 0.012])
    assert b.effective > 16 * MB
    for _ in range(8):
        b.demand.starved = True
        interval(b, clock, [0.011, 0.012])
    assert b.effective == 256 * MB
    b.demand.starved = True
    interval(b, clock, [0.010, 0.050, 0.050])  # starved, but imports queue: no more bytes
    assert b.effective < 256 * MB


def test_a_paced_mailbox_puts_the_whole_configured_budget_back_at_once() -> None:
    b, clock = budget()
    interval(b, clock, [0.010])
    interval(b, clock, [0.010, 0.050, 0.050])
    assert b.effective == 16 * MB
    interval(b, clock, [0.2], paced=True)  # waited on its mailbox's upload window
    assert b.effective == 256 * MB
    for _ in range(19):
        interval(b, clock, [0.010, 0.050, 0.050])  # imports queue, but a mailbox was paced
    assert b.effective == 256 * MB
    interval(b, clock, [0.010, 0.050, 0.050])  # 20 intervals without a paced import
    assert b.effective < 256 * MB


def test_the_floor_is_never_above_the_configured_budget() -> None:
    b, clock = budget(limit=4 * MB)
    assert b.effective == 4 * MB
    interval(b, clock, [0.010])
    for _ in range(10):
        interval(b, clock, [0.010, 0.200])
    assert b.effective == 4 * MB


async def test_a_large_part_passes_against_the_configured_budget_not_the_followed_one() -> None:
    """With the budget followed down to 16 MB and 10 MB held, a 20 MB item fits the 256 MB
    configured budget: it does not wait for the job to drain; small parts keep to 16 MB."""
    b, _ = budget()
    assert b.effective == 16 * MB
    await b.acquire(10 * MB)
    with anyio.fail_after(1):
        await b.acquire(20 * MB)
    assert b.in_use == 30 * MB
    small = anyio.Event()

    async def take_small() -> None:
        await b.acquire(1 * MB)  # 30 + 1 > 16: waits for bytes
        small.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(take_small)
        await anyio.wait_all_tasks_blocked()
        assert not small.is_set() and b.demand.starved
        await b.release(20 * MB)
        await small.wait()
    assert b.in_use == 11 * MB


async def test_a_grown_budget_wakes_the_exports_waiting_for_it() -> None:
    b, clock = budget()
    await b.acquire(16 * MB)
    got = anyio.Event()

    async def waiter() -> None:
        await b.acquire(4 * MB)
        got.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert not got.is_set()
        interval(b, clock, [0.010], paced=True)  # the whole budget back: 20 MB fit now
        await got.wait()
    assert b.in_use == 20 * MB


def test_the_jobs_budget_keeps_its_connections_busy_at_least() -> None:
    """``[limits]``: the floor is 64 KB per connection (16 MB at the default 256), never
    above ``bytes_in_flight``."""
    from copyengine.config import Limits

    b = ByteBudget.for_limits(Limits())
    assert (b.limit, b.effective) == (256 * MB, 16 * MB)
    small = ByteBudget.for_limits(Limits(bytes_in_flight=8 * MB, connections=256))
    assert (small.limit, small.effective) == (8 * MB, 8 * MB)
    few = ByteBudget.for_limits(Limits(connections=16))
    assert few.effective == 1 * MB


async def test_a_budget_followed_down_cuts_export_parts_as_the_configured_one_does() -> None:
    """Parts are cut from the configured budget's share: a budget held low costs no more
    export requests (it had: 1.17 against 1.06 requests per item in ``throughput``)."""
    from copyengine.pipeline.work import ByteShares

    b, _ = budget(limit=100 * MB)
    assert b.effective == 16 * MB
    shares = [ByteShares(b, min_part=0) for _ in range(10)]
    for s in shares:
        await s.take(1, 1)  # ten pairs hold some: a configured share of 10 MB each (1.6 held)
    assert shares[0].split(list(range(20)), [400_000] * 20) == [
        list(range(13)),
        list(range(13, 20)),
    ]
    for s in shares:
        await s.release_all()


async def test_the_first_pairs_to_ask_cut_their_parts_for_every_pair_the_job_runs_at_once() -> None:
    """A job of 100 pairs at once, 256 MB: its first pairs to ask found few holders, and
    cut their first batch (20 items, the large ones first: 4.5 MB) as one part. Sixty pairs
    took the whole budget that way, and the rest waited for it to come back at their
    mailboxes' upload pace (``fleet`` at 100 pairs: the largest mailbox's first upload at
    8.1 s instead of 2.7, the job 5 s longer). Cut for the pairs the job runs at once, the
    first pairs' parts are what the last pair's will be."""
    from copyengine.pipeline.work import ByteShares

    b, _ = budget(limit=256 * MB)
    b.expected = 100
    first = ByteShares(b)
    sizes = [900_000, 900_000, 900_000] + [100_000] * 17  # 4.4 MB
    parts = first.split(list(range(20)), sizes)
    assert len(parts) > 1
    assert all(sum(sizes[i] for i in part) <= 256 * MB / 100 / 2 for part in parts)
    assert [i for part in parts for i in part] == list(range(20))  # the order kept
    b.expected = 0  # the pairs it runs at once not known: the holders so far, as before
    assert first.split(list(range(20)), sizes) == [list(range(20))]


async def test_a_job_tells_its_budget_how_many_pairs_it_runs_at_once(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pairs, at most one at once: the budget's parts are cut for one pair (the job
    sets ``expected`` before any pair asks), and given back when the job ends."""
    from pathlib import Path

    from copyengine.config import load_job
    from copyengine.pipeline.job import run_pairs
    from copyengine.pipeline.work import ByteShares
    from copyengine.wiring import clients, store
    from tests.emu import base_config, running
    from tests.jobs import write_job

    seen: list[int] = []
    split = ByteShares.split

    def spy(self: ByteShares, batch: list[object], sizes: list[int]) -> list[list[object]]:
        seen.append(self.budget.expected)
        return split(self, batch, sizes)

    monkeypatch.setattr(ByteShares, "split", spy)

    pairs = [
        ("adele@contoso.example", "adele@fabrikam.example"),
        ("bianca@contoso.example", "bianca@fabrikam.example"),
    ]
    async with running(base_config()) as (_, ep, _session):
        cfg = load_job(write_job(Path(str(tmp_path)), ep, pairs, limits="pairs_in_parallel = 1\n"))
        b = ByteBudget(256 * MB)
        async with clients(cfg) as built:
            await run_pairs(cfg, built, store(cfg), budget=b)
        # 2 with pairs_in_parallel not read, 0 without the line; none once the job ended
        assert seen and set(seen) == {1} and b.expected == 0


def test_a_runs_expected_pairs_follow_the_pairs_left() -> None:
    """``job.Expected``: a run of 5 pairs, 3 at once, holds 3 until fewer than 3 are left to
    end, then one less per pair; two runs on one budget (a worker's groups) add up; a run
    that ends gives back what it still holds (review 4: a pair left alone cut its batches
    for the whole job's pairs, an export request per item)."""
    from copyengine.pipeline.job import Expected

    b = ByteBudget(256 * MB)
    with Expected(b, 3, 5) as run, Expected(b, 1, 4):
        assert b.expected == 4
        held = []
        for _ in range(5):
            run.pair_ended()
            held.append(b.expected)
        assert held == [4, 4, 3, 2, 1]
    assert b.expected == 0


async def test_a_pacer_holding_an_import_back_puts_the_whole_budget_back_before_its_answer() -> (
    None
):
    """Told only when a paced import is answered, the budget stayed on its floor while the
    first mailboxes' imports waited for their upload windows, and the other pairs' exports
    with it (issue 26: half of ``stricter``'s pairs began a window late); told when the
    pacer holds one back, the waiting exports go at once, and the whole budget is kept as
    for a paced import."""
    b, clock = budget()
    await b.acquire(16 * MB)
    got = anyio.Event()

    async def waiter() -> None:
        await b.acquire(4 * MB)
        got.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert not got.is_set()
        b.pacing()  # no import answered, no interval ended
        with anyio.fail_after(1):
            await got.wait()
    assert b.effective == 256 * MB
    for _ in range(19):
        interval(b, clock, [0.010, 0.050, 0.050])  # imports queue, but a mailbox was paced
    assert b.effective == 256 * MB
    interval(b, clock, [0.010, 0.050, 0.050])
    assert b.effective < 256 * MB
