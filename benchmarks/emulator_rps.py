"""How fast the emulator serves exportItems and imports (``unlimited`` profile), and its memory
while holding 100,000 items.

    python -m benchmarks.emulator_rps [--items 100000] [--seconds 8] [--tls]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import sys
import time
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from benchmarks.common import (
    RECORD_HELP,
    cpu_seconds,
    emulator_process,
    machine,
    results_dir,
    rss_kib,
    write_result,
)

CONFIG = """
[emulator]
profile = "unlimited"
tls = {tls}
seed = 1

[[tenants]]
name = "bench"
domain = "bench.example"
[[tenants.apps]]
client_id = "bench-app"
secret = "bench-secret"
[[tenants.users]]
upn = "big@bench.example"
mailbox = {{ seed = 1, items = {items}, sizes = {{ distribution = "fixed", value = {size} }}, layout = "flat" }}
[[tenants.users]]
upn = "empty@bench.example"
mailbox = {{ layout = "empty" }}
"""


async def _run(info: dict[str, Any], pid: int, seconds: float, concurrency: int) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=info["ca_cert"]) if info["ca_cert"] else False
    conn = aiohttp.TCPConnector(ssl=ctx, limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as http:
        origin = info["authority_url"]
        async with http.post(
            f"{origin}/bench/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "bench-app",
                "client_secret": "bench-secret",
                "scope": "https://graph.microsoft.com/.default",
            },
        ) as r:
            token = (await r.json())["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        g = info["graph_url"]

        async def mbx(upn: str) -> str:
            async with http.get(f"{g}/users/{upn}/settings/exchange", headers=auth) as r:
                return str((await r.json())["primaryMailboxId"])

        src, dst = await mbx("big@bench.example"), await mbx("empty@bench.example")
        sm = f"{g}/admin/exchange/mailboxes/{quote(src, safe=':@')}"
        dm = f"{g}/admin/exchange/mailboxes/{quote(dst, safe=':@')}"
        ids: list[str] = []
        url: str | None = f"{sm}/folders/inbox/items?$top=999&$select=id"
        while url and len(ids) < 4000:
            async with http.get(URL(url, encoded=True), headers=auth) as r:
                body = await r.json()
            ids += [v["id"] for v in body["value"]]
            url = body.get("@odata.nextLink")
        batches = [ids[k : k + 20] for k in range(0, len(ids), 20)]
        async with http.post(f"{dm}/createImportSession", headers=auth) as r:
            import_url = (await r.json())["importUrl"]
        async with http.post(f"{sm}/exportItems", json={"itemIds": ids[:1]}, headers=auth) as r:
            data = (await r.json())["value"][0]["data"]
        import_body = orjson.dumps({"FolderId": "inbox", "Mode": "create", "Data": data})

        async def load(kind: str) -> tuple[float, list[float]]:
            done = 0
            lat: list[float] = []
            stop = time.monotonic() + seconds

            async def worker(w: int) -> None:
                nonlocal done
                k = w
                while time.monotonic() < stop:
                    t0 = time.perf_counter()
                    if kind == "export":
                        async with http.post(
                            f"{sm}/exportItems",
                            headers=auth,
                            json={"itemIds": batches[k % len(batches)]},
                        ) as r:
                            await r.read()
                            assert r.status == 200
                    else:
                        async with http.post(
                            import_url,
                            data=import_body,
                            headers={"Content-Type": "application/json"},
                        ) as r:
                            await r.read()
                            assert r.status == 200
                    lat.append(time.perf_counter() - t0)
                    done += 1
                    k += concurrency

            t0 = time.monotonic()
            await asyncio.gather(*(worker(w) for w in range(concurrency)))
            return done / (time.monotonic() - t0), lat

        out: dict[str, Any] = {}
        for kind in ("export", "import"):
            cpu0 = cpu_seconds(pid)
            rps, lat = await load(kind)
            lat.sort()
            out[kind] = {
                "requests_per_s": round(rps, 1),
                "items_per_s": round(rps * (20 if kind == "export" else 1), 1),
                "p50_ms": round(1000 * statistics.median(lat), 2),
                "p99_ms": round(1000 * lat[int(len(lat) * 0.99) - 1], 2),
                "server_cpu_s": round(cpu_seconds(pid) - cpu0, 2),
            }
        return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--tls", action="store_true")
    p.add_argument("--record", action="store_true", help=RECORD_HELP)
    a = p.parse_args(argv)
    cfg = CONFIG.format(tls="true" if a.tls else "false", items=a.items, size=a.size)
    t0 = time.monotonic()
    with emulator_process(cfg) as (info, pid):
        ready_s = time.monotonic() - t0
        rss_idle, _ = rss_kib(pid)
        res = asyncio.run(_run(info, pid, a.seconds, a.concurrency))
        rss_now, rss_peak = rss_kib(pid)
    data = {
        "benchmark": "emulator_rps",
        "command": "python -m benchmarks.emulator_rps " + " ".join(argv or sys.argv[1:]),
        "parameters": vars(a),
        "machine": machine(),
        "startup_s": round(ready_s, 1),
        "logical_bytes": a.items * a.size,
        "rss_mib_after_seed": round(rss_idle / 1024, 1),
        "rss_mib_end": round(rss_now / 1024, 1),
        "rss_mib_peak": round(rss_peak / 1024, 1),
        "results": res,
    }
    table = (
        f"| emulator ({'TLS' if a.tls else 'HTTP'}, {a.items:,} items x {a.size:,} B) | req/s | "
        "items/s | p50 ms | p99 ms |\n|---|---|---|---|---|\n"
        + "".join(
            f"| {k} | {v['requests_per_s']} | {v['items_per_s']} | {v['p50_ms']} | {v['p99_ms']} |\n"
            for k, v in res.items()
        )
        + f"\nRSS after seeding: {data['rss_mib_after_seed']} MiB; peak: {data['rss_mib_peak']} MiB\n"
    )
    name = f"emulator_rps_{'tls' if a.tls else 'http'}"
    results = results_dir(a.record)
    write_result(name, data, table, results)
    print(table)
    print(f"results: {results}")


if __name__ == "__main__":
    main()
