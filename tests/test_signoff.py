"""The cutover's sign-off and ``verify`` (issue 22, case 10): one check, from listings of both
sides and the state's records, never from counters. Table tests of the pure decision
(``verify.judge``), then the whole engine against the emulator, every number of the sign-off
held against the emulator's snapshots; wrong target states are made directly through the
emulator's change API on the target mailbox (never by relying on an engine defect)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from copyengine.config import load_job
from copyengine.console.html import render
from copyengine.emulator.faults import FaultRule
from copyengine.exitcodes import ExitCode
from copyengine.graph.models import Item
from copyengine.state import ItemRecord, Status
from copyengine.verify import KINDS, SourceFolder, TargetFolder, judge
from copyengine.wiring import run_job, verify_job
from tests.emu import base_config, q, running
from tests.histories import take_sign_off
from tests.jobs import archive_pair, selected_by_default, with_archives, write_job
from tests.test_truth import _cli, _finish

ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
MIRROR = '[sync]\ndeletions = "mirror"\n'


# -- the decision, table-tested ---------------------------------------------------------------
def it(i: str, key: bytes | None, ck: str = "c1") -> Item:
    return Item(i, ck, "IPM.Note", 10, "", "", (), key)


def rec(
    sid: str,
    tid: str | None,
    ck: str = "c1",
    tck: str | None = "t1",
    status: Status = Status.DONE,
    key: bytes | None = None,
    error: str | None = None,
) -> ItemRecord:
    return ItemRecord(sid, "SF", status, key, "TF", tid, ck, tck, 10, error)


def src(*items: Item, fid: str = "SF", target: str | None = "TF") -> SourceFolder:
    return SourceFolder(fid, f"/{fid}", target, f"/{target}", items)


def dst(*items: Item, fid: str = "TF", allowed: bool = False) -> TargetFolder:
    return TargetFolder(fid, f"/{fid}", items, allowed)


def counts(v: Any) -> dict[str, int]:
    return {k: len(getattr(v, k)) for k in KINDS if getattr(v, k)}


A, B, C = b"a" * 16, b"b" * 16, b"c" * 16

CASES: list[tuple[str, Any, Any, Any, str, dict[str, int]]] = [
    ("current copy", [src(it("s1", A))], [dst(it("t1", A, "t1"))], {"s1": rec("s1", "t1")},
     "mirror", {}),
    ("no state: presence only, content not compared", [src(it("s1", A, "new"))],
     [dst(it("t1", A, "edited"))], None, "mirror", {}),
    ("missing", [src(it("s1", A))], [dst()], {}, "mirror", {"missing": 1}),
    ("changed at the source after the copy", [src(it("s1", A, "c2"))],
     [dst(it("t1", A, "t1"))], {"s1": rec("s1", "t1")}, "mirror", {"stale": 1}),
    ("edited in the target", [src(it("s1", A))], [dst(it("t1", A, "t9"))],
     {"s1": rec("s1", "t1")}, "mirror", {"stale": 1}),
    ("adopted copy edited since it was adopted", [src(it("s1", A))],
     [dst(it("t1", A, "t9"))], {"s1": rec("s1", "t1", status=Status.ADOPTED)}, "mirror",
     {"stale": 1}),
    ("adopted copy without its change key (state of an older engine): not vouched for",
     [src(it("s1", A))], [dst(it("t1", A, "t9"))],
     {"s1": rec("s1", "t1", tck=None, status=Status.ADOPTED)}, "mirror",
     {"content_unchecked": 1}),
    ("a copy whose last update failed", [src(it("s1", A))], [dst(it("t1", A, "t1"))],
     {"s1": rec("s1", "t1", status=Status.FAILED)}, "mirror", {"stale": 1}),
    ("a second copy", [src(it("s1", A))], [dst(it("t1", A, "t1"), it("t2", A))],
     {"s1": rec("s1", "t1")}, "mirror", {"duplicated": 1}),
    ("in another folder", [src(it("s1", A)), src(fid="S2", target="T2")],
     [dst(), dst(it("t1", A, "t1"), fid="T2")], {"s1": rec("s1", "t1")}, "mirror",
     {"misplaced": 1}),
    ("the recorded copy wins over one in the right folder",
     [src(it("s1", A)), src(fid="S2", target="T2")],
     [dst(it("t2", A)), dst(it("t1", A, "t1"), fid="T2")], {"s1": rec("s1", "t1")}, "mirror",
     {"misplaced": 1, "duplicated": 1}),
    ("no target folder", [src(it("s1", A), target=None)], [], {}, "mirror",
     {"missing": 1, "missing_folders": 1}),
    ("keyless: matched by count in its folder", [src(it("s1", None), it("s2", None))],
     [dst(it("t1", None), it("t2", None), it("t3", None))], None, "mirror", {"extra": 1}),
    ("mirror: a copy of a deleted item is extra, not kept", [src(it("s1", A))],
     [dst(it("t1", A, "t1"), it("t2", B))], {"s1": rec("s1", "t1"), "g": rec("g", "t2")},
     "mirror", {"extra": 1, "pending": 1}),
    ("mirror: a copy the target's user moved, its item deleted at the source, is pending",
     [src(it("s1", A)), src(fid="S2", target="T2")],
     [dst(it("t1", A, "t1")), dst(it("t9", B), fid="T2")],
     {"s1": rec("s1", "t1"), "g": rec("g", "t2", key=B)}, "mirror", {"extra": 1, "pending": 1}),
    ("mirror: an item nobody copied is extra, not pending (the target's own mail)",
     [src(it("s1", A))], [dst(it("t1", A, "t1"), it("t2", B))], {"s1": rec("s1", "t1")},
     "mirror", {"extra": 1}),
    ("keep: a copy the target's user moved, its item deleted at the source, is kept",
     [src(it("s1", A)), src(fid="S2", target="T2")],
     [dst(it("t1", A, "t1")), dst(it("t9", B), fid="T2")],
     {"s1": rec("s1", "t1"), "g": rec("g", "t2", key=B)}, "keep", {"extra": 1, "kept": 1}),
    ("keep: the state knows the copy of a deleted item", [src(it("s1", A))],
     [dst(it("t1", A, "t1"), it("t2", B))],
     {"s1": rec("s1", "t1"), "g": rec("g", "t2", status=Status.REMOVED)}, "keep",
     {"extra": 1, "kept": 1}),
    ("keep: two kept copies of one deleted item, each recorded for a source id of its own "
     "(restored under a new id, then deleted again): one kept, one a second copy",
     [src(it("s1", A))], [dst(it("t1", A, "t1"), it("t2", B), it("t3", B))],
     {"s1": rec("s1", "t1"), "g1": rec("g1", "t2", status=Status.REMOVED, key=B),
      "g2": rec("g2", "t3", status=Status.REMOVED, key=B)}, "keep",
     {"extra": 1, "kept": 1, "duplicated": 1}),
    ("keep: a second copy nobody recorded beside a kept one whose other record's copy went",
     [src(it("s1", A))], [dst(it("t1", A, "t1"), it("t3", B), it("t4", B))],
     {"s1": rec("s1", "t1"), "g2": rec("g2", "t3", status=Status.REMOVED, key=B),
      "g1": rec("g1", "t2", status=Status.REMOVED, key=B)}, "keep",
     {"extra": 1, "kept": 1, "duplicated": 1}),
    ("keep: kept copies of two items deleted at the source are both kept",
     [src(it("s1", A))], [dst(it("t1", A, "t1"), it("t2", B), it("t3", C))],
     {"s1": rec("s1", "t1"), "g1": rec("g1", "t2", status=Status.REMOVED, key=B),
      "g2": rec("g2", "t3", status=Status.REMOVED, key=C)}, "keep", {"extra": 2, "kept": 2}),
    ("mirror: two copies of one deleted item, each recorded, are both pending",
     [src(it("s1", A))], [dst(it("t1", A, "t1"), it("t2", B), it("t3", B))],
     {"s1": rec("s1", "t1"), "g1": rec("g1", "t2", key=B), "g2": rec("g2", "t3", key=B)},
     "mirror", {"extra": 2, "pending": 2}),
    # keep, then the job switched to mirror: what keep kept stays kept (docs/passes.md "When
    # the operator changes the job"), one copy standing for its item as under keep
    ("mirror after keep: two kept copies of one deleted item: one kept, one a second copy",
     [src(it("s1", A))], [dst(it("t1", A, "t1"), it("t2", B), it("t3", B))],
     {"s1": rec("s1", "t1"), "g1": rec("g1", "t2", status=Status.REMOVED, key=B),
      "g2": rec("g2", "t3", status=Status.REMOVED, key=B)}, "mirror",
     {"extra": 1, "kept": 1, "duplicated": 1}),
    ("keep: an item nobody copied is extra, not kept", [src(it("s1", A))],
     [dst(it("t1", A, "t1"), it("t2", B))], {"s1": rec("s1", "t1")}, "keep", {"extra": 1}),
    ("keep: copies in a folder whose source was deleted are kept", [src(it("s1", A))],
     [dst(it("t1", A, "t1")), dst(it("t2", B), it("t3", C), fid="OLD")],
     {"s1": rec("s1", "t1")}, "keep", {"extra": 2, "kept": 2}),
    ("keep: an empty folder whose source was deleted is a leftover", [src(it("s1", A))],
     [dst(it("t1", A, "t1")), dst(fid="OLD")], {"s1": rec("s1", "t1")}, "keep",
     {"leftover_folders": 1}),
    ("mirror: a folder no source folder maps to is a leftover", [src(it("s1", A))],
     [dst(it("t1", A, "t1")), dst(it("t2", B), fid="OLD")], {"s1": rec("s1", "t1")},
     "mirror", {"leftover_folders": 1, "extra": 1}),
    ("an ancestor or well-known folder is no leftover", [src(it("s1", A))],
     [dst(it("t1", A, "t1")), dst(fid="ROOT", allowed=True)], {"s1": rec("s1", "t1")},
     "mirror", {}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("source", "target", "records", "deletions", "want"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_judge(
    source: Any, target: Any, records: Any, deletions: str, want: dict[str, int]
) -> None:
    v = judge(source, target, records, deletions)
    assert counts(v) == want
    assert v.selected == sum(len(s.items) for s in source)
    assert v.in_target == v.selected - len(v.missing)


def test_judge_lists_ids_and_paths() -> None:
    v = judge(
        [src(it("s1", A, "c2")), src(it("s2", B))],
        [dst(it("t1", A, "t1"))],
        {"s1": rec("s1", "t1"), "s2": rec("s2", None, status=Status.FAILED, error="too big")},
        "mirror",
    )
    assert v.stale == [
        {
            "id": "s1",
            "target_id": "t1",
            "folder": "/SF",
            "reason": "changed at the source after it was copied",
        }
    ]
    assert v.missing == [{"id": "s2", "folder": "/SF"}]
    (fc,) = {f.source_path: f for f in v.folders}.values()
    assert fc.stale == ["s1"] and fc.missing == ["s2"] and not fc.ok


def test_the_screen_lists_what_keeps_a_sign_off_from_complete() -> None:
    import io

    from copyengine.console.signoff import print_sign_off, sign_off_shortfall

    entry = {
        "source": ADELE,
        "target": T_ADELE,
        "archive": True,
        "error": None,
        "selected": 3,
        "in_target": 2,
        "skipped": {},
        "failed": 0,
        "unaccounted": 1,
        "unaccounted_items": [{"id": "s9", "folder": "[archive]/Inbox", "state": "done"}],
        "stale": 1,
        "stale_items": [{"id": "s1", "folder": "/Inbox", "reason": "edited in the target"}],
        "leftover_folders": 1,
        "leftover_folder_list": [{"id": "f1", "path": "/Inbox/Old", "items": 0}],
        "extra_in_target": 0,
        "kept": 0,
        "complete": False,
    }
    so = {"changes_captured_until": "2026-01-01T00:00:00Z", "complete": False, "pairs": [entry]}
    out = io.StringIO()
    print_sign_off(so, out)
    text = out.getvalue()
    assert "[archive]/Inbox s9" in text and "/Inbox s1 (edited in the target)" in text
    assert "/Inbox/Old" in text
    said = sign_off_shortfall(so)
    assert "1 source items missing" in said and "1 stale" in said and "1 leftover" in said


# -- against the emulator ---------------------------------------------------------------------
async def _ops(emu: Any, upn: str, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    mbx = emu.state.require_mailbox(upn).id
    r = await emu.src.control("POST", f"/mailboxes/{q(mbx)}/changes", {"ops": ops})
    assert r.status == 200, r.body
    return list(r.body["results"])


def _truth(emu_state: Any, source: str, target: str) -> dict[str, Any]:
    """What the sign-off must say, counted from the two snapshots: per selected source item
    its copies (by search key) among the target's selected folders."""
    s = emu_state.require_mailbox(source).snapshot()
    d = emu_state.require_mailbox(target).snapshot()
    chosen = [r for r in s["items"] if selected_by_default(r)]
    have = [r for r in d["items"] if selected_by_default(r)]
    want = Counter(r["searchKey"] for r in chosen)
    copies = Counter(r["searchKey"] for r in have)
    return {
        "selected": len(chosen),
        "in_target": sum(min(n, copies[k]) for k, n in want.items()),
        "duplicated": sum(max(0, copies[k] - n) for k, n in want.items()),
        "extra": [r for r in have if r["searchKey"] not in want],
    }


