"""Incremental passes (issue 11): a first pass, the source changed through the emulator's
mutation API, a later pass that reads only what changed, and source and target snapshots
equal at the end (folder paths and types, search keys, content digests, counts)."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from copyengine.config import load_job
from copyengine.exitcodes import ExitCode
from copyengine.wiring import run_job
from tests.emu import base_config, q, running
from tests.jobs import selected_by_default, write_job

pytestmark = pytest.mark.anyio
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
BIANCA, T_BIANCA = "bianca@contoso.example", "bianca@fabrikam.example"
MIRROR = '[sync]\ndeletions = "mirror"\n'


def _selected_path(path: str) -> bool:
    return selected_by_default({"folderPath": path})


def assert_same(emu_state: Any, source: str, target: str) -> None:
    """Source and target alike in everything a migration carries over."""
    src = emu_state.require_mailbox(source).snapshot()
    dst = emu_state.require_mailbox(target).snapshot()

    def folders(s: dict[str, Any]) -> set[tuple[str, str]]:
        return {(f["path"], f["type"]) for f in s["folders"] if _selected_path(f["path"])}

    def items(s: dict[str, Any]) -> Counter[tuple[Any, ...]]:
        return Counter(
            (r["folderPath"], r["searchKey"], r["digest"], r["type"], r["size"])
            for r in s["items"]
            if _selected_path(r["folderPath"])
        )

    assert folders(src) == folders(dst)
    want, have = items(src), items(dst)
    assert want == have, {"missing": want - have, "extra": have - want}


async def _ops(emu: Any, upn: str, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    mbx = emu.state.require_mailbox(upn).id
    r = await emu.src.control("POST", f"/mailboxes/{q(mbx)}/changes", {"ops": ops})
    assert r.status == 200, r.body
    return list(r.body["results"])


def _inbox(emu: Any, upn: str = ADELE) -> list[str]:
    return [i.id for i in emu.state.require_mailbox(upn).well_known["inbox"].live_items()]


async def _first(emu: Any, tmp: Path, extra: str = MIRROR) -> Any:
    cfg = load_job(write_job(tmp, emu.ep, [(ADELE, T_ADELE)], extra=extra))
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK and stats.pass_info["kind"] == "first"
    assert_same(emu.state, ADELE, T_ADELE)
    return cfg


def _target_of(emu: Any, upn: str, search_key: bytes) -> list[Any]:
    box = emu.state.require_mailbox(upn)
    return [i for i in box.items.values() if i.content.search_key == search_key]


async def _requests(emu: Any) -> int:
    return int((await emu.src.control("GET", "/stats/counters")).body["requests"])


# -- every change kind alone --------------------------------------------------------------------
async def test_new_item(emu: Any, tmp_path: Path) -> None:
    cfg = await _first(emu, tmp_path)
    await _ops(emu, ADELE, [{"op": "add", "folder": "inbox", "count": 3}])
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK and stats.pass_info["kind"] == "delta"
    assert stats.changes()["created"] == 3
    assert_same(emu.state, ADELE, T_ADELE)


async def test_changed_item_is_updated_in_place(emu: Any, tmp_path: Path) -> None:
    cfg = await _first(emu, tmp_path)
    item = _inbox(emu)[0]
    key = emu.state.require_mailbox(ADELE).items[item].content.search_key
    (copy,) = _target_of(emu, T_ADELE, key)
    await _ops(emu, ADELE, [{"op": "modify", "id": item}])
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    assert stats.changes()["updated"] == 1 and stats.changes()["created"] == 0
    (after,) = _target_of(emu, T_ADELE, key)
    assert after.id == copy.id  # update mode: the target item keeps its id
    assert_same(emu.state, ADELE, T_ADELE)


async def test_changed_item_whose_copy_was_deleted_is_created_again(
    emu: Any, tmp_path: Path
) -> None:
    cfg = await _first(emu, tmp_path)
    item = _inbox(emu)[0]
    key = emu.state.require_mailbox(ADELE).items[item].content.search_key
    (copy,) = _target_of(emu, T_ADELE, key)
    await _ops(emu, T_ADELE, [{"op": "delete", "id": copy.id, "hard": True}])
    await _ops(emu, ADELE, [{"op": "modify", "id": item}])
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    assert stats.as_dict()["pairs"][0]["drift"] == 1
    assert_same(emu.state, ADELE, T_ADELE)


@pytest.mark.parametrize("hard", [False, True])
async def test_deleted_item_is_mirrored(emu: Any, tmp_path: Path, hard: bool) -> None:
    cfg = await _first(emu, tmp_path)
    await _ops(emu, ADELE, [{"op": "delete", "id": _inbox(emu)[0], "hard": hard}])
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK and stats.changes()["deleted"] == 1
    assert_same(emu.state, ADELE, T_ADELE)
    if not hard:  # soft-deleted in the target too: recoverable there, as at the source
        rec = emu.state.require_mailbox(T_ADELE).well_known["recoverableitemsdeletions"]
        assert len(list(rec.live_items())) == 1


async def test_deleted_item_is_kept_by_default(emu: Any, tmp_path: Path) -> None:
    cfg = await _first(emu, tmp_path, extra="")
    victim = _inbox(emu)[0]
    key = emu.state.require_mailbox(ADELE).items[victim].content.search_key
    await _ops(emu, ADELE, [{"op": "delete", "id": victim, "hard": True}])
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    assert stats.changes()["kept"] == 1 and stats.changes()["deleted"] == 0
    assert len(_target_of(emu, T_ADELE, key)) == 1  # the target's copy stays
    # a later pass does not count it again
    again = await run_job(cfg)
    assert again.changes()["kept"] == 0 and again.exit_code() == ExitCode.OK


async def test_moved_item_follows_without_a_second_copy(emu: Any, tmp_path: Path) -> None:
    cfg = await _first(emu, tmp_path, extra="")  # even under keep: a move is not a deletion
    item = _inbox(emu)[0]
    key = emu.state.require_mailbox(ADELE).items[item].content.search_key
    await _ops(emu, ADELE, [{"op": "move", "id": item, "to": "archive"}])
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    ch = stats.changes()
    assert ch["moved"] == 1 and ch["created"] == 0 and ch["kept"] == 0
    (copy,) = _target_of(emu, T_ADELE, key)
    assert copy.folder.path() == "/Archive"
    assert_same(emu.state, ADELE, T_ADELE)


async def _calls(emu: Any) -> dict[str, int]:
    """Requests per call since the last reset (``/stats/reset``)."""
    body = (await emu.src.control("GET", "/stats")).body
    return {call: sum(by_status.values()) for call, by_status in body["requests"].items()}


WALK = ("listFolders", "listChildFolders")  # a folder tree read folder by folder


async def test_folder_created_renamed_moved_deleted(emu: Any, tmp_path: Path) -> None:
    await emu.src.control("POST", "/stats/reset")
    cfg = await _first(emu, tmp_path)
    # the first pass reads both trees from a fresh folder delta round each, and the source's
    # once more after its rounds (every folder was read from nothing: its count again,
    # ``reread._changed_since_listed``): no walk
    calls = await _calls(emu)
    assert not any(calls.get(c) for c in WALK), calls
    assert calls["folderDelta"] == 3, calls
    box = emu.state.require_mailbox(ADELE)
    inbox = box.well_known["inbox"]
    user = [f for f in inbox.live_children()]
    assert len(user) >= 2, "the seeded layout has folders under Inbox"
    (made,) = await _ops(emu, ADELE, [{"op": "createFolder", "parent": "inbox", "name": "Fresh"}])
    await _ops(
        emu,
        ADELE,
        [
            {"op": "add", "folder": made["id"], "count": 2},
            {"op": "renameFolder", "id": user[0].id, "name": user[0].name + " renamed"},
            {"op": "moveFolder", "id": user[1].id, "to": "archive"},
        ],
    )
    await emu.src.control("POST", "/stats/reset")
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK, stats.as_dict()["pairs"][0]
    folders = stats.as_dict()["pairs"][0]["changes"]["folders"]
    assert folders == {"created": 1, "renamed": 1, "moved": 1}
    assert_same(emu.state, ADELE, T_ADELE)
    # the tree changed: the source round from its link, then a fresh one for the whole tree,
    # and one for the target's, and (the new folder read from nothing) the source's once
    # more; still no walk
    calls = await _calls(emu)
    assert not any(calls.get(c) for c in WALK) and calls["folderDelta"] == 4, calls
    await _ops(emu, ADELE, [{"op": "deleteFolder", "id": made["id"]}])
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    assert stats.as_dict()["pairs"][0]["changes"]["folders"] == {"deleted": 1}
    assert_same(emu.state, ADELE, T_ADELE)


# -- mixed, and what a later pass costs -------------------------------------------------------------
async def test_mixed_changes_cost_what_changed(emu: Any, tmp_path: Path) -> None:
    cfg = await _first(emu, tmp_path)
    ids = _inbox(emu)
    ops: list[dict[str, Any]] = [
        {"op": "add", "folder": "inbox", "count": 4},
        {"op": "add", "folder": "archive", "count": 2},
        {"op": "modify", "id": ids[0]},
        {"op": "modify", "id": ids[1]},
        {"op": "delete", "id": ids[2]},
        {"op": "move", "id": ids[3], "to": "archive"},
        {"op": "modify", "id": ids[4]},
        {"op": "delete", "id": ids[4], "hard": True},  # edited then deleted: one removal
    ]
    await _ops(emu, ADELE, ops)
    before = await _requests(emu)
    stats = await run_job(cfg)
    used = await _requests(emu) - before
    assert stats.exit_code() == ExitCode.OK
    ch = stats.changes()
    assert (ch["created"], ch["updated"], ch["moved"], ch["deleted"]) == (6, 2, 1, 2)
    assert_same(emu.state, ADELE, T_ADELE)
    folders = len(stats.pairs[next(iter(stats.pairs))].folders)
    changes = len(ops) - 1
    # resolve 2 + folder round 1 + one delta round per folder, then about one call per change;
    # the deletions make the pass read every folder once more before it applies them (one
    # delta request each: ``pipeline/reread.py``, a move during the pass is no deletion)
    assert used <= 2 * changes + 3 * folders, (used, changes, folders)


@pytest.mark.parametrize("full", [False, True], ids=["delta", "full"])
async def test_a_quiet_pass_reads_each_folder_once(emu: Any, tmp_path: Path, full: bool) -> None:
    """Nothing changed: one item round per folder that holds items (one the walk counts
    empty is not read, ``produce._skip``), no reading again and no second walk of the tree
    (a pass that saw an id nobody knew leave, a round from nothing whose count is not the
    walk's, or an arrival whose departure no round told reads the folders again:
    ``pipeline/reread.py``; a quiet pass has none of them)."""
    cfg = await _first(emu, tmp_path)
    await emu.src.control("POST", "/stats/reset")
    stats = await run_job(cfg, full=full)
    assert stats.exit_code() == ExitCode.OK
    calls = await _calls(emu)
    box = emu.state.require_mailbox(ADELE)
    held = [f for f in box.walk() if f is not box.root and f.live and _selected_path(f.path())]
    folders = len(stats.pairs[next(iter(stats.pairs))].folders)
    assert 0 < len(held) < folders
    assert calls.get("itemDelta", 0) == len(held), (calls, len(held), folders)
    assert not any(calls.get(c) for c in WALK), calls
    assert_same(emu.state, ADELE, T_ADELE)


async def test_a_round_with_duplicate_rows_applies_each_once(emu: Any, tmp_path: Path) -> None:
    cfg = await _first(emu, tmp_path)
    ids = _inbox(emu)
    await _ops(
        emu,
        ADELE,
        [{"op": "add", "folder": "inbox", "count": 3}, {"op": "modify", "id": ids[0]}],
    )
    rule = {"kind": "delta_duplicate", "calls": ["itemDelta"], "count": 50}
    assert (await emu.src.control("PUT", "/faults", {"rules": [rule]})).status == 200
    stats = await run_job(cfg)
    fired = (await emu.src.control("GET", "/stats")).body["faults"]
    assert fired.get("delta_duplicate", 0) >= 1
    assert stats.exit_code() == ExitCode.OK
    assert (stats.changes()["created"], stats.changes()["updated"]) == (3, 1)
    assert_same(emu.state, ADELE, T_ADELE)


async def test_an_expired_link_means_a_full_listing_reconciled(emu: Any, tmp_path: Path) -> None:
    cfg = await _first(emu, tmp_path)
    await _ops(emu, ADELE, [{"op": "add", "folder": "inbox", "count": 2}])
    rule = {"kind": "delta_expire", "calls": ["itemDelta"], "count": 1}
    assert (await emu.src.control("PUT", "/faults", {"rules": [rule]})).status == 200
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    modes = Counter(f.mode for p in stats.pairs.values() for f in p.folders.values())
    assert modes["expired"] == 1
    assert stats.changes()["created"] == 2
    assert_same(emu.state, ADELE, T_ADELE)
    # the folder has a fresh link again: the next pass reads it by delta
    again = await run_job(cfg)
    assert (
        Counter(f.mode for p in again.pairs.values() for f in p.folders.values())["expired"] == 0
        and again.exit_code() == ExitCode.OK
    )


async def test_a_filter_change_makes_a_new_baseline_without_duplicates(
    emu: Any, tmp_path: Path
) -> None:
    narrow = MIRROR + '[items]\ntypes = ["IPM.Note"]\n'
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)], extra=narrow))
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    await _ops(emu, ADELE, [{"op": "add", "folder": "inbox", "count": 2}])
    wide = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)], extra=MIRROR))
    stats = await run_job(wide)
    assert stats.exit_code() == ExitCode.OK
    assert any("rules or item filters changed" in n for p in stats.pairs.values() for n in p.notes)
    assert all(f.mode == "full" for p in stats.pairs.values() for f in p.folders.values())
    assert_same(emu.state, ADELE, T_ADELE)


async def test_churn_during_a_pass_then_one_more_pass_is_exact(emu: Any, tmp_path: Path) -> None:
    cfg = await _first(emu, tmp_path)
    r = await emu.src.control("PUT", "/churn", {"rate": 40, "mailboxes": [ADELE], "seed": 3})
    assert r.status == 200, r.body
    try:
        await anyio.sleep(0.3)
        stats = await run_job(cfg)  # changes land while it reads and copies
        assert stats.exit_code() == ExitCode.OK
    finally:
        stopped = await emu.src.control("DELETE", "/churn")
    assert stopped.status == 200 and sum(stopped.body["applied"].values()) >= 10
    final = await run_job(cfg)
    assert final.exit_code() == ExitCode.OK
    assert_same(emu.state, ADELE, T_ADELE)


async def test_an_unrecorded_item_gone_again_brings_one_reading_not_every_one(
    emu: Any, tmp_path: Path
) -> None:
    """An item made and moved on between two passes: its id leaves the inbox's round with
    no record (a stray), which takes the folders read before it once more; that reading
    again told the same id again (the folder's ``removed_ids`` kept the first round's), so
    every reading took every folder once more: ``MAX_REREADS`` readings of the whole tree in
    a pass with nothing changing (churn: the quiet pass after a churn pass 10.5 s, now 8.8)."""
    from structlog.testing import capture_logs

    from copyengine.pipeline.reread import MAX_REREADS

    cfg = await _first(emu, tmp_path)
    (made,) = await _ops(emu, ADELE, [{"op": "add", "folder": "inbox", "count": 1}])
    await _ops(emu, ADELE, [{"op": "move", "id": made["ids"][0], "to": "archive"}])
    with capture_logs() as logs:
        stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    readings = [e for e in logs if e["event"] == "pass.reread"]
    assert MAX_REREADS > 1 and len(readings) == 1, readings
    assert_same(emu.state, ADELE, T_ADELE)


def test_readings_again_go_on_only_while_they_shrink() -> None:
    from copyengine.pipeline.reread import CHASE_FLOOR, converging

    assert converging([400])  # the first reading again follows the rounds whatever they were
    assert converging([400, 120]) and converging([400, 120, 30]) and converging([0, 0])
    assert not converging([120, 120]) and not converging([400, 120, 300])  # not catching up
    assert not converging([0, CHASE_FLOOR])
    # a few items (a move found; a delta = false listing again): cheap, go on as before
    assert converging([0, 1]) and converging([3, 5, 0]) and converging([0, CHASE_FLOOR - 1])


@pytest.mark.parametrize(
    "emu_config", [base_config(limits={"latency_base": 0.03, "latency_jitter": 0.01})]
)
async def test_a_pass_under_a_churn_that_never_stops_ends_and_the_next_is_exact(
    emu: Any, tmp_path: Path
) -> None:
    """Soak seed 10019 mirror: a churn pass at 20 changes a second went on for more than 13
    minutes (load 2). Each reading again copied what changed during the one before; a churn
    faster than the pass copies made each longer than the last (300 a second here: readings
    of 3.0, 4.8, 7.8 s, then the import budget's window: not ended in 180 s). The readings
    stop once one hands on no fewer items than the one before (``reread.converging``): what
    changed after is the next pass's, and the next pass (quiet) makes the target exact."""
    from structlog.testing import capture_logs

    from copyengine.pipeline.reread import MAX_REREADS

    cfg = await _first(emu, tmp_path)
    r = await emu.src.control("PUT", "/churn", {"rate": 100, "mailboxes": [ADELE], "seed": 5})
    assert r.status == 200, r.body
    try:
        await anyio.sleep(0.3)
        with anyio.fail_after(120), capture_logs() as logs:
            stats = await run_job(cfg)  # the churn never stops while it runs
        assert stats.exit_code() == ExitCode.OK
    finally:
        stopped = await emu.src.control("DELETE", "/churn")
    assert stopped.status == 200 and sum(stopped.body["applied"].values()) >= 50
    readings = [e for e in logs if e["event"] == "pass.reread"]
    put_off = [e for e in logs if e["event"] == "pass.reread_put_off"]
    assert len(readings) < MAX_REREADS and put_off, (readings, put_off)
    final = await run_job(cfg)
    assert final.exit_code() == ExitCode.OK
    assert_same(emu.state, ADELE, T_ADELE)


async def test_cutover_signs_off_every_source_item(emu: Any, tmp_path: Path) -> None:
    cfg = await _first(emu, tmp_path, extra="")
    await _ops(
        emu,
        ADELE,
        [
            {"op": "add", "folder": "inbox", "count": 2},
            {"op": "delete", "id": _inbox(emu)[0], "hard": True},
        ],
    )
    stats = await run_job(cfg, cutover=True)
    assert stats.exit_code() == ExitCode.OK
    so = stats.sign_off
    assert so is not None and so["complete"] and so["changes_captured_until"]
    (p,) = so["pairs"]
    src = emu.state.require_mailbox(ADELE).snapshot()
    selected = sum(map(selected_by_default, src["items"]))
    assert p["selected"] + sum(p["skipped"].values()) == selected
    assert p["in_target"] == p["selected"] and p["unaccounted"] == 0
    assert p["kept_deleted_at_source"] == 1 and p["extra_in_target"] == 1
    report = json.loads(cfg.report_path.read_text())
    assert report["sign_off"]["complete"] is True and report["pass"]["kind"] == "cutover"
    html = cfg.report_path.with_name(f"{cfg.report_path.stem}.html").read_text()
    assert "Sign-off" in html and "every source item is accounted for" in html
    assert "Pass 2 (cutover)" in html


async def test_cutover_is_not_complete_when_a_source_item_is_missing(
    emu: Any, tmp_path: Path
) -> None:
    cfg = await _first(emu, tmp_path)
    # a copy removed behind the engine's back, and no change at the source: a delta pass
    # cannot see it, the sign-off does
    key = emu.state.require_mailbox(ADELE).items[_inbox(emu)[0]].content.search_key
    (copy,) = _target_of(emu, T_ADELE, key)
    await _ops(emu, T_ADELE, [{"op": "delete", "id": copy.id, "hard": True}])
    refuse = {"kind": "import_reject", "calls": ["importItem"]}  # the repair cannot help
    assert (await emu.src.control("PUT", "/faults", {"rules": [refuse]})).status == 200
    stats = await run_job(cfg, cutover=True)
    assert stats.sign_off is not None and not stats.sign_off["complete"]
    assert stats.exit_code() == ExitCode.ITEMS_FAILED
    assert stats.sign_off["pairs"][0]["failed"] == 1  # the repair tried, with the reason
    assert (await emu.src.control("DELETE", "/faults")).status == 204
    fixed = await run_job(cfg, full=True)
    assert fixed.exit_code() == ExitCode.OK
    assert_same(emu.state, ADELE, T_ADELE)


# -- killed in the middle of a delta pass -------------------------------------------------------------
def _job_process(job: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "copyengine", "run", str(job), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_a_pass_killed_mid_delta_then_rerun_ends_exact(tmp_path: Path) -> None:
    cfg = base_config(profile="exchange", seed=5)
    cfg["tenants"][0]["users"][0]["mailbox"]["items"] = 300
    async with running(cfg) as (server, ep, session):
        emu_state = server.emulator
        job = write_job(tmp_path, ep, [(ADELE, T_ADELE)], extra=MIRROR)
        assert (await run_job(load_job(job))).exit_code() == ExitCode.OK
        box = emu_state.require_mailbox(ADELE)
        inbox = [i for i in box.well_known["inbox"].live_items()]
        from tests.emu import SRC_APP, SRC_SECRET, Api

        api = Api(ep, session, "contoso", SRC_APP, SRC_SECRET)
        ops: list[dict[str, Any]] = [{"op": "add", "folder": "inbox", "count": 60}]
        ops += [{"op": "modify", "id": i.id} for i in inbox[:30]]
        ops += [{"op": "move", "id": i.id, "to": "archive"} for i in inbox[30:45]]
        ops += [{"op": "delete", "id": i.id} for i in inbox[45:55]]
        r = await api.control("POST", f"/mailboxes/{q(box.id)}/changes", {"ops": ops})
        assert r.status == 200, r.body
        target = emu_state.require_mailbox(T_ADELE)
        before = target.seq
        proc = _job_process(job)
        for _ in range(1500):  # until it has made 20 changes in the target (30 s at most)
            if target.seq >= before + 20 or proc.poll() is not None:
                break
            await anyio.sleep(0.02)
        killed = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert killed, "the pass ended before it could be killed"
        again = _job_process(job)
        for _ in range(1200):
            if again.poll() is not None:
                break
            await anyio.sleep(0.1)
        assert again.returncode == 0, (again.stderr.read() if again.stderr else b"")[-2000:]
        assert_same(emu_state, ADELE, T_ADELE)


async def test_a_full_pass_reports_copies_edited_or_deleted_in_the_target(
    emu: Any, tmp_path: Path
) -> None:
    cfg = await _first(emu, tmp_path)
    ids = _inbox(emu)
    box = emu.state.require_mailbox(ADELE)
    edited, deleted = (
        _target_of(emu, T_ADELE, box.items[i].content.search_key)[0] for i in ids[:2]
    )
    await _ops(
        emu, T_ADELE, [{"op": "modify", "id": edited.id}, {"op": "delete", "id": deleted.id}]
    )
    stats = await run_job(cfg, full=True)
    assert stats.exit_code() == ExitCode.OK
    drift = [d for p in stats.pairs.values() for f in p.folders.values() for d in f.drift]
    assert sorted(d["reason"].split(" since")[0] for d in drift) == [
        "deleted in the target",
        "edited in the target",
    ]
    assert stats.changes()["created"] == 1  # the deleted copy is back, once
    key = box.items[ids[0]].content.search_key
    assert len(_target_of(emu, T_ADELE, key)) == 1  # the edited copy is kept, not duplicated


async def test_a_target_folder_deleted_between_passes_is_reported_then_made_again(
    emu: Any, tmp_path: Path
) -> None:
    cfg = await _first(emu, tmp_path)
    src_folder = emu.state.require_mailbox(ADELE).well_known["inbox"].live_children()[0]
    path = src_folder.path()
    gone = emu.state.require_mailbox(T_ADELE).folder_by_path(path)
    await _ops(emu, T_ADELE, [{"op": "deleteFolder", "id": gone.id}])
    await _ops(emu, ADELE, [{"op": "add", "folder": src_folder.id, "count": 1}])
    # the mailbox has empty folders (not read, so with no link): the delta pass reads both
    # trees fresh instead of reusing the mapping, finds the target folder gone and makes it
    # again (a pass that reuses the mapping cannot know: its import fails, saying "--full")
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    notes = [n for p in stats.pairs.values() for n in p.notes]
    assert any("was deleted in the target: made again" in n for n in notes), notes
    assert_same(emu.state, ADELE, T_ADELE)
    fixed = await run_job(cfg, full=True)
    assert fixed.exit_code() == ExitCode.OK
    assert_same(emu.state, ADELE, T_ADELE)


async def test_a_target_folder_deleted_under_a_reused_mapping_is_made_again_in_the_pass(
    emu: Any, tmp_path: Path
) -> None:
    """Every selected folder holds items (so each has a link): a quiet folder round reuses
    the stored mapping, reads neither tree, and meets the target folder gone only when an
    import answers ``ErrorFolderNotFound``. Nothing was made: the item is not failed; the
    pair goes once more within the pass (``PairRunner._remake``), reads both trees, makes
    the folder again and copies every item of it, and says so (before: the import failed,
    exit 1, and only the next pass made the folder again)."""
    inbox = emu.state.require_mailbox(ADELE).well_known["inbox"]
    src_folder = max(inbox.live_children(), key=lambda f: f.live)
    assert src_folder.live > 0
    only = MIRROR + f'[folders]\ninclude = ["^{re.escape(src_folder.path())}$"]\n'
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)], extra=only))
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    gone = emu.state.require_mailbox(T_ADELE).folder_by_path(src_folder.path())
    assert gone is not None
    await _ops(emu, ADELE, [{"op": "add", "folder": src_folder.id, "count": 1}])
    await _ops(emu, T_ADELE, [{"op": "deleteFolder", "id": gone.id}])
    await emu.src.control("POST", "/stats/reset")
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK, stats.exit_code()
    assert not [f for p in stats.pairs.values() for fs in p.folders.values() for f in fs.failed]
    notes = [n for p in stats.pairs.values() for n in p.notes]
    assert any("was deleted in the target: made again" in n for n in notes), notes
    made = emu.state.require_mailbox(T_ADELE).folder_by_path(src_folder.path())
    assert made is not None and made.id != gone.id

    def keys(f: Any) -> list[bytes]:
        return sorted(i.content.search_key for i in f.live_items())

    assert keys(made) == keys(src_folder) and len(keys(made)) == src_folder.live
    (pair,) = stats.pairs.values()
    (fs,) = [f for f in pair.folders.values() if f.source_items]
    assert (fs.not_attempted, fs.unknown, fs.copied) == (0, [], src_folder.live), fs.as_dict()
    again = await run_job(cfg)  # nothing left for the next pass
    assert again.exit_code() == ExitCode.OK
    assert again.changes()["created"] == 0
    assert keys(made) == keys(src_folder)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_six_passes_of_random_changes_stay_exact(emu: Any, tmp_path: Path, seed: int) -> None:
    """A seeded mix between passes: the churn's item changes (new, edited, deleted, moved)
    and folders renamed, created and moved; after every pass the target equals the source."""
    rng = random.Random(seed)
    cfg = await _first(emu, tmp_path)
    box = emu.state.require_mailbox(ADELE)

    def user_folders() -> list[Any]:
        return [
            f
            for f in box.walk()
            if f is not box.root
            and not f.hidden
            and not f.well_known
            and f.type in ("IPF.Note", "")
        ]

    for rnd in range(6):
        ops: list[dict[str, Any]] = []
        if user_folders() and rng.random() < 0.5:
            f = rng.choice(user_folders())
            ops.append({"op": "renameFolder", "id": f.id, "name": f"{f.name} r{rnd}"})
        if rng.random() < 0.5:
            ops.append({"op": "createFolder", "parent": "inbox", "name": f"New {rnd}"})
        if ops:
            await _ops(emu, ADELE, ops)
        churn = {"rate": 200, "mailboxes": [ADELE], "seed": seed * 10 + rnd}
        assert (await emu.src.control("PUT", "/churn", churn)).status == 200
        await anyio.sleep(0.2)
        assert (await emu.src.control("DELETE", "/churn")).status == 200
        if user_folders() and rng.random() < 0.3:
            f = rng.choice(user_folders())
            await _ops(
                emu,
                ADELE,
                [{"op": "moveFolder", "id": f.id, "to": rng.choice(["archive", "inbox"])}],
            )
        stats = await run_job(cfg)
        assert stats.exit_code() == ExitCode.OK, (rnd, stats.as_dict()["pairs"][0]["notes"])
        assert_same(emu.state, ADELE, T_ADELE)


async def test_a_quiet_pass_without_delta_lists_each_folder_once(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``delta = false``, nothing changed: each source folder listed once (one page: fewer
    than 250 items each), none again (no listing returned fewer items than the walk
    counted, no key seen twice: ``reread``); a ``$skip`` listing asked from one item back
    costs no request more (``graph.skippaging``)."""
    from copyengine.graph.client import GraphClient

    cfg = await _first(emu, tmp_path, MIRROR + "delta = false\n")
    source = emu.state.require_mailbox(ADELE).id
    listed: list[str] = []
    real = GraphClient._get

    async def spy(self: Any, name: str, url: str, mailbox_id: Any, *a: Any, **k: Any) -> Any:
        if name == "listItems" and mailbox_id == source:
            listed.append(url)
        return await real(self, name, url, mailbox_id, *a, **k)

    monkeypatch.setattr(GraphClient, "_get", spy)
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    folders = len(stats.pairs[next(iter(stats.pairs))].folders)
    assert len(listed) == folders, (len(listed), folders)
    assert_same(emu.state, ADELE, T_ADELE)
