"""The Store contract: what every state store implementation must do, run on each of
``IMPLEMENTATIONS``: SQLite (one host) and PostgreSQL (several hosts; a real server, see
``tests/pg.py``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from copyengine.errors import ForeignState, JobLocked, StateError
from copyengine.state import (
    FolderRecord,
    Intent,
    ItemRecord,
    LostCopy,
    Outcome,
    SQLiteStore,
    Status,
    Store,
    SyncRecord,
)

pytestmark = pytest.mark.anyio
JOB = {"name": "", "source": "contoso/app1", "target": "fabrikam/app2"}
P = "a@contoso.example->a@fabrikam.example"

Factory = Callable[..., Store]


def sqlite_factory(tmp_path: Path) -> Factory:
    def make(identity: dict[str, str] = JOB, exclusive: bool = True) -> Store:
        return SQLiteStore(
            tmp_path / "state.sqlite", flush_interval=0.02, identity=identity, exclusive=exclusive
        )

    return make


def postgres_factory(url: str) -> Factory:
    from copyengine.state.postgres import PostgresStore

    def make(identity: dict[str, str] = JOB, exclusive: bool = True) -> Store:
        return PostgresStore(url, identity=identity, exclusive=exclusive, flush_interval=0.02)

    return make


IMPLEMENTATIONS = ("sqlite", "postgres")


@pytest.fixture(params=IMPLEMENTATIONS)
def make(request: Any, tmp_path: Path) -> Factory:
    if request.param == "postgres":
        return postgres_factory(request.getfixturevalue("pg_url"))
    return sqlite_factory(tmp_path)


def _intent(i: int, folder: str = "F1", key: bytes | None = b"k") -> Intent:
    return Intent(f"s{i}", folder, key + bytes([i]) if key else None, 100 + i, "T1", f"ck{i}")


async def _read_folder(make: Factory, folder: str) -> dict[str, ItemRecord]:
    """The folder's records as another process sees them (a reader beside the run)."""
    reader = make(exclusive=False)
    await reader.open()
    try:
        return await reader.items_in_folder(P, folder)
    finally:
        await reader.close()


async def test_pairs_are_recorded_with_their_status(make: Factory) -> None:
    async with make() as st:
        await st.pair_started(P, "a@contoso.example", "a@fabrikam.example")
        assert [(p["pair"], p["status"]) for p in await st.pairs()] == [(P, "running")]
        await st.pair_finished(P, "failed", "mailbox not found")
        (p,) = await st.pairs()
        assert p["status"] == "failed" and p["error"] == "mailbox not found" and p["finished"]
        await st.pair_started(P, "a@contoso.example", "a@fabrikam.example")
        (p,) = await st.pairs()
        assert p["status"] == "running" and p["error"] is None and p["finished"] is None


async def test_intents_are_durable_when_recorded(make: Factory) -> None:
    async with make() as st:
        await st.record_intents(P, [_intent(1), _intent(2)])
        recs = await _read_folder(make, "F1")
    assert {r.source_id: r.status for r in recs.values()} == {
        "s1": Status.INTENT,
        "s2": Status.INTENT,
    }
    assert recs["s1"].change_key == "ck1" and recs["s1"].search_key == b"k\x01"


async def test_intents_recorded_at_once_by_many_tasks_are_all_durable(make: Factory) -> None:
    """Exporters of many pairs record intents at the same time (the SQLite store commits
    them in groups): every one is durable when its call returns."""
    async with make() as st:
        durable: list[int] = []

        async def record(i: int) -> None:
            await st.record_intents(P, [_intent(i)])
            durable.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(1, 41):
                tg.start_soon(record, i)
        recs = await _read_folder(make, "F1")
    assert sorted(durable) == list(range(1, 41))
    assert {r.source_id for r in recs.values() if r.status is Status.INTENT} == {
        f"s{i}" for i in range(1, 41)
    }


async def test_outcomes_are_group_committed_and_flushed_on_close(make: Factory) -> None:
    async with make() as st:
        await st.record_intents(P, [_intent(1), _intent(2), _intent(3)])
        st.record_outcome(P, Outcome("s1", Status.DONE, "t1", "tck1"))
        for _ in range(500):  # the store's own group commit, within a few intervals
            if (await st.items_in_folder(P, "F1"))["s1"].status is Status.DONE:
                break
            await anyio.sleep(0.01)
        assert (await st.items_in_folder(P, "F1"))["s1"].status is Status.DONE
        st.record_outcome(P, Outcome("s2", Status.FAILED, error="corrupt", request_id="r1"))
        st.record_outcome(P, Outcome("s9", Status.DONE, "t9"))  # no intent: ignored
    async with make() as st:
        recs = await st.items_in_folder(P, "F1")
        assert recs["s1"].status is Status.DONE and recs["s1"].target_id == "t1"
        assert recs["s2"].status is Status.FAILED
        assert "s9" not in recs
        assert {r.source_id for r in await st.unsettled(P)} == {"s3"}
        assert await st.summary(P) == {"copied": 1, "failed": 1, "unknown": 1}


async def test_an_import_of_ours_settlement_found_is_copied_in_the_summary(
    make: Factory,
) -> None:
    """``summary`` (``status``'s pair lines, the report's totals) and ``pair_totals`` (the
    report's pairs) count an import whose answer was lost and which settlement found in the
    target as one thing, copied; the summary said "already present" for it."""
    async with make() as st:
        await st.pass_started("first")
        await st.record_intents(P, [_intent(1), _intent(2), _intent(3)])
        st.record_outcome(P, Outcome("s1", Status.UNKNOWN, error="response lost"))
        await st.flush()
        st.record_outcome(P, Outcome("s1", Status.ADOPTED, "t1"))  # found: ours
        st.record_outcome(P, Outcome("s2", Status.ADOPTED, "t2"))  # there before us
        st.record_outcome(P, Outcome("s3", Status.DONE, "t3", "c"))
        await st.flush()
        assert await st.summary(P) == {"copied": 2, "already present": 1}
        totals = (await st.pair_totals())[P]
        assert (totals["copied"], totals["already_present"]) == (2, 1)


async def test_an_intent_again_reopens_the_item(make: Factory) -> None:
    async with make() as st:
        await st.record_intents(P, [_intent(1)])
        st.record_outcome(P, Outcome("s1", Status.DONE, "t1"))
        await st.flush()
        await st.record_intents(P, [_intent(1)])
        rec = (await st.items_in_folder(P, "F1"))["s1"]
        assert rec.status is Status.INTENT and rec.target_id == "t1"


async def test_unknown_and_pending_items_are_unsettled_or_not_attempted(make: Factory) -> None:
    async with make() as st:
        await st.record_intents(P, [_intent(1), _intent(2), _intent(3, key=None)])
        st.record_outcome(P, Outcome("s1", Status.UNKNOWN, error="response lost"))
        st.record_outcome(P, Outcome("s2", Status.PENDING))
        await st.flush()
        assert {r.source_id for r in await st.unsettled(P)} == {"s1", "s3"}
        assert await st.summary(P) == {"unknown": 2, "not attempted": 1}
        assert (await st.items_in_folder(P, "F1"))["s3"].search_key is None