def _check_numbers(p: dict[str, Any], truth: dict[str, Any]) -> None:
    assert p["selected"] + sum(p["skipped"].values()) == truth["selected"]
    assert p["in_target"] == truth["in_target"]
    assert p["duplicated"] == truth["duplicated"]
    assert p["extra_in_target"] == len(truth["extra"])
    assert p["unaccounted"] + p["failed"] == p["selected"] - p["in_target"]


@pytest.mark.anyio
async def test_sign_off_numbers_are_the_snapshots_and_a_copy_edited_in_the_target_is_stale(
    emu: Any, tmp_path: Path
) -> None:
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)], extra=MIRROR))
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    inbox = [i.id for i in emu.state.require_mailbox(ADELE).well_known["inbox"].live_items()]
    await _ops(emu, ADELE, [{"op": "add", "folder": "inbox", "count": 2}])
    stats = await run_job(cfg, cutover=True)
    so = stats.sign_off
    assert so is not None
    (p,) = so["pairs"]
    _check_numbers(p, _truth(emu.state, ADELE, T_ADELE))
    assert so["complete"] and stats.exit_code() == ExitCode.OK, p
    assert p["stale"] == 0 and p["current"] == p["in_target"] and not p["leftover_folders"]

    # a copy edited in the target: the engine cannot see it (nothing changed at the source)
    key = emu.state.require_mailbox(ADELE).items[inbox[0]].content.search_key
    box = emu.state.require_mailbox(T_ADELE)
    (copy,) = [i for i in box.items.values() if i.content.search_key == key]
    await _ops(emu, T_ADELE, [{"op": "modify", "id": copy.id}])
    # the cutover repairs drift (a full listing restores the copy); here the target refuses
    # every import, so the copy stays stale and the sign-off must say so
    refuse = {"kind": "import_reject", "calls": ["importItem"]}
    assert (await emu.src.control("PUT", "/faults", {"rules": [refuse]})).status == 200
    stats = await run_job(cfg, cutover=True)
    so = stats.sign_off
    assert so is not None and not so["complete"]
    assert so["repaired"] == [{"pair": p["pair"], "stale": 1}]
    assert stats.exit_code() == ExitCode.ITEMS_FAILED
    (p,) = so["pairs"]
    _check_numbers(p, _truth(emu.state, ADELE, T_ADELE))
    assert p["stale"] == 1 and p["unaccounted"] == 0
    (row,) = p["stale_items"]
    assert row["id"] == inbox[0] and row["target_id"] == copy.id and row["folder"] == "/Inbox"
    assert "did not complete (failed)" in row["reason"]  # the repair's update was refused
    report = json.loads(cfg.report_path.read_text())
    assert report["sign_off"]["pairs"][0]["stale_items"][0]["id"] == inbox[0]
    html = render(report)
    assert "NOT complete" in html and inbox[0] in html and "stale" in html


