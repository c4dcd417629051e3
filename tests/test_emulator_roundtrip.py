"""Export every item of a seeded mailbox, import into an empty one: the snapshots match."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.emu import q

pytestmark = pytest.mark.anyio


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["folderPath"], row["type"], row["size"], row["searchKey"], row["digest"])


async def _walk(api: Any, m: str) -> dict[str, dict[str, Any]]:
    """Folder path -> folder (msgfolderroot subtree)."""
    out: dict[str, dict[str, Any]] = {}

    async def walk(url: str, prefix: str) -> None:
        for f in await api.collect(url + "?$top=100"):
            path = f"{prefix}/{f['displayName']}"
            out[path] = f
            if f["childFolderCount"]:
                await walk(f"{m}/folders/{q(f['id'])}/childFolders", path)

    await walk(m + "/folders", "")
    return out


async def test_round_trip_matches_snapshots(emu: Any) -> None:
    src_id = await emu.src.mailbox_id("adele@contoso.example")
    dst_id = await emu.dst.mailbox_id("adele@fabrikam.example")
    sm, dm = emu.src.m(src_id), emu.dst.m(dst_id)
    src_folders = await _walk(emu.src, sm)
    dst_folders = await _walk(emu.dst, dm)
    for path in sorted(src_folders, key=lambda p: p.count("/")):
        if path in dst_folders:
            continue
        parent, name = path.rsplit("/", 1)
        pid = dst_folders[parent]["id"]
        r = await emu.dst.post(
            f"{dm}/folders/{q(pid)}/childFolders",
            {"displayName": name, "type": src_folders[path]["type"]},
        )
        assert r.status == 201, r.body
        dst_folders[path] = r.body
    session = await emu.dst.post(dm + "/createImportSession")
    url = session.body["importUrl"]
    copied = 0
    for path, folder in src_folders.items():
        items = await emu.src.collect(f"{sm}/folders/{q(folder['id'])}/items?$top=100")
        ids = [i["id"] for i in items]
        for k in range(0, len(ids), 20):
            r = await emu.src.post(sm + "/exportItems", {"itemIds": ids[k : k + 20]})
            assert r.status == 200
            for v in r.body["value"]:
                imp = await emu.dst.post(
                    url,
                    {"FolderId": dst_folders[path]["id"], "Mode": "create", "Data": v["data"]},
                    auth=False,
                )
                assert imp.status == 200, imp.body
                copied += 1
    src_snap = (await emu.src.control("GET", f"/mailboxes/{q(src_id)}/snapshot")).body
    dst_snap = (await emu.src.control("GET", f"/mailboxes/{q(dst_id)}/snapshot")).body
    assert copied == len(src_snap["items"]) == 120
    assert Counter(map(_key, src_snap["items"])) == Counter(map(_key, dst_snap["items"]))
    # the copies have new ids and re-export/import again (round trip of the copy)
    assert not {r["id"] for r in src_snap["items"]} & {r["id"] for r in dst_snap["items"]}
    some = dst_snap["items"][0]["id"]
    r = await emu.dst.post(dm + "/exportItems", {"itemIds": [some]})
    back = await emu.src.post(
        (await emu.src.post(sm + "/createImportSession")).body["importUrl"],
        {"FolderId": "inbox", "Mode": "create", "Data": r.body["value"][0]["data"]},
        auth=False,
    )
    assert back.status == 200
