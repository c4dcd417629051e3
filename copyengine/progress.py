"""What the operator watches: a live table on a terminal, progress events off one, and the
summary table at the end. All of it is computed from ``JobStats``."""

from __future__ import annotations

import sys
from typing import Any

import anyio
import structlog
from rich.console import Console
from rich.live import Live
from rich.table import Table

from .report import JobStats, PairStats

log = structlog.get_logger("copyengine.progress")


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f}"


def _eta(p: PairStats) -> str:
    done = p.done_items
    total = p.total("source_items")
    d = p.duration()
    if not p.started or done == 0 or d <= 0:
        return "-"
    rate = done / d
    rest = max(0, total - done)
    return f"{rest / rate:,.0f}s" + ("" if p.status != "running" else "+")


def live_table(stats: JobStats) -> Table:
    d = stats.duration()
    copied = stats.total("copied")
    t = Table(
        title=f"copyengine  {copied:,} items copied  "
        f"{_mb(stats.total('copied_bytes'))} MB  {d:,.0f}s  "
        f"{copied / d if d else 0:,.0f} items/s"
    )
    for col in (
        "pair",
        "status",
        "listed",
        "copied",
        "present",
        "skipped",
        "failed",
        "MB",
        "items/s",
        "ETA",
        "429s",
        "throttle wait",
    ):
        t.add_column(col, justify="left" if col in ("pair", "status") else "right")
    active = [p for p in stats.pairs.values() if p.status == "running"]
    shown = active[:20] or list(stats.pairs.values())[:20]
    for p in shown:
        pd = p.duration()
        t.add_row(
            f"{p.source} → {p.target}",
            p.status,
            f"{p.total('source_items'):,}",
            f"{p.total('copied'):,}",
            f"{p.total('already_present'):,}",
            f"{p.skipped:,}",
            f"{p.failed:,}",
            _mb(p.total("copied_bytes")),
            f"{p.total('copied') / pd:,.0f}" if pd else "-",
            _eta(p),
            f"{p.throttled:,}",
            f"{p.throttle_wait_s:,.1f}s",
        )
    rest = len(stats.pairs) - len(shown)
    if rest > 0:
        done = sum(p.status in ("done", "failed") for p in stats.pairs.values())
        t.caption = f"{rest} more pairs; {done} finished"
    return t


SUMMARY_ROWS = 50


def summary_table(stats: JobStats) -> Table:
    """At most SUMMARY_ROWS pairs, the unhealthy first; the report has every pair."""
    t = Table(title="summary")
    for col in (
        "pair",
        "status",
        "source items",
        "copied",
        "already present",
        "skipped",
        "failed",
        "MB copied",
        "429s",
        "duration",
    ):
        t.add_column(col, justify="left" if col in ("pair", "status") else "right")
    pairs = sorted(stats.pairs.values(), key=lambda p: p.status == "done" and not p.failed)
    for p in pairs[:SUMMARY_ROWS]:
        t.add_row(
            f"{p.source} → {p.target}",
            p.status + (f": {p.error_code}" if p.error_code else ""),
            f"{p.total('source_items'):,}",
            f"{p.total('copied'):,}",
            f"{p.total('already_present'):,}",
            f"{p.skipped:,}",
            f"{p.failed:,}",
            _mb(p.total("copied_bytes")),
            f"{p.throttled:,}",
            f"{p.duration():,.1f}s",
        )
    if len(pairs) > SUMMARY_ROWS:
        tot = stats.as_dict()["totals"]
        t.caption = (
            f"{len(pairs) - SUMMARY_ROWS} more pairs in the report; all pairs: "
            f"{tot['copied']:,} copied, {tot['failed']:,} failed, "
            f"{tot['pairs_failed']} pairs failed"
        )
    return t


async def show_progress(stats: JobStats, interval: float = 10.0, console: Any = None) -> None:
    """Until cancelled: a live table on a terminal, else a ``job.progress`` event per interval."""
    console = console or Console(stderr=True)
    if console.is_terminal:
        with Live(
            live_table(stats), console=console, refresh_per_second=2, transient=False
        ) as live:
            while True:
                await anyio.sleep(0.5)
                live.update(live_table(stats))
    while True:
        await anyio.sleep(interval)
        totals = stats.as_dict()["totals"]
        log.info(
            "job.progress",
            copied=totals["copied"],
            source_items=totals["source_items"],
            failed=totals["failed"],
            items_per_s=totals["items_per_s"],
            mb_per_s=totals["mb_per_s"],
            throttled_429=totals["throttled_429"],
        )


def print_summary(stats: JobStats, stream: Any = None) -> None:
    out = stream or sys.stderr
    console = Console(file=out)
    if not console.is_terminal:
        console = Console(file=out, width=160)
    console.print(summary_table(stats))
