"""What the operator watches: a live table on a terminal, progress events off one, and the
summary table at the end. All of it is computed from ``JobStats``."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from statistics import fmean
from typing import Any

import anyio
import structlog
from rich.live import Live

from ..config import MB, Limits
from ..exitcodes import ExitCode
from ..forecast import import_body, pair_eta
from ..report import HELD, JobStats, PairStats, PairStatus
from .fit import Fitted, console_for
from .signoff import sign_off_shortfall

log = structlog.get_logger("copyengine.progress")


def mb(n: float) -> str:
    """Bytes in MB as every MB copyengine shows or takes (1 MB = 1 MiB)."""
    return f"{n / MB:,.1f}"


def pair_eta_s(p: PairStats, lim: Limits) -> float | None:
    """Seconds a running pair has left, by the plan's model (``forecast.pair_eta``): over
    what is left from now, and over the pair's whole copy from its start (the windows it
    needs open at their times, however fast the first one went), whichever ends later. Its
    requests' latency is what they have taken so far: ``in flight`` at once over the time
    not held back by throttling. None until the pair has done something."""
    listed, done, d = p.total("source_items"), p.done_items, p.duration()
    if not p.started or done == 0 or d <= 0 or not listed:
        return None
    rest = max(0, listed - done)
    if rest == 0:
        return 0.0
    requests = p.requests
    latency = lim.in_flight_per_mailbox * max(0.0, d - p.throttle_wait_s) / max(1, requests)
    body = import_body(p.total("source_bytes") // listed)
    copied = p.total("copied") + p.total("updated") + p.total("moved_in")
    cut = in_effect(p, lim)
    if cut is not None:
        # the service gives less than [limits]: what is left, at the budget in effect (sent
        # in even parts of its window, so at its rate), not the whole copy at [limits]
        rate = cut.upload_bytes_per_window / max(1e-9, cut.upload_window_s)
        left = pair_eta(rest, body * rest, cut, latency).seconds
        return max(left, body * rest / max(1e-9, rate))
    whole = pair_eta(copied + rest, body * (copied + rest), lim, latency).seconds
    left = pair_eta(rest, body * rest, lim, latency).seconds
    return max(left, whole - d)


def in_effect(p: PairStats, lim: Limits) -> Limits | None:
    """``lim`` with the budgets the service's 429s left the pair's strictest target mailbox
    (over the window its answers showed); None while nothing is cut."""
    out: Limits | None = None
    for account in p.pacers[1::2]:  # the target, then the target's archive
        learned = account.budget_in_effect()
        up, req = learned.get("upload"), learned.get("requests")
        eff = lim
        if up is not None and up.is_cut:
            budget, seconds = up.in_window()
            eff = replace(eff, upload_bytes_per_window=max(1, int(budget)), upload_window_s=seconds)
        if req is not None and req.is_cut:
            n, seconds = req.in_window()
            eff = replace(eff, requests_per_window=max(1, int(n)), request_window_s=seconds)
        if eff is not lim and (out is None or _rate(eff) < _rate(out)):
            out = eff
    return out


def _rate(lim: Limits) -> float:
    return lim.upload_bytes_per_window / max(1e-9, lim.upload_window_s)


def _eta(p: PairStats, lim: Limits) -> str:
    eta = pair_eta_s(p, lim)
    if eta is None:
        return "-"
    return f"{eta:,.0f}s" + ("" if p.status != "running" else "+")


def job_line(stats: JobStats, lim: Limits | None = None) -> str:
    """The job in one line: items done of those listed, MB/s now, ETA once listing is done
    (its longest pair's, or all of them shared out over ``pairs_in_parallel``, as ``plan``)."""
    lim = lim or Limits()
    listed = stats.total("source_items")
    done = sum(p.done_items for p in stats.pairs.values())
    pairs = list(stats.pairs.values())
    finished = sum(p.status in FINISHED for p in pairs)
    all_listed = all(p.enumerated_all or p.status not in ("pending", "running") for p in pairs)
    pct = f"{100 * done / listed:.0f}%" if listed else "-"
    mbps = stats.bytes_per_s() / MB
    d = stats.duration()
    eta = _projected(pairs, lim)
    if all_listed and listed:
        etas = [pair_eta_s(p, lim) for p in pairs if p.status in ("pending", "running")]
        known = [e for e in etas if e is not None]
        left = max(max(known, default=0.0), sum(known) / max(1, lim.pairs_in_parallel))
        eta = "0s" if not etas else (f"{left:,.0f}s" if known else "-")
    running = [p for p in pairs if p.status == "running"]  # a held pair's waits are its hold's
    throttled = sum(p.service_throttled_now for p in running)
    pacing_pairs = [p for p in running if p.pacing_now]
    # on a budget the service's 429s cut, or on [limits] as configured: which, said
    cut = sum(p.budget_cell != "-" for p in pacing_pairs)
    pacing = len(pacing_pairs) - cut
    return (
        f"{done:,}/{listed:,} items ({pct}){'' if all_listed else ' listed so far'} · "
        f"{stats.total('copied'):,} copied · {mbps:,.1f} MB/s now{_cap(stats)} · ETA {eta} · "
        f"pairs {finished}/{len(pairs)} finished"
        + (f" · {throttled} throttled by the service (Retry-After)" if throttled else "")
        + (f" · {pacing} pacing on our own budget ([limits])" if pacing else "")
        + (f" · {cut} pacing on the budget the service's 429s left" if cut else "")
        + _held_counts(pairs)
        + f" · {d:,.0f}s"
    )


FINISHED = (PairStatus.DONE, PairStatus.FAILED, PairStatus.INTERRUPTED, PairStatus.PAUSED)
PROJECT_AFTER = 3  # pairs finished before the job's ETA is projected from them


def _projected(pairs: list[PairStats], lim: Limits) -> str:
    """The ETA while pairs are still to be listed (a fleet runs ``pairs_in_parallel`` at
    once, so most are listed late): each running pair ends in what the pairs done that ran
    longer took on average, the pairs not started at the mean time of those done, shared out
    over ``pairs_in_parallel``, said as a projection; unknown while a pair runs longer than
    any done; "after listing" until enough are done."""
    done = [p.duration() for p in pairs if p.status is PairStatus.DONE and p.started]
    running = [p.duration() for p in pairs if p.status == "running" and p.started]
    left = sum(p.status in ("pending", "running") for p in pairs)
    if len(done) < PROJECT_AFTER or not left:
        return "after listing"
    each = sum(done) / len(done)
    longest = max(done)
    late = sum(t >= longest for t in running)
    if late:
        # a projection would stand still while such a pair runs on (the demo under a
        # stricter service: "~182s" from 270 s to 580 s of one pair's crawl)
        return f"unknown ({late} running past the {longest:,.0f}s the longest pair done took)"
    # a running pair ends in what the pairs done that ran longer took on average (past the
    # mean of all, most pairs of a fleet of mixed mailboxes are: 8 at once, one of them was
    # nearly always, and the ETA said unknown for most of the job); the others start as
    # they end
    first = max((fmean([d for d in done if d > t]) - t for t in running), default=0.0)
    waves = math.ceil((left - len(running)) / max(1, lim.pairs_in_parallel))
    eta = first + waves * each
    return f"~{eta:,.0f}s (projected from {len(done)} pairs done)"


def _held_counts(pairs: list[PairStats]) -> str:
    """`` · 2 suspended · 5 waiting`` for the pairs the operator's controls hold."""
    out = ""
    for status in HELD:
        n = sum(p.status is status for p in pairs)
        out += f" · {n} {status.value}" if n else ""
    return out


def _cap(stats: JobStats) -> str:
    """The bandwidth cap beside the rate, in the same MB/s (it counts upload bodies)."""
    cap = stats.bwlimit_mb_s
    return "" if cap is None else f" (cap {cap:g} MB/s uploaded)"


LIVE_COLUMNS = (
    "pair",
    "status",
    "listed",
    "copied",
    "present",
    "skipped",
    "failed",
    "unknown",
    "MB",
    "items/s",
    "ETA",
    "429s",
    "throttle wait",
    "% of ceiling",
    "budget",
)


def live_table(stats: JobStats, lim: Limits | None = None) -> Fitted:
    """The pairs running now (at most 20); a table, or a block per pair on a narrow screen."""
    lim = lim or Limits()
    t = Fitted(LIVE_COLUMNS, names=2, title=f"copyengine  {job_line(stats, lim)}")
    active = [p for p in stats.pairs.values() if p.status == "running"]
    held = [p for p in stats.pairs.values() if p.status in HELD]  # after the running ones
    shown = (active + held)[:20] or list(stats.pairs.values())[:20]
    for p in shown:
        pd = p.duration()
        status = _waits_on(p)
        t.add_row(
            f"{p.source} → {p.target}",
            status,
            f"{p.total('source_items'):,}" + ("" if p.enumerated_all else "+"),
            *_item_cells(p),
            f"{p.total('copied') / pd:,.0f}" if pd else "-",
            _eta(p, lim),
            f"{p.throttled:,}",
            f"{p.throttle_wait_s:,.1f}s",
            "-" if p.ceiling_pct is None else f"{p.ceiling_pct:.0f}%",
            p.budget_cell,
        )
    rest = len(stats.pairs) - len(shown)
    lines = held_reasons(stats)
    if rest > 0:
        done = sum(p.status not in ("pending", "running") for p in stats.pairs.values())
        lines.append(f"{rest} more pairs; {done} finished")
    t.caption = "\n".join(lines) or None
    return t


def _waits_on(p: PairStats) -> str:
    """A pair's status, or what its requests wait on while it runs: ``throttled`` (the
    service's Retry-After), ``pacing`` (the job's own budget)."""
    if p.status != "running":
        return str(p.status)
    if p.service_throttled_now:
        return "throttled"
    return "pacing" if p.pacing_now else str(p.status)


def held_reasons(stats: JobStats) -> list[str]:
    """Why pairs are held (suspended, waiting for their schedule or times), one line per
    reason with how many pairs it holds: what the live table says under its rows."""
    reasons: dict[str, int] = {}
    for p in stats.pairs.values():
        if p.status in HELD and p.hold:
            reasons[p.hold] = reasons.get(p.hold, 0) + 1
    return [f"{n} {'pair' if n == 1 else 'pairs'} {why}" for why, n in reasons.items()]


def _item_cells(p: PairStats) -> tuple[str, ...]:
    """The live table's and the summary's item columns: copied, already present, skipped,
    failed, unknown, MB copied."""
    return (
        f"{p.total('copied'):,}",
        f"{p.total('already_present'):,}",
        f"{p.skipped:,}",
        f"{p.failed:,}",
        f"{p.unknown:,}",
        mb(p.total("copied_bytes")),
    )


SUMMARY_ROWS = 50


SUMMARY_COLUMNS = (
    "pair",
    "status",
    # what the pass listed (the live table's word): a delta pass lists what changed, and
    # "source items 0" read as an empty source mailbox
    "listed",
    "copied",
    "already present",
    "skipped",
    "failed",
    "unknown",
    "MB copied",
    "429s",
    "% of ceiling",
    "duration",
)


def summary_table(stats: JobStats) -> Fitted:
    """At most SUMMARY_ROWS pairs, the unhealthy first; the report has every pair."""
    info = stats.pass_info
    title = f"summary of pass {info['number']} ({info['kind']})" if info else "summary"
    t = Fitted(SUMMARY_COLUMNS, names=2, title=title)
    pairs = sorted(stats.pairs.values(), key=lambda p: p.status == "done" and not p.failed)
    for p in pairs[:SUMMARY_ROWS]:
        t.add_row(
            f"{p.source} → {p.target}",
            p.status + (f": {p.error_code}" if p.error_code else ""),
            f"{p.total('source_items'):,}",
            *_item_cells(p),
            f"{p.throttled:,}",
            "-" if p.ceiling_pct is None else f"{p.ceiling_pct:.0f}%",
            f"{p.duration():,.1f}s",
        )
    tot = stats.totals()
    t.add_section()
    t.add_row(
        f"total ({len(pairs)} pairs)",
        f"{tot['pairs_failed']} failed" if tot["pairs_failed"] else "",
        f"{tot['source_items']:,}",
        f"{tot['copied']:,}",
        f"{tot['already_present']:,}",
        f"{tot['skipped']:,}",
        f"{tot['failed']:,}",
        f"{tot['unknown']:,}",
        mb(tot["copied_bytes"]),
        f"{tot['throttled_429']:,}",
        "",
        f"{stats.duration():,.1f}s",
    )
    if len(pairs) > SUMMARY_ROWS:
        t.caption = (
            f"{len(pairs) - SUMMARY_ROWS} more pairs in the report; all pairs: "
            f"{tot['copied']:,} copied, {tot['failed']:,} failed, "
            f"{tot['pairs_failed']} pairs failed"
        )
    return t


async def show_progress(
    stats: JobStats,
    live: bool = True,
    interval: float = 10.0,
    console: Any = None,
    limits: Limits | None = None,
) -> None:
    """Until cancelled: a live table on a terminal (unless ``live`` is False), else a
    ``job.progress`` event per ``interval``. Log lines go above the table, never through
    it (rich redirects stderr while the table is live; ``logs`` writes to the current
    stderr), and the last frame drawn is the final state."""
    console = console or console_for(sys.stderr)
    if live and console.is_terminal:
        with Live(
            live_table(stats, limits),
            console=console,
            refresh_per_second=2,
            transient=False,
            redirect_stderr=True,
        ) as view:
            try:
                for _ in range(100_000_000):
                    await anyio.sleep(0.5)
                    view.update(live_table(stats, limits))
            finally:
                view.update(live_table(stats, limits), refresh=True)
        return
    for _ in range(100_000_000):
        await anyio.sleep(interval)
        totals = stats.totals()
        cuts = [
            b for p in stats.pairs.values() if p.status == "running" and (b := p.budget_in_effect())
        ]
        log.info(
            "job.progress",
            copied=totals["copied"],
            source_items=totals["source_items"],
            done=sum(p.done_items for p in stats.pairs.values()),
            failed=totals["failed"],
            unknown=totals["unknown"],
            items_per_s=totals["items_per_s"],
            mb_per_s_now=round(stats.bytes_per_s() / MB, 2),
            bwlimit_mb_s=stats.bwlimit_mb_s,
            throttled_429=totals["throttled_429"],
            throttled_now=sum(p.throttled_now for p in stats.pairs.values()),
            service_throttled_now=sum(p.service_throttled_now for p in stats.pairs.values()),
            pacing_now=sum(p.pacing_now for p in stats.pairs.values()),
            # running pairs the service's 429s cut, and the least budget in effect of them
            # (a share of [limits]; the report has it per pair, mailbox and limit)
            budget_cut=len(cuts),
            budget_least=min(
                (v for b in cuts for c in b.values() for v in c.values()), default=None
            ),
            line=job_line(stats, limits),
        )


def outcome_line(stats: JobStats) -> str:
    """What happened, in the words the exit code means."""
    code = stats.exit_code()
    tot = stats.totals()
    ch = stats.changes()
    kind = stats.pass_info.get("kind", "first")
    if code is ExitCode.OK and kind not in ("first", "retry"):
        what = (
            f"pass {stats.pass_info.get('number')} ({kind}) applied {ch['created']:,} new, "
            f"{ch['updated']:,} updated, {ch['moved']:,} moved, {ch['deleted']:,} deleted "
            f"({ch['kept']:,} deleted at the source and kept)"
        )
        if stats.sign_off is not None:
            what += "; sign-off complete: every source item accounted for"
    elif code is ExitCode.OK:
        what = (
            f"every selected item is in the target ({tot['copied']:,} copied, "
            f"{tot['already_present']:,} already present)"
        )
    elif (
        stats.sign_off is not None
        and not stats.sign_off.get("complete")
        and not (
            tot["failed"] or tot["unknown"] or tot["not_done"] or stats.fatal or stats.interrupted
        )
    ):
        what = "sign-off incomplete: " + sign_off_shortfall(stats.sign_off) + "; see the report"
    elif code is ExitCode.PAUSED and stats.paused:
        what = f"paused: {stats.paused}: {tot['copied']:,} copied; run again to continue"
        if any(p.status in HELD for p in stats.pairs.values()):
            what += "; " + held_line(stats)
    elif code is ExitCode.INTERRUPTED:
        what = "interrupted" + (f" ({stats.stop_reason})" if stats.stop_reason else "")
        what += f": {tot['copied']:,} copied; run again to finish"
    elif stats.fatal:
        what = "stopped: " + stats.fatal.split(";")[0]
    elif code is ExitCode.PAUSED:
        what = f"paused: {tot['copied']:,} copied; " + held_line(stats)
    else:
        what = (
            f"{tot['copied']:,} copied, {tot['failed']:,} failed, {tot['unknown']:,} unknown, "
            f"{tot['not_done']:,} not done, {tot['pairs_failed']} of {tot['pairs']} pairs "
            "failed: see the report"
        )
    return f"exit {int(code)}: {what}"


def held_line(stats: JobStats) -> str:
    """The pairs the operator's controls hold, by why (suspended, waiting)."""
    return stats.held_said() + "; run again to go on"


FAILED_SAID = 5  # failed pairs whose error the summary says one by one (the report has all)
ERROR_SAID = 200  # characters of a pair's error on screen


def failed_lines(stats: JobStats) -> list[str]:
    """Why pairs failed, under the summary's table: the table's status names the error's
    kind alone (``failed: MailboxNotFound``: which mailbox, which side?), the report its
    message; the first ``FAILED_SAID`` pairs' messages, then how many more."""
    failed = [p for p in stats.pairs.values() if p.status == "failed" and p.error]
    lines = []
    for p in failed[:FAILED_SAID]:
        error = " ".join(str(p.error).split())
        if len(error) > ERROR_SAID:
            error = error[: ERROR_SAID - 1] + "…"
        lines.append(f"failed: {p.source} → {p.target}: {error}")
    if len(failed) > FAILED_SAID:
        lines.append(f"failed: {len(failed) - FAILED_SAID} more pairs: see the report")
    return lines


def print_summary(stats: JobStats, stream: Any = None) -> None:
    """The summary table on ``stream`` (stdout): the run's answer; then the notes (a pair's
    auto-expanding archive redirected items; folders deleted at the source while the pass
    read them; pairs that started at a remembered budget) and
    the hints (limits above what the service
    gave)."""
    out = console_for(stream)
    out.print(summary_table(stats))
    for line in failed_lines(stats):
        out.print(line, markup=False, highlight=False)
    for n in [*stats.archive_notes(), *stats.gone_notes()]:
        out.print(f"note: {n}", markup=False, highlight=False)
    if (started := stats.remembered_note()) is not None:
        out.print(f"note: {started}", markup=False, highlight=False)
    for h in stats.hints():
        out.print(f"hint: {h}", markup=False, highlight=False)