@pytest.mark.anyio
async def test_keep_counts_kept_and_extra_from_the_target_including_deleted_folders(
    emu: Any, tmp_path: Path
) -> None:
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)]))  # deletions = keep
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    src = emu.state.require_mailbox(ADELE)
    receipts = src.folder_by_path("/Inbox/Receipts")
    assert receipts is not None and len(list(receipts.live_items())) > 0
    inbox = [i.id for i in src.well_known["inbox"].live_items()]
    await _ops(
        emu,
        ADELE,
        [
            {"op": "delete", "id": inbox[0], "hard": True},
            {"op": "delete", "id": inbox[1]},
            {"op": "deleteFolder", "id": receipts.id},
        ],
    )
    # something no pass copied, put into the target by someone else: extra, not kept
    await _ops(emu, T_ADELE, [{"op": "add", "folder": "drafts", "count": 1}])
    stats = await run_job(cfg, cutover=True)
    so = stats.sign_off
    assert so is not None
    (p,) = so["pairs"]
    truth = _truth(emu.state, ADELE, T_ADELE)
    _check_numbers(p, truth)
    drafts = [r for r in truth["extra"] if r["folderPath"] == "/Drafts"]
    in_receipts = [r for r in truth["extra"] if r["folderPath"] == "/Inbox/Receipts"]
    assert len(drafts) == 1 and in_receipts  # the copies in the folder deleted at the source
    assert p["kept"] == p["kept_deleted_at_source"] == len(truth["extra"]) - 1
    assert p["extra_in_target"] == len(truth["extra"])
    kept_ids = {r["id"] for r in p["extra_items"]}
    assert {r["id"] for r in in_receipts} <= kept_ids


