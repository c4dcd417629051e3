"""Assembling and running the emulator: aiohttp application, TLS, ready file."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web

from .config import EmulatorConfig
from .control import add_control_routes, add_identity_routes
from .graph import EMU, Dropped, add_graph_routes
from .state import Emulator

log = logging.getLogger("copyengine.emulator")


@web.middleware
async def _swallow_drops(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except Dropped:
        # The transport is already aborted; nothing can be sent. Returning a response object
        # keeps aiohttp from logging the deliberate drop as a server error.
        return web.Response(status=499)


def build_app(emulator: Emulator) -> web.Application:
    app = web.Application(
        client_max_size=emulator.config.max_body_bytes + 1024 * 1024,
        middlewares=[_swallow_drops],
    )
    app[EMU] = emulator
    add_graph_routes(app)
    add_identity_routes(app)
    add_control_routes(app)
    return app


def make_tls(
    state_dir: Path, keep: Path | None = None, write: bool = True
) -> tuple[ssl.SSLContext, Path]:
    """A local CA and a server certificate for 127.0.0.1/localhost; returns the server
    context and the path of the CA certificate clients should trust. With ``keep`` (a path
    prefix) the CA is kept there and reused by every start: clients that trust it reconnect
    to a restarted emulator (without ``write``: reused when there, never written)."""
    ca = _kept_ca(keep, write) if keep is not None else trustme.CA(organization_name=CA_NAME)
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    ca_path = state_dir / "emulator-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return ctx, ca_path


CA_NAME = "copyengine emulator"


def _kept_ca(prefix: Path, write: bool = True) -> trustme.CA:
    cert, key = prefix.with_name(prefix.name + ".ca.pem"), prefix.with_name(prefix.name + ".ca.key")
    if cert.exists() and key.exists():
        return trustme.CA.from_pem(cert.read_bytes(), key.read_bytes())
    ca = trustme.CA(organization_name=CA_NAME)
    if not write:
        return ca
    prefix.parent.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(cert))
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(ca.private_key_pem.bytes())
    return ca


@dataclass(frozen=True)
class Endpoints:
    """Where a running emulator answers; what the ready file holds."""

    origin: str
    ca_cert: str | None
    directory: dict[str, Any]
    # msal only talks to an https authority: with TLS off for Graph, identity still has an
    # HTTPS listener of its own.
    identity_origin: str = ""

    @property
    def graph_url(self) -> str:
        return f"{self.origin}/beta"

    @property
    def graph_v1_url(self) -> str:
        return f"{self.origin}/v1.0"

    @property
    def authority_host(self) -> str:
        return self.identity_origin or self.origin

    @property
    def control_url(self) -> str:
        return f"{self.origin}/_emulator"

    def authority(self, tenant: str) -> str:
        return f"{self.authority_host}/{tenant}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "graph_url": self.graph_url,
            "graph_v1_url": self.graph_v1_url,
            "authority_url": self.authority_host,
            "authority_template": f"{self.authority_host}/{{tenant}}",
            "ca_cert": self.ca_cert,
            "control_url": self.control_url,
            "tenants": self.directory["tenants"],
        }


class EmulatorServer:
    """Runs an emulator inside the current event loop (``async with``)."""

    def __init__(self, config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = Emulator(config)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self.endpoints: Endpoints | None = None

    async def start(self) -> Endpoints:
        app = build_app(self.emulator)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        conf = self.emulator.config
        tls_ctx, ca_path = make_tls(
            self.emulator.state_dir, conf.persist, write=not conf.persist_read_only
        )
        tls = self.emulator.config.tls
        port = await self._listen(self.port, tls_ctx if tls else None)
        host = f"[{self.host}]" if ":" in self.host else self.host
        identity = ""
        if not tls:
            identity = f"https://{host}:{await self._listen(0, tls_ctx)}"
        if self.emulator.config.churn:
            self.emulator.start_churn(self.emulator.config.churn)
        self.endpoints = Endpoints(
            origin=f"{'https' if tls else 'http'}://{host}:{port}",
            ca_cert=str(ca_path),
            directory=self.emulator.directory(),
            identity_origin=identity,
        )
        return self.endpoints

    async def _listen(self, port: int, ssl_ctx: ssl.SSLContext | None) -> int:
        assert self._runner is not None
        site = web.TCPSite(self._runner, self.host, port, ssl_context=ssl_ctx, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None
        return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def stop(self) -> None:
        self.emulator.stop_churn()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.emulator.save()

    async def __aenter__(self) -> Endpoints:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def write_ready_file(path: Path, endpoints: Endpoints) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(endpoints.as_dict(), indent=2), encoding="utf-8")
    tmp.replace(path)


async def serve_until_stopped(
    config: EmulatorConfig,
    host: str,
    port: int,
    ready_file: Path | None,
    say: Callable[[str], None],
    stop_on_eof: bool = False,
) -> None:
    """``copyengine emulator serve``: serve until SIGINT or SIGTERM (Ctrl-Break on Windows);
    ``say`` tells the operator where (the ready file, when given, tells a program).
    ``stop_on_eof`` (a job's emulator): serve until standard input closes, which it does when
    the parent closes it or dies on any platform, and ignore Ctrl-C and Ctrl-Break: they are
    the job's, which drains and then stops the emulator."""
    server = EmulatorServer(config, host, port)
    endpoints = await server.start()
    tune_process_for_serving()
    if ready_file is not None:
        write_ready_file(ready_file, endpoints)
    say(f"emulator listening on {endpoints.origin}")
    say(f"  graph:     {endpoints.graph_url}")
    say(f"  authority: {endpoints.origin}/<tenant>")
    say(f"  control:   {endpoints.control_url}")
    if endpoints.ca_cert:
        say(f"  CA:        {endpoints.ca_cert}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    console = [getattr(signal, n) for n in ("SIGINT", "SIGBREAK") if hasattr(signal, n)]
    if stop_on_eof:
        for sig in console:
            signal.signal(sig, signal.SIG_IGN)
        threading.Thread(target=_stop_at_eof, args=(loop, stop), daemon=True).start()
    for sig in [signal.SIGTERM] if stop_on_eof else [*console, signal.SIGTERM]:
        try:
            loop.add_signal_handler(sig, stop.set)
        except NotImplementedError:  # Windows' event loops: the C-level handler
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    try:
        await stop.wait()
    finally:
        await server.stop()


def _stop_at_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Read standard input to its end (the parent closed it, or died), then stop."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    try:
        loop.call_soon_threadsafe(stop.set)
    except RuntimeError:
        pass  # the loop is closed: already stopped


def tune_process_for_serving() -> None:
    """For a process that only serves the emulator (``copyengine emulator serve``), called
    once its mailboxes are seeded: hundreds of thousands of long-lived items would make every
    full GC pass walk them all, slowing the emulator as mailboxes grow, so the seeded objects
    are frozen and full passes are made rarer for what imports add later. Process-wide, so
    never done by a process that merely embeds the emulator (tests)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)
