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
from ..config import JobConfig, Limits, Pair, TenantConfig
from ..errors import ConfigError, StateError
from ..exitcodes import ExitCode
from ..failures import classify
from ..graph import GraphClient, Timeouts
from ..graph.transport import Health
from ..pacing import PacerLimits, Pacers
from ..pacing.policy import Backoff, RetryPolicy
from ..report import JobStats, check_writable, write_report
from ..state import SQLiteStore
from .budget import ByteBudget
from .pair import PairRunner, StopFlag, _debug

log = structlog.get_logger("copyengine.job")
# During a drain, a service that has not answered anything for this long is taken as gone:
# the drain ends at once instead of retrying a dead endpoint until its deadline.
UNREACHABLE_AFTER_S = 5.0


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
    health: Health


@asynccontextmanager
async def open_clients(
    cfg: JobConfig, timeouts: Timeouts | None = None, health: Health | None = None
) -> AsyncIterator[Clients]:
    health = health or Health()
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
            cap = lim.retry_backoff_cap_s
            retry = RetryPolicy(backoff=Backoff(base=min(0.5, cap), cap=cap))
            return GraphClient(t.graph_url, tokens, http, pacers, retry=retry, health=health)

        src = client(cfg.source)
        same = (cfg.source.tenant_id, cfg.source.client_id, cfg.source.graph_url) == (
            cfg.target.tenant_id,
            cfg.target.client_id,
            cfg.target.graph_url,
        )
        dst = src if same else client(cfg.target)
        yield Clients(src, dst, pacers, http, health)


async def run_job(
    cfg: JobConfig,
    stop: StopFlag | None = None,
    stats: JobStats | None = None,
    pairs: tuple[Pair, ...] | None = None,
) -> JobStats:
    """Copy every pair of ``cfg``; returns the stats (also written as the report).

    Never raises for a failure of the job: whatever happens is classified once
    (``failures.classify``) into the stats, so that the exit code, the report and the
    ``job.finished`` event say the same thing. Only cancellation (an abort) propagates."""
    stop = stop or StopFlag()
    stats = stats or JobStats()
    todo = pairs if pairs is not None else cfg.pairs
    for p in todo:
        stats.pair(p.key, p.source, p.target)
    store = SQLiteStore(cfg.state_path, identity=cfg.identity())
    opened = False
    report = True
    try:
        try:
            check_writable(cfg.report_path)
        except OSError as exc:
            raise ConfigError(
                "job.report", f"cannot write the report {cfg.report_path}: {exc.strerror or exc}"
            ) from exc
        await store.open()
        opened = True
        log.info("job.started", pairs=len(todo), state=str(cfg.state_path), run=stats.run_id)
        await _run_pairs(cfg, todo, store, stats, stop)
    except Exception as exc:
        verdict = classify(exc)
        stats.fatal, stats.fatal_code = verdict.message, verdict.code
        # A refused run (another holds the lock) leaves the running job's report alone.
        report = verdict.code is not ExitCode.LOCKED
        log.error(
            "job.failed", error=verdict.message, error_type=verdict.error_type, exc_info=_debug()
        )
    finally:
        with anyio.CancelScope(shield=True):
            await _finish(cfg, store, stats, stop, opened, report)
    return stats


async def _run_pairs(
    cfg: JobConfig, todo: tuple[Pair, ...], store: SQLiteStore, stats: JobStats, stop: StopFlag
) -> None:
    budget = ByteBudget(cfg.limits.bytes_in_flight)
    limiter = anyio.CapacityLimiter(cfg.limits.pairs_in_parallel)
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
            tg.start_soon(_watch_drain, stop, pairs_tg.cancel_scope, clients.health, cfg.limits)
            for p in todo:
                pairs_tg.start_soon(one, p)
        tg.cancel_scope.cancel()  # stop the flusher and the drain watch


async def _watch_drain(
    stop: StopFlag, pairs: anyio.CancelScope, health: Health, limits: Limits, poll: float = 0.1
) -> None:
    """Once a drain starts, give in-flight work ``drain_timeout_s`` to finish, or less when
    the service has stopped answering; then cut it short (intents are durable: the next run
    settles whatever was in flight). Ends when the job's task group is cancelled."""
    timeout = limits.drain_timeout_s
    await stop.wait()
    started = time.monotonic()
    for _ in range(int(timeout / poll) + 2):
        await anyio.sleep(poll)
        if health.down_for() >= UNREACHABLE_AFTER_S:
            stop.reason = f"not attempted: service unreachable ({health.last_error})"
            break
        if time.monotonic() - started >= timeout:
            break
    if stop.reason is None:
        stop.reason = f"not finished: the drain's {timeout:.0f} s deadline passed"
    log.warning("job.drain_cut_short", reason=stop.reason)
    pairs.cancel()


async def _finish(
    cfg: JobConfig,
    store: SQLiteStore,
    stats: JobStats,
    stop: StopFlag,
    opened: bool,
    report: bool,
) -> None:
    """Close the store, then say what happened, once: the report and ``job.finished``
    carry the same exit code the process returns."""
    if opened:
        try:
            await store.close()
        except StateError as exc:
            stats.fatal = stats.fatal or str(exc)
    stats.finished = time.monotonic()
    stats.interrupted = stats.interrupted or stop.draining
    stats.stop_reason = stats.stop_reason or stop.reason
    own = None
    if report:
        try:
            own = write_report(cfg.report_path, stats, cfg.keep_reports)
        except OSError as exc:
            stats.fatal = stats.fatal or (
                f"cannot write the report {cfg.report_path}: {exc.strerror or exc}"
            )
    log.info(
        "job.finished",
        exit_code=int(stats.exit_code()),
        copied=stats.total("copied"),
        failed=sum(p.failed for p in stats.pairs.values()),
        unknown=sum(p.unknown for p in stats.pairs.values()),
        fatal=stats.fatal,
        stop_reason=stats.stop_reason,
        report=str(own or cfg.report_path) if report else None,
        duration_s=round(stats.duration(), 2),
    )


async def watch_signals(stop: StopFlag, abort: anyio.CancelScope) -> None:
    """First Ctrl-C/SIGTERM: drain (finish in-flight work, commit, report). Second: abort."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for sig in signals:
            if not stop.draining:
                stop.drain()
                log.warning(
                    "job.draining",
                    signal=signal.Signals(sig).name,
                    hint="press Ctrl-C again to abort",
                )
            else:
                log.warning("job.aborting", signal=signal.Signals(sig).name)
                abort.cancel()
                return
