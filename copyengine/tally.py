"""What the metrics read of each pair: a ``PairSample`` (its counters, and what it does now),
from a run's statistics, or, for a worker, added up over every segment the process ran
(``WorkerStats``): the counters of a pair only grow while the process lives, as Prometheus
expects of a counter, whatever the number of segments."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from .report import JobStats, PairStats

ROLES = ("source", "target", "source-archive", "target-archive")  # as ``console.fleet``

OUTCOMES = ("copied", "already_present", "skipped", "failed", "unknown")


@dataclass(frozen=True)
class PairSample:
    items: dict[str, int]  # by outcome (``OUTCOMES``)
    source_items: int
    copied_bytes: int
    throttled: dict[str, int]  # 429s by reason
    throttle_wait_s: float
    requests: int
    inflight: tuple[tuple[str, int], ...]  # (role, requests in flight now)
    ceiling_pct: float | None
    status: str

    def then(self, later: PairSample) -> PairSample:
        """This sample followed by ``later`` (a later segment): counters add up; what the
        pair does now is ``later``'s."""
        items = {k: self.items.get(k, 0) + later.items.get(k, 0) for k in OUTCOMES}
        throttled = dict(self.throttled)
        for reason, n in later.throttled.items():
            throttled[reason] = throttled.get(reason, 0) + n
        return replace(
            later,
            items=items,
            source_items=self.source_items + later.source_items,
            copied_bytes=self.copied_bytes + later.copied_bytes,
            throttled=throttled,
            throttle_wait_s=self.throttle_wait_s + later.throttle_wait_s,
            requests=self.requests + later.requests,
            ceiling_pct=later.ceiling_pct if later.ceiling_pct is not None else self.ceiling_pct,
        )

    def settled(self) -> PairSample:
        """The sample once its segment has ended: nothing in flight."""
        return replace(self, inflight=tuple((role, 0) for role, _ in self.inflight))


def sample(p: PairStats) -> PairSample:
    """What ``p`` says now (read at scrape time)."""
    return PairSample(
        items={
            "copied": p.total("copied"),
            "already_present": p.total("already_present"),
            "skipped": p.skipped,
            "failed": p.failed,
            "unknown": p.unknown,
        },
        source_items=p.total("source_items"),
        copied_bytes=p.total("copied_bytes"),
        throttled=p.throttled_by_reason(),
        throttle_wait_s=p.throttle_wait_s,
        requests=p.requests,
        inflight=tuple((role, a.inflight) for role, a in zip(ROLES, p.pacers, strict=False)),
        ceiling_pct=p.ceiling_pct,
        status=str(p.status),
    )


def samples_of(stats: JobStats) -> dict[str, PairSample]:
    return {key: sample(p) for key, p in stats.pairs.items()}


@dataclass
class WorkerStats:
    """Every pair a worker process has run: the segments that ended, added up, and the
    segments running now (read live)."""

    started: float = field(default_factory=time.monotonic)
    ended: dict[str, PairSample] = field(default_factory=dict)
    running: dict[int, JobStats] = field(default_factory=dict)

    @contextmanager
    def segment(self, stats: JobStats) -> Iterator[JobStats]:
        """A segment's statistics, read live while it runs, added up once it ends."""
        self.running[id(stats)] = stats
        try:
            yield stats
        finally:
            del self.running[id(stats)]
            for key, s in samples_of(stats).items():
                before = self.ended.get(key)
                self.ended[key] = (before.then(s) if before else s).settled()

    def samples(self) -> dict[str, PairSample]:
        out = dict(self.ended)
        for stats in list(self.running.values()):
            for key, s in samples_of(stats).items():
                before = out.get(key)
                out[key] = before.then(s) if before else s
        return out

    def duration(self) -> float:
        return time.monotonic() - self.started

    def live_pairs(self) -> list[PairStats]:
        """The pairs of the segments running now (their mailboxes' ceilings)."""
        return [p for stats in list(self.running.values()) for p in stats.pairs.values()]
