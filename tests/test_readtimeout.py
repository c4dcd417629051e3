"""The read timeout with one timer per read (``graph/readtimeout.py``): a read still fails
once nothing has come for ``sock_read`` seconds, never earlier, and an answer that keeps
coming slowly still succeeds; the timer is no longer set again at every chunk."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from aiohttp.client_proto import ResponseHandler

from copyengine.graph.readtimeout import USABLE, LazyReadTimeout, lazy_read_timeout

pytestmark = pytest.mark.skipif(not USABLE, reason="this aiohttp lacks the read timer's parts")

SOCK_READ = 0.3


async def _serve(writer: asyncio.StreamWriter, path: str) -> None:
    """``/stall``: 10 of 100 bytes, then nothing; ``/trickle``: 12 bytes, one every 0.1 s
    (the whole answer takes 4 times ``SOCK_READ``); ``/quick``: 4 bytes at once."""
    n = {"/stall": 100, "/trickle": 12, "/quick": 4}[path]
    writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n".encode())
    if path == "/quick":
        writer.write(b"abcd")
    elif path == "/stall":
        writer.write(b"x" * 10)
        await writer.drain()
        await asyncio.sleep(5)
    else:
        for _ in range(n):
            writer.write(b"y")
            await writer.drain()
            await asyncio.sleep(0.1)
    await writer.drain()


async def _fetch(path: str, lazy: bool) -> tuple[Any, float, int, list[Any]]:
    """(the body or the exception, seconds from the last byte's arrival, read timers set
    while the answer came, the connections' protocols)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        try:
            await _serve(writer, line.split()[1].decode())
        except (asyncio.CancelledError, ConnectionError):
            pass  # the client gave up (a timeout), or the test is over
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    conn = aiohttp.TCPConnector(limit=4)
    if lazy:
        assert lazy_read_timeout(conn)
    timers = 0
    call_at = loop.call_at

    def counted(when: float, callback: Any, *args: Any, **kw: Any) -> Any:
        nonlocal timers
        timers += isinstance(getattr(callback, "__self__", None), ResponseHandler)
        return call_at(when, callback, *args, **kw)

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=SOCK_READ)
    out: Any
    protocols: list[Any] = []
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:
        last = time.monotonic()
        try:
            async with http.get(f"http://127.0.0.1:{port}{path}") as resp:
                loop.call_at = counted  # type: ignore[method-assign, assignment]
                try:
                    out = b""
                    while chunk := await resp.content.readany():
                        out += chunk
                        last = time.monotonic()
                finally:
                    del loop.call_at
                    protocols.append(resp.connection.protocol if resp.connection else None)
        except (TimeoutError, aiohttp.ClientError) as exc:
            out = exc
        waited = time.monotonic() - last
    server.close()
    await server.wait_closed()
    return out, waited, timers, protocols


@pytest.mark.parametrize("lazy", [True, False], ids=["lazy", "aiohttp"])
def test_a_stalled_answer_fails_after_the_read_timeout_never_before(lazy: bool) -> None:
    out, waited, _, _ = asyncio.run(_fetch("/stall", lazy))
    assert isinstance(out, (aiohttp.ClientError, TimeoutError)), out
    assert SOCK_READ - 0.01 <= waited < SOCK_READ + 3.0


@pytest.mark.parametrize("lazy", [True, False], ids=["lazy", "aiohttp"])
def test_an_answer_that_keeps_coming_is_read_whole(lazy: bool) -> None:
    out, _, _, _ = asyncio.run(_fetch("/trickle", lazy))
    assert out == b"y" * 12


def test_the_timer_is_set_once_per_read_not_once_per_chunk() -> None:
    """aiohttp's own connection sets a timer per chunk (12 here); this one sets it once
    and again only when it comes due while the answer is still coming (every
    ``SOCK_READ`` of the 1.2 s)."""
    lazy = asyncio.run(_fetch("/trickle", True))
    plain = asyncio.run(_fetch("/trickle", False))
    assert plain[2] >= 10
    assert lazy[2] <= 6, lazy[2]


@pytest.mark.anyio
async def test_the_job_connections_use_it(tmp_path: Any) -> None:
    """The job's HTTP session (``wiring.clients``) makes its connections this way."""
    from copyengine.config import load_job
    from copyengine.wiring import clients
    from tests.emu import base_config, running
    from tests.jobs import write_job

    async with running(base_config()) as (_, ep, _):
        pair = ("adele@contoso.example", "adele@fabrikam.example")
        cfg = load_job(write_job(tmp_path, ep, [pair]))
        async with clients(cfg) as built:
            factory = built.src.transport.http.connector._factory  # type: ignore[attr-defined]
    assert factory.func is LazyReadTimeout


def test_a_kept_connection_idles_past_the_timeout_and_still_times_a_stalled_read() -> None:
    """The timer outlives a read on a kept-alive connection: coming due with no read under
    way it lapses (the idle connection is not failed, and serves the next request), and a
    later read on it that stalls still fails after ``SOCK_READ``, not before."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(10):
                line = await reader.readline()
                if not line:
                    return
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                if line.split()[1] == b"/quick":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd")
                    await writer.drain()
                    continue
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nxxxx")
                await writer.drain()
                await asyncio.sleep(5)
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()

    async def go() -> tuple[list[Any], float]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        conn = aiohttp.TCPConnector(limit=1)
        assert lazy_read_timeout(conn)
        protocols: list[Any] = []  # every connection made
        make = conn._factory

        def made() -> Any:
            protocols.append(make())
            return protocols[-1]

        conn._factory = made  # type: ignore[assignment]
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=SOCK_READ)
        async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:
            for pause in (0.0, 3 * SOCK_READ):
                await asyncio.sleep(pause)
                async with http.get(f"{url}/quick") as resp:
                    assert await resp.read() == b"abcd"
            start = time.monotonic()
            with pytest.raises((aiohttp.ClientError, TimeoutError)):
                async with http.get(f"{url}/stall") as resp:
                    await resp.read()
            waited = time.monotonic() - start
        server.close()
        await server.wait_closed()
        return protocols, waited

    protocols, waited = asyncio.run(go())
    assert len(protocols) == 1 and isinstance(protocols[0], LazyReadTimeout)  # one, kept
    assert SOCK_READ - 0.01 <= waited < SOCK_READ + 3.0
