"""The metrics of a fleet besides the pairs' (``metrics.JobCollector``), for the dashboard in
``deploy/grafana``; served beside them by ``metrics.serve_metrics``:

- ``copyengine_mailbox_ceiling_percent{mailbox,role}`` — each mailbox's % of its ceiling (the
  measure of ``copyengine_ceiling_percent``; role: source, target, source-archive,
  target-archive), once per mailbox however many pairs share it
- ``copyengine_stalled_groups`` — mailbox groups of a shared job's current pass that are
  running while their heartbeat is older than ``[workers] stalled_after_s`` (their worker
  went silent; the reaper queues them again). Read from the database at each scrape by a
  worker (``cluster.worker.stalled_groups``); 0 for a local run, whose pairs all run in its
  own process; left out of a scrape when the database did not answer within
  ``STALLED_READ_S``
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator

import anyio
import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import StateError
from ..report import PairStats

ROLES = ("source", "target", "source-archive", "target-archive")
STALLED_READ_S = 5.0  # a scrape waits this long for the database's count of stalled groups

log = structlog.get_logger("copyengine.metrics")


class FleetCollector(Collector):
    """``pairs``: the pairs being copied now (read at scrape time)."""

    def __init__(self, pairs: Callable[[], Iterable[PairStats]]) -> None:
        self.pairs = pairs
        self.stalled_groups: int | None = 0  # at the latest read (None: no answer)

    async def refresh(self, count: Callable[[], Awaitable[int]] | None) -> None:
        """Before a scrape: the stalled groups counted again (``count``: a worker's)."""
        if count is not None:
            self.stalled_groups = await read_stalled(count)

    def collect(self) -> Iterator[Metric]:
        yield mailbox_ceilings(self.pairs())
        stalled = GaugeMetricFamily(
            "copyengine_stalled_groups",
            "Groups of the current pass running while their heartbeat is stale",
        )
        if self.stalled_groups is not None:
            stalled.add_metric([], self.stalled_groups)
        yield stalled


def mailbox_ceilings(pairs: Iterable[PairStats]) -> GaugeMetricFamily:
    """Each mailbox's % of its ceiling, once: a mailbox shared by several pairs has one
    pacer, so the first pair that names it speaks for it; one that sent nothing yet has no
    sample (rather than 0)."""
    family = GaugeMetricFamily(
        "copyengine_mailbox_ceiling_percent",
        "% of Exchange's per-mailbox budget used while the mailbox had work",
        labels=["mailbox", "role"],
    )
    seen: set[tuple[str, str]] = set()
    for p in pairs:
        for role, pacer in zip(ROLES, p.pacers, strict=False):
            mailbox = p.target if role.startswith("target") else p.source
            share = pacer.ceiling_share()
            if share is None or (mailbox, role) in seen:
                continue
            seen.add((mailbox, role))
            family.add_metric([mailbox, role], round(100 * share, 1))
    return family


async def read_stalled(count: Callable[[], Awaitable[int]]) -> int | None:
    """The number of stalled groups, or None when the database did not answer in time (a
    scrape never waits out an outage; the sample is left out rather than shown as 0)."""
    with anyio.move_on_after(STALLED_READ_S):
        try:
            return await count()
        except StateError as exc:
            log.warning("metrics.stalled_groups_unread", error=str(exc))
            return None
    log.warning("metrics.stalled_groups_unread", error=f"no answer within {STALLED_READ_S} s")
    return None
