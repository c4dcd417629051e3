"""A drain cut short (its deadline, the quiet cut, a pair's failure) at any moment: the
report counts what the state records. Unit cases on the in-memory API (an import in flight,
items taken for settlement, an intent write given up), and seeded randomized runs against
the emulator (``tests/cutshort.py``; more of them: ``python -m benchmarks soak cutshort``),
every seed that once failed kept."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from copyengine import unsent
from copyengine.errors import OutcomeUnknown
from copyengine.graph import Item
from copyengine.pipeline.budget import ByteBudget
from copyengine.pipeline.ledger import Ledger
from copyengine.pipeline.pair import PairRunner
from copyengine.pipeline.stop import StopFlag
from copyengine.pipeline.unsettled import Unsettled
from copyengine.pipeline.work import Exportable, FolderJob
from copyengine.report import PairStats, PairStatus
from copyengine.state import Intent, SQLiteStore
from tests.cutshort import Case, run_case
from tests.fake_api import FakeApi
from tests.test_stages import DST, LIMITS, PAIR, SRC, _api, _context, _exact, _run

pytestmark = pytest.mark.anyio
# Seeds whose first run's report once disagreed with the state (before the importer kept
# an unanswered import in flight): the report had fewer unknowns than the state.
# 943: a first run cut short at 1/34 of [limits] where the service gave 1/13, and the next
# run past its 300 s (57-77 s now; 959, alike, still passes its 300 s in about half its runs).
# 1014 (75fe453, 192b4f2, a5b1890): a first run that ended on a window tried in place of
# the configured one (3.5% of [limits] over 22 s), left to the configured window by the
# next run, past its 300 s; 160 s with the window remembered as tried: too long for this
# list (``python -m tests.cutshort 1014``; ``tests/test_remembered_tried_window.py``)
REGRESSIONS = [1, 2, 3, 4, 5, 6, 943, 1436]
QUICK = [2, 3]  # of those, the ones that take seconds (the others: -m slow)


async def _cut_when(api: FakeApi, stats: PairStats, store: SQLiteStore, ready: Any) -> None:
    """The pair run until ``ready()``, then cancelled (a drain cut short)."""
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            ctx = _context(api, store, stats, ByteBudget(1 << 30), StopFlag())
            tg.start_soon(PairRunner(ctx).run)
            for _ in range(1000):
                if ready():
                    break
                await anyio.sleep(0.005)
            assert ready()
            tg.cancel_scope.cancel()
    assert stats.status is PairStatus.INTERRUPTED


def _not_attempted(stats: PairStats) -> int:
    return stats.total("not_attempted")


async def test_imports_in_flight_when_cut_are_reported_unknown(tmp_path: Path) -> None:
    api = _api(60)
    gate = api.gate("import_item")  # every import waits: in flight when the cut comes
    stats = PairStats(SRC, DST)
    async with SQLiteStore(tmp_path / "state.sqlite") as store:
        await _cut_when(api, stats, store, lambda: api.calls["import_item"] >= 3)
        counts = await store.summary(PAIR.key)
    assert stats.unknown == counts.get("unknown", 0) == LIMITS.importers_per_pair
    assert _not_attempted(stats) >= counts.get("not attempted", 0) > 0
    gate.set()
    del api._gates["import_item"]
    after = await _run(api, tmp_path)
    assert after.status is PairStatus.DONE and after.failed == 0
    _exact(api)


class _Parking(FakeApi):
    """Every import waits on the service's budget: parked, unsent, once the run drains."""

    def __init__(self) -> None:
        super().__init__()
        self.parked = 0

    async def import_item(self, *args: Any, **kw: Any) -> Any:
        hold = unsent.current()
        hold.drain()
        self.parked += 1
        await hold.park()
        raise AssertionError("a park ends only when the run is cut short")


async def test_imports_parked_when_cut_are_not_sent(tmp_path: Path) -> None:
    """A drain's parked imports never left: not attempted, in the report as in the state
    (an import sent before in this run, or by an earlier run, would stay unknown)."""
    api = _Parking()
    api.add_items(SRC, "inbox", 30)
    api.mailbox(DST)
    stats = PairStats(SRC, DST)
    async with SQLiteStore(tmp_path / "state.sqlite") as store:
        with unsent.opened():
            await _cut_when(api, stats, store, lambda: api.parked >= LIMITS.importers_per_pair)
        counts = await store.summary(PAIR.key)
    assert stats.unknown == counts.get("unknown", 0) == 0
    assert _not_attempted(stats) >= counts.get("not attempted", 0) >= api.parked


class _TargetLookups(FakeApi):
    """Listing the target once every import is answered (settlement's look-up by search
    key) waits for ``go``."""

    def __init__(self) -> None:
        super().__init__()
        self.go = anyio.Event()
        self.lookups = 0

    async def list_items(  # type: ignore[override]
        self, mailbox_id: str, folder_id: str, **kw: Any
    ) -> AsyncIterator[list[Item]]:
        if mailbox_id == self.mailbox(DST).id and self.calls["import_item"] >= 12:
            self.lookups += 1
            await self.go.wait()
        async for page in super().list_items(mailbox_id, folder_id, **kw):
            yield page


