"""Issue 26: a folder the pass's folder listing counts empty (a live ``totalItemCount`` of
0), with nothing of it in the state, gets no first item round (a request per folder per
pair, most folders of a mailbox being empty); it gets no link either, so the next pass lists
it from the start and nothing that arrived meanwhile is missed. A folder rebuilt from the
stored mapping (its count not known) is read as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from copyengine.graph.models import Folder, FolderNode
from copyengine.pipeline.produce import listed_empty
from copyengine.pipeline.work import FolderJob
from copyengine.plan.changes import parse_target_path
from copyengine.plan.folders import FolderPlan
from copyengine.report import FolderStats
from copyengine.state import ItemRecord, Status
from copyengine.wiring import run_job
from tests.test_incremental import ADELE, T_ADELE, _first, _ops, assert_same

pytestmark = pytest.mark.anyio


async def _calls(emu: Any) -> dict[str, int]:
    body = (await emu.src.control("GET", "/stats")).body
    return {call: sum(by_status.values()) for call, by_status in body["requests"].items()}


def _selected_folders(emu: Any, upn: str) -> tuple[int, int]:
    """(folders with items, folders) among the source's folders the default rules select."""
    from tests.test_incremental import _selected_path

    snap = emu.state.require_mailbox(upn).snapshot()
    paths = {f["path"] for f in snap["folders"] if _selected_path(f["path"])}
    full = {r["folderPath"] for r in snap["items"] if r["folderPath"] in paths}
    return len(full), len(paths)


async def test_an_empty_folder_gets_no_first_round_and_its_items_come_next_pass(
    emu: Any, tmp_path: Path
) -> None:
    (made,) = await _ops(emu, ADELE, [{"op": "createFolder", "parent": "inbox", "name": "Later"}])
    with_items, folders = _selected_folders(emu, ADELE)
    assert with_items < folders, "the layout has empty folders"
    await emu.src.control("POST", "/stats/reset")
    cfg = await _first(emu, tmp_path)
    # one first round per folder with items (one page each here), none for the empty ones
    assert (await _calls(emu))["itemDelta"] == with_items
    # items arrive in a folder that was empty at the first pass: the next pass copies them
    await _ops(emu, ADELE, [{"op": "add", "folder": made["id"], "count": 3}])
    stats = await run_job(cfg)
    assert stats.exit_code() == 0
    assert stats.changes()["created"] == 3
    assert_same(emu.state, ADELE, T_ADELE)
    # and a pass with nothing changed copies nothing and loses nothing
    stats = await run_job(cfg)
    assert stats.exit_code() == 0 and stats.changes()["created"] == 0
    assert_same(emu.state, ADELE, T_ADELE)


async def test_an_empty_folder_under_an_unchanged_tree_is_read_and_its_items_copied(
    emu: Any, tmp_path: Path
) -> None:
    """A pass whose folder tree did not change takes it from the stored mapping, where a
    folder's count is not known: a folder without a link gets its first round there (as
    cheap as a round from a link), and items that arrive later are copied."""
    (made,) = await _ops(emu, ADELE, [{"op": "createFolder", "parent": "inbox", "name": "Later"}])
    _, folders = _selected_folders(emu, ADELE)
    cfg = await _first(emu, tmp_path)
    await emu.src.control("POST", "/stats/reset")
    stats = await run_job(cfg)  # nothing changed
    assert stats.exit_code() == 0 and stats.changes()["created"] == 0
    assert (await _calls(emu))["itemDelta"] <= folders  # a round per folder at most
    await _ops(emu, ADELE, [{"op": "add", "folder": made["id"], "count": 2}])
    stats = await run_job(cfg)
    assert stats.exit_code() == 0 and stats.changes()["created"] == 2
    assert_same(emu.state, ADELE, T_ADELE)


def _job(count: int, counted: bool, link: str | None = None) -> FolderJob:
    folder = Folder("f1", "Later", None, "", None, 0, count, counted=counted)
    plan = FolderPlan(FolderNode(folder, ("Later",), 1), parse_target_path("/Later"), "")
    target = Folder("t1", "Later", None, "", None, 0, 0)
    mode = "delta" if link else "full"
    return FolderJob(plan, target, FolderStats("/Later"), False, mode=mode, link=link)


def test_only_a_live_count_of_zero_with_no_records_and_no_link_skips_the_round() -> None:
    record = ItemRecord("i1", "f1", Status.DONE, b"k", "t1", "c1")
    assert listed_empty(_job(0, counted=True), {})
    assert not listed_empty(_job(0, counted=False), {})  # rebuilt from the state: not known
    assert not listed_empty(_job(2, counted=True), {})
    assert not listed_empty(_job(0, counted=True), {"i1": record})  # its records: removals
    assert not listed_empty(_job(0, counted=True, link="L"), {})
    expired = _job(0, counted=True)
    expired.expired = True
    assert not listed_empty(expired, {})
    assert Folder.from_json({"id": "x", "totalItemCount": 0}).counted
    assert not Folder.from_json({"id": "x"}).counted