@pytest.mark.anyio
async def test_a_leftover_target_folder_under_mirror_is_not_complete(
    emu: Any, tmp_path: Path
) -> None:
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)], extra=MIRROR))
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    await _ops(emu, T_ADELE, [{"op": "createFolder", "parent": "inbox", "name": "Leftover"}])
    stats = await run_job(cfg, cutover=True)
    so = stats.sign_off
    assert so is not None and not so["complete"]
    assert stats.exit_code() == ExitCode.ITEMS_FAILED
    (p,) = so["pairs"]
    assert p["leftover_folders"] == 1 and p["unaccounted"] == 0 and p["stale"] == 0
    assert p["leftover_folder_list"][0]["path"] == "/Inbox/Leftover"


@pytest.mark.anyio
async def test_an_archive_pair_whose_archive_copy_lacks_an_item_is_not_complete(
    tmp_path: Path,
) -> None:
    async with running(with_archives(base_config(), 25)) as (server, ep, _):
        job = archive_pair(write_job(tmp_path, ep, [(ADELE, T_ADELE)], extra=MIRROR), T_ADELE)
        cfg_job = load_job(job)
        assert (await run_job(cfg_job)).exit_code() == ExitCode.OK
        assert all(pc.ok for pc in await verify_job(cfg_job))
        emu = server.emulator
        arch = emu.require_mailbox(emu.require_mailbox(T_ADELE).archive_id or "")
        gone = next(i for i in arch.items.values() if not i.deleted and i.folder is not None)
        arch.delete_item(gone)
        # the target refuses imports: the cutover's repair cannot put the copy back
        emu.faults.replace([FaultRule.parse({"kind": "import_reject", "calls": ["importItem"]})])
        stats = await run_job(cfg_job, cutover=True)
        so = stats.sign_off
        assert so is not None and not so["complete"]
        assert stats.exit_code() == ExitCode.ITEMS_FAILED
        (p,) = so["pairs"]
        # the repair tried to copy it again and was refused: failed, with the reason
        assert p["failed"] == 1 and p["failed_items"][0]["folder"].startswith("[archive]/")
        (check,) = await verify_job(cfg_job)
        assert not check.ok
        bad = [f for f in check.folders if not f.ok]
        assert len(bad) == 1 and bad[0].source_path.startswith("[archive]/")
        assert len(bad[0].missing) == 1


