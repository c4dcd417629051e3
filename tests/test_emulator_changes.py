"""A source that changes (issue 10 §3): owner-side operations through the control API, seen
by item and folder delta exactly as Graph reports them; a seeded churn."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.emu import base_config, running

pytestmark = pytest.mark.anyio
ADELE = "adele@contoso.example"


async def _round(api: Any, url: str) -> tuple[list[dict[str, Any]], str]:
    rows: list[dict[str, Any]] = []
    for _ in range(1000):
        r = await api.get(url, headers={"Prefer": "odata.maxpagesize=50"})
        assert r.status == 200, r.body
        rows.extend(r.body["value"])
        if "@odata.deltaLink" in r.body:
            return rows, r.body["@odata.deltaLink"]
        url = r.body["@odata.nextLink"]
    raise AssertionError("delta did not end")


async def _ops(emu: Any, mbx: str, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = await emu.src.control("POST", f"/mailboxes/{mbx}/changes", {"ops": ops})
    assert r.status == 200, r.body
    return list(r.body["results"])


async def test_item_changes_are_reported_by_delta_as_graph_does(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(ADELE)
    m = emu.src.m(mbx)
    box = emu.state.require_mailbox(ADELE)
    items = [i.id for i in box.well_known["inbox"].live_items()]
    _, inbox_link = await _round(emu.src, m + "/folders/inbox/items/delta")
    _, archive_link = await _round(emu.src, m + "/folders/archive/items/delta")
    before = {
        i.id: (i.change_key, i.content.search_key, i.content.digest()) for i in box.items.values()
    }
    res = await _ops(
        emu,
        mbx,
        [
            {"op": "add", "folder": "inbox", "count": 2},
            {"op": "modify", "id": items[0]},
            {"op": "delete", "id": items[1]},
            {"op": "delete", "id": items[2], "hard": True},
            {"op": "move", "id": items[3], "to": "archive"},
        ],
    )
    added, modified, soft, hard, moved = res
    rows, _ = await _round(emu.src, inbox_link)
    ids = {r["id"]: r for r in rows}
    assert set(added["ids"]) <= set(ids) and items[0] in ids
    removed = {r["id"] for r in rows if "@removed" in r}
    assert removed == {items[1], items[2], items[3]}
    edited = box.items[items[0]]  # same id, same search key, new change key and content
    assert modified["changeKey"] == edited.change_key != before[items[0]][0]
    assert edited.content.search_key == before[items[0]][1]
    assert edited.content.digest() != before[items[0]][2]
    arch, _ = await _round(emu.src, archive_link)
    assert [r["id"] for r in arch] == [moved["newId"]]  # moved: a new id in the new folder
    assert box.items[moved["newId"]].content.search_key == before[items[3]][1]
    deletions = box.well_known["recoverableitemsdeletions"]
    assert soft["newId"] in {i.id for i in deletions.live_items()}  # soft: recoverable
    assert hard["id"] not in box.items and not any(
        i.content.search_key == before[items[2]][1] for i in box.items.values()
    )


async def test_folder_changes_are_reported_by_folder_delta(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(ADELE)
    m = emu.src.m(mbx)
    _, link = await _round(emu.src, m + "/folders/delta")
    (made,) = await _ops(emu, mbx, [{"op": "createFolder", "parent": "inbox", "name": "Fresh"}])
    box = emu.state.require_mailbox(ADELE)
    projects = next(f for f in box.walk() if f.names() == ["Inbox", "Projects"])
    receipts = next(f for f in box.walk() if f.names() == ["Inbox", "Receipts"])
    await _ops(
        emu,
        mbx,
        [
            {"op": "renameFolder", "id": projects.id, "name": "Projects (old)"},
            {"op": "moveFolder", "id": made["id"], "to": "archive"},
            {"op": "deleteFolder", "id": receipts.id},
        ],
    )
    rows, _ = await _round(emu.src, link)
    by = {r["id"]: r for r in rows}
    assert by[projects.id]["displayName"] == "Projects (old)"
    assert by[made["id"]]["parentFolderId"] == box.well_known["archive"].id
    assert "@removed" in by[receipts.id]
    bad = await emu.src.control("POST", f"/mailboxes/{mbx}/changes", {"ops": [{"op": "fly"}]})
    assert bad.status == 400 and "ops[0]" in bad.body["error"]


async def test_seeded_churn_changes_mailboxes_while_it_runs(emu: Any) -> None:
    before = emu.state.require_mailbox(ADELE).snapshot()
    r = await emu.src.control("PUT", "/churn", {"rate": 400, "mailboxes": [ADELE], "seed": 7})
    assert r.status == 200
    # until 20 changes applied (0.05 s at rate 400 on a quiet machine), not a fixed 0.3 s: a
    # loaded machine's churn task runs less often, bounded at 30 s
    for _ in range(600):
        if sum((await emu.src.control("GET", "/churn")).body["applied"].values()) >= 20:
            break
        await anyio.sleep(0.05)
    r = await emu.src.control("DELETE", "/churn")
    applied = r.body["applied"]
    assert sum(applied.values()) >= 20 and set(applied) <= {"add", "modify", "delete", "move"}
    after = emu.state.require_mailbox(ADELE).snapshot()
    assert after["items"] != before["items"]
    still = (await emu.src.control("GET", "/churn")).body
    assert still["churning"] is False
    bad = await emu.src.control("PUT", "/churn", {"rate": 1, "mailboxes": ["nobody@x.example"]})
    assert bad.status == 400


async def test_churn_at_rate_0_is_off(emu: Any) -> None:
    """An operator stopping a churn with ``"rate": 0`` (was: 400, the churn left running)."""
    r = await emu.src.control("PUT", "/churn", {"rate": 400, "mailboxes": [ADELE], "seed": 7})
    assert r.status == 200 and r.body["churning"] is True
    await anyio.sleep(0.2)
    r = await emu.src.control("PUT", "/churn", {"rate": 0, "mailboxes": [ADELE]})
    assert r.status == 200 and r.body["churning"] is False
    assert sum(r.body["applied"].values()) > 0
    assert (await emu.src.control("GET", "/churn")).body["churning"] is False
    before = emu.state.require_mailbox(ADELE).snapshot()
    await anyio.sleep(0.1)
    assert emu.state.require_mailbox(ADELE).snapshot() == before
    # off when nothing churns, with or without mailboxes; below 0 still refused
    assert (await emu.src.control("PUT", "/churn", {"rate": 0})).status == 200
    assert (
        await emu.src.control("PUT", "/churn", {"rate": -1, "mailboxes": [ADELE]})
    ).status == 400


async def test_churn_from_the_emulator_configuration() -> None:
    cfg = base_config()
    cfg["emulator"]["churn"] = {"rate": 300, "mailboxes": [ADELE], "mix": {"add": 1}}
    async with running(cfg) as (server, _, _):
        n = len(server.emulator.require_mailbox(ADELE).items)
        # until more than 10 items added (rate 300: 0.04 s quiet), bounded, not a fixed 0.3 s
        for _ in range(600):
            if len(server.emulator.require_mailbox(ADELE).items) > n + 10:
                break
            await anyio.sleep(0.05)
        assert len(server.emulator.require_mailbox(ADELE).items) > n + 10


async def test_a_copy_is_a_second_item_with_the_same_search_key(emu: Any) -> None:
    """MAPI CopyTo / Outlook's "Copy to folder": a new id and change key, the same content
    and search key, the original untouched; into another folder or the item's own."""
    mbx = await emu.src.mailbox_id(ADELE)
    m = emu.src.m(mbx)
    box = emu.state.require_mailbox(ADELE)
    first = next(box.well_known["inbox"].live_items())
    ck, key = first.change_key, first.content.search_key
    _, link = await _round(emu.src, m + "/folders/archive/items/delta")
    there, here = await _ops(
        emu,
        mbx,
        [
            {"op": "copy", "id": first.id, "to": "archive"},
            {"op": "copy", "id": first.id, "to": "inbox"},
        ],
    )
    rows, _ = await _round(emu.src, link)
    assert [r["id"] for r in rows] == [there["newId"]]  # an addition, nothing removed
    for made in (there, here):
        it = box.items[made["newId"]]
        assert it.id != first.id and it.change_key != ck
        assert it.content.search_key == key and it.content.digest() == first.content.digest()
    assert box.items[first.id].change_key == ck and box.items[here["newId"]].folder is first.folder


async def test_a_churn_says_where_each_item_it_moved_went(emu: Any) -> None:
    """``Churn.moved``: per move, the row (path, search key, type, created) the snapshot
    gives the item where it went; a test's oracle tells from it that an item passed through
    a folder between two snapshots (soak seed 20103 keep: an item whose copy was kept came
    back into the selection and went again within one pass)."""
    import random

    from copyengine.emulator.changes import Churn

    box = emu.state.require_mailbox(ADELE)
    churn = Churn([box], 1.0, mix={"move": 1.0}, seed=3)
    rng = random.Random(3)
    for _ in range(8):
        churn.step(rng)
    assert len(churn.moved) == churn.applied["move"] == 8
    where = {r["searchKey"]: r for r in box.snapshot()["items"]}
    last = {m["searchKey"]: m for m in churn.moved}  # an item moved twice: where it is now
    for key, m in last.items():
        now = where[key]
        assert (m["folderPath"], m["type"], m["createdDateTime"]) == (
            now["folderPath"],
            now["type"],
            now["createdDateTime"],
        )
