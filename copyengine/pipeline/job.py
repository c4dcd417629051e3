"""Run a whole job: clients per tenant, pairs in parallel, state, report, clean stops."""

from __future__ import annotations

import signal
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import anyio
import structlog

from ..auth import Credential, TokenProvider
from ..config import JobConfig, Pair, TenantConfig
from ..errors import StateError
from ..graph import GraphClient, Timeouts
from ..pacing import PacerLimits, Pacers
from ..report import JobStats, write_report
from ..state import SQLiteStore
from .budget import ByteBudget
from .pair import PairRunner, StopFlag

log = structlog.get_logger("copyengine.job")


def credential_of(t: TenantConfig) -> Credential:
    if t.client_secret is not None:
        return Credential(secret=t.client_secret)
    if t.pfx is not None:
        return Credential(pfx_path=t.pfx, pfx_password=t.pfx_password)
    assert t.certificate_key is not None and t.certificate is not None
    return Credential(
        private_key=t.certificate_key, certificate=t.certificate.read_text(encoding="utf-8")
    )


def ssl_context(cfg: JobConfig) -> ssl.SSLContext:
    """System trust plus every configured CA bundle; verification is never switched off."""
    ctx = ssl.create_default_context()
    for t in (cfg.source, cfg.target):
        if t.ca_bundle is not None:
            ctx.load_verify_locations(cafile=str(t.ca_bundle))
    return ctx


@dataclass
class Clients:
    src: GraphClient
    dst: GraphClient
    pacers: Pacers
    http: aiohttp.ClientSession


@asynccontextmanager
async def open_clients(cfg: JobConfig, timeouts: Timeouts | None = None) -> AsyncIterator[Clients]:
    lim = cfg.limits
    pacers = Pacers(
        PacerLimits(
            concurrency=lim.in_flight_per_mailbox,
            requests=lim.requests_per_window,
            request_window=lim.request_window_s,
            upload_bytes=lim.upload_bytes_per_window,
            upload_window=lim.upload_window_s,
            window_slack=min(0.5, lim.upload_window_s / 100),
        )
    )
    conn = aiohttp.TCPConnector(ssl=ssl_context(cfg), limit=lim.connections, ttl_dns_cache=300)
    timeout = (timeouts or Timeouts()).client_timeout()
    async with aiohttp.ClientSession(connector=conn, timeout=timeout, auto_decompress=True) as http:

        def client(t: TenantConfig) -> GraphClient:
            tokens = TokenProvider(
                tenant=t.tenant_id,
                client_id=t.client_id,
                credential=credential_of(t),
                authority_host=t.authority,
                ca_bundle=str(t.ca_bundle) if t.ca_bundle else None,
            )
            return GraphClient(t.graph_url, tokens, http, pacers)

        src = client(cfg.source)
        same = (cfg.source.tenant_id, cfg.source.client_id, cfg.source.graph_url) == (
            cfg.target.tenant_id,
            cfg.target.client_id,
            cfg.target.graph_url,
        )
        dst = src if same else client(cfg.target)
        yield Clients(src, dst, pacers, http)


async def run_job(
    cfg: JobConfig,
    stop: StopFlag | None = None,
    stats: JobStats | None = None,
    pairs: tuple[Pair, ...] | None = None,
) -> JobStats:
    """Copy every pair of ``cfg``; returns the stats (also written as the report)."""
    stop = stop or StopFlag()
    stats = stats or JobStats()
    store = SQLiteStore(cfg.state_path)
    try:
        await store.open()
    except StateError as exc:
        stats.fatal = str(exc)
        return stats
    budget = ByteBudget(cfg.limits.bytes_in_flight)
    limiter = anyio.CapacityLimiter(cfg.limits.pairs_in_parallel)
    todo = pairs if pairs is not None else cfg.pairs
    for p in todo:
        stats.pair(p.key, p.source, p.target)
    log.info("job.started", pairs=len(todo), state=str(cfg.state_path))
    try:
        async with open_clients(cfg) as clients, anyio.create_task_group() as tg:
            tg.start_soon(store.run_flusher)

            async def one(p: Pair) -> None:
                async with limiter:
                    if stop.draining:
                        return
                    await PairRunner(
                        p,
                        clients.src,
                        clients.dst,
                        store,
                        stats.pairs[p.key],
                        cfg.limits,
                        budget,
                        stop,
                    ).run()

            async with anyio.create_task_group() as pairs_tg:
                for p in todo:
                    pairs_tg.start_soon(one, p)
            tg.cancel_scope.cancel()  # stop the flusher
    except StateError as exc:
        stats.fatal = str(exc)
        log.error("job.state_error", error=str(exc))
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await store.close()
            except StateError as exc:
                stats.fatal = stats.fatal or str(exc)
            stats.finished = time.monotonic()
            stats.interrupted = stats.interrupted or stop.draining
            try:
                write_report(cfg.report_path, stats)
            except OSError as exc:
                stats.fatal = stats.fatal or f"cannot write the report {cfg.report_path}: {exc}"
            log.info(
                "job.finished",
                exit_code=int(stats.exit_code()),
                copied=stats.total("copied"),
                report=str(cfg.report_path),
                duration_s=round(stats.duration(), 2),
            )
    return stats


async def watch_signals(stop: StopFlag, abort: anyio.CancelScope) -> None:
    """First Ctrl-C/SIGTERM: drain (finish in-flight work, commit, report). Second: abort."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for sig in signals:
            if not stop.draining:
                stop.draining = True
                log.warning(
                    "job.draining",
                    signal=signal.Signals(sig).name,
                    hint="press Ctrl-C again to abort",
                )
            else:
                log.warning("job.aborting", signal=signal.Signals(sig).name)
                abort.cancel()
                return