async def test_folders_and_their_delta_links(make: Factory) -> None:
    async with make() as st:
        await st.folder_mapped(P, "F1", "/Inbox", "T1", "<inbox>")
        await st.folder_mapped(P, "F2", "/Inbox/a\\/b", "T2", "<inbox>/a\\/b")
        await st.set_delta_links(P, [("F1", "https://graph/delta?token=1")])
        await st.folder_mapped(P, "F1", "/Inbox", "T1b", "<inbox>")  # remapped: link kept
        got = {f.source_folder_id: f for f in await st.folders(P)}
        assert got["F1"].target_folder_id == "T1b"
        assert got["F1"].delta_link == "https://graph/delta?token=1"
        assert got["F2"].delta_link is None and got["F2"].source_path == "/Inbox/a\\/b"
        await st.set_delta_links(P, [("F1", None)])
        assert {f.source_folder_id: f.delta_link for f in await st.folders(P)}["F1"] is None
        # a pass stores every folder's link at once; another pair's folders are untouched
        await st.folder_mapped("other", "F1", "/Inbox", "T9", "<inbox>")
        await st.set_delta_links(P, [("F1", "https://graph/delta?token=2"), ("F2", "t3")])
        assert {f.source_folder_id: f.delta_link for f in await st.folders(P)} == {
            "F1": "https://graph/delta?token=2",
            "F2": "t3",
        }
        assert [f.delta_link for f in await st.folders("other")] == [None]
        await st.set_delta_links(P, [])


async def test_a_pairs_folder_mappings_written_at_once(make: Factory) -> None:
    """``map_folders``: every mapping of a pair's setup in one transaction, a stored link
    kept unless the folder is named in ``unlinked``; the same rows as ``folder_mapped``."""
    async with make() as st:
        await st.folder_mapped(P, "F1", "/Inbox", "T1", "<inbox>")
        await st.folder_mapped(P, "F2", "/Sent", "T2", "<sent>")
        await st.set_delta_links(P, [("F1", "link1"), ("F2", "link2")])
        await st.map_folders(
            P,
            [
                FolderRecord("F1", "/Inbox", "T1b", "<inbox>", "ignored"),
                FolderRecord("F2", "/Sent", "T2", "<sent>"),
                FolderRecord("A3", "/Old", "TA3", "/Old", scope="archive"),
            ],
            unlinked=["F2"],
        )
        got = {f.source_folder_id: f for f in await st.folders(P)}
        assert got["F1"] == FolderRecord("F1", "/Inbox", "T1b", "<inbox>", "link1")
        assert got["F2"] == FolderRecord("F2", "/Sent", "T2", "<sent>", None)
        assert got["A3"] == FolderRecord("A3", "/Old", "TA3", "/Old", None, "archive")
        await st.map_folders(P, [FolderRecord("F4", "/New", "T4", "/New")])  # one alone
        await st.map_folders(P, [], unlinked=["F1"])
        await st.map_folders(P, [])
        got = {f.source_folder_id: f for f in await st.folders(P)}
        assert got["F1"].delta_link is None and got["F4"].target_folder_id == "T4"
        # a record forgotten in the same transaction as a mapping (a creation's journal)
        await st.map_folders(P, [FolderRecord("J5", "/J", "", "/J")])
        await st.map_folders(P, [FolderRecord("F5", "/Five", "T5", "/Five")], forgotten=["J5"])
        got = {f.source_folder_id: f for f in await st.folders(P)}
        assert "J5" not in got and got["F5"].target_folder_id == "T5"
        await st.map_folders(P, [], forgotten=["F5"])
        assert "F5" not in {f.source_folder_id for f in await st.folders(P)}
    async with make() as st:  # durable: another open of the store sees them all
        assert sorted(f.source_folder_id for f in await st.folders(P)) == [
            "A3",
            "F1",
            "F2",
            "F4",
        ]


async def test_a_pairs_records_read_at_once_by_folder(make: Factory) -> None:
    """``items_in_folders``: the records of several folders in one read, grouped by folder
    (the same records ``items_in_folder`` gives each); None past ``at_most``."""
    async with make() as st:
        await st.record_intents(P, [_intent(i, folder=f"F{i % 3}") for i in range(9)])
        await st.record_intents("other", [_intent(1, folder="F1")])
        st.record_outcome(P, Outcome("s1", Status.DONE, "t1"))
        await st.flush()
        got = await st.items_in_folders(P, ["F0", "F1", "F2", "F9", "F1"])
        assert got is not None and sorted(got) == ["F0", "F1", "F2"]
        for folder in ("F0", "F1", "F2"):
            assert got[folder] == await st.items_in_folder(P, folder)
        assert got["F1"]["s1"].target_id == "t1" and len(got["F1"]) == 3
        assert await st.items_in_folders(P, ["F0", "F1"], at_most=6) is not None
        assert await st.items_in_folders(P, ["F0", "F1"], at_most=5) is None
        assert await st.items_in_folders(P, []) == {}
        many = [f"X{k}" for k in range(1200)] + ["F2"]  # more than one statement's worth
        wide = await st.items_in_folders(P, many, at_most=3)
        assert wide is not None and list(wide) == ["F2"] and len(wide["F2"]) == 3


async def test_folders_belong_to_a_mailbox_of_the_pair_and_can_be_forgotten(
    make: Factory,
) -> None:
    async with make() as st:
        await st.folder_mapped(P, "F1", "/Inbox", "T1", "<inbox>")
        await st.folder_mapped(P, "A1", "/Inbox", "TA1", "<inbox>", "archive")
        assert {f.source_folder_id: f.scope for f in await st.folders(P)} == {
            "F1": "primary",
            "A1": "archive",
        }
        await st.forget_folder(P, "A1")
        assert [f.source_folder_id for f in await st.folders(P)] == ["F1"]


async def test_a_folder_creations_journal_is_kept_and_forgotten_as_folders_are(
    make: Factory,
) -> None:
    """``passes.MailboxPass._intents``: a creation's journal is a folder record whose id is
    ``making:`` and its place (the root's parent ``""``, a display path with ``/`` escaped
    and any letters, per mailbox of the pair), written at once, read back as ``making``
    (never as a folder of the pair's), and forgotten one by one; durable between opens."""
    from copyengine.pipeline.passes import making_id

    root = making_id("primary", "", "Fr\\/esh/Süb")
    under = making_id("primary", "T1", "Ünïcode ✓")
    arch = making_id("archive", "", "Fr\\/esh/Süb")
    assert len({root, under, arch}) == 3
    async with make() as st:
        await st.folder_mapped(P, "F1", "/Inbox", "T1", "<inbox>")
        await st.map_folders(
            P,
            [
                FolderRecord(root, "/Inbox/Fresh", "", "Fr\\/esh/Süb", None, "primary"),
                FolderRecord(under, "", "T1", "Ünïcode ✓", None, "primary"),
                FolderRecord(arch, "/Inbox/Fresh", "", "Fr\\/esh/Süb", None, "archive"),
            ],
        )
    async with make() as st:
        got = {f.source_folder_id: f for f in await st.folders(P)}
        assert {k for k, f in got.items() if f.making} == {root, under, arch}
        assert not got["F1"].making and not got["F1"].retired
        assert got[root] == FolderRecord(root, "/Inbox/Fresh", "", "Fr\\/esh/Süb")
        assert got[arch].scope == "archive" and got[under].target_folder_id == "T1"
        for rid in (root, under):
            await st.forget_folder(P, rid)
        assert sorted(f.source_folder_id for f in await st.folders(P)) == sorted(["F1", arch])
        await st.forget_folder(P, root)  # forgotten twice: nothing
        await st.forget_folder(P, arch)
        assert [f.source_folder_id for f in await st.folders(P)] == ["F1"]


