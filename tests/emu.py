"""Helpers to run an emulator in-process and talk raw HTTP to it (for conformance tests)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from copyengine.emulator import EmulatorServer, Endpoints, parse_config

SRC_APP = "11111111-1111-4111-8111-111111111111"
DST_APP = "22222222-2222-4222-8222-222222222222"
RO_APP = "33333333-3333-4333-8333-333333333333"
SRC_SECRET = "contoso-test-secret"
DST_SECRET = "fabrikam-test-secret"
RO_SECRET = "readonly-test-secret"


def base_config(**emulator: Any) -> dict[str, Any]:
    emu = {"profile": "unlimited", "tls": True, "seed": 3}
    emu.update(emulator)
    return {
        "emulator": emu,
        "tenants": [
            {
                "name": "contoso",
                "domain": "contoso.example",
                "apps": [
                    {"client_id": SRC_APP, "secret": SRC_SECRET, "certificate": "generate"},
                    {
                        "client_id": RO_APP,
                        "secret": RO_SECRET,
                        "roles": [
                            "User.Read.All",
                            "MailboxFolder.Read.All",
                            "MailboxItem.Read.All",
                        ],
                    },
                ],
                "users": [
                    {
                        "upn": "adele@contoso.example",
                        "mailbox": {"seed": 1, "items": 120, "sizes": "realistic"},
                    },
                    {"upn": "bianca@contoso.example", "mailbox": {"seed": 2, "items": 30}},
                ],
            },
            {
                "name": "fabrikam",
                "domain": "fabrikam.example",
                "apps": [{"client_id": DST_APP, "secret": DST_SECRET}],
                "users": [
                    {"upn": "adele@fabrikam.example", "mailbox": {"layout": "empty"}},
                    {"upn": "bianca@fabrikam.example", "mailbox": {"layout": "empty"}},
                ],
            },
        ],
    }


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any


class Api:
    """Raw HTTP against one emulator, as one app of one tenant."""

    def __init__(
        self,
        ep: Endpoints,
        session: aiohttp.ClientSession,
        tenant: str,
        client_id: str,
        secret: str,
    ) -> None:
        self.ep = ep
        self.http = session
        self.tenant = tenant
        self.client_id = client_id
        self.secret = secret
        self.token = ""
        self.graph = ep.graph_url

    async def login(self) -> str:
        url = f"{self.ep.origin}/{self.tenant}/oauth2/v2.0/token"
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.secret,
            "scope": "https://graph.microsoft.com/.default",
        }
        async with self.http.post(url, data=form) as r:
            body = await r.json()
            assert r.status == 200, body
            self.token = body["access_token"]
            return self.token

    async def call(
        self,
        method: str,
        url: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        raw: bytes | None = None,
    ) -> Reply:
        if not url.startswith("http"):
            url = self.graph + url
        h = dict(headers or {})
        if auth:
            h["Authorization"] = f"Bearer {self.token}"
        data = raw if raw is not None else (orjson.dumps(json) if json is not None else None)
        if data is not None:
            h["Content-Type"] = "application/json"
        async with self.http.request(method, URL(url, encoded=True), data=data, headers=h) as r:
            text = await r.read()
            body = orjson.loads(text) if text else None
            return Reply(r.status, body, r.headers)

    async def get(self, url: str, **kw: Any) -> Reply:
        return await self.call("GET", url, **kw)

    async def post(self, url: str, json: Any = None, **kw: Any) -> Reply:
        return await self.call("POST", url, json=json, **kw)

    async def mailbox_id(self, upn: str) -> str:
        r = await self.get(f"/users/{upn}/settings/exchange")
        assert r.status == 200, r.body
        return str(r.body["primaryMailboxId"])

    def m(self, mbx: str) -> str:
        return f"/admin/exchange/mailboxes/{quote(mbx, safe=':@')}"

    async def collect(self, url: str, **kw: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for _ in range(10_000):
            r = await self.get(url, **kw)
            assert r.status == 200, r.body
            out.extend(r.body["value"])
            url = r.body.get("@odata.nextLink")
            if not url:
                return out
        raise AssertionError("paging did not end")

    async def control(self, method: str, path: str, json: Any = None) -> Reply:
        return await self.call(method, self.ep.control_url + path, json=json, auth=False)


def q(s: str) -> str:
    return quote(s, safe="")


def client_ssl(ep: Endpoints) -> ssl.SSLContext:
    assert ep.ca_cert
    return ssl.create_default_context(cafile=ep.ca_cert)


@asynccontextmanager
async def running(
    cfg: dict[str, Any],
) -> AsyncIterator[tuple[EmulatorServer, Endpoints, aiohttp.ClientSession]]:
    server = EmulatorServer(parse_config(cfg))
    ep = await server.start()
    conn = aiohttp.TCPConnector(ssl=client_ssl(ep) if ep.ca_cert else False, limit=64)
    try:
        async with aiohttp.ClientSession(connector=conn) as session:
            yield server, ep, session
    finally:
        await server.stop()
