"""The Graph mailbox surface (contract §2-§5) served under ``/v1.0`` and ``/beta``, and the
pre-authenticated import host under ``/api/gv1.0`` and ``/api/gbeta``.

Every call goes through ``_dispatch``: authenticate, find the mailbox, check the permission,
apply faults, admit through the throttle, run the handler, add latency, account.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import islice
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from . import odata, stream
from .faults import FaultRule
from .identity import Tenant
from .state import Emulator
from .store import Folder, Item, Mailbox, iso, stored_size
from .throttle import CONCURRENCY, MESSAGES

EMU: web.AppKey[Emulator] = web.AppKey("emulator", Emulator)
EARLY_GRACE = 0.02
JSON_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;charset=utf-8"

P_USER = {"User.Read.All"}
P_FOLDER_READ = {"MailboxFolder.Read.All", "MailboxFolder.ReadWrite.All"}
P_FOLDER_WRITE = {"MailboxFolder.ReadWrite.All"}
P_ITEM_READ = {"MailboxItem.Read.All"}
P_EXPORT = {"MailboxItem.Export.All", "MailboxItem.ImportExport.All"}
P_IMPORT = {"MailboxItem.ImportExport.All"}

FOLDER_PROPS = {
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
ITEM_PROPS = {
    "id",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "categories",
    "type",
    "size",
}
ITEM_FILTERS = {
    "createdDateTime": "date",
    "lastModifiedDateTime": "date",
    "type": "str",
    "size": "int",
}
FOLDER_FILTERS = {"type": "str", "displayName": "str", "wellKnownName": "str"}
PROP_SEARCH_KEY = "Binary 0x300B"
PROP_MESSAGE_ID = "String 0x1035"
PROP_SUBJECT = "String 0x0037"


class GraphError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        envelope: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.envelope = envelope


class Dropped(Exception):
    """The connection was closed on purpose (fault)."""


@dataclass
class Ctx:
    request: web.Request
    emu: Emulator
    call: str
    version: str
    tenant: Tenant | None = None
    app: str = ""
    roles: frozenset[str] = frozenset()
    token: str = ""
    mailbox: Mailbox | None = None
    faults: dict[str, FaultRule] = field(default_factory=dict)
    body: bytes = b""

    @property
    def base(self) -> str:
        r = self.request
        return f"{r.scheme}://{r.host}/{self.version}"

    def context(self, tail: str) -> str:
        return f"{self.base}/$metadata#{tail}"

    def mailbox_path(self) -> str:
        assert self.mailbox is not None
        return f"admin/exchange/mailboxes('{self.mailbox.id}')"

    def json_body(self, *canonical: str) -> dict[str, Any]:
        """The request's JSON object, its property names matched to ``canonical`` in any
        casing (Graph reads request property names case-insensitively: Microsoft's
        metadata-generated clients send ``ItemIds`` where the docs write ``itemIds``)."""
        try:
            data = orjson.loads(self.body) if self.body else {}
        except orjson.JSONDecodeError as exc:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc
        if not isinstance(data, dict):
            raise GraphError(400, "BadRequest", "The request payload must be a JSON object.")
        names = {c.lower(): c for c in canonical}
        out: dict[str, Any] = {}
        for k, v in data.items():
            name = names.get(str(k).lower()) or str(k)
            if name in out:
                raise GraphError(400, "BadRequest", f"Property '{name}' is given twice.")
            out[name] = v
        return out


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    resp = web.Response(body=orjson.dumps(data), status=status, headers=headers)
    resp.headers["Content-Type"] = JSON_TYPE
    return resp


def error_response(err: GraphError, request_id: str, client_request_id: str) -> web.Response:
    if err.envelope:
        body: dict[str, Any] = {
            "error": {
                "code": err.code,
                "message": err.message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
    else:
        body = {"Message": err.message}
    return json_response(body, err.status, err.headers)


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


def _folder_or_404(ctx: Ctx, ref: str) -> Folder:
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
    parent = _folder_or_404(ctx, ctx.request.match_info["folder"])
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
    f = _folder_or_404(ctx, ctx.request.match_info["folder"])
    body = {"@odata.context": ctx.context(f"{ctx.mailbox_path()}/folders/$entity")}
    body.update(folder_json(ctx, f, _select(ctx, FOLDER_PROPS)))
    return json_response(body)


async def create_folder(ctx: Ctx) -> web.Response:
    mbx = ctx.mailbox
    assert mbx is not None
    ref = ctx.request.match_info.get("folder")
    parent = _folder_or_404(ctx, ref) if ref else mbx.root
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
    f = _folder_or_404(ctx, ctx.request.match_info["folder"])
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
    f = _folder_or_404(ctx, ctx.request.match_info["folder"])
    if f.well_known or f.parent is None:
        raise GraphError(
            403, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted."
        )
    mbx.delete_folder(f)
    return web.Response(status=204)


async def list_items(ctx: Ctx) -> web.Response:
    f = _folder_or_404(ctx, ctx.request.match_info["folder"])
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
    count = None
    if q.get("$count", "").lower() == "true":
        rows = list(rows)
        count = len(rows)
    tail = f"{ctx.mailbox_path()}/folders('{f.id}')/items"
    return collection(ctx, tail, rows, lambda i: item_json(i, select, expand), count)


def _item_or_404(ctx: Ctx) -> Item:
    f = _folder_or_404(ctx, ctx.request.match_info["folder"])
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
    assert ctx.mailbox is not None
    ctx.mailbox.delete_item(it)
    return web.Response(status=204)


# -- delta -------------------------------------------------------------------------------------
def _delta_state(ctx: Ctx, kind: str, scope: str) -> tuple[dict[str, Any], bool]:
    """The round state from $skiptoken/$deltatoken, or a fresh one; (state, is_new_round)."""
    q = ctx.request.query
    mbx = ctx.mailbox
    assert mbx is not None
    raw = q.get("$skiptoken") or q.get("$deltatoken")
    if raw is None:
        select = q.get("$select")
        odata.parse_select(select, ITEM_PROPS if kind == "items" else FOLDER_PROPS)
        flt = q.get("$filter") if kind == "items" else None
        if flt:
            odata.parse_filter(flt, ITEM_FILTERS)
        change = (q.get("changeType") or "").lower() or None
        if change not in (None, "created", "updated", "deleted"):
            raise GraphError(
                400, "ErrorInvalidRequest", "changeType must be created, updated or deleted."
            )
        return {
            "since": 0,
            "snap": mbx.seq,
            "after": 0,
            "phase": "rows",
            "ri": 0,
            "n": 0,
            "sel": select,
            "flt": flt,
            "ct": change,
            "t": time.time(),
        }, True
    st = odata.unpack_token(raw)
    ttl = ctx.emu.config.delta_token_ttl
    if (
        st is None
        or st.get("k") != kind
        or st.get("m") != mbx.id
        or st.get("s") != scope
        or st.get("e") != mbx.delta_epoch
        or time.time() - float(st.get("t", 0)) > ttl
        or "delta_expire" in ctx.faults
    ):
        raise GraphError(
            410, "syncStateNotFound", "The sync state generation is not found or has expired."
        )
    if "$deltatoken" in q:
        return {
            "since": st["snap"],
            "snap": mbx.seq,
            "after": 0,
            "phase": "rows",
            "ri": 0,
            "n": 0,
            "sel": st.get("sel"),
            "flt": st.get("flt"),
            "ct": st.get("ct"),
            "t": time.time(),
        }, True
    return st, False


def _delta_page(
    ctx: Ctx,
    kind: str,
    scope: str,
    tail: str,
    rows: Callable[[int], Iterator[Any]],
    ord_of: Callable[[Any], int],
    seq_of: Callable[[Any], int],
    render: Callable[[Any, set[str] | None], dict[str, Any]],
    removals: list[tuple[int, str]],
) -> web.Response:
    mbx = ctx.mailbox
    assert mbx is not None
    st, _ = _delta_state(ctx, kind, scope)
    size = odata.page_size({}, ctx.request.headers.get("Prefer"), 100)
    select = odata.parse_select(st.get("sel"), ITEM_PROPS if kind == "items" else FOLDER_PROPS)
    since, snap = st["since"], st["snap"]
    clauses = odata.parse_filter(st["flt"], ITEM_FILTERS) if st.get("flt") else None
    change = st.get("ct")
    out: list[dict[str, Any]] = []
    if st["phase"] == "rows" and change == "deleted":
        st["phase"] = "removed"
    if st["phase"] == "rows":
        for r in rows(st["after"]):
            if not since < seq_of(r) <= snap:
                continue
            st["after"] = ord_of(r)
            if clauses is not None and not odata.matches(clauses, item_get, r):
                continue
            created = ord_of(r) > since
            if (change == "created" and not created) or (change == "updated" and created):
                continue
            out.append(render(r, select))
            st["n"] = st.get("n", 0) + 1
            if clauses is not None and st["n"] >= FILTERED_DELTA_CAP:
                # documented for message delta: a filtered round stops at 5,000 rows; what
                # it did not return is not returned by later rounds either
                st["phase"], st["ri"] = "removed", len(removals)
                break
            if len(out) >= size:
                break
        else:
            st["phase"] = "removed"
        if out and "delta_duplicate" in ctx.faults:
            out.append(out[0])  # the same item twice in one round (seen in production)
    if st["phase"] == "removed" and since > 0 and len(out) < size and change in (None, "deleted"):
        while st["ri"] < len(removals) and len(out) < size:
            seq, rid = removals[st["ri"]]
            st["ri"] += 1
            if since < seq <= snap:
                out.append({"id": rid, "@removed": {"reason": "deleted"}})
    body: dict[str, Any] = {"@odata.context": ctx.context(tail + "/delta"), "value": out}
    token = {"k": kind, "m": mbx.id, "s": scope, "e": mbx.delta_epoch}
    base_url = ctx.request.url.with_query(None)
    finished = st["phase"] == "removed" and (
        since == 0 or st["ri"] >= len(removals) or change in ("created", "updated")
    )
    if finished:
        body["@odata.deltaLink"] = str(
            base_url.with_query(
                {
                    "$deltatoken": odata.pack_token(
                        {
                            **token,
                            "snap": snap,
                            "sel": st.get("sel"),
                            "flt": st.get("flt"),
                            "ct": st.get("ct"),
                            "t": time.time(),
                        }
                    )
                }
            )
        )
    else:
        body["@odata.nextLink"] = str(
            base_url.with_query({"$skiptoken": odata.pack_token({**token, **st})})
        )
    return json_response(body)


FILTERED_DELTA_CAP = 5000


async def item_delta(ctx: Ctx) -> web.Response:
    f = _folder_or_404(ctx, ctx.request.match_info["folder"])
    return _delta_page(
        ctx,
        "items",
        f.id,
        f"{ctx.mailbox_path()}/folders('{f.id}')/items",
        rows=f.items_after,
        ord_of=lambda i: i.ord,
        seq_of=lambda i: i.seq,
        render=lambda i, sel: item_json(i, sel, None),
        removals=f.tombstones,
    )


async def folder_delta(ctx: Ctx) -> web.Response:
    mbx = ctx.mailbox
    assert mbx is not None
    ref = ctx.request.match_info.get("folder")
    parent = _folder_or_404(ctx, ref) if ref else None
    if parent is None:
        scope = "*"
        candidates = [f for f in mbx.walk() if f is not mbx.root]
        removals = [(s, i) for s, i, _ in mbx.folder_tombstones]
        tail = f"{ctx.mailbox_path()}/folders"
    else:
        scope = parent.id
        candidates = parent.live_children()
        removals = [(s, i) for s, i, p in mbx.folder_tombstones if p == parent.id]
        tail = f"{ctx.mailbox_path()}/folders('{parent.id}')/childFolders"
    candidates.sort(key=lambda f: f.ord)

    def rows(after: int) -> Iterator[Folder]:
        return (f for f in candidates if f.ord > after)

    return _delta_page(
        ctx,
        "folders",
        scope,
        tail,
        rows,
        lambda f: f.ord,
        lambda f: f.seq,
        lambda f, sel: folder_json(ctx, f, sel),
        removals,
    )


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


# -- dispatch ----------------------------------------------------------------------------------
Handler = Callable[[Ctx], Awaitable[web.Response]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    call: str
    perms: frozenset[str]
    handler: Handler
    mailbox: bool = True


M = "/admin/exchange/mailboxes/{mailbox}"
ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/users/{user}/settings/exchange",
        "resolveMailbox",
        frozenset(P_USER),
        resolve_mailbox,
        mailbox=False,
    ),
    Route("GET", M + "/folders", "listFolders", frozenset(P_FOLDER_READ), list_folders),
    Route("POST", M + "/folders", "createFolder", frozenset(P_FOLDER_WRITE), create_folder),
    Route("GET", M + "/folders/delta", "folderDelta", frozenset(P_FOLDER_READ), folder_delta),
    Route("GET", M + "/folders/{folder}", "getFolder", frozenset(P_FOLDER_READ), get_folder),
    Route(
        "PATCH", M + "/folders/{folder}", "updateFolder", frozenset(P_FOLDER_WRITE), update_folder
    ),
    Route(
        "DELETE",
        M + "/folders/{folder}/$ref",
        "deleteFolder",
        frozenset(P_FOLDER_WRITE),
        delete_folder,
    ),
    Route(
        "GET",
        M + "/folders/{folder}/childFolders",
        "listChildFolders",
        frozenset(P_FOLDER_READ),
        list_child_folders,
    ),
    Route(
        "GET",
        M + "/folders/{folder}/childFolders/delta",
        "folderDelta",
        frozenset(P_FOLDER_READ),
        folder_delta,
    ),
    Route(
        "POST",
        M + "/folders/{folder}/childFolders",
        "createFolder",
        frozenset(P_FOLDER_WRITE),
        create_folder,
    ),
    Route("GET", M + "/folders/{folder}/items", "listItems", frozenset(P_ITEM_READ), list_items),
    Route(
        "GET", M + "/folders/{folder}/items/delta", "itemDelta", frozenset(P_ITEM_READ), item_delta
    ),
    Route("GET", M + "/folders/{folder}/items/{item}", "getItem", frozenset(P_ITEM_READ), get_item),
    Route(
        "DELETE",
        M + "/folders/{folder}/items/{item}",
        "deleteItem",
        frozenset(P_IMPORT),
        delete_item,
    ),
    Route("POST", M + "/exportItems", "exportItems", frozenset(P_EXPORT), export_items),
    Route(
        "POST",
        M + "/createImportSession",
        "createImportSession",
        frozenset(P_IMPORT),
        create_import_session,
    ),
)


def _with_function_spellings(routes: tuple[Route, ...]) -> tuple[Route, ...]:
    """Every ``…/delta`` route also as ``…/delta()``: clients generated from Graph's metadata
    (Microsoft's SDKs among them) call delta as an OData function. Same handler, same
    pages; registered right beside the plain spelling, before any ``{id}`` route."""
    out: list[Route] = []
    for r in routes:
        out.append(r)
        if r.path.endswith("/delta"):
            out.append(replace(r, path=r.path + "()"))
    return tuple(out)


ROUTES = _with_function_spellings(ROUTES)


def _drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()
    raise Dropped()


async def _dispatch(request: web.Request, route: Route, version: str) -> web.StreamResponse:
    emu = request.app[EMU]
    ctx = Ctx(request=request, emu=emu, call=route.call, version=version)
    crid = request.headers.get("client-request-id") or str(uuid.uuid4())
    rid = str(uuid.uuid4())
    status = 500
    mailbox_key = "-"
    t0 = time.perf_counter()
    try:
        try:
            if route.call == "importItem":
                _auth_import(ctx)
            else:
                _auth_bearer(ctx, route)
            mailbox_key = ctx.mailbox.id if ctx.mailbox else "-"
            resp = await _admitted(ctx, route)
        except GraphError as err:
            resp = error_response(err, rid, crid)
        except odata.ODataError as err:
            resp = error_response(GraphError(400, "BadRequest", str(err)), rid, crid)
        status = resp.status
        resp.headers["request-id"] = rid
        resp.headers["client-request-id"] = crid
        if isinstance(resp, web.Response) and resp.body is not None:
            emu.stats.bytes_out += len(resp.body)  # type: ignore[arg-type]
        return resp
    except Dropped:
        status = 0
        raise
    finally:
        emu.stats.observe(route.call, time.perf_counter() - t0)
        emu.stats.requests[(route.call, status)] += 1
        emu.stats.by_mailbox[mailbox_key] += 1
        emu.stats.status_by_mailbox[(mailbox_key, status)] += 1


def _auth_bearer(ctx: Ctx, route: Route) -> None:
    emu = ctx.emu
    header = ctx.request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    ctx.token = header[7:]
    claims = emu.tokens.verify(ctx.token)
    if claims is None:
        raise GraphError(
            401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
        )
    tenant = emu.tokens.tenant(claims["tid"])
    assert tenant is not None
    ctx.tenant = tenant
    ctx.app = claims["appid"]
    ctx.roles = frozenset(claims.get("roles", ()))
    if route.mailbox:
        ref = ctx.request.match_info["mailbox"]
        mbx = emu.mailboxes.get(ref)
        if mbx is None or mbx.tenant_id != tenant.id:
            raise GraphError(
                404,
                "ErrorNonExistentMailbox",
                f"The SMTP address or mailbox id '{ref}' has no mailbox associated.",
            )
        if mbx.is_archive and ctx.version != "beta":
            raise GraphError(
                400,
                "ErrorInvalidRequest",
                "Archive mailboxes are not supported on v1.0; use the beta endpoint.",
            )
        ctx.mailbox = mbx
        app = tenant.apps.get(ctx.app)
        if app is not None and app.scope is not None and mbx.upn.lower() not in app.scope:
            # RBAC for Applications: the grant does not reach this mailbox
            raise GraphError(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
    if not (ctx.roles & route.perms):
        raise GraphError(
            403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
        )


def _auth_import(ctx: Ctx) -> None:
    token = ctx.request.query.get("authtoken", "")
    s = ctx.emu.session(token)
    if s is None:
        raise GraphError(
            401, "InvalidAuthenticationToken", "The import session token is invalid or has expired."
        )
    quoted = ctx.request.match_info["mailbox"]
    if quoted != s.mailbox.id:
        raise GraphError(404, "ErrorNonExistentMailbox", "The mailbox in the URL is unknown.")
    ctx.token = token
    ctx.app = s.app
    ctx.mailbox = s.mailbox
    ctx.tenant = ctx.emu.tokens.tenant(s.mailbox.tenant_id)


async def _admitted(ctx: Ctx, route: Route) -> web.Response:
    emu = ctx.emu
    request = ctx.request
    ids: tuple[str, ...] = (ctx.mailbox.id.lower(), ctx.mailbox.upn.lower()) if ctx.mailbox else ()
    if route.call == "resolveMailbox":
        ids = (request.match_info["user"].lower(),)
    ctx.faults = emu.faults.pick(route.call, ids)
    for kind in ctx.faults:
        emu.stats.faults[kind] += 1
    f = ctx.faults
    if "drop_before" in f:
        _drop(request)
    if "token_revoke" in f:
        if route.call == "importItem":
            emu.expire_sessions(ctx.mailbox.id if ctx.mailbox else None)
        else:
            emu.tokens.revoke(ctx.token)
        raise GraphError(401, "InvalidAuthenticationToken", "Access token has been revoked.")
    if "session_expire" in f and route.call == "importItem":
        emu.sessions.pop(ctx.token, None)
        status = f["session_expire"].status
        code = {
            401: "InvalidAuthenticationToken",
            403: "ErrorAccessDenied",
            404: "ErrorItemNotFound",
        }.get(status, "InvalidAuthenticationToken")
        raise GraphError(status, code, "The import session has expired.")
    if "mailbox_not_found" in f and route.mailbox:
        raise GraphError(404, "ErrorNonExistentMailbox", "The mailbox was not found.")
    for kind, status in (("http_503", 503), ("http_504", 504)):
        if kind in f:
            headers = {}
            if f[kind].retry_after is not None:
                headers["Retry-After"] = f"{f[kind].retry_after:g}"
            code = "ErrorServerBusy" if status == 503 else "GatewayTimeout"
            raise GraphError(status, code, "The service is temporarily unavailable.", headers)

    length = request.content_length or 0
    if length > emu.config.max_body_bytes:
        raise GraphError(
            413, "ErrorMessageSizeExceeded", "The request body exceeds the maximum allowed size."
        )
    mbx_id = ctx.mailbox.id if ctx.mailbox else None
    now = time.monotonic()
    key = (ctx.app, mbx_id or "-")
    window = emu.stats.retry_until.get(key)
    if window is not None:
        issued, until = window
        # A request arriving within EARLY_GRACE of the 429 was sent before the client could
        # have read it: not early. Anything later and before Retry-After elapsed is.
        if issued + EARLY_GRACE < now < until:
            emu.stats.early[mbx_id or "-"] += 1
        elif now >= until:
            del emu.stats.retry_until[key]
    verdict = emu.throttle.admit(now, ctx.app, mbx_id, length if request.method != "GET" else 0)
    if verdict.reason is not None:
        emu.stats.throttled[verdict.reason] += 1
        emu.stats.throttled_by_mailbox[mbx_id or "-"] += 1
        if verdict.reason != CONCURRENCY:
            # Tolerance for clock granularity between client and server.
            emu.stats.retry_until[key] = (now, now + verdict.retry_after - 0.005)
        raise GraphError(
            429,
            "ApplicationThrottled",
            MESSAGES[verdict.reason],
            {"Retry-After": f"{max(verdict.retry_after, 0.001):.3f}"},
        )
    if mbx_id:
        emu.stats.enter(mbx_id)
    try:
        ctx.body = await request.read() if request.can_read_body else b""
        emu.stats.bytes_in += len(ctx.body)
        resp = await route.handler(ctx)
        out = len(resp.body) if isinstance(resp.body, bytes | bytearray) else 0
        delay = emu.throttle.latency(len(ctx.body) + out, emu.rng.random())
        if "slow" in f:
            delay += f["slow"].delay
        if delay > 0:
            await asyncio.sleep(delay)
        if "drop_after" in f:
            _drop(request)
        return resp
    finally:
        emu.throttle.release(ctx.app, mbx_id)
        if mbx_id:
            emu.stats.leave(mbx_id)


def add_graph_routes(app: web.Application) -> None:
    for version in ("v1.0", "beta"):
        for route in ROUTES:
            app.router.add_route(route.method, f"/{version}{route.path}", _bind(route, version))
    imp = Route("POST", "", "importItem", frozenset(), import_item)
    for ver, version in (("gv1.0", "v1.0"), ("gbeta", "beta")):
        app.router.add_route(
            "POST",
            "/api/" + ver + r"/Mailboxes('{mailbox:[^']+}')/importItem",
            _bind(imp, version),
        )


def _bind(route: Route, version: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await _dispatch(request, route, version)

    return handler
