"""Mailboxes, folders and items as Graph represents and pages them, and their handlers."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any
from urllib.parse import quote

from aiohttp import web

from . import odata
from .http import (
    FOLDER_FILTERS,
    FOLDER_PROPS,
    ITEM_FILTERS,
    ITEM_PROPS,
    PROP_MESSAGE_ID,
    PROP_SEARCH_KEY,
    PROP_SUBJECT,
    Ctx,
    GraphError,
    json_response,
)
from .store import Folder, Item


# -- representations -------------------------------------------------------------------------
def folder_json(ctx: Ctx, f: Folder, select: set[str] | None) -> dict[str, Any]:
    mbx = ctx.mailbox
    assert mbx is not None
    d: dict[str, Any] = {
        "id": f.id,
        "displayName": f.name,
        "parentFolderId": f.parent.id if f.parent else None,
        "childFolderCount": len(f.live_children()),
        "totalItemCount": f.live,
        "type": f.type,
        "wellKnownName": f.well_known,
    }
    if ctx.version == "beta":
        d["parentMailboxUrl"] = f"{ctx.base}/{ctx.mailbox_path()}"
        d["isHidden"] = f.hidden
    if select is not None:
        d = {k: v for k, v in d.items() if k in select}
    return d


def item_json(it: Item, select: set[str] | None, expand: set[str] | None) -> dict[str, Any]:
    c = it.content
    d: dict[str, Any] = {
        "@odata.etag": f'W/"{it.change_key}"',
        "id": it.id,
        "createdDateTime": it.api_created,
        "lastModifiedDateTime": it.modified,
        "changeKey": it.change_key,
        "categories": list(c.categories),
        "type": c.type,
        "size": it.api_size,
    }
    if select is not None:
        d = {k: v for k, v in d.items() if k in select or k == "@odata.etag"}
    if expand is not None:
        props = [
            (PROP_SEARCH_KEY, base64.b64encode(c.search_key).decode()),
            (PROP_MESSAGE_ID, c.message_id),
            (PROP_SUBJECT, c.subject),
        ]
        d["singleValueExtendedProperties"] = [
            {"id": pid, "value": val}
            for pid, val in props
            if val is not None and (not expand or pid.lower() in expand)
        ]
    return d


def item_get(it: Item, prop: str) -> Any:
    if prop == "createdDateTime":
        return it.api_created
    if prop == "lastModifiedDateTime":
        return it.modified
    if prop == "type":
        return it.content.type
    if prop == "size":
        return it.api_size
    raise KeyError(prop)


def folder_get(f: Folder, prop: str) -> Any:
    return {"type": f.type, "displayName": f.name, "wellKnownName": f.well_known}[prop]


# -- paging ------------------------------------------------------------------------------------
def collection(
    ctx: Ctx,
    tail: str,
    rows: Iterable[Any],
    render: Callable[[Any], dict[str, Any]],
    count: int | None = None,
) -> web.Response:
    q = ctx.request.query
    size = odata.page_size(q, ctx.request.headers.get("Prefer"), ctx.emu.config.default_page_size)
    try:
        skip = int(q.get("$skip", "0"))
    except ValueError as exc:
        raise GraphError(400, "BadRequest", "Invalid $skip") from exc
    it = iter(rows)
    page = list(islice(it, skip, skip + size))
    more = next(it, None) is not None
    body: dict[str, Any] = {"@odata.context": ctx.context(tail)}
    if count is not None:
        body["@odata.count"] = count
    body["value"] = [render(r) for r in page]
    if more:
        url = ctx.request.url.update_query({"$skip": str(skip + size)})
        body["@odata.nextLink"] = str(url)
    return json_response(body)


def folder_or_404(ctx: Ctx, ref: str) -> Folder:
    assert ctx.mailbox is not None
    f = ctx.mailbox.find_folder(ref)
    if f is None:
        raise GraphError(
            404, "ErrorItemNotFound", "The specified object was not found in the store."
        )
    return f


def _select(ctx: Ctx, known: set[str]) -> set[str] | None:
    return odata.parse_select(ctx.request.query.get("$select"), known)


# -- handlers ----------------------------------------------------------------------------------
async def resolve_mailbox(ctx: Ctx) -> web.Response:
    assert ctx.tenant is not None
    upn = ctx.request.match_info["user"]
    mbx = ctx.tenant.users.get(upn.lower())
    if mbx is None or "mailbox_not_found" in ctx.faults:
        raise GraphError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{upn}' does not exist or one of its queried reference-property objects "
            "are not present.",
        )
    body: dict[str, Any] = {
        "@odata.context": ctx.context(f"users('{quote(upn)}')/settings/exchange/$entity"),
        "primaryMailboxId": mbx.id,
    }
    if ctx.version == "beta":
        body["inPlaceArchiveMailboxId"] = mbx.archive_id
    return json_response(body)


async def list_folders(ctx: Ctx) -> web.Response:
    assert ctx.mailbox is not None
    return _list_folders(ctx, ctx.mailbox.root, f"{ctx.mailbox_path()}/folders")


async def list_child_folders(ctx: Ctx) -> web.Response:
    parent = folder_or_404(ctx, ctx.request.match_info["folder"])
    return _list_folders(ctx, parent, f"{ctx.mailbox_path()}/folders('{parent.id}')/childFolders")


def _list_folders(ctx: Ctx, parent: Folder, tail: str) -> web.Response:
    q = ctx.request.query
    select = _select(ctx, FOLDER_PROPS)
    rows: list[Folder] = parent.live_children()
    if "$filter" in q:
        clauses = odata.parse_filter(q["$filter"], FOLDER_FILTERS)
        rows = [f for f in rows if odata.matches(clauses, folder_get, f)]
    order = odata.parse_orderby(q.get("$orderby"), {"displayName"})
    if order:
        rows.sort(key=lambda f: f.name.casefold(), reverse=order[1])
    count = len(rows) if q.get("$count", "").lower() == "true" else None
    return collection(ctx, tail, rows, lambda f: folder_json(ctx, f, select), count)


async def get_folder(ctx: Ctx) -> web.Response:
    f = folder_or_404(ctx, ctx.request.match_info["folder"])
    body = {"@odata.context": ctx.context(f"{ctx.mailbox_path()}/folders/$entity")}
    body.update(folder_json(ctx, f, _select(ctx, FOLDER_PROPS)))
    return json_response(body)


async def create_folder(ctx: Ctx) -> web.Response:
    mbx = ctx.mailbox
    assert mbx is not None
    ref = ctx.request.match_info.get("folder")
    parent = folder_or_404(ctx, ref) if ref else mbx.root
    data = ctx.json_body("displayName", "type")
    name = data.get("displayName")
    cls = data.get("type", "IPF.Note")
    extra = set(data) - {"displayName", "type"}
    if extra:
        raise GraphError(400, "BadRequest", f"Property '{sorted(extra)[0]}' cannot be set.")
    if not isinstance(name, str) or not name.strip():
        raise GraphError(400, "ErrorInvalidRequest", "displayName is required.")
    if not isinstance(cls, str) or not (cls == "" or cls.startswith("IPF")):
        raise GraphError(400, "ErrorInvalidRequest", f"'{cls}' is not a valid folder class.")
    if mbx.child_named(parent, name) is not None:
        raise GraphError(
            409, "ErrorFolderExists", "A folder with the specified name already exists."
        )
    f = mbx.create_folder(parent, name, cls)
    body = {"@odata.context": ctx.context(f"{ctx.mailbox_path()}/folders/$entity")}
    body.update(folder_json(ctx, f, None))
    return json_response(body, 201)


async def update_folder(ctx: Ctx) -> web.Response:
    mbx = ctx.mailbox
    assert mbx is not None
    f = folder_or_404(ctx, ctx.request.match_info["folder"])
    data = ctx.json_body("displayName", "type")
    if "type" in data and data["type"] != f.type:
        raise GraphError(400, "ErrorInvalidRequest", "The folder type cannot be changed.")
    extra = set(data) - {"displayName", "type"}
    if extra:
        raise GraphError(400, "BadRequest", f"Property '{sorted(extra)[0]}' cannot be updated.")
    name = data.get("displayName")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise GraphError(400, "ErrorInvalidRequest", "displayName must be a non-empty string.")
        if f.well_known or f.parent is None:
            raise GraphError(403, "ErrorAccessDenied", "A distinguished folder cannot be renamed.")
        other = mbx.child_named(f.parent, name)
        if other is not None and other is not f:
            raise GraphError(
                409, "ErrorFolderExists", "A folder with the specified name already exists."
            )
        mbx.rename_folder(f, name)
    body = {"@odata.context": ctx.context(f"{ctx.mailbox_path()}/folders/$entity")}
    body.update(folder_json(ctx, f, None))
    return json_response(body)


async def delete_folder(ctx: Ctx) -> web.Response:
    mbx = ctx.mailbox
    assert mbx is not None
    f = folder_or_404(ctx, ctx.request.match_info["folder"])
    if f.well_known or f.parent is None:
        raise GraphError(
            403, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted."
        )
    ctx.emu.removals.folder(mbx, f)
    mbx.delete_folder(f)
    return web.Response(status=204)


async def list_items(ctx: Ctx) -> web.Response:
    f = folder_or_404(ctx, ctx.request.match_info["folder"])
    q = ctx.request.query
    select = _select(ctx, ITEM_PROPS)
    expand = odata.parse_expand(q.get("$expand"))
    rows: Iterable[Item] = f.live_items()
    if "$filter" in q:
        clauses = odata.parse_filter(q["$filter"], ITEM_FILTERS)
        rows = (i for i in rows if odata.matches(clauses, item_get, i))
    order = odata.parse_orderby(
        q.get("$orderby"), {"createdDateTime", "lastModifiedDateTime", "size"}
    )
    if order:
        rows = sorted(rows, key=lambda i: item_get(i, order[0]), reverse=order[1])
    elif ctx.emu.config.newest_first:
        rows = list(rows)[::-1]
    count = None
    if q.get("$count", "").lower() == "true":
        rows = list(rows)
        count = len(rows)
    tail = f"{ctx.mailbox_path()}/folders('{f.id}')/items"
    return collection(ctx, tail, rows, lambda i: item_json(i, select, expand), count)


def _item_or_404(ctx: Ctx) -> Item:
    f = folder_or_404(ctx, ctx.request.match_info["folder"])
    assert ctx.mailbox is not None
    it = ctx.mailbox.items.get(ctx.request.match_info["item"])
    if it is None or it.folder is not f:
        raise GraphError(
            404, "ErrorItemNotFound", "The specified object was not found in the store."
        )
    return it


async def get_item(ctx: Ctx) -> web.Response:
    it = _item_or_404(ctx)
    q = ctx.request.query
    body = {
        "@odata.context": ctx.context(
            f"{ctx.mailbox_path()}/folders('{it.folder.id}')/items/$entity"
        )
    }
    body.update(item_json(it, _select(ctx, ITEM_PROPS), odata.parse_expand(q.get("$expand"))))
    return json_response(body)


async def delete_item(ctx: Ctx) -> web.Response:
    it = _item_or_404(ctx)
    disposal = ctx.request.query.get("disposalType")
    if disposal not in ("softDelete", "hardDelete"):
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "The disposalType parameter is required: softDelete or hardDelete.",
        )
    mbx = ctx.mailbox
    assert mbx is not None
    bin_ = mbx.well_known.get("recoverableitemsdeletions")
    ctx.emu.removals.item(mbx.id, it, "deleteItem", disposal)
    if disposal == "softDelete" and bin_ is not None and it.folder is not bin_:
        mbx.move_item(it, bin_)  # as Exchange does: recoverable, under Recoverable Items
    else:
        mbx.delete_item(it)
    return web.Response(status=204)