async def test_sync_state_per_pair_and_mailbox(make: Factory) -> None:
    async with make() as st:
        assert await st.sync_state(P, "primary") is None
        await st.set_sync_state(P, "primary", SyncRecord("/folders/delta?t=1", "fp1"))
        await st.set_sync_state(P, "archive", SyncRecord(None, "fp1"))
        await st.set_sync_state(P, "primary", SyncRecord("/folders/delta?t=2", "fp2"))
        assert await st.sync_state(P, "primary") == SyncRecord("/folders/delta?t=2", "fp2")
        assert await st.sync_state(P, "archive") == SyncRecord(None, "fp1")
        await st.set_sync_state(P, "archive", None)
        assert await st.sync_state(P, "archive") is None
        # a pass's links and its mailbox's folder link, in one transaction
        await st.folder_mapped(P, "F1", "/Inbox", "T1", "<inbox>")
        await st.set_delta_links(P, [("F1", "l1")], ("archive", SyncRecord("/f?t=3", "fp3")))
        assert await st.sync_state(P, "archive") == SyncRecord("/f?t=3", "fp3")
        assert [f.delta_link for f in await st.folders(P)] == ["l1"]
        await st.set_delta_links(P, [], ("primary", SyncRecord(None, "fp4")))
        assert await st.sync_state(P, "primary") == SyncRecord(None, "fp4")


async def test_passes_are_numbered_and_record_their_changes(make: Factory) -> None:
    async with make() as st:
        first = await st.pass_started("first")
        await st.pass_finished(first, "ok", {"created": 3})
        second = await st.pass_started("delta")
        assert second == first + 1
        got = await st.passes()
        assert [(p["pass"], p["kind"], p["status"]) for p in got] == [
            (first, "first", "ok"),
            (second, "delta", "running"),
        ]
        assert got[0]["changes"] == {"created": 3} and got[0]["finished"] is not None
        assert got[1]["finished"] is None


