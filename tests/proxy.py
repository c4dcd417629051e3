"""A forward HTTP proxy on 127.0.0.1 for tests, counting what passes through it.

It handles ``CONNECT host:port`` (a tunnel: the https requests inside are not seen, the
tunnels are counted per target) and absolute-form requests (``GET http://host:port/path``,
plain HTTP: each request is counted with its path, and forwarded on a connection of its own
with ``Connection: close``). With ``credentials`` it answers 407 to a request without the
matching ``Proxy-Authorization`` (and counts it in ``refused``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections import Counter
from types import TracebackType

HEAD_MAX = 64 * 1024
CHUNK = 1 << 16
IO_TIMEOUT = 30.0  # any one read or connect of the proxy; bounds every loop below in time


class CountingProxy:
    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self.tunnels: Counter[str] = Counter()  # target host:port -> CONNECTs
        self.requests: list[tuple[str, str, str]] = []  # (method, host:port, path) plain HTTP
        self.refused = 0  # 407s
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        et: type[BaseException] | None,
        e: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.credentials is None:
            return True
        user, pw = self.credentials
        want = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
        return headers.get("proxy-authorization") == want

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._one(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
        if len(head) > HEAD_MAX:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if not self._authorized(headers):
            self.refused += 1
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n'
                b"Connection: close\r\n\r\n"
            )
            await writer.drain()
            return
        if method == "CONNECT":
            await self._tunnel(target, reader, writer)
        elif target.startswith("http://"):
            await self._forward(method, target, version, lines[1:], headers, reader, writer)
        else:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port = target.rpartition(":")
        try:
            up_r, up_w = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), IO_TIMEOUT
            )
        except (OSError, TimeoutError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        self.tunnels[target] += 1
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        self._writers.add(up_w)
        try:
            await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))
        finally:
            self._writers.discard(up_w)
            up_w.close()

    async def _forward(
        self,
        method: str,
        target: str,
        version: str,
        header_lines: list[str],
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        rest = target.removeprefix("http://")
        hostport, _, path = rest.partition("/")
        self.requests.append((method, hostport, "/" + path))
        if "chunked" in headers.get("transfer-encoding", ""):
            writer.write(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(reader.readexactly(length), IO_TIMEOUT)
        host, _, port = hostport.rpartition(":")
        up_r, up_w = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), int(port)), IO_TIMEOUT
        )
        self._writers.add(up_w)
        try:
            keep = [
                h
                for h in header_lines
                if h
                and h.split(":", 1)[0].strip().lower()
                not in ("proxy-authorization", "connection", "keep-alive", "proxy-connection")
            ]
            out = [f"{method} /{path} {version}", *keep, "Connection: close", "", ""]
            up_w.write("\r\n".join(out).encode("latin-1") + body)
            await up_w.drain()
            # the answer says "Connection: close" whatever the server wrote: this connection
            # carries one request, and the client must not send another on it
            head = await asyncio.wait_for(up_r.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
            status, *fields = head.decode("latin-1").split("\r\n")
            fields = [
                f
                for f in fields
                if f and f.split(":", 1)[0].strip().lower() not in ("connection", "keep-alive")
            ]
            writer.write(
                "\r\n".join([status, *fields, "Connection: close", "", ""]).encode("latin-1")
            )
            await _pipe(up_r, writer)
        finally:
            self._writers.discard(up_w)
            up_w.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until end of stream (or a silence of IO_TIMEOUT), then half-close."""
    try:
        for _ in range(1_000_000):  # 64 GB at most: far beyond any test
            data = await asyncio.wait_for(src.read(CHUNK), IO_TIMEOUT)
            if not data:
                break
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (OSError, TimeoutError):
        dst.close()
