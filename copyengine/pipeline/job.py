"""Run a whole job on built clients and a built store: pairs in parallel, clean stops, and
one account of what happened (report, ``job.finished``, exit code)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import structlog

from .. import unsent
from ..config import MB, JobConfig, Limits, Pair
from ..errors import ConfigError, StateError
from ..failures import Verdict, classify
from ..graph import Clients, Health
from ..launch import take_stop
from ..plan import PassKind
from ..report import HELD, JobStats, Renderings, check_writable, iso, job_names, write_report
from ..state import Store
from ..state.overview import migration
from ..stopsignals import STOP_SIGNALS, receiving, signal_name
from .admit import Admission
from .budget import ByteBudget
from .caps import NO_UPLOAD_CAPS, Bandwidth, RunCaps, RunQuota, UploadCaps
from .context import PairContext
from .gate import OPEN, Gate, PrioritySlots, Ticker
from .notices import QUIET, Notices
from .pair import PairRunner, debug_logging
from .pairpass import record_pair_pass, record_sign_off
from .parked import Cut, drained
from .signoff import SignOff
from .stop import StopFlag

log = structlog.get_logger("copyengine.job")
# a drain with nothing on the wire this long: all that is left waits on the service
QUIET_S = 1.0
# The report's view across passes is read from the state at the end; a state that does not
# answer within this long leaves the report with this run's view alone.
MIGRATION_READ_S = 30.0
# what refuses a run before it starts (``failures.classify``'s names): nothing is written.
# A ConfigError before the state opens is ``_check_writable``'s: a report that cannot be
# written is not written, nor named (screen, ``job.finished``), nor announced as a pass
REFUSALS = ("JobLocked", "ForeignState", "ConfigError")
# the status of a pass whose copy ended but whose report could not be written (exit 5): the
# changes it records are what it did; ``copyengine report`` writes the report from the state
REPORT_UNWRITTEN = "report_unwritten"


async def run_pairs(
    cfg: JobConfig,
    clients: Clients,
    store: Store,
    stop: StopFlag | None = None,
    stats: JobStats | None = None,
    pairs: tuple[Pair, ...] | None = None,
    retry_only: bool = False,
    full: bool = False,
    cutover: bool = False,
    *,
    pass_number: int | None = None,
    write_report: bool = True,
    on_pair: Callable[[str, bool], Awaitable[None]] | None = None,
    budget: ByteBudget | None = None,
    sign_off: SignOff | None = None,
    render: Renderings | None = None,
    gate: Gate | None = None,
    hold_waits: bool = True,
    notices: Notices = QUIET,
    caps: RunCaps | None = None,
    bandwidth: Bandwidth | None = None,
) -> JobStats:
    """Copy every pair of ``cfg`` (or ``pairs``; ``retry_only``: only the items that failed
    or stayed unknown last time); returns the stats (also the report).

    Never raises for a failure of the job: whatever happens is classified once
    (``failures.classify``) into the stats, so that the exit code, the report and the
    ``job.finished`` event say the same thing. Only cancellation (an abort) propagates.

    ``gate``: the operator's controls (``pipeline.admit``); ``hold_waits`` False (a
    worker's segment): a held pair is left held, not waited for. ``notices`` hears of a
    failed pair, a sign-off and (a pass of its own) the pass's end. Caps: ``pipeline.caps``."""
    stop, stats = stop or StopFlag(), stats or JobStats()
    todo = pairs if pairs is not None else cfg.pairs
    on_pair = _announcing(on_pair, stats, notices, cfg.limits.max_failed_items_per_pair)
    for p in todo:
        stats.pair(p.key, p.source, p.target).policy = _policy(cfg, p, retry_only)
    uploads = UploadCaps(RunQuota(caps, stop) if caps is not None else None, bandwidth)
    opened = refused = reported = False  # a run refused before it starts writes nothing
    try:
        if write_report:
            _check_writable(cfg)
        async with store:
            opened = True
            structlog.contextvars.bind_contextvars(run=stats.run_id)
            number, kind, mode = await _this_pass(store, pass_number, cutover, full, retry_only)
            stats.pass_info = {"number": number, "kind": kind, "started": iso(stats.started_wall)}
            try:
                _started(cfg, todo, stats)
                args = (cfg, clients, store, todo, stats, stop, mode, on_pair, budget)
                await _run(*args, gate, hold_waits, uploads=uploads)
                if cutover and not stop.draining and not _held(stats):
                    await sign_off_pass(*args[:6], sign_off, budget, on_pair, uploads)
                    if stats.sign_off is not None and stop.settled:  # not cut short
                        notices.signed_off(stats)
            except Exception as exc:  # classified before the pass's end is recorded: the
                _failed(stats, exc)  # state's pass, the report and the exit code agree
            finally:
                if pass_number is None:  # a run of its own: what is left is saying it
                    stop.settle()
                stats.finished = time.monotonic()  # before the store's last commit
                stats.interrupted = stats.interrupted or stop.interrupted  # the pass's status
                stats.paused = stats.paused or stop.paused  # says it, as the report does
                with anyio.CancelScope(shield=True):
                    own = number if pass_number is None else None
                    reported = await _end(cfg, store, stats, stop, own, write_report, render)
    except Exception as exc:
        # Refused before it started (another run holds the job's lock, the state is another
        # job's): it writes nothing, for the report at cfg.report_path may be that run's or
        # that job's. A state that does not open, or fails after (a full disk), is reported.
        refused = _failed(stats, exc).error_type in REFUSALS and not opened
    finally:
        stats.refused = refused
        _finish(cfg, stats, stop, write_report and not (refused or reported), render)
        if pass_number is None and not refused:  # a worker segment: the last group says it
            notices.pass_finished(stats)
        structlog.contextvars.unbind_contextvars("run")
    return stats