async def test_the_sqlite_store_needs_no_sqlite_3_35(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RETURNING came with SQLite 3.35; Ubuntu 20.04 ships 3.31, RHEL 8 3.26 (found by the
    review of issue 23: the shared statements had made the SQLite store use it)."""
    seen: list[str] = []
    real = sqlite3.connect

    def traced(*a: Any, **k: Any) -> sqlite3.Connection:
        db: sqlite3.Connection = real(*a, **k)
        db.set_trace_callback(seen.append)
        return db

    monkeypatch.setattr(sqlite3, "connect", traced)
    async with SQLiteStore(tmp_path / "state.sqlite") as st:
        first = await st.pass_started("first")
        await st.record_intents(P, [_intent(i) for i in range(1, 4)])
        st.record_outcome(P, Outcome("s1", Status.DONE, "t1", "c"))
        await st.flush()
        await st.pass_finished(first, "ok", {"created": 1})
        assert await st.pass_started("delta") == first + 1
        await st.passes()
    assert seen and not [q for q in seen if "RETURNING" in q.upper()]


async def test_a_pass_s_counters_come_from_its_item_records(make: Factory) -> None:
    """Each item write is stamped with the pass and what it did to the target (issue 22,
    defect 9): the counters include what a writer that died before saying anything did."""
    async with make() as dead:  # a segment killed with -9: intents, some outcomes, no end
        first = await dead.pass_started("first")
        await dead.record_intents(P, [_intent(i) for i in range(1, 7)])
        dead.record_outcome(P, Outcome("s1", Status.DONE, "t1", "c"))  # committed, then killed
        dead.record_outcome(P, Outcome("s6", Status.UNKNOWN, error="reset"))
        await dead.flush()
        # s2..s5 stay INTENT: s2 and s3 landed, s4 did not, s5 was never sent
    fresh = make()
    fresh.pass_number = first  # the next segment of the same pass (another writer)
    async with fresh as st:
        # found by search key while listing (s2) or by settlement (s3): ours, created
        await st.record_intents(P, [_intent(2)])
        st.record_outcome(P, Outcome("s2", Status.ADOPTED, "t2"))
        st.record_outcome(P, Outcome("s3", Status.ADOPTED, "t3"))
        st.record_outcome(P, Outcome("s6", Status.ADOPTED, "t6"))  # its import had gone out
        await st.record_intents(P, [_intent(4)])
        st.record_outcome(P, Outcome("s4", Status.DONE, "t4", "c"))
        st.record_outcome(P, Outcome("s5", Status.FAILED, error="refused"))
        # already in the target, never ours (no record before this writer's own intent)
        await st.record_intents(P, [_intent(7)])
        st.record_outcome(P, Outcome("s7", Status.ADOPTED, "t7"))
        # an import whose answer was lost, then found by settlement, in one flush
        await st.record_intents(P, [_intent(8)])
        st.record_outcome(P, Outcome("s8", Status.UNKNOWN, error="timeout"))
        st.record_outcome(P, Outcome("s8", Status.ADOPTED, "t8"))
        got = await st.pass_counts(first)
        assert got == {
            "created": 6,  # s1, s2, s3, s4, s6, s8
            "updated": 0,
            "failed": 1,
            "unknown": 0,
            "kept": 0,
            "not_attempted": 0,
        }, got
        assert (await st.pass_counts(first, [P]))["created"] == 6
        assert (await st.pass_counts(first, ["other"]))["created"] == 0
        await st.pass_finished(first, "ok", got)
        # the next pass: an update in place, a new item, a removal, one left unknown
        second = await st.pass_started("delta")
        await st.record_intents(P, [_intent(1), _intent(9), _intent(5)])
        st.record_outcome(P, Outcome("s1", Status.DONE, "t1", "c2"))  # same target copy
        st.record_outcome(P, Outcome("s9", Status.DONE, "t9", "c"))
        st.record_outcome(P, Outcome("s2", Status.REMOVED))
        got2 = await st.pass_counts(second)
        assert got2 == {
            "created": 1,
            "updated": 1,
            "failed": 0,
            "unknown": 1,  # s5: intent, no outcome
            "kept": 1,
            "not_attempted": 0,
        }, got2
        assert (await st.pass_counts(first))["created"] == 4  # s1, s2 are pass 2's now


async def test_a_pair_s_totals_span_every_pass_and_list_its_items(make: Factory) -> None:
    """The customer's report across passes (issue 24): what every pass copied, counted from
    the records (an item that failed in one pass and was copied in the next is copied, not
    failed); the items that failed or wait to be settled, with their folder and size."""
    from copyengine.state.overview import migration

    async with make() as st:
        await st.pair_started(P, "a@contoso.example", "a@fabrikam.example")
        await st.folder_mapped(P, "F1", "/Inbox", "T1", "/Inbox")
        await st.folder_mapped(P, "F2", "/Projects", "T2", "/Projects", scope="archive")
        first = await st.pass_started("first")
        await st.record_intents(P, [*(_intent(i) for i in range(1, 6)), _intent(6, "F2")])
        st.record_outcome(P, Outcome("s1", Status.DONE, "t1", "c"))
        st.record_outcome(P, Outcome("s2", Status.DONE, "t2", "c"))
        st.record_outcome(P, Outcome("s3", Status.ADOPTED, "t3"))  # there before us
        st.record_outcome(P, Outcome("s4", Status.FAILED, error="refused"))
        st.record_outcome(P, Outcome("s6", Status.FAILED, error="too large for the target"))
        # s5: its intent, no outcome (unknown: the next pass settles it)
        await st.pass_finished(first, "items_failed", await st.pass_counts(first))
        second = await st.pass_started("cutover")
        await st.record_intents(P, [_intent(4), _intent(7)])
        st.record_outcome(P, Outcome("s4", Status.DONE, "t4", "c"))  # failed, then copied
        st.record_outcome(P, Outcome("s7", Status.DONE, "t7", "c"))
        st.record_outcome(P, Outcome("s1", Status.REMOVED))  # left the source, copy kept
        st.record_outcome(P, Outcome("s2", Status.DONE, "t2", "c2"))  # updated in place
        totals = (await st.pair_totals())[P]
        assert totals == {
            "copied": 3,  # s2, s4, s7
            "current": 4,  # and s3
            "already_present": 1,
            "failed": 1,  # s6
            "unknown": 1,  # s5
            "not_attempted": 0,
            "kept": 1,  # s1
        }, totals
        assert list(await st.pair_totals()) == [P]
        await st.pass_finished(second, "ok", await st.pass_counts(second))
        got = await migration(st)
    (pair,) = got["pairs"]
    assert (pair["pair"], pair["status"], pair["copied"], pair["selected"]) == (P, "running", 3, 6)
    assert sorted((i["outcome"], i["folder"], i["size"], i["reason"]) for i in pair["items"]) == [
        ("failed", "(archive) /Projects", 106, "too large for the target"),
        ("unknown", "/Inbox", 105, ""),
    ]
    assert [(p["pass"], p["kind"], p["status"]) for p in got["passes"]] == [
        (first, "first", "items_failed"),
        (second, "cutover", "ok"),
    ]
    assert str(got["passes"][0]["started"]).endswith("Z")


async def test_records_carry_what_a_later_pass_needs_and_can_be_forgotten(
    make: Factory,
) -> None:
    async with make() as st:
        await st.record_intents(P, [_intent(1), _intent(2)])
        st.record_outcome(P, Outcome("s1", Status.DONE, "t1", "tck1"))
        st.record_outcome(P, Outcome("s2", Status.FAILED, error="refused"))
        await st.flush()
        recs = await st.items_in_folder(P, "F1")
        r1, r2 = recs["s1"], recs["s2"]
        assert (r1.target_id, r1.target_change_key, r1.change_key, r1.size) == (
            "t1",
            "tck1",
            "ck1",
            101,
        )
        assert r2.error == "refused"
        # an update's intent keeps the target item it updates
        await st.record_intents(P, [Intent("s1", "F1", b"k\x01", 101, "T1", "ck1b")])
        assert (await st.items_in_folder(P, "F1"))["s1"].target_id == "t1"
        st.record_outcome(P, Outcome("s1", Status.REMOVED))
        await st.flush()
        assert (await st.items_in_folder(P, "F1"))["s1"].status is Status.REMOVED
        assert (await st.summary(P))["deleted at source (kept)"] == 1
        await st.forget_items(P, ["s1", "s2"])
        assert await st.items_in_folder(P, "F1") == {}


async def test_a_kept_record_moves_to_a_new_id_in_one_durable_write(make: Factory) -> None:
    # ``passes._moved_left_out``: a kept copy's record follows its item, moved at the source
    # (a new id, another folder), whole: status, copy, change keys, moments; durable at once
    # (a reader beside the run sees it); never onto an id that has a record, nor another
    # pair's
    async with make() as st:
        await st.record_intents(P, [Intent("s1", "F1", b"k1", 101, "T1", "ck1", seen=7)])
        await st.record_intents(P, [_intent(2), _intent(3)])
        await st.record_intents("other", [_intent(1)])
        st.record_outcome(P, Outcome("s1", Status.REMOVED, "t1", "tck1", known=9))
        await st.move_record(P, "s1", "n1", "F2")  # (the outcome buffered: written first)
        assert await _read_folder(make, "F1") == {
            k: v for k, v in (await st.items_in_folder(P, "F1")).items() if k != "s1"
        }
        n1 = (await _read_folder(make, "F2"))["n1"]
        assert (n1.status, n1.target_id, n1.target_change_key) == (Status.REMOVED, "t1", "tck1")
        assert (n1.search_key, n1.change_key, n1.size, n1.target_folder_id) == (
            b"k1",
            "ck1",
            101,
            "T1",
        )
        assert (n1.seen, n1.known) == (7, 9)
        assert [r.source_id for r in await st.items_by_keys(P, [b"k1"])] == ["n1"]
        await st.move_record(P, "s2", "s3", "F1")  # s3 has a record: nothing written
        assert set(await st.items_in_folder(P, "F1")) == {"s2", "s3"}
        assert (await st.items_in_folder("other", "F1"))["s1"].source_id == "s1"


async def test_a_record_detached_is_a_create_intent_with_no_copy(make: Factory) -> None:
    # ``pipeline.rehome`` before it makes an item's copy again where it lives: the record
    # becomes an unsettled create (settled by search key next pass if the answer is lost),
    # durable at once (a reader beside the run sees it), its other records untouched
    async with make() as st:
        await st.record_intents(P, [_intent(1), _intent(2)])
        await st.record_intents("other", [_intent(1)])
        st.record_outcome(P, Outcome("s2", Status.DONE, "t2", "tck2"))
        st.record_outcome("other", Outcome("s1", Status.DONE, "o1", "ock1"))
        st.record_outcome(P, Outcome("s1", Status.DONE, "t1", "tck1"))  # buffered: first
        await st.detach_items(P, ["s1"])
        await st.detach_items(P, [])
        seen = await _read_folder(make, "F1")
        s1, s2 = seen["s1"], seen["s2"]
        assert (s1.status, s1.target_id, s1.target_change_key) == (Status.INTENT, None, None)
        assert (s1.target_folder_id, s1.search_key, s1.change_key) == ("T1", b"k\x01", "ck1")
        assert (s2.status, s2.target_id) == (Status.DONE, "t2")
        assert [r.source_id for r in await st.unsettled(P)] == ["s1"]
        assert (await st.items_in_folder("other", "F1"))["s1"].target_id == "o1"
        # settled by search key as it left the source, then kept: its copy recorded
        st.record_outcome(P, Outcome("s1", Status.REMOVED, "t1b"))
        await st.flush()
        s1 = (await st.items_in_folder(P, "F1"))["s1"]
        assert (s1.status, s1.target_id) == (Status.REMOVED, "t1b")
        # detached at the version exported for the copy made again: the record's from then
        # on (the other detached keeps its own)
        await st.record_intents(P, [_intent(3)])
        await st.detach_items(P, ["s2", "s3"], {"s2": "ck2b"})
        seen = await _read_folder(make, "F1")
        assert (seen["s2"].status, seen["s2"].target_id) == (Status.INTENT, None)
        assert (seen["s2"].change_key, seen["s3"].change_key) == ("ck2b", "ck3")


async def test_records_are_found_by_search_key_and_by_status_across_folders(
    make: Factory,
) -> None:
    async with make() as st:
        # the same item in two folders (a move: new source id, same search key)
        await st.record_intents(P, [_intent(1), _intent(2), _intent(3, folder="F2")])
        await st.record_intents(P, [Intent("s9", "F2", b"k\x01", 101, "T2", "ck1")])
        await st.record_intents("other", [Intent("x1", "F1", b"k\x01", 1, "T1", "c")])
        st.record_outcome(P, Outcome("s1", Status.REMOVED))
        st.record_outcome(P, Outcome("s9", Status.DONE, "t9", "tck9"))
        await st.flush()
        found = await st.items_by_keys(P, [b"k\x01", b"k\x03", b"nope"] + [b"k\x01"] * 600)
        assert sorted(r.source_id for r in found) == ["s1", "s3", "s9"]  # this pair's only
        assert await st.items_by_keys(P, []) == []
        kept = await st.items_with_status(P, Status.REMOVED)
        assert [(r.source_id, r.folder_id) for r in kept] == [("s1", "F1")]
        many = [b"zz" + i.to_bytes(2, "big") for i in range(1_200)]  # more than one query
        assert await st.items_by_keys(P, many) == []


async def test_kept_copies_beside_a_settled_copy_of_their_key_are_found(make: Factory) -> None:
    """``kept_beside_live`` (every pass): the keys of kept copies (REMOVED, with a copy) that
    another record of the key names as settled; not a kept copy alone, nor one whose key's
    other record is unsettled, nor another pair's. Read through the partial index of kept
    rows on SQLite, whose literal is ``Status.REMOVED``."""
    async with make() as st:
        keys = {"s1": b"k1", "s2": b"k2", "s3": b"k3", "s4": b"k1", "s5": b"k2"}
        intents = [Intent(sid, "F1", k, 1, "T1") for sid, k in keys.items()]
        await st.record_intents(P, intents)
        await st.record_intents("other", [Intent("x3", "F1", b"k3", 1, "T1")])
        for sid in ("s1", "s2", "s3"):
            st.record_outcome(P, Outcome(sid, Status.DONE, "t" + sid))
        await st.flush()
        for sid in ("s1", "s2", "s3"):  # deleted at the source, the copy kept
            st.record_outcome(P, Outcome(sid, Status.REMOVED, "t" + sid))
        st.record_outcome(P, Outcome("s4", Status.DONE, "t4"))  # k1 back, settled
        st.record_outcome(P, Outcome("s5", Status.UNKNOWN, error="lost"))  # k2: not settled
        st.record_outcome("other", Outcome("x3", Status.DONE, "tx3"))  # k3: another pair's
        await st.flush()
        assert await st.kept_beside_live(P) == [b"k1"]
        assert await st.kept_beside_live("other") == []
    assert int(Status.REMOVED) == 8  # the partial indexes' literal (sqlite.py, postgres.py)
    if isinstance(st, SQLiteStore):
        db = sqlite3.connect(st.path)
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT search_key FROM items WHERE pair = ? AND status = 8",
            (P,),
        ).fetchall()
        db.close()
        assert any("items_kept" in str(row) for row in plan), plan


async def test_lost_copies_are_noted_found_by_search_key_and_forgotten(make: Factory) -> None:
    # an update that met its copy gone made a new one: the old copy (moved by the target's
    # user?) is noted by search key, for a full pass to find once the item's record is gone
    # (``spares._orphaned``; hunt2: an orphaned moved copy signed off complete)
    async with make() as st:
        a, b = LostCopy(b"k\x01", "t1", "T1", "s1"), LostCopy(b"k\x01", "t1b", None, "s1")
        await st.note_lost_copies(P, [a, b, a])  # a copy noted twice: once
        await st.note_lost_copies(P, [LostCopy(b"k\x02", "t2", "T2", "s2")])
        await st.note_lost_copies("other", [LostCopy(b"k\x01", "x1", "T1", "x")])
        await st.note_lost_copies(P, [])
        got = await st.lost_copies(P, [b"k\x01", b"nope"] + [b"k\x01"] * 600)
        assert sorted(got, key=lambda n: n.target_id) == [a, b]  # this pair's only
        assert await st.lost_copies(P, []) == []
        await st.forget_lost_copies(P, [b"k\x01"])
        assert await st.lost_copies(P, [b"k\x01"]) == []
        assert [n.target_id for n in await st.lost_copies(P, [b"k\x02"])] == ["t2"]
        assert [n.target_id for n in await st.lost_copies("other", [b"k\x01"])] == ["x1"]
    async with make() as st:  # durable, and the table made again on open is the same one
        assert [n.target_id for n in await st.lost_copies(P, [b"k\x02"])] == ["t2"]


async def test_settled_records_of_folders_no_longer_mapped_are_found(make: Factory) -> None:
    # a mirrored deletion whose copy was not where it was recorded keeps its record for the
    # next full pass, also once its folder is forgotten (``spares.forget_unmapped``)
    async with make() as st:
        await st.map_folders(P, [FolderRecord("F1", "/Inbox", "T1", "/Inbox")])
        await st.map_folders("other", [FolderRecord("F2", "/Gone", "T2", "/Gone")])
        await st.record_intents(P, [_intent(1), _intent(2, folder="F2"), _intent(3, folder="F2")])
        await st.record_intents(P, [_intent(4, folder="F2"), _intent(5, folder="F2")])
        st.record_outcome(P, Outcome("s1", Status.DONE, "t1", "c1"))  # its folder mapped
        st.record_outcome(P, Outcome("s2", Status.DONE, "t2", "c2"))
        st.record_outcome(P, Outcome("s3", Status.ADOPTED, "t3", "c3"))
        st.record_outcome(P, Outcome("s4", Status.REMOVED))  # kept: not settled
        await st.flush()  # s5: an intent, not settled
        got = await st.items_unmapped(P)  # F2 is mapped only in another pair
        assert sorted(r.source_id for r in got) == ["s2", "s3"]
        await st.forget_items(P, [r.source_id for r in got])
        assert await st.items_unmapped(P) == []
        assert await st.items_unmapped("other") == []


async def test_a_flush_that_finds_nothing_waits_for_the_one_under_way(make: Factory) -> None:
    # a pass reads outcomes back right after flushing (to decide moves): what it reads must
    # include every outcome recorded before, even when a periodic flush took them first
    async with make() as st:
        await st.record_intents(P, [_intent(i) for i in range(1, 40)])
        for i in range(1, 40):
            st.record_outcome(P, Outcome(f"s{i}", Status.DONE, f"t{i}", f"tck{i}"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(st.flush)
            await anyio.lowlevel.checkpoint()  # the first flush has taken the whole batch
            await st.flush()  # nothing left to write: it waits for that one
            recs = await st.items_in_folder(P, "F1")
            assert all(r.status is Status.DONE for r in recs.values()) and len(recs) == 39


async def test_one_run_at_a_time(make: Factory) -> None:
    async with make():
        with pytest.raises(JobLocked, match="another run of this job is in progress"):
            async with make():
                pass
        reader = make(exclusive=False)  # status may read while a run holds the lock
        await reader.open()
        await reader.close()
    async with make():
        pass  # released


async def test_another_jobs_state_is_refused(make: Factory) -> None:
    async with make():
        pass
    with pytest.raises(ForeignState, match="belongs to another job"):
        async with make(identity={**JOB, "target": "northwind/app3"}):
            pass


async def test_a_state_without_a_job_name_is_taken_by_its_job_then_kept_apart(
    make: Factory,
) -> None:
    """A state recorded before the job file's name was part of the identity (name "") is
    taken by the first job with its tenants and apps that runs on it; then a job of another
    name is refused, told both names and how to take it over."""
    async with make():  # JOB: no name, as an earlier version recorded it
        pass
    wave1, wave2 = {**JOB, "name": "wave1"}, {**JOB, "name": "wave2"}
    async with make(identity=wave1):
        pass
    with pytest.raises(ForeignState) as refused:
        async with make(identity=wave2):
            pass
    said = str(refused.value)
    assert "'wave1'" in said and "'wave2'" in said and '[job] name = "wave1"' in said
    with pytest.raises(ForeignState):  # the unnamed job is another job now too
        async with make():
            pass
    async with make(identity=wave1):
        pass


def _old_state(tmp_path: Path, script: str) -> Path:
    """A state file as an earlier engine left it."""
    path = tmp_path / "state.sqlite"
    db = sqlite3.connect(path)
    db.executescript(script)
    db.commit()
    db.close()
    return path


def test_sqlite_schema_1_is_migrated(tmp_path: Path) -> None:
    path = _old_state(
        tmp_path,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '1');
        CREATE TABLE items (
            pair TEXT NOT NULL, source_id TEXT NOT NULL, folder_id TEXT NOT NULL,
            search_key BLOB, size INTEGER NOT NULL, target_folder_id TEXT,
            status INTEGER NOT NULL, target_id TEXT, target_change_key TEXT,
            attempts INTEGER NOT NULL DEFAULT 0, error TEXT, request_id TEXT,
            updated REAL NOT NULL, PRIMARY KEY (pair, source_id)) WITHOUT ROWID;
        INSERT INTO items VALUES ('p','s1','F1',NULL,1,'T1',2,'t1',NULL,1,NULL,NULL,0);
        """,
    )

    async def check() -> None:
        async with SQLiteStore(path, identity=JOB) as st:
            rec = (await st.items_in_folder("p", "F1"))["s1"]
            assert rec.status is Status.DONE and rec.change_key is None

    anyio.run(check)


