"""The emulator answers the spellings real clients send (issue 10 §1): clients generated from
Graph's metadata call delta as an OData function (``delta()``) and spell request properties
as the metadata does (``ItemIds``); Graph reads property names case-insensitively."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.anyio
ADELE = "adele@contoso.example"
T_ADELE = "adele@fabrikam.example"


async def _round(api: Any, url: str) -> tuple[list[dict[str, Any]], str]:
    """One whole delta round: every row, and the delta link that closes it."""
    rows: list[dict[str, Any]] = []
    for _ in range(1000):
        r = await api.get(url, headers={"Prefer": "odata.maxpagesize=7"})
        assert r.status == 200, (url, r.body)
        rows.extend(r.body["value"])
        if "@odata.deltaLink" in r.body:
            return rows, r.body["@odata.deltaLink"]
        url = r.body["@odata.nextLink"]
    raise AssertionError("delta did not end")


@pytest.mark.parametrize(
    "tail",
    ["/folders/delta", "/folders/inbox/childFolders/delta", "/folders/inbox/items/delta"],
)
async def test_delta_as_an_odata_function_serves_identical_rounds(emu: Any, tail: str) -> None:
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    plain, link = await _round(emu.src, m + tail)
    function, flink = await _round(emu.src, m + tail + "()")
    assert function == plain and len(plain) > 0
    assert "delta()" in flink and "$deltatoken=" in flink
    # the function spelling's delta link works for the next round like the plain one
    again, _ = await _round(emu.src, flink)
    assert again == (await _round(emu.src, link))[0]


async def test_export_items_with_the_metadata_spelling(emu: Any) -> None:
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    ids = list(emu.state.require_mailbox(ADELE).items)[:3]
    for body in ({"ItemIds": ids}, {"itemids": ids}, {"ITEMIDS": ids}):
        r = await emu.src.post(m + "/exportItems", body)
        assert r.status == 200, r.body
        assert sorted(v["itemId"] for v in r.body["value"]) == sorted(ids)
    twice = await emu.src.post(m + "/exportItems", {"itemIds": ids, "ItemIds": ids})
    assert twice.status == 400


async def test_folder_and_import_bodies_in_any_casing(emu: Any) -> None:
    src = emu.src.m(await emu.src.mailbox_id(ADELE))
    dst_id = await emu.dst.mailbox_id(T_ADELE)
    dst = emu.dst.m(dst_id)
    r = await emu.dst.post(dst + "/folders", {"DisplayName": "Metadata", "Type": "IPF.Note"})
    assert r.status == 201 and r.body["displayName"] == "Metadata", r.body
    folder = r.body["id"]
    r = await emu.dst.call("PATCH", f"{dst}/folders/{folder}", json={"DISPLAYNAME": "Renamed"})
    assert r.status == 200 and r.body["displayName"] == "Renamed"
    item = next(iter(emu.state.require_mailbox(ADELE).items))
    exp = await emu.src.post(src + "/exportItems", {"ItemIds": [item]})
    data = exp.body["value"][0]["data"]
    s = await emu.dst.post(dst + "/createImportSession")
    r = await emu.dst.post(
        s.body["importUrl"], {"folderId": folder, "mode": "create", "data": data}, auth=False
    )
    assert r.status == 200 and set(r.body) == {"itemId", "changeKey"}


# -- delta as production has shown it (issue 10 §2) ------------------------------------------
async def test_a_round_may_return_an_item_twice_and_the_engine_collapses_it(emu: Any) -> None:
    from copyengine.graph.models import Item, Removed
    from copyengine.plan import DeltaRound

    rule = {"kind": "delta_duplicate", "calls": ["itemDelta"], "count": 2}
    assert (await emu.src.control("PUT", "/faults", {"rules": [rule]})).status == 200
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    rows, _ = await _round(emu.src, m + "/folders/inbox/items/delta")
    ids = [r["id"] for r in rows]
    assert len(ids) > len(set(ids))  # the same item twice in one round
    parsed = [Removed(r["id"], "deleted") if "@removed" in r else Item.from_json(r) for r in rows]
    assert sorted(r.id for r in DeltaRound.end_state(parsed)) == sorted(set(ids))
    collapsed = DeltaRound()
    handed_on = [r.id for r in collapsed.page(parsed)]
    assert len(handed_on) == len(set(handed_on))  # each item once
    assert sorted([*handed_on, *collapsed.removed]) == sorted(set(ids))


async def test_filtered_item_delta_stops_at_the_cap(emu: Any, monkeypatch: Any) -> None:
    from copyengine.emulator import delta as graph

    monkeypatch.setattr(graph, "FILTERED_DELTA_CAP", 5)
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    flt = quote("createdDateTime ge 2000-01-01T00:00:00Z")
    rows, _ = await _round(emu.src, m + f"/folders/inbox/items/delta?$filter={flt}")
    assert len(rows) == 5  # silently capped: the reason never to filter a delta
    everything, _ = await _round(emu.src, m + "/folders/inbox/items/delta")
    assert len(everything) > 5


async def test_change_type_option_selects_created_updated_or_deleted(emu: Any) -> None:
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    box = emu.state.require_mailbox(ADELE)
    inbox = box.well_known["inbox"]
    links = {}
    for ct in ("created", "updated", "deleted"):
        rows, links[ct] = await _round(emu.src, m + f"/folders/inbox/items/delta?changeType={ct}")
        assert (len(rows) > 0) == (ct == "created")  # a first round: everything is new
    items = list(inbox.live_items())
    changed, gone = items[0], items[1]
    box.update_item(changed, changed.content)
    box.delete_item(gone)
    new = box.add_item(inbox, items[2].content)
    got = {ct: (await _round(emu.src, links[ct]))[0] for ct in links}
    assert [r["id"] for r in got["created"]] == [new.id]
    assert [r["id"] for r in got["updated"]] == [changed.id]
    assert [(r["id"], "@removed" in r) for r in got["deleted"]] == [(gone.id, True)]
    bad = await emu.src.get(m + "/folders/inbox/items/delta?changeType=moved")
    assert bad.status == 400