def _started(cfg: JobConfig, todo: tuple[Pair, ...], stats: JobStats) -> None:
    log.info(
        "job.started",
        pairs=len(todo),
        state=cfg.state_url or str(cfg.state_path),  # a PostgreSQL state: its URL (no password)
        run=stats.run_id,
        pass_number=stats.pass_info["number"],
        pass_kind=stats.pass_info["kind"],
    )


def _announcing(
    on_pair: Callable[[str, bool], Awaitable[None]] | None,
    stats: JobStats,
    notices: Notices,
    limit: int | None,
) -> Callable[[str, bool], Awaitable[None]]:
    """``on_pair`` (when given), and at a pair's end, its failure told to ``notices``."""

    async def said(key: str, start: bool) -> None:
        if not start and stats.pairs[key].status == "failed":
            notices.pair_failed(key, stats.pairs[key], limit)
        if on_pair is not None:
            await on_pair(key, start)

    return said


def _held(stats: JobStats) -> bool:
    """Pairs the operator's controls hold: the cutover's sign-off waits for the run that
    finishes them (this one says paused)."""
    return any(p.status in HELD for p in stats.pairs.values())


async def _read_migration(store: Store, stats: JobStats) -> None:
    """The job across its passes, for the report (``state.overview.migration``); a state
    that cannot say leaves the report with this run's view alone (said in the log)."""
    with anyio.move_on_after(MIGRATION_READ_S):
        try:
            stats.migration = await migration(store)
        except StateError as exc:  # the report is still written, with this run's view
            log.warning("report.migration_unread", error=str(exc) or type(exc).__name__)


def _failed(stats: JobStats, exc: Exception) -> Verdict:
    """The job's failure, classified once into ``stats`` (the exit code, the report and the
    pass the state records all read it from there)."""
    verdict = classify(exc)
    stats.fatal = stats.fatal or verdict.message
    stats.fatal_code = verdict.code
    log.error(
        "job.failed",
        error=verdict.message,
        error_type=verdict.error_type,
        exc_info=debug_logging(),
    )
    return verdict


def _policy(cfg: JobConfig, p: Pair, retry_only: bool) -> dict[str, Any]:
    """What the report says a pair's copy was asked to do."""
    return {
        "large_items": (
            f"items over {round(p.items.max_size / MB, 3):g} MB are skipped and listed per folder"
            if p.items.max_size is not None
            else "no size limit: every item is copied (Exchange itself caps messages at 150 MB)"
        ),
        "max_failed_items": cfg.limits.max_failed_items_per_pair,
        "selection": "only items that failed or stayed unknown last time"
        if retry_only
        else "every selected item",
    }


