"""Prometheus metrics for watching a long job (``copyengine run --metrics HOST:PORT``, and
``copyengine worker --metrics HOST:PORT`` for the groups a worker runs: the same names).

Read from the job's statistics at scrape time (no bookkeeping on the hot path), served by a
small aiohttp endpoint in the job's own event loop, so a scrape never races the copy.

Names (all labelled by ``pair`` = ``source->target``):

- ``copyengine_items_total{outcome}`` — copied, already_present, skipped, failed, unknown
- ``copyengine_source_items`` — items listed at the source so far
- ``copyengine_bytes_copied_total``
- ``copyengine_throttled_total{reason}`` — 429 answers by reason (MailboxConcurrency,
  RequestRate, IncomingBytes, ApplicationRequestRate)
- ``copyengine_throttle_wait_seconds`` — wall-clock time held back by throttling
- ``copyengine_requests_total``
- ``copyengine_inflight_requests{role}`` — requests in flight now, per mailbox (role: source,
  target, source-archive, target-archive)
- ``copyengine_ceiling_percent`` — while the busiest target mailbox had work, the shortest
  time the per-mailbox budget in effect allowed for what it sent (``[limits]``, or less
  where the service's 429s cut it), as % of the time it took (upload or request budget,
  whichever is nearer its limit)
- ``copyengine_pair_status{status}`` — 1 for the pair's current status
- ``copyengine_job_duration_seconds`` (no pair label)
- ``copyengine_bwlimit_bytes_per_second`` (no pair label) — the bandwidth cap now
  (``--bwlimit``, ``[limits] bwlimit_mb_s``), 0 when there is none

and beside them the fleet's (``fleet``): each mailbox's % of its ceiling, stalled groups.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..config import MB
from ..report import JobStats, PairStatus
from ..tally import OUTCOMES, PairSample, WorkerStats, samples_of
from .fleet import FleetCollector

REASONS = ("MailboxConcurrency", "RequestRate", "IncomingBytes", "ApplicationRequestRate")


class JobCollector(Collector):
    """The metrics of the pairs ``samples`` returns (read at scrape time), and ``duration``:
    a run's (``of_run``) or a worker's, across its segments (``tally.WorkerStats``)."""

    def __init__(
        self,
        samples: Callable[[], dict[str, PairSample]],
        duration: Callable[[], float],
        bwlimit_mb_s: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.samples = samples
        self.duration = duration
        self.bwlimit_mb_s = bwlimit_mb_s  # the upload cap in effect (``--bwlimit``)

    @classmethod
    def of_run(cls, stats: JobStats) -> JobCollector:
        return cls(lambda: samples_of(stats), stats.duration, lambda: stats.bwlimit_mb_s)

    def collect(self) -> Iterator[Metric]:
        items = CounterMetricFamily(
            "copyengine_items", "Items by outcome", labels=["pair", "outcome"]
        )
        listed = GaugeMetricFamily(
            "copyengine_source_items", "Items listed at the source so far", labels=["pair"]
        )
        nbytes = CounterMetricFamily(
            "copyengine_bytes_copied", "Bytes of items copied", labels=["pair"]
        )
        throttled = CounterMetricFamily(
            "copyengine_throttled", "429 answers by reason", labels=["pair", "reason"]
        )
        wait = GaugeMetricFamily(
            "copyengine_throttle_wait_seconds",
            "Wall-clock seconds held back by throttling",
            labels=["pair"],
        )
        requests = CounterMetricFamily("copyengine_requests", "Requests sent", labels=["pair"])
        inflight = GaugeMetricFamily(
            "copyengine_inflight_requests",
            "Requests in flight now, per mailbox",
            labels=["pair", "role"],
        )
        ceiling = GaugeMetricFamily(
            "copyengine_ceiling_percent",
            "% of the per-mailbox budget in effect used while active (busiest target mailbox)",
            labels=["pair"],
        )
        status = GaugeMetricFamily(
            "copyengine_pair_status", "1 for the pair's status", labels=["pair", "status"]
        )
        for key, p in self.samples().items():
            for outcome in OUTCOMES:
                items.add_metric([key, outcome], p.items[outcome])
            listed.add_metric([key], p.source_items)
            nbytes.add_metric([key], p.copied_bytes)
            # every reason from the start, 0 until seen: a series born with its first 429
            # would hide that 429 from rate()
            for reason, n in sorted((dict.fromkeys(REASONS, 0) | p.throttled).items()):
                throttled.add_metric([key, reason], n)
            wait.add_metric([key], p.throttle_wait_s)
            requests.add_metric([key], p.requests)
            for role, n in p.inflight:
                inflight.add_metric([key, role], n)
            if p.ceiling_pct is not None:
                ceiling.add_metric([key], p.ceiling_pct)
            for s in PairStatus:
                status.add_metric([key, s.value], 1.0 if p.status == s.value else 0.0)
        duration = GaugeMetricFamily("copyengine_job_duration_seconds", "Seconds since start")
        duration.add_metric([], self.duration())
        cap = GaugeMetricFamily(
            "copyengine_bwlimit_bytes_per_second", "The bandwidth cap on uploads (0: none)"
        )
        cap.add_metric([], (self.bwlimit_mb_s() or 0.0) * MB)
        yield from (
            items,
            listed,
            nbytes,
            throttled,
            wait,
            requests,
            inflight,
            ceiling,
            status,
            duration,
            cap,
        )


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9100`` for IPv6); ValueError with the reason otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def serve_metrics(
    stats: JobStats,
    host: str,
    port: int,
    stalled_groups: Callable[[], Awaitable[int]] | None = None,
) -> AbstractAsyncContextManager[int]:
    """A run's metrics at ``/metrics`` while the body runs; yields the bound port."""
    fleet = FleetCollector(stats.pairs.values)
    return serve_collectors(JobCollector.of_run(stats), fleet, host, port, stalled_groups)


def serve_worker_metrics(
    stats: WorkerStats,
    host: str,
    port: int,
    stalled_groups: Callable[[], Awaitable[int]] | None = None,
    bwlimit_mb_s: float | None = None,
) -> AbstractAsyncContextManager[int]:
    """A worker's metrics (every pair of every segment it ran, ``worker --metrics``);
    ``stalled_groups``: the shared job's count of stalled groups, read at each scrape;
    ``bwlimit_mb_s``: this worker process's upload cap."""
    jobs = JobCollector(stats.samples, stats.duration, lambda: bwlimit_mb_s)
    return serve_collectors(jobs, FleetCollector(stats.live_pairs), host, port, stalled_groups)


@asynccontextmanager
async def serve_collectors(
    jobs: Collector,
    fleet: FleetCollector,
    host: str,
    port: int,
    stalled_groups: Callable[[], Awaitable[int]] | None,
) -> AsyncIterator[int]:
    """Serve ``/metrics`` while the body runs; yields the bound port."""
    registry = CollectorRegistry()
    registry.register(jobs)
    registry.register(fleet)

    async def metrics(_: web.Request) -> web.Response:
        await fleet.refresh(stalled_groups)
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
        server = site._server
        bound = int(server.sockets[0].getsockname()[1]) if server else port  # type: ignore[attr-defined]
        yield bound
    finally:
        await runner.cleanup()
