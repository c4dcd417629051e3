"""Routing, authentication and admission: every call goes through ``_dispatch`` —
authenticate, find the mailbox, check the permission and its scope, apply faults, admit
through the throttle, run the handler, add latency, account."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from aiohttp import web

from . import odata
from .delta import folder_delta, item_delta
from .http import (
    EARLY_GRACE,
    EMU,
    P_EXPORT,
    P_FOLDER_READ,
    P_FOLDER_WRITE,
    P_IMPORT,
    P_ITEM_READ,
    P_USER,
    Ctx,
    Dropped,
    GraphError,
    error_response,
)
from .resources import (
    create_folder,
    delete_folder,
    delete_item,
    get_folder,
    get_item,
    list_child_folders,
    list_folders,
    list_items,
    resolve_mailbox,
    update_folder,
)
from .throttle import CONCURRENCY, MESSAGES
from .transfer import create_import_session, export_items, import_item

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
        if status == 200 and route.call == "importItem" and ctx.mailbox is not None:
            emu.stats.answered(ctx.mailbox.upn.lower(), len(ctx.body))
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
    """Faults first (as a failing front end would answer), then the throttle, then the call
    itself with its latency and any fault that strikes after it."""
    if ctx.emu.triggers.rules:
        folder = ctx.request.match_info.get("folder")
        ctx.emu.triggers.on_call(route.call, ctx.mailbox, folder, ctx.emu.rng)
    _faults_before(ctx, route)
    mbx_id = _admit(ctx)
    emu = ctx.emu
    if mbx_id:
        emu.stats.enter(mbx_id)
    try:
        return await _run(ctx, route)
    finally:
        emu.throttle.release(ctx.app, mbx_id)
        if mbx_id:
            emu.stats.leave(mbx_id)


def _faults_before(ctx: Ctx, route: Route) -> None:
    """Pick this call's faults (counted) and answer those that strike before it runs."""
    emu = ctx.emu
    ids: tuple[str, ...] = (ctx.mailbox.id.lower(), ctx.mailbox.upn.lower()) if ctx.mailbox else ()
    if route.call == "resolveMailbox":
        ids = (ctx.request.match_info["user"].lower(),)
    ctx.faults = f = emu.faults.pick(route.call, ids)
    for kind in f:
        emu.stats.faults[kind] += 1
    if "drop_before" in f:
        _drop(ctx.request)
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
    if "import_reject" in f and route.call == "importItem":
        raise GraphError(400, "ErrorCorruptData", "The item could not be imported.")
    if "mailbox_not_found" in f and route.mailbox:
        raise GraphError(404, "ErrorNonExistentMailbox", "The mailbox was not found.")
    if "not_found" in f:  # a folder or item that is there, answered as if not (transient)
        raise GraphError(
            404, "ErrorItemNotFound", "The specified object was not found in the store."
        )
    for kind, status in (("http_503", 503), ("http_504", 504)):
        if kind in f:
            headers = {}
            if f[kind].retry_after is not None:
                headers["Retry-After"] = f"{f[kind].retry_after:g}"
            code = "ErrorServerBusy" if status == 503 else "GatewayTimeout"
            raise GraphError(status, code, "The service is temporarily unavailable.", headers)


def _admit(ctx: Ctx) -> str | None:
    """The throttle's verdict on this request (429 with Retry-After when refused), and the
    bookkeeping of requests that arrive before a Retry-After elapsed; the mailbox id."""
    emu = ctx.emu
    request = ctx.request
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
    body = length if request.method != "GET" else 0
    verdict = emu.throttle.admit(now, ctx.app, mbx_id, body)
    if verdict.reason is None and ctx.call == "importItem" and ctx.mailbox is not None:
        emu.stats.uploaded(ctx.mailbox.upn.lower(), body, now)
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
    return mbx_id


async def _run(ctx: Ctx, route: Route) -> web.Response:
    """The handler, then the latency model (and a ``slow`` fault), then ``drop_after``."""
    emu = ctx.emu
    request = ctx.request
    ctx.body = await request.read() if request.can_read_body else b""
    emu.stats.bytes_in += len(ctx.body)
    resp = await route.handler(ctx)
    out = len(resp.body) if isinstance(resp.body, bytes | bytearray) else 0
    delay = emu.throttle.latency(len(ctx.body) + out, emu.rng.random())
    if "slow" in ctx.faults:
        delay += ctx.faults["slow"].delay
    if delay > 0:
        await asyncio.sleep(delay)
    if "drop_after" in ctx.faults:
        _drop(request)
    return resp


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