def test_sqlite_schema_2_is_migrated(tmp_path: Path) -> None:
    path = _old_state(
        tmp_path,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '2');
        CREATE TABLE folders (
            pair TEXT NOT NULL, source_folder_id TEXT NOT NULL, source_path TEXT NOT NULL,
            target_folder_id TEXT NOT NULL, target_path TEXT NOT NULL, delta_link TEXT,
            PRIMARY KEY (pair, source_folder_id)) WITHOUT ROWID;
        INSERT INTO folders VALUES ('p','F1','/Inbox','T1','<inbox>',NULL);
        """,
    )

    async def check() -> None:
        async with SQLiteStore(path, identity=JOB) as st:
            (f,) = await st.folders("p")
            assert f.scope == "primary" and f.target_folder_id == "T1"
            assert await st.passes() == []

    anyio.run(check)


def test_sqlite_schema_3_is_migrated_to_a_rowid_table(tmp_path: Path) -> None:
    """Schema 3 kept items WITHOUT ROWID with a status index; 4 rebuilds the table, keeps
    every row and column, and the upsert on (pair, source_id) still works."""
    path = _old_state(
        tmp_path,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '3');
        CREATE TABLE items (
            pair TEXT NOT NULL, source_id TEXT NOT NULL, folder_id TEXT NOT NULL,
            search_key BLOB, size INTEGER NOT NULL, target_folder_id TEXT,
            status INTEGER NOT NULL, target_id TEXT, target_change_key TEXT,
            attempts INTEGER NOT NULL DEFAULT 0, error TEXT, request_id TEXT,
            updated REAL NOT NULL, source_change_key TEXT,
            PRIMARY KEY (pair, source_id)) WITHOUT ROWID;
        CREATE INDEX items_by_folder ON items (pair, folder_id);
        CREATE INDEX items_by_status ON items (pair, status);
        INSERT INTO items VALUES ('p','s1','F1',x'0a0b',7,'T1',2,'t1','ck1',1,NULL,'r1',5,'sck1');
        INSERT INTO items VALUES ('p','s2','F1',NULL,9,'T1',1,NULL,NULL,1,NULL,NULL,6,NULL);
        """,
    )

    async def check() -> None:
        async with SQLiteStore(path, identity=JOB) as st:
            recs = await st.items_in_folder("p", "F1")
            assert recs["s1"].status is Status.DONE and recs["s1"].target_id == "t1"
            assert recs["s1"].search_key == b"\n\x0b" and recs["s1"].change_key == "sck1"
            assert [r.source_id for r in await st.unsettled("p")] == ["s2"]
            await st.record_intents("p", [Intent("s1", "F1", b"k", 7, "T1", "ck2")])
            assert (await st.items_in_folder("p", "F1"))["s1"].status is Status.INTENT

    anyio.run(check)
    db = sqlite3.connect(path)
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name='items'").fetchone()[0]
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "WITHOUT ROWID" not in sql and "items_by_status" not in names
    assert "items_by_folder" in names and "items_v3" not in names
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("9",)
    assert db.execute("SELECT attempts FROM items WHERE source_id='s1'").fetchone() == (2,)
    # schema 5: each item's pass, fate and writer (a pass's counters from the records)
    cols = {r[1] for r in db.execute("PRAGMA table_info(items)")}
    assert {"pass", "fate", "writer"} <= cols
    db.close()