def _check_writable(cfg: JobConfig) -> None:
    try:
        check_writable(cfg.report_path)
    except OSError as exc:
        raise ConfigError(
            "job.report", f"cannot write the report {cfg.report_path}: {exc.strerror or exc}"
        ) from exc


# what a sign-off can find that a pass listing every folder in full repairs (the target
# changed under the copy: copies deleted, edited or moved there, folders deleted there, old
# folders of ours left); a folder someone else made there it leaves alone
REPAIRABLE = (
    "unaccounted",
    "stale",
    "misplaced",
    "duplicated",
    "leftover_folders",
    "missing_folders",
    "moved_folders",  # renamed or moved in the target by its user
    "pending_deletions",  # a copy the target's user moved, its item deleted at the source
)


async def sign_off_pass(
    cfg: JobConfig,
    clients: Clients,
    store: Store,
    todo: tuple[Pair, ...],
    stats: JobStats,
    stop: StopFlag,
    sign_off: SignOff | None,
    budget: ByteBudget | None = None,
    on_pair: Callable[[str, bool], Awaitable[None]] | None = None,
    uploads: UploadCaps = NO_UPLOAD_CAPS,
) -> None:
    """The end of a cutover pass, once its pairs are copied (by this run, or by every group
    of a shared job): the sign-off into ``stats``, the drifted pairs repaired and signed off
    again (``_repair``), each pair's entry kept with its statistics of the pass."""
    assert sign_off is not None, "a cutover is handed its sign-off (wiring)"
    stats.sign_off = await _judged(stop, sign_off, cfg, clients, store, todo, stats)
    if stats.sign_off is None:
        return  # cut short: the pass is interrupted, the next run signs off again
    await _repair(cfg, clients, store, todo, stats, stop, on_pair, budget, sign_off, uploads)
    if stop.draining:
        return  # the repair cut short: the first sign-off (not complete) is the one said
    stop.settle()  # the last sign-off taken: a stop from here on has nothing to cut short
    if store.pass_number is not None:
        await record_sign_off(store, store.pass_number, stats.sign_off)


async def _judged(
    stop: StopFlag,
    sign_off: SignOff,
    cfg: JobConfig,
    clients: Clients,
    store: Store,
    todo: tuple[Pair, ...],
    stats: JobStats,
) -> dict[str, Any] | None:
    """The sign-off, or None when a drain comes before it ends: a stop cuts it short at
    once (it only judges: nothing it did is lost, the next run signs off again), and the
    pass is said interrupted, never "complete" (a sign-off that ran on to its end said
    "complete", then the run "interrupted", exit 130)."""
    found: dict[str, Any] | None = None
    failed: Exception | None = None  # raised as it is, not in a group (``StoreUnavailable``)
    if stop.draining:
        return None
    async with anyio.create_task_group() as tg:

        async def judge() -> None:
            nonlocal found, failed
            try:
                found = await sign_off(cfg, clients, store, todo, stats)
            except Exception as exc:
                failed = exc
            tg.cancel_scope.cancel()

        async def cut() -> None:
            await stop.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(judge)
        tg.start_soon(cut)
    if failed is not None:
        raise failed
    return None if stop.draining else found


def needs_repair(entry: dict[str, Any]) -> bool:
    """A pair whose sign-off found the target drifted from the source (pure)."""
    return entry.get("error") is None and any(entry.get(k) for k in REPAIRABLE)


