"""``minimal``: the least work any client could do. List, export 20, import each with the
``data`` passed through, high concurrency, no state, no pacing, no logs. Its throughput is
the ceiling of Python + aiohttp on this machine for this work.

    python -m benchmarks.contenders.minimal spec.json
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from benchmarks.contenders.common import connector, load_spec, mbx_url, report, token

CONCURRENCY_PER_PAIR = 8


async def copy_pair(
    http: aiohttp.ClientSession,
    spec: dict[str, Any],
    src_auth: dict[str, str],
    dst_auth: dict[str, str],
    src_upn: str,
    dst_upn: str,
) -> tuple[int, int]:
    g = spec["graph_url"]
    async with http.get(f"{g}/users/{src_upn}/settings/exchange", headers=src_auth) as r:
        s = mbx_url(spec, (await r.json())["primaryMailboxId"])
    async with http.get(f"{g}/users/{dst_upn}/settings/exchange", headers=dst_auth) as r:
        d = mbx_url(spec, (await r.json())["primaryMailboxId"])
    async with http.post(f"{d}/createImportSession", headers=dst_auth) as r:
        import_url = URL((await r.json())["importUrl"], encoded=True)
    queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(
        0 if spec.get("concurrency") else 64
    )
    # A service that enforces 4 in flight per mailbox would refuse a 5th: stay at its limit.
    workers = int(spec.get("concurrency") or CONCURRENCY_PER_PAIR)
    copied = nbytes = 0

    async def lister() -> None:
        async with http.get(f"{s}/folders/inbox", headers=src_auth) as r:
            fid = quote((await r.json())["id"], safe="")
        url: str | None = f"{s}/folders/{fid}/items?$top=999&$select=id,size"
        while url:
            async with http.get(URL(url, encoded=True), headers=src_auth) as r:
                body = orjson.loads(await r.read())
            rows = body["value"]
            for k in range(0, len(rows), 20):
                await queue.put(rows[k : k + 20])
            url = body.get("@odata.nextLink")
        for _ in range(workers):
            await queue.put(None)

    async def worker() -> None:
        nonlocal copied, nbytes
        while (batch := await queue.get()) is not None:
            async with http.post(
                f"{s}/exportItems", headers=src_auth, json={"itemIds": [i["id"] for i in batch]}
            ) as r:
                exported = orjson.loads(await r.read())["value"]
            for e in exported:
                body = orjson.dumps({"FolderId": "inbox", "Mode": "create", "Data": e["data"]})
                async with http.post(
                    import_url, data=body, headers={"Content-Type": "application/json"}
                ) as r:
                    await r.read()
                copied += 1
            nbytes += sum(i["size"] for i in batch)

    if spec.get("concurrency"):
        # With the service enforcing the in-flight limit, listing alongside the workers
        # would be a request too many: list first, then copy.
        await lister()
        await asyncio.gather(*(worker() for _ in range(workers)))
    else:
        await asyncio.gather(lister(), *(worker() for _ in range(workers)))
    return copied, nbytes


async def main() -> None:
    spec = load_spec()
    async with aiohttp.ClientSession(connector=connector(spec, 0)) as http:
        src_auth = {"Authorization": f"Bearer {await token(http, spec, 'source')}"}
        dst_auth = {"Authorization": f"Bearer {await token(http, spec, 'target')}"}
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *(copy_pair(http, spec, src_auth, dst_auth, s, d) for s, d in spec["pairs"])
        )
        report(sum(c for c, _ in results), sum(b for _, b in results), time.perf_counter() - t0)


if __name__ == "__main__":
    asyncio.run(main())
