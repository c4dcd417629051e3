from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.histories import replay

pytestmark = pytest.mark.anyio

MK = ("ops", [{"op": "createFolder", "parent": "@/Inbox", "name": "Empty"},
              {"op": "createFolder", "parent": "@/", "name": "E2"}])


def trig(ops: list[dict[str, Any]], folder: str = "@/Sent Items") -> Any:
    return ("trigger", {"calls": ["itemDelta"], "folder": folder, "after": 1, "ops": ops})


MOVE_SEEN = {"op": "move", "id": "#/Sent Items", "to": "@/Inbox/Empty"}
MOVE_UNSEEN = {"op": "move", "id": "#/Inbox", "to": "@/Inbox/Empty"}
SCRIPTS = {
    "s1-del-empty-and-departure": [MK, ("pass", "delta"), trig([
        {"op": "deleteFolder", "id": "@/E2"},
        {"op": "move", "id": "#/Sent Items", "to": "@/Archive"}]), ("pass", "delta"), ("pass", "delta")],
    "s2-move-in-then-delete": [MK, ("pass", "delta"), trig([MOVE_SEEN,
        {"op": "deleteFolder", "id": "@/Inbox/Empty"}]), ("pass", "delta"), ("pass", "delta")],
    "s3-move-in-and-movefolder": [MK, ("pass", "delta"), trig([MOVE_SEEN,
        {"op": "moveFolder", "id": "@/Inbox/Empty", "to": "@/Archive"}]), ("pass", "delta"), ("pass", "delta")],
    "s3u-move-in-and-movefolder": [MK, ("pass", "delta"), trig([MOVE_UNSEEN,
        {"op": "moveFolder", "id": "@/Inbox/Empty", "to": "@/Archive"}]), ("pass", "delta"), ("pass", "delta")],
    "s4-rename": [MK, ("pass", "delta"), trig([MOVE_UNSEEN,
        {"op": "renameFolder", "id": "@/Inbox/Empty", "name": "Other"}]), ("pass", "delta"), ("pass", "delta")],
    "s5-drift-del-target": [MK, ("pass", "delta"), ("drift", [{"op": "deleteFolder", "id": "@/Inbox/Empty"}]),
        trig([MOVE_UNSEEN]), ("pass", "delta"), ("pass", "delta")],
    "s6-movefolder-between": [MK, ("pass", "delta"), ("ops", [{"op": "moveFolder", "id": "@/Inbox/Empty", "to": "@/Archive"}]),
        trig([MOVE_SEEN]), ("pass", "delta"), ("pass", "delta")],
    "s7-expire": [MK, ("pass", "delta"), ("expire",), trig([MOVE_UNSEEN]), ("pass", "delta"), ("pass", "delta")],
    "s8-out-and-back": [MK, ("pass", "delta"), trig([MOVE_UNSEEN]), ("pass", "delta"),
        trig([{"op": "move", "id": "#/Inbox/Empty", "to": "@/E2"}], "@/Inbox"), ("pass", "delta"), ("pass", "delta")],
    "s9-cutover": [MK, ("pass", "delta"), trig([MOVE_UNSEEN]), ("pass", "cutover")],
    "s10-full-unseen-e2": [MK, ("pass", "delta"), trig([{"op": "move", "id": "#/Inbox", "to": "@/E2"}], "@/Archive"), ("pass", "full"), ("pass", "delta")],
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("deletions", ["mirror", "keep"])
@pytest.mark.parametrize("name", list(SCRIPTS))
async def test_scratch(tmp_path: Path, deletions: str, name: str) -> None:
    h = await replay(deletions, SCRIPTS[name], tmp_path)
    assert not h.failures(), h.text()
    assert all(p.live_removed == [] for p in h.passes), h.text()