@pytest.mark.anyio
async def test_verify_content_reports_a_stale_copy_and_plain_verify_stays_presence_only(
    emu: Any, tmp_path: Path
) -> None:
    job = write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)], extra=MIRROR)
    code, out = await _finish(_cli("verify", str(job), "--content"), 60)
    assert code == ExitCode.CONFIG and "content cannot be checked" in out, out
    assert (await run_job(load_job(job))).exit_code() == ExitCode.OK
    code, out = await _finish(_cli("verify", str(job), "--content"), 60)
    assert code == ExitCode.OK and "(current)" in out, out
    src = emu.state.require_mailbox(ADELE)
    first = next(iter(src.well_known["inbox"].live_items()))
    (copy,) = [
        i
        for i in emu.state.require_mailbox(T_ADELE).items.values()
        if i.content.search_key == first.content.search_key
    ]
    await _ops(emu, T_ADELE, [{"op": "modify", "id": copy.id}])
    code, out = await _finish(_cli("verify", str(job)), 60)
    assert code == ExitCode.OK and "(present)" in out, out
    report = tmp_path / "verify.json"
    code, out = await _finish(
        _cli("verify", str(job), "--content", "--json-output", str(report)), 60
    )
    assert code == ExitCode.VERIFY_MISMATCH, out
    assert f"STALE {ADELE} -> {T_ADELE} /Inbox {first.id}" in out, out
    (pair,) = json.loads(report.read_text())
    assert pair["stale"] == 1 and pair["stale_items"][0]["target_id"] == copy.id


