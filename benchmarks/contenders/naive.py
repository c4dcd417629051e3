"""``naive``: what a simple script does. One item at a time, the data base64-decoded and
re-encoded, no pacing, retry on error after a fixed sleep.

    python -m benchmarks.contenders.naive spec.json
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from benchmarks.contenders.common import connector, load_spec, mbx_url, report, token

RETRY_SLEEP = 1.0
MAX_TRIES = 5


async def call(http: aiohttp.ClientSession, method: str, url: Any, **kw: Any) -> Any:
    for _ in range(MAX_TRIES):
        async with http.request(method, url, **kw) as r:
            if r.status < 300:
                return json.loads(await r.text())
        await asyncio.sleep(RETRY_SLEEP)
    raise RuntimeError(f"{method} failed {MAX_TRIES} times")


async def main() -> None:
    spec = load_spec()
    g = spec["graph_url"]
    copied = nbytes = 0
    async with aiohttp.ClientSession(connector=connector(spec, 1)) as http:
        sa = {"Authorization": f"Bearer {await token(http, spec, 'source')}"}
        da = {"Authorization": f"Bearer {await token(http, spec, 'target')}"}
        t0 = time.perf_counter()
        for src_upn, dst_upn in spec["pairs"]:
            s = mbx_url(
                spec,
                (await call(http, "GET", f"{g}/users/{src_upn}/settings/exchange", headers=sa))[
                    "primaryMailboxId"
                ],
            )
            d = mbx_url(
                spec,
                (await call(http, "GET", f"{g}/users/{dst_upn}/settings/exchange", headers=da))[
                    "primaryMailboxId"
                ],
            )
            imp = await call(http, "POST", f"{d}/createImportSession", headers=da)
            import_url = URL(imp["importUrl"], encoded=True)
            fid = quote((await call(http, "GET", f"{s}/folders/inbox", headers=sa))["id"], safe="")
            url: str | None = f"{s}/folders/{fid}/items"
            while url:
                page = await call(http, "GET", URL(url, encoded=True), headers=sa)
                for item in page["value"]:
                    exp = await call(
                        http, "POST", f"{s}/exportItems", headers=sa, json={"itemIds": [item["id"]]}
                    )
                    raw = base64.b64decode(exp["value"][0]["data"])
                    data = base64.b64encode(raw).decode()
                    await call(
                        http,
                        "POST",
                        import_url,
                        json={"FolderId": "inbox", "Mode": "create", "Data": data},
                    )
                    copied += 1
                    nbytes += item["size"]
                url = page.get("@odata.nextLink")
        report(copied, nbytes, time.perf_counter() - t0)


if __name__ == "__main__":
    asyncio.run(main())