def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = _old_state(
        tmp_path,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '3');
        CREATE TABLE items (pair TEXT, source_id TEXT, PRIMARY KEY (pair, source_id));
        INSERT INTO items VALUES ('p', 's1');
        """,
    )

    async def check() -> None:
        async with SQLiteStore(path, identity=JOB):
            pass

    with pytest.raises(StateError, match="cannot open state store"):
        anyio.run(check)
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("3",)
    assert db.execute("SELECT pair, source_id FROM items").fetchall() == [("p", "s1")]
    db.close()


async def test_controls_are_written_and_read_beside_a_run_holding_the_lock(
    make: Factory,
) -> None:
    """``suspend`` / ``resume`` write the controls without the job's lock while a run holds
    it (and reads them every second); each command gets the next order, and ``replace_all``
    (``--all``) forgets the earlier ones in the same transaction."""
    from copyengine.state.records import Control

    async with make() as run:
        assert await run.controls() == []
        other = make(exclusive=False)
        await other.open()
        try:
            await other.set_control(Control("wave", "1", "suspended", "op@h", 10.0, "why", 0))
            await other.set_control(Control("pair", P, "resumed", "op@h", 11.0, None, 0))
            # the same scope again: updated in place, ordered last
            await other.set_control(Control("wave", "1", "suspended", "ed@h", 12.0, None, 0))
        finally:
            await other.close()
        seen = await run.controls()
        assert [(c.scope, c.target, c.who, c.seq) for c in seen] == [
            ("pair", P, "op@h", 2),
            ("wave", "1", "ed@h", 3),
        ]
        assert seen[0].state == "resumed" and seen[1].reason is None and seen[1].since == 12.0
        await run.set_control(Control("all", "", "suspended", "op@h", 13.0, "x", 0), True)
        assert [(c.scope, c.seq, c.reason) for c in await run.controls()] == [("all", 1, "x")]


async def test_a_pairs_hints_are_kept_with_its_statistics_and_read_for_the_job(
    make: Factory,
) -> None:
    """The pacer's advice on ``[limits]`` (issue 26) is stored with a pair's row of a pass
    and read back for the whole job: each pair's latest pass that said; rows without it
    (an engine before) say nothing either way."""
    from copyengine.state.pairpasses import PairPass

    up = {"mailbox": "b@f", "limit": "upload", "share": 0.1, "value": 15.0, "window": 0.0}
    req = {"mailbox": "b@f", "limit": "requests", "share": 0.2, "value": 2000.0}
    async with make() as st:
        assert await st.pair_hints() == {}
        await st.record_pair_pass(PairPass(1, P, "r1", "first", "done", 1.0, hints=(up,)))
        await st.record_pair_pass(PairPass(1, "q", "r1", "first", "done", 1.0, hints=()))
        await st.record_pair_pass(PairPass(1, "old", "r0", "first", "done", 1.0))
        assert await st.pair_hints() == {P: [up]}
        (row,) = await st.pair_passes(P)
        assert row.hints == (up,)
        # the next pass, in two segments: both segments' advice, the first pass's no more
        await st.record_pair_pass(PairPass(2, P, "r2", "delta", "done", 2.0, hints=(req,)))
        await st.record_pair_pass(PairPass(2, P, "r3", "delta", "done", 3.0, hints=(req, up)))
        assert await st.pair_hints() == {P: [req, up]}
        await st.record_pair_pass(PairPass(3, P, "r4", "delta", "done", 4.0, hints=()))
        assert await st.pair_hints() == {}


async def test_a_schema_4_database_gets_the_controls_in_place(pg_url: str) -> None:
    """A database an earlier engine made (schema 4, no ``ce_controls``): opened, even
    without the job's lock (``copyengine suspend`` beside workers), it gains the table and
    says this engine's schema; its records stay."""
    import psycopg

    from copyengine.state.postgres import SCHEMA_VERSION

    make = postgres_factory(pg_url)
    async with make() as st:
        await st.pair_started(P, "a@contoso.example", "a@fabrikam.example")
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute("DROP TABLE ce_controls")
        await conn.execute("UPDATE ce_meta SET value = '4' WHERE key = 'schema'")
    reader = make(exclusive=False)
    await reader.open()
    try:
        assert await reader.controls() == []
        assert [p["pair"] for p in await reader.pairs()] == [P]
    finally:
        await reader.close()
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT value FROM ce_meta WHERE key = 'schema'")
        assert await cur.fetchone() == (SCHEMA_VERSION,)


