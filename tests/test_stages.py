"""Pipeline stages on the scripted in-memory MailboxApi: no sockets, no emulator."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from copyengine.config import FolderRules, ItemFilters, Limits, Pair
from copyengine.errors import ItemFailed, OutcomeUnknown, Transient
from copyengine.graph import Exported
from copyengine.pipeline.budget import ByteBudget
from copyengine.pipeline.context import PairContext
from copyengine.pipeline.pair import PairRunner
from copyengine.pipeline.stop import StopFlag
from copyengine.plan import PassKind
from copyengine.report import PairStats, PairStatus
from copyengine.state import SQLiteStore, Status
from tests.fake_api import Applied, FakeApi

pytestmark = pytest.mark.anyio
SRC, DST = "adele@contoso.example", "adele@fabrikam.example"
PAIR = Pair(SRC, DST, FolderRules(), ItemFilters())
LIMITS = Limits(batch_items=5, exporters_per_pair=2, importers_per_pair=3)


def _api(n: int = 23) -> FakeApi:
    api = FakeApi()
    api.add_items(SRC, "inbox", n)
    api.add_items(SRC, "archive", 4)
    api.mailbox(DST)
    return api


async def _run(
    api: FakeApi,
    tmp: Path,
    budget: ByteBudget | None = None,
    stop: StopFlag | None = None,
    kind: PassKind = PassKind.DELTA,
) -> PairStats:
    stats = PairStats(SRC, DST)
    async with SQLiteStore(tmp / "state.sqlite") as store:
        budget = budget or ByteBudget(1 << 30)
        await PairRunner(_context(api, store, stats, budget, stop or StopFlag(), kind)).run()
    return stats


def _context(
    api: FakeApi,
    store: SQLiteStore,
    stats: PairStats,
    budget: ByteBudget,
    stop: StopFlag,
    kind: PassKind = PassKind.DELTA,
) -> PairContext:
    return PairContext.of(
        PAIR, api, api, store, stats=stats, limits=LIMITS, budget=budget, stop=stop, kind=kind
    )


def _exact(api: FakeApi) -> None:
    assert api.keys(DST) == api.keys(SRC)


async def test_every_item_is_copied_once(tmp_path: Path) -> None:
    api = _api()
    stats = await _run(api, tmp_path)
    assert stats.status is PairStatus.DONE and stats.total("copied") == 27
    _exact(api)
    again = await _run(api, tmp_path)  # nothing changed: the delta rounds bring nothing
    assert again.total("source_items") == 0 and again.total("copied") == 0
    full = await _run(api, tmp_path, kind=PassKind.FULL)
    assert full.total("copied") == 0 and full.total("already_present") == 27
    _exact(api)


async def test_a_target_folder_is_read_only_for_a_source_folder_with_items(tmp_path: Path) -> None:
    """The target's copy of a folder is listed (to reconcile by search key) only once its
    source folder has an item to decide: the empty Sent Items costs no request (nor does
    its source side: counted empty at both sides, it is not read, ``docs/passes.md``)."""
    api = _api()  # items in Inbox and Archive; Sent Items empty
    stats = await _run(api, tmp_path)
    assert stats.total("copied") == 27
    # the two source folders with items, then the target's Inbox and Archive (not its Sent
    # Items)
    assert api.calls["list_items"] == 2 + 2
    full = await _run(api, tmp_path, kind=PassKind.FULL)
    assert full.total("already_present") == 27 and api.calls["list_items"] == 2 * (2 + 2)


async def test_an_import_applied_but_unanswered_is_settled_not_resent(tmp_path: Path) -> None:
    api = _api()
    api.script("import_item", [None, Applied(OutcomeUnknown("importItem: response lost"))] * 3)
    stats = await _run(api, tmp_path)
    _exact(api)  # no duplicate: found by search key, never resent
    assert stats.failed == 0 and stats.unknown == 0 and stats.total("copied") == 27


async def test_an_import_lost_before_it_landed_is_resent_after_a_look(tmp_path: Path) -> None:
    api = _api()
    api.script("import_item", [OutcomeUnknown("importItem: connection reset")] * 4)
    stats = await _run(api, tmp_path)
    _exact(api)
    assert stats.failed == 0 and stats.total("copied") == 27


async def test_a_refused_item_is_reported_failed_with_its_reason(tmp_path: Path) -> None:
    api = _api()
    api.script("import_item", [ItemFailed("importItem: corrupt data", code="ErrorCorruptData")])
    stats = await _run(api, tmp_path)
    assert stats.failed == 1 and stats.total("copied") == 26
    (failure,) = [f for fs in stats.folders.values() for f in fs.failed]
    assert "corrupt data" in failure["reason"]


async def test_export_failures_are_retried_in_settlement(tmp_path: Path) -> None:
    api = _api()
    api.script("export_items", [Transient("exportItems: 503", status=503)] * 2)
    stats = await _run(api, tmp_path)
    _exact(api)
    assert stats.failed == 0


async def test_an_item_missing_from_the_export_answer_is_exported_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = _api()
    real = api.export_items
    dropped: list[str] = []

    async def drop_one(mailbox_id: str, ids: list[str]) -> list[Exported]:
        rows = await real(mailbox_id, ids)
        if not dropped:
            dropped.append(ids[0])
            rows[0] = Exported(ids[0], None, None, "MissingFromResponse", "no row")
        return rows

    monkeypatch.setattr(api, "export_items", drop_one)
    stats = await _run(api, tmp_path)
    _exact(api)
    assert dropped and stats.failed == 0


async def test_a_listing_that_keeps_failing_fails_the_pair_only_with_a_verdict(
    tmp_path: Path,
) -> None:
    api = _api()
    api.script("list_items", [Transient("listItems: 503", status=503)] * 50)
    stats = await _run(api, tmp_path)
    assert stats.status is PairStatus.FAILED and stats.error_code == "ServiceFailed"


async def test_a_pair_cancelled_mid_pipeline_leaves_budget_and_state_consistent(
    tmp_path: Path,
) -> None:
    api = _api(60)
    budget = ByteBudget(1 << 30)
    gate = api.gate("import_item")
    stats = PairStats(SRC, DST)
    async with SQLiteStore(tmp_path / "state.sqlite") as store:
        with anyio.move_on_after(5) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(PairRunner(_context(api, store, stats, budget, StopFlag())).run)
                for _ in range(500):  # until exports have filled the budget and queue
                    if budget.in_use > 0 and api.calls["export_items"] >= 3:
                        break
                    await anyio.sleep(0.01)
                assert budget.in_use > 0
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught  # the pair ended promptly on cancellation
        assert budget.in_use == 0  # every share returned
        assert stats.status is PairStatus.INTERRUPTED
        counts = await store.summary(PAIR.key)
    assert counts.get("not attempted", 0) + counts.get("unknown", 0) > 0
    assert counts.get("copied", 0) == 0
    gate.set()
    del api._gates["import_item"]
    after = await _run(api, tmp_path)  # the next run ends exact
    assert after.status is PairStatus.DONE and after.failed == 0
    _exact(api)
    async with SQLiteStore(tmp_path / "state.sqlite") as store:
        assert set(await store.summary(PAIR.key)) <= {"copied", "already present"}
        assert Status.PENDING not in {
            r.status for r in (await store.items_in_folder(PAIR.key, f"MBX:{SRC}/inbox")).values()
        }


async def test_an_item_left_out_of_every_multi_item_answer_is_exported_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = _api()
    real = api.export_items
    victim = sorted(i.id for f in api.mailbox(SRC).items.values() for i in f.values())[3]
    sizes: list[int] = []

    async def drop_victim(mailbox_id: str, ids: list[str]) -> list[Exported]:
        rows = await real(mailbox_id, ids)
        if victim in ids:
            sizes.append(len(ids))
            if len(ids) > 1:  # the service leaves it out of every multi-item answer
                k = ids.index(victim)
                rows[k] = Exported(victim, None, None, "MissingFromResponse", "no row")
        return rows

    monkeypatch.setattr(api, "export_items", drop_victim)
    stats = await _run(api, tmp_path)
    _exact(api)
    assert stats.failed == 0
    assert sizes[-1] == 1 and all(n > 1 for n in sizes[:-1])  # alone after the second miss


async def test_the_budget_holds_the_datas_real_length_not_the_listed_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import msgspec

    from copyengine.plan import encoded_size

    api = _api(10)
    real = api.export_items
    lengths: list[int] = []

    async def larger_data(mailbox_id: str, ids: list[str]) -> list[Exported]:
        out = []
        for r in await real(mailbox_id, ids):  # the stream is 3x the listed size's estimate
            data = bytes(r.data)[:-1] + b"|" + b"A" * (3 * encoded_size(1000)) + b'"'
            out.append(Exported(r.item_id, r.change_key, msgspec.Raw(data)))
            lengths.append(len(data))
        return out

    monkeypatch.setattr(api, "export_items", larger_data)
    budget = ByteBudget(1 << 30)
    stats = await _run(api, tmp_path, budget)
    _exact(api)
    assert stats.failed == 0
    # a full batch's real bytes were held at once, not the estimate from the listed size
    assert budget.peak >= sum(sorted(lengths)[: LIMITS.batch_items])
    assert budget.peak > LIMITS.batch_items * encoded_size(1000)
    assert budget.in_use == 0


async def test_the_byte_budget_serves_waiters_in_order_and_only_those_that_fit() -> None:
    budget = ByteBudget(100)
    await budget.acquire(80)
    order: list[str] = []

    async def take(name: str, n: int) -> None:
        await budget.acquire(n)
        order.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(take, "a", 50)
        await anyio.sleep(0.01)
        tg.start_soon(take, "b", 10)  # would fit now, but waits behind "a" (no starvation)
        await anyio.sleep(0.01)
        assert order == [] and budget.in_use == 80
        await budget.release(80)
        await anyio.sleep(0.01)
        assert order == ["a", "b"] and budget.in_use == 60
    await budget.release(60)
    # one item larger than the whole budget passes alone
    await budget.acquire(500)
    assert budget.in_use == 500
    with anyio.move_on_after(0.05):
        await budget.acquire(1)  # waits: the budget is over
    await budget.release(500)
    assert budget.in_use == 0  # the cancelled waiter left nothing behind


def _stage_tasks() -> dict[str, int]:
    """The event loop's tasks of a pair's stages (exporters, importers), by kind."""
    import asyncio

    out = {"exporter": 0, "importer": 0}
    for t in asyncio.all_tasks():
        coro: Any = t.get_coro()
        while coro is not None:
            name = getattr(getattr(coro, "cr_code", None), "co_name", "")
            for kind in out:
                if name == f"_{kind}":
                    out[kind] += 1
            coro = getattr(coro, "cr_await", None)
    return out


async def test_a_pair_holds_stage_tasks_only_while_it_has_work(tmp_path: Path) -> None:
    """A pair that lists (or has nothing in flight) holds no exporter or importer task; they
    are started as batches and exported items come, never more than the limits say."""
    api = _api()
    listing = api.gate("list_items")
    seen: list[dict[str, int]] = []
    most = {"exporter": 0, "importer": 0}

    done = anyio.Event()

    async def copy() -> None:
        try:
            await PairRunner(ctx).run()
        finally:
            done.set()

    async def watch() -> None:
        # every turn of the loop until the pair is done (the store's writes run in a thread
        # of their own: a loaded machine stretches the pair over many turns), 60 s at most
        deadline = time.monotonic() + 60
        for _ in range(10_000_000):
            if done.is_set() or time.monotonic() > deadline:
                return
            tasks = _stage_tasks()
            seen.append(tasks)
            for k, n in tasks.items():
                most[k] = max(most[k], n)
            await anyio.lowlevel.checkpoint()

    stats = PairStats(SRC, DST)
    async with SQLiteStore(tmp_path / "state.sqlite") as store:
        ctx = _context(api, store, stats, ByteBudget(1 << 30), StopFlag())
        async with anyio.create_task_group() as tg:
            tg.start_soon(copy)
            for _ in range(1000):  # until the listing is held (10 s at most)
                if api.calls["list_items"]:
                    break
                await anyio.sleep(0.01)
            assert api.calls["list_items"]
            for _ in range(20):  # the listing is held: nothing of the stages runs
                await anyio.lowlevel.checkpoint()
            assert _stage_tasks() == {"exporter": 0, "importer": 0}
            tg.start_soon(watch)
            listing.set()
    assert stats.status is PairStatus.DONE and stats.total("copied") == 27
    _exact(api)
    assert 1 <= most["exporter"] <= LIMITS.exporters_per_pair
    assert 1 <= most["importer"] <= LIMITS.importers_per_pair


async def test_large_items_listed_last_are_exported_early_when_the_upload_budget_binds(
    tmp_path: Path,
) -> None:
    """``plan.upload_order`` applied by the producer: a folder whose large items are listed
    last, more bytes than one upload window, has them exported in its first 60%; every
    item exported and copied once."""
    api = FakeApi()
    small = api.add_items(SRC, "inbox", 40, size=1_000)
    large = api.add_items(SRC, "inbox", 6, size=200_000)
    api.mailbox(DST)
    asked: list[str] = []
    export = api.export_items

    async def recorded(mailbox_id: str, item_ids: list[str]) -> list[Exported]:
        asked.extend(item_ids)
        return await export(mailbox_id, item_ids)

    api.export_items = recorded  # type: ignore[method-assign]
    limits = Limits(
        batch_items=5, exporters_per_pair=1, importers_per_pair=3, upload_bytes_per_window=1 << 20
    )
    stats = PairStats(SRC, DST)
    async with SQLiteStore(tmp_path / "state.sqlite") as store:
        ctx = PairContext.of(
            PAIR,
            api,
            api,
            store,
            stats=stats,
            limits=limits,
            budget=ByteBudget(1 << 30),
            stop=StopFlag(),
            kind=PassKind.FULL,
        )
        await PairRunner(ctx).run()
    assert sorted(asked) == sorted(i.id for i in small + large)  # once each
    assert max(asked.index(i.id) for i in large) < 0.6 * len(asked)
    assert [i for i in asked if i in {s.id for s in small}] == [s.id for s in small]
    _exact(api)


async def test_an_import_started_while_its_pacer_holds_one_back_tells_the_byte_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The byte budget hears of a paced mailbox when an import starts while the mailbox's
    pacer holds another back, not only at a paced import's answer (issue 26: until then the
    other pairs' exports waited on the floor for a whole upload window)."""
    from copyengine.pipeline.budget import Demand
    from tests.fake_api import FakeAccount

    mb = 1 << 20
    monkeypatch.setattr(FakeAccount, "waiting", True)
    budget = ByteBudget(256 * mb, Demand(256 * mb, floor=1 * mb))
    assert budget.effective == 1 * mb
    stats = await _run(_api(), tmp_path, budget)
    assert stats.status is PairStatus.DONE
    assert budget.effective == 256 * mb


async def test_an_import_whose_pacer_holds_nothing_back_leaves_the_byte_budget_on_its_floor(
    tmp_path: Path,
) -> None:
    """The control of the test above: no pacer holds anything back (an unpaced job, as
    ``scale``'s thousand pairs), and the budget is never told a mailbox is paced: it stays on
    its floor (the items fit in it), as before."""
    from copyengine.pipeline.budget import Demand

    mb = 1 << 20
    budget = ByteBudget(256 * mb, Demand(256 * mb, floor=1 * mb))
    stats = await _run(_api(), tmp_path, budget)
    assert stats.status is PairStatus.DONE and stats.total("copied") == 27
    assert budget.effective == 1 * mb
