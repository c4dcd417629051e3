"""exportItems, import sessions and the import host: the data path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from . import stream
from .expand import home_of, lives_in, redirect_row, session_answer
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
    home = home_of(mbx)  # an auxiliary archive's items are kept with its main archive's
    if "export_item_error" in ctx.faults:
        present = [i for i in unique if i in home.items]
        if present:
            home.delete_item(home.items[ctx.emu.rng.choice(present)])
    rng = ctx.emu.rng
    if ctx.emu.config.shuffle_exports:
        rng.shuffle(unique)
    err_key = "Error" if rng.random() < 0.5 else "error"
    if "export_drop" in ctx.faults and len(unique) > 1:
        unique.remove(rng.choice(unique))  # no row, no error row: the caller must notice
    value: list[dict[str, Any]] = []
    for item_id in unique:
        it = home.items.get(item_id)
        where = lives_in(home, it.folder) if it is not None else None
        if it is not None and where is not mbx and mbx is home:
            value.append(redirect_row(ctx.base, home, it, err_key))
            continue
        if it is None or where is not mbx:
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
    home = home_of(mbx)
    folder = home.find_folder(get["FolderId"])
    if folder is None:
        raise GraphError(404, "ErrorFolderNotFound", "The specified folder could not be found.")
    session = ctx.emu.sessions.get(ctx.token)
    moved = session_answer(home, mbx, folder, session.uploads if session else 0)
    if moved is not None:
        # the import host's own shape, not Graph's envelope (contract §4); nothing imported
        return json_response({"Message": moved}, status=409)
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
        it = home.add_item(
            folder, content, created=iso(datetime.now(UTC)), size=stored_size(content.size)
        )
    else:
        it_or_none = home.items.get(get["ItemId"])
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
        home.update_item(it, content, size=stored_size(content.size))
    if session is not None:
        session.uploads += 1
    return json_response({"itemId": it.id, "changeKey": it.change_key})