async def test_items_being_settled_when_cut_are_reported(tmp_path: Path) -> None:
    """Answers lost for every import: settlement has them when the cut comes (its look-up
    in the target waits), and the report still counts them unknown, as the state does."""
    api = _TargetLookups()
    api.add_items(SRC, "inbox", 8)
    api.add_items(SRC, "archive", 4)
    api.mailbox(DST)
    api.script("import_item", [OutcomeUnknown("importItem: response lost")] * 12)
    stats = PairStats(SRC, DST)
    async with SQLiteStore(tmp_path / "state.sqlite") as store:
        await _cut_when(api, stats, store, lambda: api.lookups > 0)
        counts = await store.summary(PAIR.key)
    assert stats.unknown == counts.get("unknown", 0) == 12
    api.go.set()
    after = await _run(api, tmp_path)
    assert after.status is PairStatus.DONE and after.failed == 0
    _exact(api)


def test_cut_short_counts_what_settlement_had_taken() -> None:
    said: dict[str, list[str]] = {"unknown": [], "not_sent": [], "not_attempted": []}
    ledger = cast(
        Ledger,
        type(
            "L",
            (),
            {
                "unknown": lambda s, j, i, r, q: said["unknown"].append(i.id),
                "not_sent": lambda s, j, i: said["not_sent"].append(i.id),
                "not_attempted": lambda s, j: said["not_attempted"].append("-"),
            },
        )(),
    )
    api = _api(4)
    items = list(api.mailboxes[SRC].items[f"MBX:{SRC}/inbox"].values())
    job = cast(FolderJob, object())
    u = Unsettled()
    sent, unsent, inherited, found = (Exportable(i, job) for i in items[:4])
    u.send(sent)
    u.answered(sent)
    u.add(sent, "lost", None)
    u.add(unsent, "export: 503", None)
    u.add(inherited, "an earlier run's", None, sent=True)
    u.add(found, "lost", None, sent=True)
    assert len(u.take()) == 4  # settlement has them ...
    u.settled(found)  # ... and found this one in the target
    u.cut_short(ledger, "cut")
    assert sorted(said["unknown"]) == sorted([sent.item.id, inherited.item.id])
    assert said["not_attempted"] == ["-"] and said["not_sent"] == []


async def test_an_intent_write_given_up_is_not_written_by_the_next(tmp_path: Path) -> None:
    """A caller cancelled while it waits for the group commit: its rows are not written by
    the next caller's commit (it was told nothing is durable)."""
    release = threading.Event()
    async with SQLiteStore(tmp_path / "state.sqlite") as store:
        write = store._write_intents

        def slow(rows: Any, db: Any) -> None:
            release.wait(5)
            write(rows, db)

        store._write_intents = slow  # type: ignore[method-assign]

        def intent(n: int) -> list[Intent]:
            return [Intent(f"i{n}", "f", None, 1, "t", "ck")]

        async with anyio.create_task_group() as tg:
            tg.start_soon(store.record_intents, "p", intent(1))  # holds the lock, writing
            await anyio.sleep(0.05)
            with anyio.move_on_after(0.05):
                await store.record_intents("p", intent(2))  # waits, then gives up
            release.set()
        await store.record_intents("p", intent(3))
        ids = set(await store.items_in_folder("p", "f"))
    assert ids == {"i1", "i3"}


@pytest.mark.parametrize("seed", QUICK)
async def test_a_cut_short_run_agrees_with_the_state(seed: int, tmp_path: Path) -> None:
    """Seeded: the run stopped at a random moment, with a random drain deadline, throttled
    or not, faults or not; its report and ``status`` agree, and the next run is exact."""
    assert await run_case(Case.of(seed), tmp_path) == []


# seeds 6 and 943 (and soak seed 1425): the run after the cut started at the budget in effect
# the cut run ended with (``pipeline.remember``) and climbed back too slowly, past the test's
# 120 s: 943 and 1425 at 1/91 and 1/312 of [limits] where the x60 service gave 1/13, a belief
# on trial (the configured window taken for the service's 5 s, cut to what went through over
# 300 s in the seconds the run had sent) remembered over 300 s; 6 at 1/30 over a window tried
# (22 s), climbing by a body per window. Now remembered over the 5 s window and a probe five
# times faster (``pacing.remember``): 943 in 31-47 s, 6 in 31-110 s (86-110 s when the cut
# run ended on a window tried, under a load of 20-25 on 2 cores), 5 runs each


@pytest.mark.slow
@pytest.mark.parametrize(
    "seed",
    [s for s in REGRESSIONS if s not in QUICK],
)
async def test_every_seed_that_failed_agrees_now(
    seed: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The other seeds that once failed (10-25 s each): with ``-m slow``."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("10-25 s: run with -m slow, or python -m tests.cutshort SEED")
    assert await run_case(Case.of(seed), tmp_path) == []


# -- hunt6 -------------------------------------------------------------------------------------
# soak seed 1436 (stopped at 0.65 s, a drain deadline of 0.05 s): no pair had begun, the report
# said both "pending" with nothing done and the state had no pair at all: the harness's
# comparison raised StopIteration (a crash, "coroutine raised StopIteration") instead of
# finding that they agree
def test_a_pair_the_state_has_nothing_of_agrees_only_with_a_report_of_nothing() -> None:
    from tests.cutshort import disagreements

    def pair(source: str, copied: int) -> dict[str, Any]:
        return {
            "source": source,
            "copied": copied,
            "already_present": 0,
            "failed": 0,
            "unknown": 0,
            "not_done": 0,
            "folders": [],
        }

    status: dict[str, Any] = {"pairs": []}
    assert disagreements({"pairs": [pair("adele@contoso.example", 0)]}, status) == []
    said = disagreements({"pairs": [pair("adele@contoso.example", 2)]}, status)
    assert said == ["adele@contoso.example: copied: the report says 2, the state 0"], said
