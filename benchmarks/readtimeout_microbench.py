"""A microbenchmark of the read timeout's cost per request (a diagnostic, not a scenario):
aiohttp's own connections (a read timer cancelled and set again at every chunk) against the
engine's (``graph/readtimeout.py``: one timer, its deadline moved on), the client's CPU
seconds per 1,000 requests, in turns, with the same ``sock_read`` as the engine's.

    python -m benchmarks.readtimeout_microbench [--requests 4000] [--size 90000] [--turns 4]

The server is a subprocess on 127.0.0.1 that answers every request on a kept connection
with ``--size`` bytes (an import's answer is ~0.3 KB, an export's ~1.8 MB: the sizes
between bring 1-30 chunks each), so only the client's CPU is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import aiohttp

from copyengine.graph import Timeouts
from copyengine.graph.readtimeout import lazy_read_timeout

SERVER = r"""
import asyncio, sys
size = int(sys.argv[1])
body = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size
async def handle(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            writer.write(body)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


async def _run(port: int, requests: int, lazy: bool, tasks: int = 8) -> float:
    conn = aiohttp.TCPConnector(limit=tasks)
    if lazy:
        lazy_read_timeout(conn)
    left = 0
    async with aiohttp.ClientSession(connector=conn, timeout=Timeouts().client_timeout()) as http:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with http.get(f"http://127.0.0.1:{port}/") as resp:
                    await resp.read()

        left = tasks  # the connections made before the clock starts
        await asyncio.gather(*(worker() for _ in range(tasks)))
        left = requests
        start = time.process_time()
        await asyncio.gather(*(worker() for _ in range(tasks)))
        return time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--size", type=int, default=90_000)
    ap.add_argument("--turns", type=int, default=4)
    a = ap.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(a.size)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        out: dict[str, list[float]] = {"aiohttp": [], "lazy": []}
        for turn in range(a.turns):
            for name in ("aiohttp", "lazy") if turn % 2 == 0 else ("lazy", "aiohttp"):
                cpu = asyncio.run(_run(port, a.requests, name == "lazy"))
                out[name].append(cpu / a.requests * 1000)
        for name, xs in out.items():
            print(f"{name:8} CPU s per 1,000 requests: " + " ".join(f"{x:.3f}" for x in xs))
        ratios = [lz / ah for lz, ah in zip(out["lazy"], out["aiohttp"], strict=True)]
        print("lazy / aiohttp per turn: " + " ".join(f"{r:.3f}" for r in ratios))
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
