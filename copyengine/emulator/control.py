"""Identity endpoints (discovery + token) and the ``/_emulator`` control surface."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from . import changes
from .config import EmulatorConfigError, parse_tenant, parse_user
from .faults import FaultRule
from .graph import EMU, json_response
from .identity import AuthError
from .throttle import Limits
from .triggers import Trigger


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


# -- identity ----------------------------------------------------------------------------------
async def instance_discovery(request: web.Request) -> web.Response:
    """``/common/discovery/instance`` as msal calls it when given a discovery URL."""
    auth_ep = request.query.get("authorization_endpoint", "")
    parts = [p for p in urlsplit(auth_ep).path.split("/") if p]
    tenant = parts[0] if parts else "common"
    origin = _origin(request)
    host = request.host
    return json_response(
        {
            "tenant_discovery_endpoint": f"{origin}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }
    )


async def openid_configuration(request: web.Request) -> web.Response:
    emu = request.app[EMU]
    ref = request.match_info["tenant"]
    tenant = emu.tokens.tenant(ref)
    if tenant is None:
        return json_response(
            {
                "error": "invalid_tenant",
                "error_description": f"AADSTS90002: Tenant '{ref}' not found.",
            },
            400,
        )
    origin = _origin(request)
    base = f"{origin}/{tenant.id}"
    return json_response(
        {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "issuer": f"{origin}/{tenant.id}/v2.0",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "grant_types_supported": ["client_credentials"],
            "tenant_region_scope": "EU",
        }
    )


async def token(request: web.Request) -> web.Response:
    emu = request.app[EMU]
    ref = request.match_info["tenant"]
    form = {k: str(v) for k, v in (await request.post()).items()}
    tenant = emu.tokens.tenant(ref)
    token_url = f"{_origin(request)}/{tenant.id if tenant else ref}/oauth2/v2.0/token"
    # msal signs the assertion for the endpoint it discovered; accept the URL as requested too.
    requested_url = f"{_origin(request)}{request.path}"
    try:
        try:
            body = emu.tokens.issue(ref, form, token_url)
        except AuthError as first:
            if requested_url == token_url or "client_assertion" not in form:
                raise
            try:
                body = emu.tokens.issue(ref, form, requested_url)
            except AuthError:
                raise first from None
    except AuthError as err:
        emu.stats.token_requests[err.status] += 1
        return json_response(
            {
                "error": err.error,
                "error_description": err.description,
                "error_codes": [int(err.description[6:].split(":")[0])]
                if err.description.startswith("AADSTS")
                else [],
                "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
                "trace_id": str(uuid.uuid4()),
                "correlation_id": request.headers.get("client-request-id", str(uuid.uuid4())),
            },
            err.status,
        )
    emu.stats.token_requests[200] += 1
    return json_response(body)


# -- control -----------------------------------------------------------------------------------
async def _json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc


def _bad(msg: str) -> web.Response:
    return json_response({"error": msg}, 400)


async def get_directory(request: web.Request) -> web.Response:
    return json_response(request.app[EMU].directory())


async def post_tenant(request: web.Request) -> web.Response:
    emu = request.app[EMU]
    try:
        tc = parse_tenant(await _json(request), "tenant")
        tenant = emu.add_tenant(tc)
    except (EmulatorConfigError, ValueError) as exc:
        return _bad(str(exc))
    return json_response({"id": tenant.id, "name": tenant.name}, 201)


async def post_user(request: web.Request) -> web.Response:
    emu = request.app[EMU]
    tenant = emu.tokens.tenant(request.match_info["tenant"])
    if tenant is None:
        return json_response({"error": "unknown tenant"}, 404)
    try:
        uc = parse_user(await _json(request), "user")
        mbx = emu.add_user(tenant, uc)
    except (EmulatorConfigError, ValueError) as exc:
        return _bad(str(exc))
    return json_response({"upn": mbx.upn, "mailboxId": mbx.id, "items": len(mbx.items)}, 201)


async def get_snapshot(request: web.Request) -> web.Response:
    emu = request.app[EMU]
    mbx = emu.mailbox(request.match_info["mailbox"])
    if mbx is None:
        return json_response({"error": "unknown mailbox"}, 404)
    return json_response(mbx.snapshot())


async def get_stats(request: web.Request) -> web.Response:
    emu = request.app[EMU]
    body = emu.stats.as_dict()
    body["limits"] = emu.limits.as_dict()
    body["sessions"] = len(emu.sessions)
    body["background_bytes_by_mailbox"] = emu.throttle.background_bytes()
    return json_response(body)


async def get_counters(request: web.Request) -> web.Response:
    """A cheap subset of the stats, for sampling during benchmarks."""
    st = request.app[EMU].stats
    ok_imports = st.requests.get(("importItem", 200), 0)
    return json_response(
        {
            "imports_ok": ok_imports,
            "requests": sum(st.requests.values()),
            "throttled": sum(st.throttled.values()),
        }
    )


async def get_imports(request: web.Request) -> web.Response:
    """Each import answered since the stats were reset, with its time and body bytes, per
    target mailbox (``Stats.answers_dict``): spans without an import, measured exactly."""
    return json_response(request.app[EMU].stats.answers_dict())


async def reset_stats(request: web.Request) -> web.Response:
    request.app[EMU].stats.reset()
    return web.Response(status=204)


async def get_removals(request: web.Request) -> web.Response:
    """What Graph calls removed (``removals.py``); ``?mailbox=`` (UPN or id) for one mailbox."""
    emu = request.app[EMU]
    ref = request.query.get("mailbox")
    mbx = emu.mailbox(ref) if ref else None
    if ref and mbx is None:
        return json_response({"error": "unknown mailbox"}, 404)
    return json_response(emu.removals.as_dict(mbx.id if mbx else None))


async def reset_removals(request: web.Request) -> web.Response:
    request.app[EMU].removals.reset()
    return web.Response(status=204)


async def put_triggers(request: web.Request) -> web.Response:
    """Add one owner change timed to a call (``triggers.py``)."""
    emu = request.app[EMU]
    body = await _json(request)
    try:
        t = Trigger.parse(body, emu.mailbox(str(body.get("mailbox", ""))))
    except ValueError as exc:
        return _bad(str(exc))
    emu.triggers.rules.append(t)
    return json_response(t.as_dict())


async def get_triggers(request: web.Request) -> web.Response:
    return json_response({"triggers": [t.as_dict() for t in request.app[EMU].triggers.rules]})


async def delete_triggers(request: web.Request) -> web.Response:
    request.app[EMU].triggers.rules.clear()
    return web.Response(status=204)


async def get_faults(request: web.Request) -> web.Response:
    return json_response({"rules": [r.as_dict() for r in request.app[EMU].faults.rules]})


async def _fault_rules(request: web.Request) -> tuple[dict[str, Any], list[FaultRule]]:
    """The request's body and its fault rules (ValueError or TypeError: one is malformed)."""
    body = await _json(request)
    return body, [FaultRule.parse(r) for r in body.get("rules", [])]