def test_every_table_of_the_sign_off_names_the_same_kinds() -> None:
    """The sign-off's kinds are told in three places that may not import each other (the
    verdict's words, the console's lists, the notifier's counts): a kind added to one and
    not the others would be judged but never shown, or shown but never sent."""
    from copyengine.console.signoff import SIGN_OFF_LISTS
    from copyengine.notify.fields import SIGNOFF_COUNTS
    from copyengine.verify.signoff import SHORTFALL

    judged = {key for key, _, _ in SHORTFALL}
    assert judged == {count for count, _, _ in SIGN_OFF_LISTS}
    assert judged == set(SIGNOFF_COUNTS) - {"selected", "in_target"}


@pytest.mark.anyio
async def test_an_item_changed_between_its_listing_and_its_export_is_recorded_as_exported(
    emu: Any, tmp_path: Path
) -> None:
    """An item modified after the pass listed it and before its export (the source's user
    at work during a pass): the copy holds the version exported, and the state records that
    version, so the sign-off says the copy current (the randomized histories' seed 7021,
    churn during a pass: it named the copy stale, the oracle found it current)."""
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)], extra=MIRROR))
    box = emu.state.require_mailbox(ADELE)
    it = next(iter(box.well_known["inbox"].live_items()))
    trigger = {
        "mailbox": ADELE,
        "calls": ["exportItems"],
        "after": 1,
        "ops": [{"op": "modify", "id": it.id}],
    }
    assert (await emu.src.control("PUT", "/triggers", trigger)).status == 200
    before = it.change_key
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    (t,) = (await emu.src.control("GET", "/triggers")).body["triggers"]
    assert t["fired"], t
    assert box.items[it.id].change_key != before  # modified before the export answered
    key = box.items[it.id].content.search_key
    target = emu.state.require_mailbox(T_ADELE).items.values()
    (copy,) = [i for i in target if i.content.search_key == key]
    assert copy.content.digest() == box.items[it.id].content.digest()  # the version exported
    so = await take_sign_off(cfg)  # as a cutover would take it now, no pass between
    (p,) = so["pairs"]
    assert p["stale"] == 0, p["stale_items"]
    assert so["complete"], p


