"""A pair's setup in few state round trips (issue 26): its folder mappings written in one
transaction, its item records read in one statement grouped by folder (folder by folder
past ``READ_AT_ONCE``), and the copy exact either way, first pass and later ones."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from copyengine.config import load_job
from copyengine.exitcodes import ExitCode
from copyengine.pipeline import produce
from copyengine.state.sql import SqlStore
from copyengine.wiring import run_job
from tests.jobs import write_job
from tests.test_incremental import ADELE, MIRROR, T_ADELE, _ops, assert_same

pytestmark = pytest.mark.anyio
COUNTED = (
    "folder_mapped",
    "map_folders",
    "forget_folder",
    "items_in_folder",
    "items_in_folders",
    "folders",
)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """How often a run calls each of the store's setup methods."""
    seen: Counter[str] = Counter()

    def counting(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def call(self: Any, *a: Any, **kw: Any) -> Any:
            seen[name] += 1
            return await fn(self, *a, **kw)

        return call

    for name in COUNTED:
        monkeypatch.setattr(SqlStore, name, counting(name, getattr(SqlStore, name)))
    yield seen


async def test_a_pairs_setup_reads_and_writes_at_once(
    emu: Any, tmp_path: Path, calls: Counter[str]
) -> None:
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)], extra=MIRROR))
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    assert_same(emu.state, ADELE, T_ADELE)
    folders = len(stats.pairs[next(iter(stats.pairs))].folders)
    assert folders > 10
    # the journal of the first pass's creations in one transaction before the first is made
    # (``passes._intents``), every mapping (new folders and adopted ones) with that journal
    # forgotten in one more (none a statement of its own), every folder's records in one read
    assert calls == Counter(folders=1, map_folders=2, items_in_folders=1), calls
    calls.clear()
    box = emu.state.require_mailbox(ADELE)
    user = box.well_known["inbox"].live_children()
    await _ops(
        emu,
        ADELE,
        [
            {"op": "add", "folder": "inbox", "count": 3},
            {"op": "renameFolder", "id": user[0].id, "name": user[0].name + " renamed"},
            {"op": "createFolder", "parent": "inbox", "name": "Fresh"},
        ],
    )
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    assert_same(emu.state, ADELE, T_ADELE)
    # the new folder's journal; the rename recorded as soon as it is made; the new folder
    # with the rest and its journal forgotten
    assert calls == Counter(folders=1, map_folders=3, items_in_folders=1), calls


async def test_a_large_mailbox_is_read_folder_by_folder(
    emu: Any, tmp_path: Path, calls: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)], extra=MIRROR))
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    monkeypatch.setattr(produce, "READ_AT_ONCE", 3)  # fewer than the mailbox holds
    calls.clear()
    ids = [i.id for i in emu.state.require_mailbox(ADELE).well_known["inbox"].live_items()]
    await _ops(emu, ADELE, [{"op": "modify", "id": ids[0]}, {"op": "delete", "id": ids[1]}])
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    assert stats.changes()["updated"] == 1 and stats.changes()["deleted"] == 1
    assert_same(emu.state, ADELE, T_ADELE)
    folders = len(stats.pairs[next(iter(stats.pairs))].folders)
    # each reading of the pass tries the pair's records at once (too many), then reads them
    # folder by folder: the pass's reading, and the one again of the folders read before the
    # deletion was seen (``pipeline/reread.py``: it could have been a move during the pass)
    readings = calls["items_in_folders"]
    assert readings == 2, calls
    assert calls["items_in_folder"] == folders * readings, calls