async def _repair(
    cfg: JobConfig,
    clients: Clients,
    store: Store,
    todo: tuple[Pair, ...],
    stats: JobStats,
    stop: StopFlag,
    on_pair: Callable[[str, bool], Awaitable[None]] | None,
    budget: ByteBudget | None,
    sign_off: SignOff,
    uploads: UploadCaps,
) -> None:
    """The cutover converges too: a delta pass cannot see what changed in the target, so
    the pairs whose sign-off found drift are listed once more in full (as ``--full``) within
    this pass, and the sign-off is taken again; the one in the report is the last, with what
    the first found under ``repaired``."""
    assert stats.sign_off is not None
    first = stats.sign_off
    drifted = [(p, e) for p, e in zip(todo, first["pairs"], strict=True) if needs_repair(e)]
    if not drifted or stop.draining:
        return
    log.warning("cutover.repairing", pairs=[p.key for p, _ in drifted])
    for p, e in drifted:
        found = ", ".join(f"{k.replace('_', ' ')} {e[k]}" for k in REPAIRABLE if e.get(k))
        stats.pairs[p.key].notes.append(
            f"the cutover's first sign-off found the target changed under the copy ({found}): "
            "every folder was listed in full again and the sign-off taken after that"
        )
    pairs = tuple(p for p, _ in drifted)
    await _run(
        cfg, clients, store, pairs, stats, stop, PassKind.FULL, on_pair, budget, uploads=uploads
    )
    if stop.draining:
        return
    again = await _judged(stop, sign_off, cfg, clients, store, todo, stats)
    if again is None:
        return
    stats.sign_off = again
    stats.sign_off["repaired"] = [
        {"pair": e["pair"], **{k: e[k] for k in REPAIRABLE if e.get(k)}} for _, e in drifted
    ]


async def _this_pass(
    store: Store, pass_number: int | None, cutover: bool, full: bool, retry_only: bool
) -> tuple[int, str, PassKind]:
    """This run's pass: a new one of the kind its options say, or (a worker's segment) the
    pass ``submit`` started, which the last group to finish ends; (its number, the kind it
    is recorded as, the kind its pairs copy as)."""
    passes = await store.passes()
    kind = PassKind.of(cutover=cutover, full=full, retry=retry_only, earlier=bool(passes))
    if pass_number is not None:
        # a segment copies as its pass was submitted (``submit --full``, ``--retry-failed``,
        # ``--cutover``: its sign-off comes once every group is done)
        label = next((str(p["kind"]) for p in passes if p["pass"] == pass_number), "delta")
        known = {k.value: k for k in PassKind}
        return pass_number, label, kind if cutover or full or retry_only else known.get(label, kind)
    return await store.pass_started(kind.value), kind.value, kind


async def _run(
    cfg: JobConfig,
    clients: Clients,
    store: Store,
    todo: tuple[Pair, ...],
    stats: JobStats,
    stop: StopFlag,
    kind: PassKind,
    on_pair: Callable[[str, bool], Awaitable[None]] | None = None,
    budget: ByteBudget | None = None,
    gate: Gate | None = None,
    hold_waits: bool = True,
    *,
    uploads: UploadCaps = NO_UPLOAD_CAPS,
) -> None:
    # one budget per process: a worker's groups share it, as a run's pairs do
    budget = budget or ByteBudget.for_limits(cfg.limits)
    # the pairs this run will hold shares at once, added to the budget's (a worker's groups
    # share one budget: each adds its own) and given back as its pairs end, so that the
    # parts exports are cut in follow the pairs left (``ByteShares.split``)
    at_once = Expected(budget, min(cfg.limits.pairs_in_parallel, len(todo)), len(todo))
    gate = gate or OPEN
    await gate.refresh()  # read once before any pair starts (a pair suspended stays put)
    ticker = Ticker(gate)
    admission = Admission(
        gate,
        kind,
        stop,
        stats,
        PrioritySlots(cfg.limits.pairs_in_parallel),
        ticker,
        cfg.limits.drain_timeout_s,
        waits=hold_waits,
    )

    async def copy(p: Pair, own: StopFlag) -> None:
        if on_pair is not None:
            await on_pair(p.key, True)
        try:
            ctx = PairContext.of(
                p,
                clients.src,
                clients.dst,
                store,
                stats=stats.pairs[p.key],
                limits=cfg.limits,
                budget=budget,
                stop=own,
                kind=kind,
                sync=cfg.sync,
                quota=uploads.quota,
                bandwidth=uploads.bandwidth,
            )
            await PairRunner(ctx).run()
        finally:
            with anyio.CancelScope(shield=True):
                label = str(stats.pass_info.get("kind") or kind.value)
                await record_pair_pass(store, stats.pairs[p.key], p.key, label, stats.run_id)
                if on_pair is not None:
                    await on_pair(p.key, False)
                at_once.pair_ended()

    with unsent.opened() as hold, at_once:  # this run's drain, as its requests' waits see it
        async with anyio.create_task_group() as tg:
            tg.start_soon(_sample, stats, uploads.bandwidth)
            tg.start_soon(ticker.run)
            async with anyio.create_task_group() as pairs_tg:
                watch = (stop, hold, pairs_tg.cancel_scope, clients.health, cfg.limits)
                tg.start_soon(_watch_drain, *watch)
                for p in sorted(todo, key=lambda p: -p.priority):  # stable: file order
                    pairs_tg.start_soon(admission.run, p, partial(copy, p))
            tg.cancel_scope.cancel()  # stop the drain watch
    _say_service_gone(stop, clients.health)