@pytest.mark.anyio
async def test_keep_two_kept_copies_of_one_soft_deleted_item_are_a_second_copy(
    emu: Any, tmp_path: Path
) -> None:
    """Soak seed 13011 keep (churn2; the engine fixed in ``passes``): an item soft-deleted
    (its copy kept), restored by its owner (so under a new id, the same search key), copied
    again, then deleted again, its new copy kept too: two kept copies of one item, each
    recorded for a source id of its own. The sign-off said complete; it names the second
    copy (what the oracle finds), and keeps two different items' kept copies apart."""
    from copyengine.state import Intent, Outcome
    from copyengine.wiring import store as job_store
    from tests.histories import named, oracle, signoff_findings

    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)]))  # deletions = keep
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    box, tbox = emu.state.require_mailbox(ADELE), emu.state.require_mailbox(T_ADELE)
    item, other = list(box.well_known["inbox"].live_items())[:2]
    key = item.content.search_key
    await _ops(emu, ADELE, [{"op": "delete", "id": i.id} for i in (item, other)])
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    so = await take_sign_off(cfg)
    (p,) = so["pairs"]
    assert so["complete"] and p["kept"] == 2 and p["duplicated"] == 0, p  # two items, two kept
    (first,) = [i for i in tbox.items.values() if i.content.search_key == key]

    # restored (moved out of Recoverable Items: a new id), copied again, deleted again: the
    # state as the engine left it before 8d9a597, made directly (the copy and its record)
    (gone,) = [i for i in box.items.values() if i.content.search_key == key]
    (moved,) = await _ops(emu, ADELE, [{"op": "move", "id": gone.id, "to": "inbox"}])
    back = moved["newId"]
    again = tbox.add_item(first.folder, first.content)
    await _ops(emu, ADELE, [{"op": "delete", "id": back}])
    pair = cfg.pairs[0].key
    state = job_store(cfg)
    await state.open()
    try:
        recs = await state.items_by_keys(pair, [key])
        (old,) = [r for r in recs if r.target_id == first.id]
        assert old.status is Status.REMOVED  # the first kept copy's record
        intent = Intent(back, old.folder_id, key, 10, old.target_folder_id or "")
        await state.record_intents(pair, [intent])
        state.record_outcome(pair, Outcome(back, Status.DONE, again.id, again.change_key))
        state.record_outcome(pair, Outcome(back, Status.REMOVED, again.id))
        await state.flush()
    finally:
        await state.close()

    so = await take_sign_off(cfg)
    (p,) = so["pairs"]
    counts = oracle(box.snapshot(), tbox.snapshot(), "keep")
    assert counts["duplicated"] == 1, counts
    assert not so["complete"] and not p["complete"], p
    assert p["duplicated"] == 1 and p["kept"] == 2 and p["unaccounted"] == 0, p
    (row,) = p["duplicated_items"]
    assert row["id"] in (first.id, again.id) and row["source_id"] in (item.id, back)
    assert row["folder"] == "/Inbox"
    assert p["said"] == "not complete: 1 second copy"
    assert signoff_findings(False, named(so), counts) == []
    (pc,) = await verify_job(cfg)
    assert not pc.ok and pc.as_dict()["duplicated"] == 1


def test_judge_tells_a_deleted_twin_s_copy_by_the_state_s_moments() -> None:
    """Review R1b: a user's copy of a message keeps its search key. The original deleted at
    the source, its copy live beside it: the original's copy is its own item's (kept under
    ``keep``) when the state proves the two coexisted (``plan.apart``: each listed before
    the other's folder's stored round began), a second copy without that proof (one item
    moved, as before). Under ``mirror`` it is no kept copy: named as before (a copy counted
    duplicated by the histories' oracle, never a pending deletion: soak seed 22306 keep, a
    killed cutover's sign-off), unless ``keep`` kept it before the switch."""
    from dataclasses import replace

    live = replace(rec("s1", "t1", key=A), seen=50)  # in SF, listed at 50
    gone = replace(rec("s0", "t0", key=A), folder_id="SG", target_folder_id="TF", seen=10)
    records = {"s1": live, "s0": gone}
    source, target = [src(it("s1", A))], [dst(it("t1", A, "t1"), it("t0", A, "t0"))]
    began = {"SF": 100, "SG": 100}  # both folders' rounds began after both listings
    kept_one = {"extra": 1, "kept": 1}  # (a kept copy is an extra item the state knows)
    assert counts(judge(source, target, records, "keep", began=began)) == kept_one
    assert counts(judge(source, target, records, "keep")) == {"duplicated": 1}  # no moments
    assert counts(judge(source, target, records, "keep", began={"SF": 100, "SG": 40})) == {
        "duplicated": 1  # the copy listed after its original's last round began: a move?
    }
    assert counts(judge(source, target, records, "mirror", began=began)) == {"duplicated": 1}
    kept = replace(gone, status=Status.REMOVED, known=100)  # kept by ``keep`` before
    was_kept = {"s1": live, "s0": kept}
    assert counts(judge(source, target, was_kept, "mirror", began=began)) == kept_one
