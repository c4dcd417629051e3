"""The emulator answers the spellings real clients send (issue 10 §1): clients generated from
Graph's metadata call delta as an OData function (``delta()``) and spell request properties
as the metadata does (``ItemIds``); Graph reads property names case-insensitively."""

from __future__ import annotations

from typing import Any

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
