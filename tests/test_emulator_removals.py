"""The emulator's record of what Graph calls removed (``/_emulator/removals``: the engine's
deletions, never the owner's changes through the control API) and owner changes timed to a
call (``/_emulator/triggers``): what the randomized histories use to hold every pass to "no
copy of a live item removed" (tests/histories.py ``removed_live``)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.emu import q

pytestmark = pytest.mark.anyio
ADELE = "adele@contoso.example"


def _key(it: Any) -> str:
    return base64.b64encode(it.content.search_key).decode()


async def test_graph_removals_are_recorded_and_owner_changes_are_not(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(ADELE)
    m = emu.src.m(mbx)
    box = emu.state.require_mailbox(ADELE)
    soft, hard, owner = list(box.well_known["inbox"].live_items())[:3]
    r = await emu.src.control("POST", f"/mailboxes/{mbx}/changes", {"ops": [
        {"op": "delete", "id": owner.id, "hard": True},
        {"op": "createFolder", "parent": "inbox", "name": "Gone"},
    ]})  # fmt: skip
    assert r.status == 200, r.body
    gone = r.body["results"][1]["id"]
    r = await emu.src.control("POST", f"/mailboxes/{mbx}/changes", {"ops": [
        {"op": "add", "folder": gone, "count": 2},
    ]})  # fmt: skip
    inside = list(box.folders[gone].live_items())
    base = f"{m}/folders/inbox/items/"
    assert (
        await emu.src.call("DELETE", base + q(soft.id) + "?disposalType=softDelete")
    ).status == 204
    assert (
        await emu.src.call("DELETE", base + q(hard.id) + "?disposalType=hardDelete")
    ).status == 204
    assert (await emu.src.call("DELETE", f"{m}/folders/{q(gone)}/$ref")).status == 204
    r = await emu.src.control("GET", f"/removals?mailbox={ADELE}")
    got = [(e["call"], e["disposal"], e["folderPath"], e["searchKey"]) for e in r.body["removals"]]
    assert got == [
        ("deleteItem", "softDelete", "/Inbox", _key(soft)),
        ("deleteItem", "hardDelete", "/Inbox", _key(hard)),
        *[("deleteFolder", "hardDelete", "/Inbox/Gone", _key(i)) for i in inside],
    ]
    assert len(inside) == 2 and _key(owner) not in {g[3] for g in got}  # the owner's: not
    other = await emu.src.control("GET", "/removals?mailbox=bianca@contoso.example")
    assert other.body["removals"] == []
    assert (await emu.src.control("GET", "/removals?mailbox=nobody@x")).status == 404
    assert (await emu.src.control("DELETE", "/removals")).status == 204
    assert (await emu.src.control("GET", "/removals")).body == {"removals": [], "dropped": 0}


async def test_a_trigger_moves_an_item_when_the_nth_call_arrives(emu: Any) -> None:
    """Applied before the call it waits for is answered: that call already sees the move."""
    mbx = await emu.src.mailbox_id(ADELE)
    m = emu.src.m(mbx)
    box = emu.state.require_mailbox(ADELE)
    it = next(iter(box.well_known["inbox"].live_items()))
    key = it.content.search_key
    ops = [{"op": "move", "id": it.id, "to": "archive"}]
    bad = await emu.src.control("PUT", "/triggers", {"mailbox": ADELE, "after": 0, "ops": ops})
    assert bad.status == 400 and "triggers.after" in bad.body["error"]
    bad = await emu.src.control("PUT", "/triggers", {"mailbox": "nobody@x", "ops": ops})
    assert bad.status == 400 and "triggers.mailbox" in bad.body["error"]
    r = await emu.src.control(
        "PUT", "/triggers", {"mailbox": ADELE, "calls": ["listItems"], "after": 2, "ops": ops}
    )
    assert r.status == 200 and r.body["fired"] is False
    archive = box.well_known["archive"]
    n = len(list(archive.live_items()))
    await emu.src.get(f"{m}/folders/inbox/items")  # the first: nothing moves
    assert it.id in box.items and len(list(archive.live_items())) == n
    second = await emu.src.get(f"{m}/folders/archive/items?$count=true")  # moved before it
    assert second.body["@odata.count"] == n + 1
    assert any(i.content.search_key == key for i in archive.live_items())
    r = await emu.src.control("GET", "/triggers")
    (t,) = r.body["triggers"]
    assert t["fired"] is True and t["seen"] == 2 and t["error"] is None
    await emu.src.get(f"{m}/folders/inbox/items")  # once
    assert len([i for i in box.items.values() if i.content.search_key == key]) == 1
    assert (await emu.src.control("DELETE", "/triggers")).status == 204
    assert (await emu.src.control("GET", "/triggers")).body == {"triggers": []}
    # "folder": only the calls on that folder count
    it = next(iter(archive.live_items()))
    ops = [{"op": "move", "id": it.id, "to": "inbox"}]
    inbox = box.well_known["inbox"].id
    body = {"mailbox": ADELE, "calls": ["listItems"], "folder": inbox, "ops": ops}
    assert (await emu.src.control("PUT", "/triggers", body)).status == 200
    await emu.src.get(f"{m}/folders/{q(archive.id)}/items")
    assert it.id in box.items
    await emu.src.get(f"{m}/folders/{q(inbox)}/items")
    assert it.id not in box.items
    (t,) = (await emu.src.control("GET", "/triggers")).body["triggers"]
    assert t["fired"] and t["seen"] == 1 and t["folder"] == inbox