async def put_faults(request: web.Request) -> web.Response:
    emu = request.app[EMU]
    try:
        body, rules = await _fault_rules(request)
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))
    emu.faults.replace(rules, int(body.get("seed", emu.config.seed)))
    return json_response({"rules": [r.as_dict() for r in rules]})


async def post_faults(request: web.Request) -> web.Response:
    """Add rules to those in force (``PUT`` replaces them all, counts with them): a rule
    armed for a later moment leaves the earlier ones, fired or not, as they are."""
    emu = request.app[EMU]
    try:
        _, rules = await _fault_rules(request)
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))
    emu.faults.add(rules)
    return json_response({"rules": [r.as_dict() for r in emu.faults.rules]})


async def delete_faults(request: web.Request) -> web.Response:
    request.app[EMU].faults.replace([])
    return web.Response(status=204)


async def put_limits(request: web.Request) -> web.Response:
    emu = request.app[EMU]
    body = dict(await _json(request))
    profile = body.pop("profile", emu.limits.name)
    scale = float(body.pop("time_scale", emu.config.time_scale))
    try:
        limits = Limits.profile(profile, scale, **body)
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))
    emu.set_limits(limits)
    return json_response(limits.as_dict())


async def revoke_tokens(request: web.Request) -> web.Response:
    body = await _json(request)
    n = request.app[EMU].tokens.revoke_all(body.get("client_id"))
    return json_response({"revoked": n})


async def expire_sessions(request: web.Request) -> web.Response:
    body = await _json(request)
    n = request.app[EMU].expire_sessions(body.get("mailboxId"))
    return json_response({"expired": n})


