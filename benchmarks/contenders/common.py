"""What the reference contenders share: a spec file, a token, paging. Deliberately small."""

from __future__ import annotations

import json
import ssl
import sys
from typing import Any
from urllib.parse import quote

import aiohttp


def load_spec() -> dict[str, Any]:
    with open(sys.argv[1], encoding="utf-8") as fh:
        return json.load(fh)  # type: ignore[no-any-return]


def connector(spec: dict[str, Any], limit: int) -> aiohttp.TCPConnector:
    ctx: Any = ssl.create_default_context(cafile=spec["ca_cert"]) if spec["ca_cert"] else False
    return aiohttp.TCPConnector(ssl=ctx, limit=limit)


async def token(http: aiohttp.ClientSession, spec: dict[str, Any], side: str) -> str:
    t = spec[side]
    async with http.post(
        f"{spec['authority']}/{t['tenant']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": t["client_id"],
            "client_secret": t["secret"],
            "scope": "https://graph.microsoft.com/.default",
        },
    ) as r:
        return str((await r.json())["access_token"])


def mbx_url(spec: dict[str, Any], mailbox_id: str) -> str:
    return f"{spec['graph_url']}/admin/exchange/mailboxes/{quote(mailbox_id, safe=':@')}"


def report(copied: int, nbytes: int, seconds: float, errors: int = 0) -> None:
    print(json.dumps({"copied": copied, "bytes": nbytes, "duration_s": seconds, "errors": errors}))
