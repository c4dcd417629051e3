"""exportItems, import sessions and the import host: the data path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from . import stream
from .http import Ctx, GraphError, json_response
from .store import iso, stored_size


# -- export and import -------------------------------------------------------------------------
async def export_items(ctx: Ctx) -> web.Response:
    mbx = ctx.mailbox
    assert mbx is not None
    data = ctx.json_body("itemIds")
    ids = data.get("itemIds")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise GraphError(400, "ErrorInvalidRequest", "itemIds must be a list of 1 to 20 ids.")
    if len(ids) > 20:
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "The number of items in the request exceeds the limit of 20.",
        )
    unique = list(dict.fromkeys(ids))
    if "export_item_error" in ctx.faults:
        present = [i for i in unique if i in mbx.items]
        if present:
            mbx.delete_item(mbx.items[ctx.emu.rng.choice(present)])
    rng = ctx.emu.rng
    if ctx.emu.config.shuffle_exports:
        rng.shuffle(unique)
    err_key = "Error" if rng.random() < 0.5 else "error"
    if "export_drop" in ctx.faults and len(unique) > 1:
        unique.remove(rng.choice(unique))  # no row, no error row: the caller must notice
    value: list[dict[str, Any]] = []
    for item_id in unique:
        it = mbx.items.get(item_id)
        if it is None:
            value.append(
                {
                    "itemId": item_id,
                    err_key: {
                        "code": "ErrorItemNotFound",
                        "message": "The specified object was not found in the store.",
                    },
                }
            )
        else:
            value.append(
                {"itemId": it.id, "changeKey": it.change_key, "data": stream.encode(it.content)}
            )
    body = {
        "@odata.context": ctx.context("Collection(microsoft.graph.exportItemResponse)"),
        "value": value,
    }
    return json_response(body)


async def create_import_session(ctx: Ctx) -> web.Response:
    mbx = ctx.mailbox
    assert mbx is not None
    s = ctx.emu.new_session(ctx.app, mbx, ctx.version)
    r = ctx.request
    ver = "gbeta" if ctx.version == "beta" else "gv1.0"
    url = f"{r.scheme}://{r.host}/api/{ver}/Mailboxes('{mbx.id}')/importItem?authtoken={s.token}"
    exp = datetime.fromtimestamp(s.expires, UTC)
    return json_response(
        {
            "@odata.context": ctx.context("microsoft.graph.mailboxItemImportSession"),
            "importUrl": url,
            "expirationDateTime": iso(exp),
        }
    )


async def import_item(ctx: Ctx) -> web.Response:
    mbx = ctx.mailbox
    assert mbx is not None
    known = ("FolderId", "Mode", "Data", "ItemId", "ChangeKey")
    get = ctx.json_body(*known)
    extra = set(get) - set(known)
    if extra:
        raise GraphError(400, "ErrorInvalidRequest", f"Unknown property '{sorted(extra)[0]}'.")
    mode = str(get.get("Mode", "")).lower()
    if mode not in ("create", "update"):
        raise GraphError(400, "ErrorInvalidRequest", "Mode must be 'create' or 'update'.")
    if not isinstance(get.get("FolderId"), str) or not isinstance(get.get("Data"), str):
        raise GraphError(400, "ErrorInvalidRequest", "FolderId and Data are required.")
    folder = mbx.find_folder(get["FolderId"])
    if folder is None:
        raise GraphError(404, "ErrorFolderNotFound", "The specified folder could not be found.")
    if mode == "create" and ("ItemId" in get or "ChangeKey" in get):
        raise GraphError(
            400, "ErrorInvalidRequest", "ItemId and ChangeKey must not be given with Mode=create."
        )
    if mode == "update" and not ("ItemId" in get and "ChangeKey" in get):
        raise GraphError(
            400, "ErrorInvalidRequest", "ItemId and ChangeKey are required with Mode=update."
        )
    try:
        content = stream.decode(get["Data"])
    except stream.CorruptStream as exc:
        raise GraphError(400, "ErrorCorruptData", f"The import data is corrupt: {exc}.") from exc
    if mode == "create":
        # a new item, created now, with the size Exchange computes for its own storage
        it = mbx.add_item(
            folder, content, created=iso(datetime.now(UTC)), size=stored_size(content.size)
        )
    else:
        it_or_none = mbx.items.get(get["ItemId"])
        if it_or_none is None or it_or_none.folder is not folder:
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        it = it_or_none
        if it.change_key != get["ChangeKey"]:
            raise GraphError(
                409,
                "ErrorIrresolvableConflict",
                "The change key passed in the request does not match the current "
                "change key for the item.",
            )
        mbx.update_item(it, content, size=stored_size(content.size))
    return json_response({"itemId": it.id, "changeKey": it.change_key})
