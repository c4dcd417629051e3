"""Build real GraphClients against a running in-process emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from copyengine.auth import Credential, TokenProvider
from copyengine.emulator import Endpoints
from copyengine.graph import GraphClient, Timeouts
from copyengine.pacing import PacerLimits, Pacers
from copyengine.secrets import Secret
from copyengine.wiring import graph_client
from tests.emu import DST_APP, DST_SECRET, SRC_APP, SRC_SECRET, client_ssl


@dataclass
class Clients:
    src: GraphClient
    dst: GraphClient
    pacers: Pacers
    http: aiohttp.ClientSession


def provider(ep: Endpoints, tenant: str, app: str, secret: str, **kw: Any) -> TokenProvider:
    return TokenProvider(
        tenant=tenant,
        client_id=app,
        credential=Credential(secret=Secret(secret)),
        authority_host=ep.origin,
        ca_bundle=ep.ca_cert,
        **kw,
    )


@asynccontextmanager
async def clients(
    ep: Endpoints, limits: PacerLimits | None = None, **token_kw: Any
) -> AsyncIterator[Clients]:
    pacers = Pacers(limits or PacerLimits())
    conn = aiohttp.TCPConnector(ssl=client_ssl(ep), limit=0)
    async with aiohttp.ClientSession(
        connector=conn, timeout=Timeouts(sock_read=20).client_timeout()
    ) as http:
        src = graph_client(
            ep.graph_url, provider(ep, "contoso", SRC_APP, SRC_SECRET, **token_kw), http, pacers
        )
        dst = graph_client(
            ep.graph_url, provider(ep, "fabrikam", DST_APP, DST_SECRET, **token_kw), http, pacers
        )
        yield Clients(src, dst, pacers, http)
