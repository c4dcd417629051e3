"""Conformance of the emulator's Graph surface: shapes, paging, delta, errors, permissions."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from copyengine.emulator import stream
from tests.emu import RO_APP, RO_SECRET, Api, q

pytestmark = pytest.mark.anyio

ADELE = "adele@contoso.example"


async def test_resolve_mailbox_returns_single_object(emu: Any) -> None:
    r = await emu.src.get(f"/users/{ADELE}/settings/exchange")
    assert r.status == 200
    assert r.body["primaryMailboxId"].startswith("MBX:")
    assert r.body["primaryMailboxId"].endswith("@" + emu.state.tokens.tenant("contoso").id)
    assert "value" not in r.body
    assert r.body["@odata.context"].startswith(emu.ep.graph_url + "/$metadata#users(")
    assert "inPlaceArchiveMailboxId" in r.body  # beta only
    v1 = await emu.src.get(emu.ep.graph_v1_url + f"/users/{ADELE}/settings/exchange")
    assert v1.status == 200 and "inPlaceArchiveMailboxId" not in v1.body


async def test_unknown_user_is_404_with_graph_envelope(emu: Any) -> None:
    r = await emu.src.get(
        "/users/nobody@contoso.example/settings/exchange", headers={"client-request-id": "abc-123"}
    )
    assert r.status == 404
    err = r.body["error"]
    assert err["code"] == "Request_ResourceNotFound"
    assert err["innerError"]["client-request-id"] == "abc-123"
    assert err["innerError"]["request-id"] == r.headers["request-id"]


async def test_mailbox_of_other_tenant_is_not_reachable(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(ADELE)
    r = await emu.dst.get(emu.dst.m(mbx) + "/folders")
    assert r.status == 404 and r.body["error"]["code"] == "ErrorNonExistentMailbox"


async def test_top_folders_are_root_children_with_well_known_names(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(ADELE)
    folders = await emu.src.collect(emu.src.m(mbx) + "/folders")
    names = {f["wellKnownName"] for f in folders}
    assert {
        "inbox",
        "sentitems",
        "drafts",
        "deleteditems",
        "archive",
        "junkemail",
        "calendar",
        "contacts",
        "tasks",
    } <= names
    assert "recoverableitemsdeletions" not in names  # not under msgfolderroot
    inbox = next(f for f in folders if f["wellKnownName"] == "inbox")
    assert set(inbox) >= {
        "id",
        "displayName",
        "parentFolderId",
        "childFolderCount",
        "totalItemCount",
        "type",
        "wellKnownName",
        "parentMailboxUrl",
        "isHidden",
    }
    assert inbox["type"] == "IPF.Note" and inbox["childFolderCount"] == 3


async def test_default_page_is_ten_and_next_link_is_absolute(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(ADELE)
    r = await emu.src.get(emu.src.m(mbx) + "/folders")
    assert len(r.body["value"]) == 10
    link = r.body["@odata.nextLink"]
    assert link.startswith(emu.ep.graph_url + "/admin/exchange/mailboxes/")
    assert "%24skip=10" in link or "$skip=10" in link
    r2 = await emu.src.get(link)
    assert r2.status == 200 and "@odata.nextLink" not in r2.body
    assert len(r.body["value"]) + len(r2.body["value"]) == 12


async def test_top_maxpagesize_select_filter(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(ADELE)
    m = emu.src.m(mbx)
    r = await emu.src.get(m + "/folders?$top=3")
    assert len(r.body["value"]) == 3
    r = await emu.src.get(m + "/folders", headers={"Prefer": "odata.maxpagesize=5"})
    assert len(r.body["value"]) == 5
    r = await emu.src.get(m + "/folders?$top=50&$select=displayName")
    assert all(set(f) == {"id", "displayName"} for f in r.body["value"])
    r = await emu.src.get(m + "/folders?$filter=" + q("type eq 'IPF.Appointment'"))
    assert [f["wellKnownName"] for f in r.body["value"]] == ["calendar"]
    r = await emu.src.get(m + "/folders?$top=1000")
    assert r.status == 400
    r = await emu.src.get(m + "/folders?$filter=" + q("bogus eq 1"))
    assert r.status == 400 and r.body["error"]["code"] == "BadRequest"


async def test_well_known_names_in_paths_case_insensitive(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(ADELE)
    a = await emu.src.get(emu.src.m(mbx) + "/folders/InBox")
    b = await emu.src.get(emu.src.m(mbx) + "/folders/inbox")
    assert a.status == b.status == 200 and a.body["id"] == b.body["id"]
    d = await emu.src.get(emu.src.m(mbx) + "/folders/recoverableitemsdeletions")
    assert d.status == 200 and d.body["isHidden"] is True


async def test_nested_unicode_folders_and_all_classes(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(ADELE)
    m = emu.src.m(mbx)
    paths: dict[str, str] = {}

    async def walk(url: str, prefix: str) -> None:
        for f in await emu.src.collect(url + "?$top=100"):
            path = f"{prefix}/{f['displayName']}"
            paths[path] = f["type"]
            if f["childFolderCount"]:
                await walk(f"{m}/folders/{q(f['id'])}/childFolders", path)

    await walk(m + "/folders", "")
    assert "/Inbox/Projects/2024/Q3 — Ausschreibung" in paths
    assert "/Inbox/Ünïcødé 日本語 📁" in paths
    assert paths["/Calendar/Team Calendar"] == "IPF.Appointment"
    assert paths["/Contacts/Suppliers"] == "IPF.Contact"
    assert paths["/Tasks/Follow-ups"] == "IPF.Task"


async def test_items_paging_shapes_and_ids_with_reserved_characters(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(ADELE)
    m = emu.src.m(mbx)
    items = await emu.src.collect(m + "/folders/inbox/items?$top=7")
    inbox = emu.state.mailbox(ADELE).well_known["inbox"]
    assert len(items) == inbox.live > 7
    it = items[0]
    assert set(it) == {
        "@odata.etag",
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "type",
        "size",
    }
    assert it["@odata.etag"] == f'W/"{it["changeKey"]}"'
    assert it["createdDateTime"].endswith("Z") and len(it["createdDateTime"].split(".")[1]) == 8
    everything = [i for f in emu.state.mailbox(ADELE).walk() for i in f.live_items()]
    assert any(c in i.id for i in everything for c in "/+")
    odd = next(i for i in everything if "/" in i.id)
    r = await emu.src.get(f"{m}/folders/{q(odd.folder.id)}/items/{q(odd.id)}")
    assert r.status == 200 and r.body["id"] == odd.id


async def test_item_filter_by_created_date_and_expand_search_key(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(ADELE)
    m = emu.src.m(mbx)
    box = emu.state.mailbox(ADELE)
    inbox = box.well_known["inbox"]
    dates = sorted(i.content.created for i in inbox.live_items())
    lo, hi = dates[len(dates) // 4][:10], dates[3 * len(dates) // 4][:10]
    flt = f"createdDateTime ge {lo} and createdDateTime lt {hi}"
    got = await emu.src.collect(f"{m}/folders/inbox/items?$top=50&$filter={q(flt)}")
    expect = [i for i in inbox.live_items() if lo <= i.content.created[:10] < hi]
    assert {g["id"] for g in got} == {i.id for i in expect} and got
    exp = "singleValueExtendedProperties($filter=id eq 'Binary 0x300B' or id eq 'String 0x1035')"
    r = await emu.src.get(f"{m}/folders/inbox/items?$top=5&$expand={q(exp)}")
    for row in r.body["value"]:
        props = {p["id"]: p["value"] for p in row["singleValueExtendedProperties"]}
        item = box.items[row["id"]]
        assert base64.b64decode(props["Binary 0x300B"]) == item.content.search_key
        assert props.get("String 0x1035") == item.content.message_id


async def test_create_reuse_rename_delete_folder(emu: Any) -> None:
    mbx = await emu.dst.mailbox_id("adele@fabrikam.example")
    m = emu.dst.m(mbx)
    r = await emu.dst.post(m + "/folders", {"displayName": "Projekte ✓", "type": "IPF.Note"})
    assert r.status == 201 and r.body["wellKnownName"] is None
    fid = r.body["id"]
    r = await emu.dst.post(m + "/folders", {"displayName": "projekte ✓"})
    assert r.status == 409 and r.body["error"]["code"] == "ErrorFolderExists"
    r = await emu.dst.post(
        f"{m}/folders/{q(fid)}/childFolders", {"displayName": "Kal", "type": "IPF.Appointment"}
    )
    assert r.status == 201 and r.body["parentFolderId"] == fid
    r = await emu.dst.call("PATCH", f"{m}/folders/{q(fid)}", json={"displayName": "Renamed"})
    assert r.status == 200 and r.body["displayName"] == "Renamed"
    r = await emu.dst.call("PATCH", f"{m}/folders/{q(fid)}", json={"type": "IPF.Contact"})
    assert r.status == 400
    r = await emu.dst.call("DELETE", f"{m}/folders/{q(fid)}/$ref")
    assert r.status == 204
    r = await emu.dst.get(f"{m}/folders/{q(fid)}")
    assert r.status == 404 and r.body["error"]["code"] == "ErrorItemNotFound"
    r = await emu.dst.call("DELETE", f"{m}/folders/inbox/$ref")
    assert r.status == 403


async def test_export_limits_and_per_item_errors_by_id(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(ADELE)
    m = emu.src.m(mbx)
    ids = [i.id for i in list(emu.state.require_mailbox(ADELE).items.values())[:19]]
    r = await emu.src.post(m + "/exportItems", {"itemIds": [*ids, "AAMkDoesNotExist=="]})
    assert r.status == 200
    by_id = {v["itemId"]: v for v in r.body["value"]}
    assert set(by_id) == {*ids, "AAMkDoesNotExist=="}
    bad = by_id["AAMkDoesNotExist=="]
    err = bad.get("error") or bad.get("Error")
    assert err["code"] == "ErrorItemNotFound" and "data" not in bad
    for i in ids:
        content = stream.decode(by_id[i]["data"])
        assert content == emu.state.require_mailbox(ADELE).items[i].content
    r = await emu.src.post(m + "/exportItems", {"itemIds": ids + ids[:2]})  # 21 ids
    assert r.status == 400
    r = await emu.src.post(m + "/exportItems", {"itemIds": []})
    assert r.status == 400


async def test_import_create_update_and_errors(emu: Any) -> None:
    src = await emu.src.mailbox_id(ADELE)
    dst = await emu.dst.mailbox_id("adele@fabrikam.example")
    item = next(iter(emu.state.require_mailbox(ADELE).items.values()))
    exp = await emu.src.post(emu.src.m(src) + "/exportItems", {"itemIds": [item.id]})
    data = exp.body["value"][0]["data"]
    s = await emu.dst.post(emu.dst.m(dst) + "/createImportSession")
    assert s.status in (200, 201)
    url = s.body["importUrl"]
    assert "/api/gbeta/Mailboxes('MBX:" in url and "authtoken=" in url
    assert len(s.body["expirationDateTime"].split(".")[1]) == 8
    inbox = emu.state.mailbox("adele@fabrikam.example").well_known["inbox"]
    r = await emu.dst.post(url, {"FolderId": inbox.id, "Mode": "create", "Data": data}, auth=False)
    assert r.status == 200 and set(r.body) == {"itemId", "changeKey"}
    new_id, ck = r.body["itemId"], r.body["changeKey"]
    assert new_id != item.id
    again = await emu.dst.post(
        url, {"FolderId": "inbox", "Mode": "create", "Data": data}, auth=False
    )
    assert again.status == 200 and again.body["itemId"] != new_id  # create always creates
    upd = {"FolderId": inbox.id, "Mode": "update", "Data": data, "ItemId": new_id, "ChangeKey": ck}
    r = await emu.dst.post(url, upd, auth=False)
    assert r.status == 200 and r.body["itemId"] == new_id and r.body["changeKey"] != ck
    r = await emu.dst.post(url, upd, auth=False)  # stale change key now
    assert r.status == 409
    r = await emu.dst.post(url, {**upd, "ItemId": "AAMkNope=="}, auth=False)
    assert r.status == 404
    r = await emu.dst.post(url, {"FolderId": inbox.id, "Mode": "update", "Data": data}, auth=False)
    assert r.status == 400
    r = await emu.dst.post(
        url, {"FolderId": inbox.id, "Mode": "create", "Data": data, "ItemId": new_id}, auth=False
    )
    assert r.status == 400
    corrupt = data[:200] + ("A" if data[200] != "A" else "B") + data[201:]
    r = await emu.dst.post(
        url, {"FolderId": inbox.id, "Mode": "create", "Data": corrupt}, auth=False
    )
    assert r.status == 400 and r.body["error"]["code"] == "ErrorCorruptData"
    r = await emu.dst.post(
        url.split("authtoken=")[0] + "authtoken=bogus",
        {"FolderId": inbox.id, "Mode": "create", "Data": data},
        auth=False,
    )
    assert r.status == 401 and r.body["error"]["code"] == "InvalidAuthenticationToken"
    v1 = await emu.dst.post(emu.ep.graph_v1_url + emu.dst.m(dst) + "/createImportSession")
    assert "/api/gv1.0/" in v1.body["importUrl"]


async def test_delete_item_requires_disposal_type(emu: Any) -> None:
    mbx = await emu.src.mailbox_id("bianca@contoso.example")
    box = emu.state.mailbox("bianca@contoso.example")
    it = next(iter(box.items.values()))
    url = f"{emu.src.m(mbx)}/folders/{q(it.folder.id)}/items/{q(it.id)}"
    r = await emu.src.call("DELETE", url)
    assert r.status == 400
    r = await emu.src.call("DELETE", url + "?disposalType=hardDelete")
    assert r.status == 204 and it.id not in box.items


async def test_item_delta_rounds_changes_removals_and_410(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(ADELE)
    m = emu.src.m(mbx)
    box = emu.state.mailbox(ADELE)
    inbox = box.well_known["inbox"]
    url = f"{m}/folders/inbox/items/delta"
    seen: list[dict[str, Any]] = []
    delta_link = None
    for _ in range(1000):
        r = await emu.src.get(url, headers={"Prefer": "odata.maxpagesize=7"})
        assert r.status == 200
        assert len(r.body["value"]) <= 7
        seen.extend(r.body["value"])
        if "@odata.deltaLink" in r.body:
            delta_link = r.body["@odata.deltaLink"]
            break
        url = r.body["@odata.nextLink"]
        assert "skiptoken" in url
    assert delta_link and "deltatoken" in delta_link
    assert sorted(i["id"] for i in seen) == sorted(i.id for i in inbox.live_items())
    # changes: delete one, import one
    gone = seen[0]["id"]
    r = await emu.src.call("DELETE", f"{m}/folders/inbox/items/{q(gone)}?disposalType=softDelete")
    assert r.status == 204
    exp = await emu.src.post(m + "/exportItems", {"itemIds": [seen[1]["id"]]})
    s = await emu.src.post(m + "/createImportSession")
    r = await emu.src.post(
        s.body["importUrl"],
        {"FolderId": "inbox", "Mode": "create", "Data": exp.body["value"][0]["data"]},
        auth=False,
    )
    new_id = r.body["itemId"]
    r = await emu.src.get(delta_link)
    assert r.status == 200
    values = r.body["value"]
    assert {"id": gone, "@removed": {"reason": "deleted"}} in values
    assert [v["id"] for v in values if "@removed" not in v] == [new_id]
    assert "@odata.deltaLink" in r.body
    # an unknown token and an expired sync state both give 410
    r = await emu.src.get(f"{m}/folders/inbox/items/delta?$deltatoken=garbage")
    assert r.status == 410 and r.body["error"]["code"] == "syncStateNotFound"
    await emu.src.control("POST", "/delta/expire", {"mailboxId": mbx})
    r = await emu.src.get(delta_link)
    assert r.status == 410


async def test_folder_delta_reports_new_and_removed_folders(emu: Any) -> None:
    mbx = await emu.dst.mailbox_id("bianca@fabrikam.example")
    m = emu.dst.m(mbx)
    first = await emu.dst.collect(m + "/folders/delta")
    assert {f["displayName"] for f in first} >= {"Inbox", "Calendar"}
    r = await emu.dst.get(m + "/folders/delta")
    while "@odata.deltaLink" not in r.body:
        r = await emu.dst.get(r.body["@odata.nextLink"])
    link = r.body["@odata.deltaLink"]
    made = await emu.dst.post(m + "/folders/inbox/childFolders", {"displayName": "New"})
    removed = await emu.dst.post(m + "/folders/inbox/childFolders", {"displayName": "Gone"})
    await emu.dst.call("DELETE", f"{m}/folders/{q(removed.body['id'])}/$ref")
    r = await emu.dst.get(link)
    ids = {v["id"]: v for v in r.body["value"]}
    assert ids[made.body["id"]]["displayName"] == "New"
    assert ids[removed.body["id"]] == {"id": removed.body["id"], "@removed": {"reason": "deleted"}}


async def test_permissions_are_enforced_per_endpoint(emu: Any) -> None:
    ro = Api(emu.ep, emu.session, "contoso", RO_APP, RO_SECRET)
    await ro.login()
    mbx = await ro.mailbox_id(ADELE)
    m = ro.m(mbx)
    assert (await ro.get(m + "/folders")).status == 200
    assert (await ro.get(m + "/folders/inbox/items")).status == 200
    for method, path, body in (
        ("POST", "/exportItems", {"itemIds": ["x"]}),
        ("POST", "/createImportSession", None),
        ("POST", "/folders", {"displayName": "x"}),
    ):
        r = await ro.call(method, m + path, json=body)
        assert r.status == 403 and r.body["error"]["code"] == "ErrorAccessDenied", path
    r = await ro.get(m + "/folders", auth=False)
    assert r.status == 401 and r.body["error"]["code"] == "InvalidAuthenticationToken"


async def test_runtime_tenant_and_user_creation_and_snapshot(emu: Any) -> None:
    r = await emu.src.control(
        "POST",
        "/tenants/contoso/users",
        {"upn": "dora@contoso.example", "mailbox": {"seed": 9, "items": 15}},
    )
    assert r.status == 201 and r.body["items"] == 15
    snap = await emu.src.control("GET", f"/mailboxes/{q(r.body['mailboxId'])}/snapshot")
    assert snap.status == 200 and len(snap.body["items"]) == 15
    row = snap.body["items"][0]
    assert set(row) >= {"folderPath", "type", "size", "searchKey", "digest"}
    paths = {f["path"] for f in snap.body["folders"]}
    assert "/Inbox" in paths and "/Recoverable Items/Deletions" in paths
    d = await emu.src.control("GET", "/directory")
    assert all("secret" not in a for t in d.body["tenants"] for a in t["apps"])