async def expire_delta(request: web.Request) -> web.Response:
    emu = request.app[EMU]
    body = await _json(request)
    ref = body.get("mailboxId")
    boxes = [emu.mailbox(ref)] if ref else list(emu.mailboxes.values())
    for m in boxes:
        if m is None:
            return json_response({"error": "unknown mailbox"}, 404)
        m.delta_epoch += 1
    return json_response({"expired": len(boxes)})


async def post_mailbox_change(request: web.Request) -> web.Response:
    """Change a mailbox as its owner would (``{"ops": [...]}``, see ``changes.py``); the
    older ``{"delete": [ids]}`` hard-deletes items behind the API's back."""
    emu = request.app[EMU]
    mbx = emu.mailbox(request.match_info["mailbox"])
    if mbx is None:
        return json_response({"error": "unknown mailbox"}, 404)
    body = await _json(request)
    deleted = 0
    for item_id in body.get("delete", []):
        it = mbx.items.get(item_id)
        if it is not None:
            mbx.delete_item(it)
            deleted += 1
    results: list[dict[str, Any]] = []
    for i, op in enumerate(body.get("ops", [])):
        try:
            results.append(changes.apply(mbx, op, emu.rng))
        except (changes.ChangeError, KeyError, TypeError, ValueError) as exc:
            return json_response({"error": f"ops[{i}]: {exc}", "applied": results}, 400)
    return json_response({"deleted": deleted, "results": results})


async def put_churn(request: web.Request) -> web.Response:
    """Start (or replace) a seeded churn: ``{"rate": N, "mailboxes": [upn|id], "mix": {...},
    "seed": S}``; ``"rate": 0`` stops one (as ``DELETE`` does: its counts are answered)."""
    emu = request.app[EMU]
    body = await _json(request)
    applied = emu.churn.applied if emu.churn else {}
    try:
        emu.start_churn(body)
    except (ValueError, KeyError, TypeError) as exc:
        return json_response({"error": str(exc)}, 400)
    if emu.churn is None:
        return json_response({"churning": False, "applied": applied})
    return json_response({"churning": True})


async def get_churn(request: web.Request) -> web.Response:
    c = request.app[EMU].churn
    return json_response({"churning": c is not None, "applied": c.applied if c else {}})


async def delete_churn(request: web.Request) -> web.Response:
    emu = request.app[EMU]
    applied = emu.churn.applied if emu.churn else {}
    emu.stop_churn()
    return json_response({"churning": False, "applied": applied})


def add_identity_routes(app: web.Application) -> None:
    app.router.add_get("/common/discovery/instance", instance_discovery)
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", token)


def add_control_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_emulator/directory", get_directory)
    r.add_post("/_emulator/tenants", post_tenant)
    r.add_post("/_emulator/tenants/{tenant}/users", post_user)
    r.add_get("/_emulator/mailboxes/{mailbox}/snapshot", get_snapshot)
    r.add_post("/_emulator/mailboxes/{mailbox}/changes", post_mailbox_change)
    r.add_put("/_emulator/churn", put_churn)
    r.add_get("/_emulator/churn", get_churn)
    r.add_delete("/_emulator/churn", delete_churn)
    r.add_get("/_emulator/stats", get_stats)
    r.add_post("/_emulator/stats/reset", reset_stats)
    r.add_get("/_emulator/stats/counters", get_counters)
    r.add_get("/_emulator/stats/imports", get_imports)
    r.add_get("/_emulator/removals", get_removals)
    r.add_delete("/_emulator/removals", reset_removals)
    r.add_put("/_emulator/triggers", put_triggers)
    r.add_get("/_emulator/triggers", get_triggers)
    r.add_delete("/_emulator/triggers", delete_triggers)
    r.add_get("/_emulator/faults", get_faults)
    r.add_put("/_emulator/faults", put_faults)
    r.add_post("/_emulator/faults", post_faults)
    r.add_delete("/_emulator/faults", delete_faults)
    r.add_put("/_emulator/limits", put_limits)
    r.add_post("/_emulator/tokens/revoke", revoke_tokens)
    r.add_post("/_emulator/import-sessions/expire", expire_sessions)
    r.add_post("/_emulator/delta/expire", expire_delta)
