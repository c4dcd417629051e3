"""An item the source's user moves into a folder that was empty at the pass's folder listing,
after the listing and before the item rounds, is a move: the copy follows it, nothing is
deleted or kept behind (review 2 of issue 26, finding 1: a pass that skipped the rounds of
folders the listing counted empty saw only the item leaving its old folder and took the
move for a deletion: under ``mirror`` the copy was deleted and the pass ended with the item
missing; a folder's count is also no promise of what its item delta lists)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from copyengine.pipeline import passes
from copyengine.wiring import run_job
from tests.test_incremental import (
    ADELE,
    MIRROR,
    T_ADELE,
    _first,
    _inbox,
    _ops,
    _target_of,
    assert_same,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("cutover", "deletions"),
    [(False, "mirror"), (False, "keep"), (True, "mirror"), (True, "keep")],
)
async def test_a_move_into_a_folder_empty_at_the_listing_is_a_move(
    emu: Any, tmp_path: Path, monkeypatch: Any, cutover: bool, deletions: str
) -> None:
    (later,) = await _ops(emu, ADELE, [{"op": "createFolder", "parent": None, "name": "Later"}])
    cfg = await _first(emu, tmp_path, extra=MIRROR if deletions == "mirror" else "")
    # the tree changes, so the next pass lists the folders afresh (every count live)
    await _ops(emu, ADELE, [{"op": "createFolder", "parent": None, "name": "Other"}])
    item = _inbox(emu)[0]
    key = emu.state.require_mailbox(ADELE).items[item].content.search_key
    real_walk = passes.MailboxPass._walk
    moved: list[int] = []

    async def walk(self: Any, stored: Any, tree: Any = None) -> Any:
        if not moved and self.scope and tree is not None:
            moved.append(1)  # the user moves an inbox item into Later just after the listing
            await _ops(emu, ADELE, [{"op": "move", "id": item, "to": later["id"]}])
        return await real_walk(self, stored, tree)

    monkeypatch.setattr(passes.MailboxPass, "_walk", walk)
    stats = await run_job(cfg, cutover=cutover)
    assert moved
    assert_same(emu.state, ADELE, T_ADELE)
    changes = stats.changes()
    assert changes["deleted"] == 0 and changes["kept"] == 0 and changes["moved"] == 1, changes
    assert [c.folder.path() for c in _target_of(emu, T_ADELE, key)] == ["/Later"]