class Expected:
    """A run's part of ``ByteBudget.expected``: ``at_once`` pairs from its start, fewer once
    fewer than that are left to end, none after it."""

    def __init__(self, budget: ByteBudget, at_once: int, pairs: int) -> None:
        self.budget, self.held, self.left = budget, at_once, pairs

    def pair_ended(self) -> None:
        self.left -= 1
        if self.held > max(0, self.left):
            self.budget.expected -= 1
            self.held -= 1

    def __enter__(self) -> Expected:
        # added here, not when made: a run that fails before its pairs start (the gate's
        # first read) leaves a budget shared with other runs as it found it
        self.budget.expected += self.held
        return self

    def __exit__(self, *exc: object) -> None:
        self.budget.expected -= self.held
        self.held = 0


def _say_service_gone(stop: StopFlag, health: Health) -> None:
    """A drain that settled everything before the service had been gone for
    ``UNREACHABLE_AFTER_S`` (requests refused at once) still says the service was gone."""
    if stop.draining and stop.reason is None and health.down_since is not None:
        stop.reason = f"not attempted: service unreachable ({health.last_error})"


async def _sample(stats: JobStats, bandwidth: Bandwidth | None, interval: float = 1.0) -> None:
    """The report's timeline: totals once per ``interval`` until cancelled (and at the end);
    the bandwidth cap as it is now (it may change while the job runs)."""
    try:
        while True:
            stats.bwlimit_mb_s = bandwidth.mb_s if bandwidth is not None else None
            stats.sample()
            await anyio.sleep(interval)
    finally:
        stats.sample()


async def _watch_drain(
    stop: StopFlag,
    hold: unsent.Hold,
    pairs: anyio.CancelScope,
    health: Health,
    limits: Limits,
    poll: float = 0.1,
) -> None:
    """Once a drain starts, no request waits any more to be sent (the pacers park what has
    not gone); in-flight work gets ``drain_timeout_s`` to finish, less when the service has
    stopped answering, and less when nothing has been on the wire for ``QUIET_S`` while
    requests are parked (all that is left waited on the service); then it is cut short (intents are durable: the next run
    settles whatever was in flight). Ends when the job's task group is cancelled."""
    timeout = limits.drain_timeout_s
    await stop.wait()
    hold.drain()
    cut = await drained(hold, timeout, QUIET_S, health, poll)
    if cut is Cut.UNREACHABLE:
        stop.reason = f"not attempted: service unreachable ({health.last_error})"
    elif cut is Cut.PARKED:
        stop.reason = "not sent: what was left waited on the service's budgets"
    if stop.reason is None:
        stop.reason = f"not finished: the drain's {timeout:.0f} s deadline passed"
    log.warning("job.drain_cut_short", reason=stop.reason)
    pairs.cancel()


async def _end(
    cfg: JobConfig,
    store: Store,
    stats: JobStats,
    stop: StopFlag,
    number: int | None,
    report: bool,
    render: Renderings | None,
) -> bool:
    """The pass's end recorded (``number``: a pass of this run's own) and (``report``) the
    report written while the state is open, so that a report that cannot be written (a full
    disk) is said by the pass the state records too. True once the report was tried."""
    if number is not None:
        await store.pass_finished(number, stats.exit_code().name.lower(), stats.changes())
    if not report:
        return False
    await _read_migration(store, stats)
    await store.flush()  # every outcome committed first (a commit that fails is reported)
    if not _report(cfg, stats, stop, render) and number is not None:
        await store.pass_finished(number, REPORT_UNWRITTEN, stats.changes())
    return True