async def test_the_moments_that_tell_two_items_apart_are_kept(make: Factory) -> None:
    """Review R1b's evidence (``plan.apart``): an item's first listing (``seen``: kept from
    its first intent, never moved on by a later one), a kept copy's last moment at the
    source (``known``, with its REMOVED outcome), and when the round of a folder's stored
    link began (``link_began``: stored with the link, gone with it)."""
    async with make() as st:
        await st.folder_mapped(P, "F1", "/Inbox", "T1", "<inbox>")
        await st.set_delta_links(P, [("F1", "L1")], began={"F1": 100})
        (f,) = await st.folders(P)
        assert (f.delta_link, f.link_began) == ("L1", 100)
        await st.record_intents(P, [Intent("s1", "F1", b"k", 1, "T1", "c1", seen=200)])
        await st.record_intents(P, [Intent("s2", "F1", b"k", 1, "T1", "c1")])
        st.record_outcome(P, Outcome("s1", Status.DONE, "t1", "tc1"))
        await st.flush()
        await st.record_intents(P, [Intent("s1", "F1", b"k", 1, "T1", "c2", seen=300)])
        st.record_outcome(P, Outcome("s1", Status.DONE, "t1", "tc2"))
        st.record_outcome(P, Outcome("s2", Status.REMOVED, "t2", known=150))
        await st.flush()
        got = {r.source_id: r for r in await st.items_by_keys(P, [b"k"])}
        assert (got["s1"].seen, got["s1"].known) == (200, None)  # the first listing's
        assert (got["s2"].seen, got["s2"].known) == (None, 150)
        st.record_outcome(P, Outcome("s2", Status.REMOVED, "t2"))  # no evidence: kept
        await st.flush()
        assert (await st.items_in_folder(P, "F1"))["s2"].known == 150
        # a link stored without its round's moment, or cleared: the moment stays (still
        # true of the records: none told gone since), until a round's replaces it
        await st.set_delta_links(P, [("F1", "L2")])
        assert [(f.delta_link, f.link_began) for f in await st.folders(P)] == [("L2", 100)]
        await st.set_delta_links(P, [("F1", None)])
        await st.map_folders(P, [], unlinked=["F1"])
        assert [(f.delta_link, f.link_began) for f in await st.folders(P)] == [(None, 100)]
        await st.set_delta_links(P, [("F1", "L3")], began={"F1": 400})
        assert [(f.delta_link, f.link_began) for f in await st.folders(P)] == [("L3", 400)]
        # ``delta = false``: a full listing's moment, whatever link is stored (kept)
        await st.set_listed(P, {"F1": 600})
        assert [(f.delta_link, f.link_began) for f in await st.folders(P)] == [("L3", 600)]
        await st.set_delta_links(P, [("F1", "L4")], began={"F1": 700})
        await st.set_listed(P, {"F1": 800, "F9": 1})  # a folder with no record: nothing
        assert [(f.delta_link, f.link_began) for f in await st.folders(P)] == [("L4", 800)]


def test_sqlite_schema_8_gets_the_moments_in_place(tmp_path: Path) -> None:
    """Schema 8 had no moments (review R1b): 9 adds them, empty for what was there (decided
    by search key, as before), and keeps every record and link."""
    path = tmp_path / "state.db"

    async def make_old() -> None:
        async with SQLiteStore(path, identity=JOB) as st:
            await st.folder_mapped(P, "F1", "/Inbox", "T1", "<inbox>")
            await st.set_delta_links(P, [("F1", "L1")], began={"F1": 100})
            await st.record_intents(P, [Intent("s1", "F1", b"k", 1, "T1", "c1", seen=200)])

    anyio.run(make_old)
    db = sqlite3.connect(path)
    for table, column in (("items", "seen"), ("items", "known"), ("folders", "began")):
        db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    db.execute("UPDATE meta SET value = '8' WHERE key = 'schema'")
    db.commit()
    db.close()

    async def check() -> None:
        async with SQLiteStore(path, identity=JOB) as st:
            (f,) = await st.folders(P)
            assert (f.delta_link, f.link_began) == ("L1", None)
            (r,) = await st.items_by_keys(P, [b"k"])
            assert (r.source_id, r.status, r.seen, r.known) == ("s1", Status.INTENT, None, None)
            await st.record_intents(P, [Intent("s2", "F1", b"k", 1, "T1", "c1", seen=300)])
            assert (await st.items_in_folder(P, "F1"))["s2"].seen == 300

    anyio.run(check)
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("9",)
    db.close()


async def test_a_schema_7_database_gets_the_moments_in_place(pg_url: str) -> None:
    """A database of schema 7 (no moments, review R1b) gains them in place, empty for the
    records it had, which stay; it then says schema 9 (their sequence made too)."""
    import psycopg

    make = postgres_factory(pg_url)
    async with make() as st:
        await st.folder_mapped(P, "F1", "/Inbox", "T1", "<inbox>")
        await st.set_delta_links(P, [("F1", "L1")], began={"F1": 100})
        await st.record_intents(P, [Intent("s1", "F1", b"k", 1, "T1", "c1", seen=200)])
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute("ALTER TABLE ce_items DROP COLUMN seen, DROP COLUMN known")
        await conn.execute("ALTER TABLE ce_folders DROP COLUMN began")
        await conn.execute("DROP SEQUENCE ce_moments")
        await conn.execute("UPDATE ce_meta SET value = '7' WHERE key = 'schema'")
    async with make() as st:
        (f,) = await st.folders(P)
        assert (f.delta_link, f.link_began) == ("L1", None)
        (r,) = await st.items_by_keys(P, [b"k"])
        assert (r.source_id, r.seen, r.known) == ("s1", None, None)
        await st.record_intents(P, [Intent("s2", "F1", b"k", 1, "T1", "c1", seen=300)])
        assert (await st.items_in_folder(P, "F1"))["s2"].seen == 300
        assert await st.moment() > 300
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT value FROM ce_meta WHERE key = 'schema'")
        assert await cur.fetchone() == ("9",)


