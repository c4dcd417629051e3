"""The composition root: configuration in, built objects out. Token providers, the TLS
context, pacers (the one place config limits become pacer limits), Graph clients and the
state store are assembled here and nowhere else; ``run``, ``verify``, ``status`` and the
tests receive what this builds."""

from __future__ import annotations

import gc
import os
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import anyio
import structlog

from .auth import Credential, TokenProvider
from .clouds import token_scope
from .config import JobConfig, Limits, Pair, TenantConfig
from .console.html import report_files
from .console.live import show_progress
from .controls import job_gate, window_caps
from .controls.suspend import SuspendSource
from .doctor import doctor_job
from .errors import SchemaBehind, StateError
from .exitcodes import ExitCode
from .forecast import PairPlanned, plan_pairs
from .graph import Clients, GraphClient, Health, Timeouts, Transport
from .graph.readtimeout import lazy_read_timeout
from .network import Route, job_route
from .notify.fields import progress
from .notify.sender import Notifier, running
from .notify.watch import Progress, watch_stalls
from .pacing import PacerLimits, Pacers
from .pacing.bandwidth import BandwidthCap
from .pacing.policy import Backoff, RetryPolicy
from .pipeline.caps import RunCaps
from .pipeline.gate import Gate
from .pipeline.job import run_pairs, watch_signals
from .pipeline.stop import StopFlag
from .report import JobStats
from .state import SQLiteStore, Store
from .state.overview import Overview, overview, pair_statistics
from .verify import PairCheck, sign_off, verify_pairs

# The server counts a request against its windows when it arrives; the pacer enters it in
# its own windows only when answered (later, so it leaves them later). Our windows are this
# much wider still, against timer granularity and clock drift between the two sides. For
# time-scaled windows (seconds long) the slack is at most this share of one: 1% there would
# be a 1% loss of every mailbox's ceiling for a risk the answer-time count already covers.
ARRIVAL_SLACK_S = 0.5
ARRIVAL_SLACK_SHARE = 0.002


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


def pacer_limits(lim: Limits) -> PacerLimits:
    slack = min(
        ARRIVAL_SLACK_S,
        ARRIVAL_SLACK_SHARE * min(lim.upload_window_s, lim.request_window_s),
    )
    return PacerLimits(
        concurrency=lim.in_flight_per_mailbox,
        requests=lim.requests_per_window,
        request_window=lim.request_window_s,
        upload_bytes=lim.upload_bytes_per_window,
        upload_window=lim.upload_window_s,
        window_slack=slack,
        max_retry_after=lim.max_retry_after_s,
    )


def retry_policy(lim: Limits) -> RetryPolicy:
    cap = lim.retry_backoff_cap_s
    return RetryPolicy(
        backoff=Backoff(base=min(Backoff.base, cap), cap=cap),
        max_retry_after=lim.max_retry_after_s,
    )


def network_route(cfg: JobConfig) -> Route:
    """Which proxy each request of the job takes: ``[network]`` over the environment."""
    return job_route(cfg.network, os.environ)


def token_provider(t: TenantConfig, route: Route | None = None) -> TokenProvider:
    return TokenProvider(
        tenant=t.tenant_id,
        client_id=t.client_id,
        credential=credential_of(t),
        authority_host=t.authority,
        ca_bundle=str(t.ca_bundle) if t.ca_bundle else None,
        scope=token_scope(t.graph_url, t.scope),
        route=route,
    )


def graph_client(
    graph_url: str,
    tokens: TokenProvider,
    http: aiohttp.ClientSession,
    pacers: Pacers,
    *,
    retry: RetryPolicy | None = None,
    health: Health | None = None,
    route: Route | None = None,
) -> GraphClient:
    return GraphClient(
        graph_url, Transport(http, tokens, retry=retry, health=health, route=route), pacers
    )


@asynccontextmanager
async def clients(
    cfg: JobConfig, timeouts: Timeouts | None = None, health: Health | None = None
) -> AsyncIterator[Clients]:
    """The job's clients over one HTTP session (bounded by ``[limits] connections``), every
    request (tokens too) through the job's proxy rule (``network_route``)."""
    health = health or Health()
    proxies = network_route(cfg)
    lim = cfg.limits
    pacers = Pacers(pacer_limits(lim))
    conn = aiohttp.TCPConnector(ssl=ssl_context(cfg), limit=lim.connections, ttl_dns_cache=300)
    lazy_read_timeout(conn)  # one read timer per request, not one per chunk
    timeout = (timeouts or Timeouts()).client_timeout()
    async with aiohttp.ClientSession(connector=conn, timeout=timeout, auto_decompress=True) as http:
        retry = retry_policy(lim)

        def build(t: TenantConfig) -> GraphClient:
            return graph_client(
                t.graph_url,
                token_provider(t, proxies),
                http,
                pacers,
                retry=retry,
                health=health,
                route=proxies,
            )

        src = build(cfg.source)
        same = (cfg.source.tenant_id, cfg.source.client_id, cfg.source.graph_url) == (
            cfg.target.tenant_id,
            cfg.target.client_id,
            cfg.target.graph_url,
        )
        dst = src if same else build(cfg.target)
        yield Clients(src, dst, health)


