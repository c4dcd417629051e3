"""The pipeline's gate (``pipeline.gate``, ``pipeline.admit``): held pairs wait without a
slot, a pair held while it runs drains alone and continues in the same run when its hold
lifts, priorities take the slots first, and a run whose only pairs left are suspended ends
paused (exit 8) with nothing failed; the target exact after every history."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from copyengine.config import Pair, load_job
from copyengine.exitcodes import ExitCode
from copyengine.pipeline.gate import Hold, HoldKind, PrioritySlots
from copyengine.plan import PassKind
from copyengine.report import JobStats, PairStatus
from copyengine.wiring import run_job
from tests.emu import base_config, running
from tests.jobs import assert_exact, write_job

pytestmark = pytest.mark.anyio

PAIRS = [
    ("adele@contoso.example", "adele@fabrikam.example"),
    ("bianca@contoso.example", "bianca@fabrikam.example"),
]
SUSPENDED = Hold(HoldKind.SUSPENDED, "suspended by the test")
# lifts by itself (a window opens): the run waits for it
WINDOW = Hold(HoldKind.SCHEDULE, "outside the window", until=datetime.now(UTC) + timedelta(hours=1))


class ManualGate:
    """Holds the pairs the test names (by source), as ``copyengine suspend`` would."""

    def __init__(self) -> None:
        self.held: dict[str, Hold] = {}
        self.refreshes = 0

    def hold(self, pair: Pair, kind: PassKind) -> Hold | None:
        return self.held.get(pair.source)

    async def refresh(self) -> None:
        self.refreshes += 1


async def test_a_freed_slot_goes_to_the_highest_priority_waiting() -> None:
    slots = PrioritySlots(1)
    order: list[int] = []

    async def take(priority: int) -> None:
        async with slots.slot(priority):
            order.append(priority)
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg, slots.slot(0):
        for p in (1, 5, 3, 5, 0):
            tg.start_soon(take, p)
            await anyio.sleep(0.01)  # each in the line before the slot frees
    assert order == [5, 5, 3, 1, 0]
    assert slots.free == 1


async def test_a_cancelled_waiter_leaves_the_line_and_loses_no_slot() -> None:
    slots = PrioritySlots(1)
    async with slots.slot():
        with anyio.move_on_after(0.05):
            async with slots.slot(9):
                raise AssertionError("never handed the slot")
    assert slots.free == 1


def _emulator(items: int = 400) -> dict[str, Any]:
    cfg = base_config(profile="exchange", seed=11)
    for user in cfg["tenants"][0]["users"]:
        user["mailbox"]["items"] = items
    return cfg


async def _until(cond: Any, limit_s: float = 60.0) -> None:
    with anyio.fail_after(limit_s):
        for _ in range(int(limit_s / 0.02) + 1):
            if cond():
                return
            await anyio.sleep(0.02)


def _counts_agree(stats: JobStats) -> None:
    for p in stats.pairs.values():
        d = p.as_dict()
        assert d["copied"] + d["already_present"] == d["source_items"], d
        assert d["failed"] == d["unknown"] == d["not_done"] == 0, d


async def test_a_pair_suspended_mid_run_drains_and_continues_when_resumed(
    tmp_path: Path,
) -> None:
    async with running(_emulator()) as (server, ep, _):
        cfg = load_job(write_job(tmp_path, ep, PAIRS))
        gate, stats = ManualGate(), JobStats()
        gate.held[PAIRS[1][0]] = WINDOW  # the run goes on while this one waits
        adele = server.emulator.require_mailbox(PAIRS[0][1])
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_job(cfg, stats=stats, gate=gate))
            await _until(lambda: len(adele.items) >= 20)
            gate.held[PAIRS[0][0]] = SUSPENDED
            st = await _wait_status(stats, PairStatus.SUSPENDED)
            assert st.hold == SUSPENDED.text
            frozen = len(adele.items)
            await anyio.sleep(2.5)  # suspended: nothing more is copied into it
            assert len(adele.items) == frozen
            gate.held.clear()
    assert stats.exit_code() is ExitCode.OK
    assert all(p.status is PairStatus.DONE for p in stats.pairs.values())
    _counts_agree(stats)
    assert_exact(server.emulator, PAIRS)


async def _wait_status(stats: JobStats, status: PairStatus) -> Any:
    key = f"{PAIRS[0][0]}->{PAIRS[0][1]}"
    await _until(lambda: key in stats.pairs and stats.pairs[key].status is status)
    return stats.pairs[key]


async def test_a_run_whose_pairs_left_are_all_suspended_ends_paused(tmp_path: Path) -> None:
    async with running(_emulator()) as (server, ep, _):
        cfg = load_job(write_job(tmp_path, ep, PAIRS))
        gate = ManualGate()
        gate.held[PAIRS[0][0]] = SUSPENDED  # suspended before it starts
        stats = await run_job(cfg, gate=gate)
        assert stats.exit_code() is ExitCode.PAUSED
        statuses = {p.source: p.status for p in stats.pairs.values()}
        assert statuses == {PAIRS[0][0]: "suspended", PAIRS[1][0]: "done"}
        assert len(server.emulator.require_mailbox(PAIRS[0][1]).items) == 0
        # resumed: the next run copies it, exactly
        again = await run_job(cfg, gate=ManualGate())
        assert again.exit_code() is ExitCode.OK
        assert_exact(server.emulator, PAIRS)


@pytest.mark.parametrize("seed", [1, *(pytest.param(s, marks=pytest.mark.slow) for s in (2, 3))])
async def test_random_holds_and_lifts_leave_the_target_exact(tmp_path: Path, seed: int) -> None:
    """A seeded history of holds (suspended, waiting for a window) and lifts on both pairs
    while the run copies: the run ends done, counts agree, the target exact."""
    rng = random.Random(seed)
    async with running(_emulator(300)) as (server, ep, _):
        cfg = load_job(write_job(tmp_path, ep, PAIRS))
        gate, stats = ManualGate(), JobStats()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_job(cfg, stats=stats, gate=gate))
            for _ in range(rng.randint(2, 5)):
                await anyio.sleep(rng.uniform(0.2, 1.5))
                src = rng.choice(PAIRS)[0]
                if src in gate.held:
                    del gate.held[src]
                else:
                    gate.held[src] = rng.choice([SUSPENDED, WINDOW])
            # a pair held for a time keeps the run going; the suspended ones are lifted
            await anyio.sleep(1.5)
            gate.held.clear()
    assert stats.exit_code() is ExitCode.OK, stats.as_dict()["pairs"]
    _counts_agree(stats)
    assert_exact(server.emulator, PAIRS)


async def test_a_held_pair_waiting_on_its_budget_stops_at_once_and_sends_nothing_more(
    tmp_path: Path,
) -> None:
    """A pair held while its requests wait on the mailbox's budget (here the job's own
    upload window) does not wait the drain's deadline for them: they are parked, never
    sent, and the pair is held within seconds with nothing unknown or failed."""
    async with running(_emulator(300)) as (server, ep, _):
        limits = "upload_mb_per_window = 0.6\nupload_window_s = 300\ndrain_timeout_s = 60"
        cfg = load_job(write_job(tmp_path, ep, PAIRS, limits=limits))
        gate, stats = ManualGate(), JobStats()
        gate.held[PAIRS[1][0]] = WINDOW  # the run goes on while this one waits
        adele = server.emulator.require_mailbox(PAIRS[0][1])
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_job(cfg, stats=stats, gate=gate))
            key = f"{PAIRS[0][0]}->{PAIRS[0][1]}"
            await _until(lambda: key in stats.pairs and stats.pairs[key].throttled_now, 60)
            gate.held[PAIRS[0][0]] = SUSPENDED
            with anyio.fail_after(15):  # not the drain's 60 s deadline
                st = await _wait_status(stats, PairStatus.SUSPENDED)
            frozen = len(adele.items)
            d = st.as_dict()
            assert d["failed"] == d["unknown"] == 0, d
            await anyio.sleep(1.5)
            assert len(adele.items) == frozen
            tg.cancel_scope.cancel()


async def test_running_pairs_cost_the_loop_nothing_per_tick_until_one_is_held() -> None:
    """Issue 26: a running pair's watch was a task woken at every refresh of the gate, each
    with its own timeout timer (two loop handles per pair per tick, 0.5 per item in a
    200-pair ``fleet``); the ticker now looks for the holds itself and wakes the one held."""
    import asyncio
    from collections import defaultdict
    from types import SimpleNamespace
    from unittest.mock import Mock

    from copyengine.pipeline.admit import Admission
    from copyengine.pipeline.gate import Ticker
    from copyengine.pipeline.stop import StopFlag

    n = 40
    gate = ManualGate()
    ticker = Ticker(gate, poll=0.005)
    stats = SimpleNamespace(pairs=defaultdict(Mock))
    adm = Admission(gate, PassKind.FIRST, StopFlag(), stats, PrioritySlots(n), ticker, 0.2)  # type: ignore[arg-type]
    adm.waits = False  # a held pair ends its run here (no wait for the hold to lift)
    pairs = [SimpleNamespace(key=f"p{i}", source=f"s{i}", priority=0) for i in range(n)]
    started = 0
    drained: list[str] = []

    async def copy(p: Any, own: Any) -> None:
        nonlocal started
        started += 1
        try:
            await anyio.sleep_forever()  # until its watch cuts it short
        finally:
            if own.draining:
                drained.append(p.key)

    loop = asyncio.get_running_loop()
    handles = 0
    real_soon, real_at = loop.call_soon, loop.call_at

    def call_soon(*a: Any, **kw: Any) -> Any:
        nonlocal handles
        handles += 1
        return real_soon(*a, **kw)

    def call_at(*a: Any, **kw: Any) -> Any:
        nonlocal handles
        handles += 1
        return real_at(*a, **kw)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker.run)
        for p in pairs:
            tg.start_soon(adm.run, p, lambda own, p=p: copy(p, own))  # type: ignore[arg-type]
        await _until(lambda: started == n, 30)
        loop.call_soon, loop.call_at = call_soon, call_at  # type: ignore[method-assign,assignment]
        try:
            first = gate.refreshes
            await _until(lambda: gate.refreshes >= first + 20, 30)
            ticks = gate.refreshes - first
            per_tick = handles / ticks
        finally:
            del loop.call_soon, loop.call_at
        gate.held["s3"] = SUSPENDED
        await _until(lambda: drained == ["p3"], 30)
        assert drained == ["p3"], per_tick  # the held one, found by the ticker, and no other
        for p in pairs:
            gate.held[p.source] = SUSPENDED
        await _until(lambda: len(drained) == n, 30)
        tg.cancel_scope.cancel()
    # the ticker's own sleep and refresh: a few; a watch per pair woken each tick made
    # two handles per pair at least (its timeout timer, its task's step)
    assert per_tick < n / 4, per_tick