async def test_records_are_found_by_search_key_through_an_index(make: Factory) -> None:
    """``items_by_keys`` (every pass's moves, departures and second copies) reads the pair's
    records by search key through the (pair, search_key) index, not a scan of the pair's
    rows; a state made before the index gets it when it is next opened."""
    async with make() as st:
        await st.record_intents(P, [_intent(i) for i in range(1, 50)])
        await st.flush()
        assert [r.source_id for r in await st.items_by_keys(P, [b"k\x07"])] == ["s7"]
    if isinstance(st, SQLiteStore):
        path = st.path
        db = sqlite3.connect(path)
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM items WHERE pair = ? AND search_key IN (?, ?)",
            (P, b"k\x07", b"k\x08"),
        ).fetchall()
        assert any("items_by_key" in str(row) for row in plan), plan
        db.execute("DROP INDEX items_by_key")  # as a state made before it
        db.commit()
        db.close()
        async with make() as again:
            assert len(await again.items_by_keys(P, [b"k\x07"])) == 1
        db = sqlite3.connect(path)
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        db.close()
        assert "items_by_key" in names
        return
    import psycopg

    from copyengine.state.postgres import PostgresStore

    assert isinstance(st, PostgresStore)
    url = st.url
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ce_items_by_key'"
        )
        (row,) = await cur.fetchall()
        assert "(pair, search_key)" in row[0]
        await conn.execute("DROP INDEX ce_items_by_key")
    async with make() as again:
        assert len(await again.items_by_keys(P, [b"k\x07"])) == 1
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'ce_items_by_key'")
        assert await cur.fetchall() == [(1,)]


@pytest.mark.parametrize("exclusive", [True, False])
def test_sqlite_a_state_of_a_newer_engine_is_refused_untouched(
    tmp_path: Path, exclusive: bool
) -> None:
    """A state a newer copyengine made (a schema this one does not know) is refused by its
    schema number, saying so, and left as it was: no table of this version's added to it
    (a run, exclusive; ``status``, a reader)."""
    path = _old_state(
        tmp_path,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '99');
        CREATE TABLE things_to_come (x INTEGER);
        """,
    )
    db = sqlite3.connect(path)
    before = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    db.close()

    async def check() -> None:
        with pytest.raises(StateError) as refused:
            async with SQLiteStore(path, identity=JOB, exclusive=exclusive):
                pass
        assert "schema 99" in str(refused.value) and "newer" in str(refused.value)

    anyio.run(check)
    db = sqlite3.connect(path)
    assert (
        db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() == before
    )
    db.close()


async def test_moments_go_forward_across_every_process_of_the_store(make: Factory) -> None:
    """R1b's clock (``Store.moment``): each moment later than every one any process of the
    store gave before it was asked (the run and a reader beside it: on PostgreSQL two
    hosts)."""
    async with make() as run:
        reader = make(exclusive=False)
        await reader.open()
        try:
            got = [await (run if i % 3 else reader).moment() for i in range(12)]
        finally:
            await reader.close()
    assert got == sorted(set(got)), got


async def test_postgres_moments_are_the_databases_order_not_a_hosts_clock(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a store the hosts share, a moment taken on a host whose clock is ten minutes
    behind is still later than one taken before it on a host in time (each host's own
    clock made it earlier: tests/test_hosts_clock.py)."""
    import time
    import types

    from copyengine.state.postgres import PostgresStore

    async with PostgresStore(pg_url, identity=JOB) as host_a:
        first = await host_a.moment()
    behind = time.time_ns() - 600 * 10**9
    clock = types.SimpleNamespace(time_ns=lambda: behind)
    monkeypatch.setattr("copyengine.state.moments.time", clock)
    monkeypatch.setattr("copyengine.state.moments._Clock.last", 0)  # another process
    async with PostgresStore(pg_url, identity=JOB) as host_b:
        assert await host_b.moment() > first


async def test_a_schema_8_postgres_database_takes_its_moments_past_those_it_holds(
    pg_url: str,
) -> None:
    """Schema 8 kept the moments of the hosts' clocks; schema 9 takes them from a sequence
    made (in place) past every moment stored, so the old ones stay before the new (a host
    ahead by an hour wrote one here), and a day past the database's clock, so do those a
    segment of the earlier engine still running writes (fails without the day)."""
    import time

    import psycopg

    from copyengine.state.postgres import SCHEMA_VERSION, PostgresStore

    ahead = time.time_ns() // 1000 + 3600 * 10**6
    async with PostgresStore(pg_url, identity=JOB) as st:
        await st.folder_mapped(P, "F1", "/Inbox", "T1", "<inbox>")
        await st.record_intents(P, [Intent("s1", "F1", b"k", 1, "T1", "ck", seen=ahead)])
        await st.set_delta_links(P, [("F1", "L1")], began={"F1": ahead + 5})
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute("DROP SEQUENCE ce_moments")
        await conn.execute("UPDATE ce_meta SET value = '8' WHERE key = 'schema'")
    async with PostgresStore(pg_url, identity=JOB) as st:
        first = await st.moment()
        assert first > ahead + 5
        (rec,) = (await st.items_in_folder(P, "F1")).values()
        (f,) = await st.folders(P)
        assert (rec.seen, f.link_began) == (ahead, ahead + 5)  # kept as they were
        # a segment of the earlier engine, still running on the host ahead, lists an item
        # 20 minutes later by its clock: the new moments come after it too
        late = ahead + 1200 * 10**6
        await st.record_intents(P, [Intent("s2", "F1", b"k", 1, "T1", "ck", seen=late)])
        assert first > late
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT value FROM ce_meta WHERE key = 'schema'")
        assert await cur.fetchone() == (SCHEMA_VERSION,)


async def test_a_sqlite_states_moments_stay_after_those_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One host's clock set back an hour between two runs (or the state file moved to a
    host behind): the second run's moments still come after the first's, which the state
    holds (an item's ``seen``, a folder's ``began``)."""
    import time
    import types

    async with SQLiteStore(tmp_path / "state.sqlite", identity=JOB) as st:
        seen, began = await st.moment(), await st.moment()
        await st.folder_mapped(P, "F1", "/Inbox", "T1", "<inbox>")
        await st.record_intents(P, [Intent("s1", "F1", b"k", 1, "T1", "ck", seen=seen)])
        await st.set_delta_links(P, [("F1", "L1")], began={"F1": began})
    behind = time.time_ns() - 3600 * 10**9
    clock = types.SimpleNamespace(time_ns=lambda: behind)
    monkeypatch.setattr("copyengine.state.moments.time", clock)
    monkeypatch.setattr("copyengine.state.moments._Clock.last", 0)  # the next run's process
    async with SQLiteStore(tmp_path / "state.sqlite", identity=JOB) as st:
        assert began < await st.moment() < await st.moment()