def store(cfg: JobConfig, *, exclusive: bool = True) -> Store:
    """The job's state store: SQLite beside the job file, or PostgreSQL when ``[job] state``
    is a ``postgresql://`` URL. ``exclusive`` takes the job's lock (a run); without it the
    SQLite store only reads (``status``, ``plan``)."""
    if cfg.state_url is not None:
        from .state.postgres import PostgresStore  # psycopg only when a job asks for it

        return PostgresStore(
            cfg.state_url, cfg.state_password, identity=cfg.identity(), exclusive=exclusive
        )
    return SQLiteStore(cfg.state_path, identity=cfg.identity(), exclusive=exclusive)


async def read_overview(cfg: JobConfig) -> Overview:
    """What the job's state knows (``status``, ``report``): its store read beside any run,
    and, for a job shared by several hosts, its group table."""
    groups = None
    if cfg.state_url is not None:
        from .state.groups import GroupStore  # psycopg only when a job asks for it

        groups = GroupStore(cfg.state_url, cfg.state_password)
    where = cfg.state_url or str(cfg.state_path)
    return await overview(store(cfg, exclusive=False), where, groups)


@asynccontextmanager
async def reading_state(cfg: JobConfig) -> AsyncIterator[Store]:
    """The job's state store opened to read (no lock taken), closed after."""
    state = store(cfg, exclusive=False)
    await state.open()
    try:
        yield state
    finally:
        await state.close()


@asynccontextmanager
async def controls_state(cfg: JobConfig) -> AsyncIterator[Store]:
    """The job's state opened for ``suspend`` / ``resume`` beside a run, without its lock;
    a state not there yet, or of an earlier schema, opened with the lock (created, or
    migrated in place: no run of this version holds it then)."""
    state = store(cfg, exclusive=not state_exists(cfg))
    try:
        await state.open()
    except SchemaBehind:
        state = store(cfg, exclusive=True)
        await state.open()
    try:
        yield state
    finally:
        await state.close()


async def read_pair_statistics(cfg: JobConfig, pairs: tuple[Pair, ...]) -> list[dict[str, Any]]:
    """Each of ``pairs`` across passes (``status --pair``), read beside any run."""
    async with reading_state(cfg) as state:
        return [await pair_statistics(state, p.key, p.source, p.target) for p in pairs]


def state_exists(cfg: JobConfig) -> bool:
    """Whether there is a state to read (a database is always there to ask)."""
    return cfg.state_url is not None or cfg.state_path.exists()


@asynccontextmanager
async def notifying(cfg: JobConfig, watched: Progress | None = None) -> AsyncIterator[Notifier]:
    """The job's notifier (``[notify]``): its senders running (through the job's proxy
    rule), a stall watch over ``watched``; at the end, a bounded flush of what is queued."""
    notifier = Notifier(cfg.notify, cfg.identity()["name"])
    async with running(notifier, network_route(cfg)) as n, anyio.create_task_group() as tg:
        if watched is not None and cfg.notify.webhooks:
            tg.start_soon(watch_stalls, n, watched)
        yield n
        tg.cancel_scope.cancel()


async def run_job(
    cfg: JobConfig,
    stop: StopFlag | None = None,
    stats: JobStats | None = None,
    pairs: tuple[Pair, ...] | None = None,
    retry_only: bool = False,
    full: bool = False,
    cutover: bool = False,
    gate: Gate | None = None,
    caps: RunCaps | None = None,
    bandwidth: BandwidthCap | None = None,
) -> JobStats:
    """Build the job's clients and store, and run it as one pass (see
    ``pipeline.job.run_pairs``), a cutover signed off by ``verify.sign_off``, the report
    rendered by the console (``console.html.report_files``), its events told to the
    ``[notify]`` webhooks. ``caps``: ``run --max-items``/``--max-mb``; ``bandwidth``: the
    process's upload cap (made from ``[limits] bwlimit_mb_s`` when not given). ``gate``: the
    operator's controls; by default the job's own (the state's suspensions, then
    ``controls.job_gate``: its schedule and times)."""
    stats = stats or JobStats()
    state = store(cfg)
    seen = stats
    cap = bandwidth or BandwidthCap(cfg.limits.bwlimit_mb_s)
    # the state's suspensions, the job's schedule and times; the cap following its windows
    controls: tuple[Gate, ...] = (SuspendSource(state, cfg.path.name), *window_caps(cfg, cap))
    async with clients(cfg) as built, notifying(cfg, lambda: progress(seen)) as notices:
        return await run_pairs(
            cfg,
            built,
            state,
            stop,
            stats,
            pairs,
            retry_only,
            full,
            cutover,
            sign_off=sign_off,
            render=report_files,
            gate=gate or job_gate(cfg, None, *controls),
            notices=notices,
            caps=caps,
            bandwidth=cap,
        )


