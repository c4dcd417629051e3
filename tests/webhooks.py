"""A webhook receiver on 127.0.0.1 for the notification tests: it records every request
(path, headers, JSON body, arrival time) and answers as its script says, per path: a status
(``200``, ``500``), ``(429, retry_after)``, or ``"hang"`` (never answers until closed)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiohttp import web

from copyengine import logs

Answer = int | tuple[int, float] | str


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class Receiver:
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    # per path, the answers to give in order; past the end, 200
    script: dict[str, list[Answer]] = field(default_factory=dict)
    closing: anyio.Event = field(default_factory=anyio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def events(self, path: str, name: str | None = None) -> list[Any]:
        """The generic bodies received at ``path`` (of event ``name``)."""
        return [r.body for r in self.at(path) if name is None or r.body.get("event") == name]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Request(request.path, dict(request.headers), body, time.monotonic()))
        answers = self.script.get(request.path, [])
        answer: Answer = answers.pop(0) if answers else 200
        if answer == "hang":
            await self.closing.wait()
            return web.Response(status=503)
        if isinstance(answer, tuple):
            status, retry_after = answer
            return web.Response(status=status, headers={"Retry-After": f"{retry_after:g}"})
        assert isinstance(answer, int)
        return web.Response(status=answer, text="1" if answer == 200 else "no")


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.port = int(runner.addresses[0][1])
    try:
        yield rec
    finally:
        rec.closing.set()
        await runner.cleanup()


def json_log() -> Iterator[io.StringIO]:
    """The log as JSON lines at info level into a buffer while a test runs (a fixture:
    ``log_lines = pytest.fixture(json_log)``)."""
    buf = io.StringIO()
    logs.configure(fmt="json", level="info", stream=buf)
    yield buf
    logs.configure(fmt="json", level="warning", stream=io.StringIO())


def logged(buf: io.StringIO, event: str) -> list[dict[str, Any]]:
    """The log lines of ``event`` in a ``json_log`` buffer."""
    rows = [json.loads(line) for line in buf.getvalue().splitlines() if line.startswith("{")]
    return [r for r in rows if r.get("event") == event]