def _settle(stats: JobStats, stop: StopFlag) -> None:
    """What the report and ``job.finished`` say of the run's end, from its stop."""
    stats.finished = stats.finished or time.monotonic()
    stats.interrupted = stats.interrupted or stop.interrupted
    stats.paused = stats.paused or stop.paused
    stats.stop_reason = stats.stop_reason or stop.reason


def _report(cfg: JobConfig, stats: JobStats, stop: StopFlag, render: Renderings | None) -> bool:
    """Write the run's report; False (its failure said in ``stats.fatal``: exit 5) when it
    could not be written."""
    _settle(stats, stop)
    stats.job = stats.job or job_names(cfg)
    try:
        stats.report_own = write_report(cfg.report_path, stats, cfg.keep_reports, render)
    except OSError as exc:
        stats.fatal = stats.fatal or (
            f"cannot write the report {cfg.report_path}: {exc.strerror or exc}; the "
            "state holds every outcome: make room, then `copyengine report` writes it"
        )
        return False
    return True


def _finish(
    cfg: JobConfig, stats: JobStats, stop: StopFlag, report: bool, render: Renderings | None
) -> None:
    """Say what happened, once: the report (unless written already, ``_report``) and
    ``job.finished`` carry the same exit code the process returns. ``_report`` settles the
    stats from the stop; so it is read here only when no report was written now (one
    written already by ``_end`` was settled then, and nothing since may change what it
    said: a stop since is the stop flag's ``late``)."""
    if report:
        _report(cfg, stats, stop, render)
    else:
        _settle(stats, stop)
    own = stats.report_own
    log.info(
        "job.finished",
        exit_code=int(stats.exit_code()),
        copied=stats.total("copied"),
        failed=sum(p.failed for p in stats.pairs.values()),
        unknown=sum(p.unknown for p in stats.pairs.values()),
        fatal=stats.fatal,
        stop_reason=stats.stop_reason,
        paused=stats.pause_said(),
        report=str(cfg.report_path) if own else None,  # the latest, as the screen
        report_run=str(own) if own else None,  # this run's own copy, kept
        duration_s=round(stats.duration(), 2),
        hints=stats.hints(),  # the report's: where [limits] are above what the service gave
        # the report's per pair, of the pairs the service's 429s cut (mailbox: limit: share)
        budget_in_effect={k: b for k, p in stats.pairs.items() if (b := p.budget_in_effect())},
        archive_notes=stats.archive_notes(),  # the report's: archive redirects, no failure
        gone_notes=stats.gone_notes(),  # the report's: folders gone mid-pass, no failure
        remembered_note=stats.remembered_note(),  # the report's: pairs started at a remembered budget
        sign_off=stats.sign_off.get("said") if stats.sign_off is not None else None,
    )


def abort_hint(sig: int) -> str:
    """How to abort a drain, in the words of the stop that began it (a service manager's
    SIGTERM is sent again, not pressed)."""
    name = signal_name(sig)
    keys = {"SIGINT": "press Ctrl-C", "SIGBREAK": "press Ctrl-Break"}
    return f"{keys.get(name, f'send {name}')} again to abort"


async def watch_signals(stop: StopFlag, abort: anyio.CancelScope) -> None:
    """First Ctrl-C/SIGTERM (Ctrl-Break on Windows): drain (finish in-flight work, commit,
    report). Second: abort. Where the event loop has no signal handlers (Windows), through
    ``signal.signal``."""
    with receiving(STOP_SIGNALS) as signals:
        # a stop that came while the command started (``launch``), taken once the handlers
        # are in place: a run stopped at any moment drains, its report and log saying so
        early = take_stop()
        if early is not None:
            stop.drain()
            log.warning("job.draining", signal=signal_name(early), hint=abort_hint(early))
        async for sig in signals:
            if stop.settled:  # nothing left to cut short: the run ends as it is saying
                stop.drain()  # counted (``late``), no more
                log.warning("job.stop_after_work", signal=signal_name(sig))
            elif not stop.interrupted:  # a run paused at its cap drains already: once more
                stop.drain()
                log.warning("job.draining", signal=signal_name(sig), hint=abort_hint(sig))
            else:
                log.warning("job.aborting", signal=signal_name(sig))
                abort.cancel()
                return