async def verify_job(cfg: JobConfig) -> list[PairCheck]:
    """Build the job's clients and compare source and target of every pair (presence). Where
    the job's state is, it is read (never written) to tell the copies ``deletions = "keep"``
    kept from extra items; versions are not compared (``verify_content_job``)."""
    async with clients(cfg) as built:
        if state_exists(cfg):
            try:
                async with reading_state(cfg) as state:
                    return await verify_pairs(cfg, built, state, content=False)
            except StateError as exc:  # presence needs no state: checked without it
                structlog.get_logger("copyengine.verify").warning(
                    "verify.state_unread", error=str(exc)
                )
        return await verify_pairs(cfg, built)


async def verify_content_job(cfg: JobConfig) -> list[PairCheck]:
    """``verify --content``: the comparison with the job's state read (never written): the
    versions of the copies compared through change keys (source listing, state record,
    target listing), and copies kept of items deleted at the source told apart."""
    async with clients(cfg) as built, reading_state(cfg) as state:
        return await verify_pairs(cfg, built, state)


async def plan_job(cfg: JobConfig) -> tuple[list[PairPlanned], dict[str, Any]]:
    """What a run would do; reads the state if there is one (never creates or writes it)."""
    async with clients(cfg) as built:
        if not state_exists(cfg):
            return await plan_pairs(cfg, built, None)
        async with reading_state(cfg) as state:
            return await plan_pairs(cfg, built, state)


async def doctor(cfg: JobConfig) -> dict[str, Any]:
    """The preflight (``copyengine doctor``): tokens, mailboxes, permissions probed, and the
    state store reachable (a PostgreSQL state: connect, schema, the job's identity)."""
    async with clients(cfg) as built:
        result = await doctor_job(cfg, built)
    result["network"] = network_route(cfg).describe()
    check: dict[str, Any] = {"where": cfg.state_url or str(cfg.state_path), "ok": True}
    if state_exists(cfg):
        st = store(cfg, exclusive=False)
        try:
            await st.open()
            await st.close()
        except StateError as exc:
            check.update(ok=False, error=str(exc))
            result["ok"] = False
            if not result["exit_code"]:
                result["exit_code"] = int(ExitCode.FATAL)
    result["state"] = check
    return result


async def run_watched(
    cfg: JobConfig,
    live_table: bool,
    pairs: tuple[Pair, ...] | None = None,
    retry_failed: bool = False,
    metrics: tuple[str, int] | None = None,
    full: bool = False,
    cutover: bool = False,
    say: Callable[[str], None] = print,
    caps: RunCaps | None = None,
) -> JobStats:
    """``run`` as the operator watches it: the job in one pass with a live table (or progress
    events), optionally Prometheus metrics, SIGINT/SIGTERM draining it (a second one aborts)."""
    stop = StopFlag()
    stats = JobStats()
    with anyio.CancelScope() as abort:
        async with AsyncExitStack() as stack:
            if metrics is not None:
                try:
                    from .console.metrics import serve_metrics  # aiohttp.web: only here

                    port = await stack.enter_async_context(serve_metrics(stats, *metrics))
                except OSError as exc:
                    stats.fatal, stats.fatal_code = (
                        f"--metrics {metrics[0]}:{metrics[1]}: cannot listen ({exc.strerror})",
                        ExitCode.CONFIG,
                    )
                    return stats
                say(f"metrics at http://{metrics[0]}:{port}/metrics")
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch_signals, stop, abort)
                tg.start_soon(show_progress, stats, live_table, 10.0, None, cfg.limits)
                await run_job(cfg, stop, stats, pairs, retry_failed, full, cutover, caps=caps)
                tg.cancel_scope.cancel()
    if abort.cancel_called:
        stats.interrupted = True
    return stats


MMAP_BYTES = 16 << 20
TRIM_BYTES = 32 << 20


def tune_for_copying() -> None:
    """Memory and garbage collection for a process that copies (``run``, ``worker``); not
    for the emulator, which reuses its multi-MB response buffers and is faster with glibc's
    default (it serves exports at half speed with every large buffer mmapped).

    - glibc raises its mmap threshold after large blocks are freed, after which multi-MB
      item buffers come from the heap and are not returned to the OS: RSS keeps the
      high-water mark of the largest items forever. A fixed threshold keeps large buffers
      mmapped.
    - Export buffers up to 16 MiB come from the heap (4 MiB before), and free heap at its
      top goes back to the OS only beyond 32 MiB (``TRIM_BYTES``; 1 MiB before): nearly
      every export's buffer came from pages just returned (brk) or freshly mapped, each
      faulted in and zeroed again by the kernel (270,000-340,000 page faults in a
      20,000-item ``throughput`` run, 95% of them in the buffer's fill, and 3.0-3.4 s of
      system time of 15-18 s; 33,000 and 2.5 s now). The heap keeps at most 32 MiB unused.
    - Almost everything a copy allocates is freed by reference counting as soon as it is
      done with; the cycle collector's default (a young collection every 700 net
      allocations) ran about 250 times in a 20,000-item run for 2-3% of the engine's CPU,
      finding next to nothing. Young objects are collected every 20,000 instead, and what
      start-up made (modules, classes) is frozen out of the rare full collections."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, MMAP_BYTES)  # M_MMAP_THRESHOLD: exports up to it stay on the heap
        libc.mallopt(-1, TRIM_BYTES)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
