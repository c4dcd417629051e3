"""``copyengine worker``: procrastinate's worker running groups (``tasks.copy_group``), beside
a reaper that queues again the groups of silent workers, signal handling (drain, then abort),
and ``--until-done``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import psycopg
import structlog
from procrastinate import App, exceptions
from procrastinate.jobs import Status

from ..config import JobConfig
from ..controls import env_clock
from ..errors import StateError
from ..exitcodes import ExitCode
from ..graph import Clients
from ..notify.sender import Notifier
from ..notify.watch import watch_stalls
from ..pacing.bandwidth import BandwidthCap
from ..pipeline.budget import ByteBudget
from ..pipeline.signoff import SignOff
from ..pipeline.stop import StopFlag
from ..state.postgres import Outage, StoreUnavailable, explain
from ..stopsignals import DUMP_SIGNALS, STOP_SIGNALS, handling, signal_name
from ..tally import WorkerStats
from .connect import group_store, outage_s, store_of
from .groups import mailbox_groups
from .jobqueue import apply_schema, make_app, queue_name
from .tasks import RUNTIME, Runtime, defer, defer_sign_off, end_late, group_of, pass_ended

log = structlog.get_logger("copyengine.cluster")
MAX_REQUEUES = 20  # a group queued again this often in one pass without finishing: failed


def stalled_groups(cfg: JobConfig) -> Callable[[], Awaitable[int]]:
    """What ``worker --metrics`` reports as ``copyengine_stalled_groups`` (read at each
    scrape): the current pass's running groups whose heartbeat is older than
    ``stalled_after_s``, the ones ``_reaper`` queues again."""
    return partial(group_store(cfg).stalled, cfg.workers.stalled_after_s)


async def _group_alive(rt: Runtime, group: str) -> bool:
    beat = await rt.table.heartbeat(group)
    return beat is not None and time.time() - beat < rt.cfg.workers.stalled_after_s


async def _reaper(app: App, rt: Runtime) -> None:
    """Queue again the groups of workers that stopped sending heartbeats, and any unfinished
    group of the pass that has no job waiting or running. Not while heartbeats may still be
    resuming after an outage (seen here, or a server that started recently): a live worker
    whose beats the outage held back is not dead."""
    w = rt.cfg.workers
    quiet = w.stalled_after_s + 2 * w.heartbeat_s
    while True:  # as long as the worker runs; each round bounded by the store's own limit
        await anyio.sleep(w.heartbeat_s)
        if Outage.within(quiet):
            continue
        try:
            up = await rt.table.server_up_s()
            if up is not None and up < quiet:
                continue
            stalled = await app.job_manager.get_stalled_jobs(
                queue=rt.queue, seconds_since_heartbeat=w.stalled_after_s
            )
            for job in stalled:
                if "group" not in job.task_kwargs:  # a sign-off whose worker died
                    await retry_stalled(app, job)
                    log.warning("cutover.sign_off_requeued", job=job.id, reason="worker silent")
                    continue
                group = str(job.task_kwargs.get("group"))
                if await _group_alive(rt, group):
                    # its worker stopped beating while it drains (procrastinate stops the
                    # heartbeat on shutdown), but the group's own heartbeat goes on: not dead
                    continue
                if Outage.within(quiet):
                    break
                await retry_stalled(app, job)
                await rt.table.requeued(
                    group, "its worker stopped sending heartbeats: queued again"
                )
                log.warning("group.requeued", group=group, job=job.id, reason="worker silent")
            if not Outage.within(quiet):
                await _reconcile(app, rt)
        except (psycopg.Error, exceptions.ProcrastinateException, StateError) as exc:
            log.warning("worker.reaper_failed", error=str(exc))


async def retry_stalled(app: App, job: Any) -> None:
    """A job whose worker died, queued again; or, when another job of its lock waits
    already, ended (failed) so that the waiting one runs. Two jobs of one lock are normal
    (a pass's sign-off queued by the worker that ended the last group and by a reaper that
    saw every group done first; a group's segment queued again by ``submit``): the second
    waits while the first runs. Put back with ``retry_job``, the dead one was refused by the
    queueing lock while the second waited, and the second could not start while the dead
    one held the lock: the pass never ended (host soak seed 21)."""
    try:
        await app.job_manager.retry_job(job)
    except exceptions.UniqueViolation:
        await app.job_manager.finish_job(job, status=Status.FAILED, delete_job=False)
        log.warning("worker.stalled_job_ended", job=job.id, reason="another one waits")


async def _reconcile(app: App, rt: Runtime) -> None:
    """A group of the current pass that is queued or running, silent for ``stalled_after_s``,
    with no procrastinate job waiting or running under its lock (its job failed, was
    aborted, or ended while the database could not record the group's end): queued again,
    at most ``MAX_REQUEUES`` times in a pass, then failed with the reason."""
    for o in await rt.table.orphans(rt.queue, rt.cfg.workers.stalled_after_s):
        if o.retried >= MAX_REQUEUES:
            await rt.table.given_up(o.key, f"queued again {o.retried} times without finishing")
            log.error("group.given_up", group=o.key, retried=o.retried)
            await pass_ended(rt, app, await rt.table.finish_pass_if_done(o.pass_number))
            continue
        g = await group_of(rt, o.key)
        priority = g.priority if g is not None else 0
        if not await defer(app, rt.queue, o.key, o.pass_number, o.segments + 1, priority):
            continue
        why = "its job ended without finishing the group: queued again"
        await rt.table.requeued(o.key, why, beat=True)
        log.warning("group.requeued", group=o.key, reason="no job waiting or running")
    for number in await rt.table.sign_offs_due(rt.queue):
        if await defer_sign_off(app, rt.queue, number):
            log.warning("cutover.sign_off_requeued", pass_number=number)
    # a pass whose groups all ended ``stalled_after_s`` ago, its end never written (the worker
    # that ended its last group died between the two writes): ended here
    for number in await rt.table.passes_due(rt.cfg.workers.stalled_after_s):
        await pass_ended(rt, app, await end_late(rt.table, number, "its last group's worker left"))


def _dump_tasks(sig: int = 0) -> None:
    """SIGUSR1: where every task of this worker waits, into the log."""
    for t in asyncio.all_tasks():
        where: list[str] = []
        coro: Any = t.get_coro()
        for _ in range(64):
            if coro is None:
                break
            f = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
            if f is not None:
                where.append(f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        log.warning("worker.task", task=t.get_name(), stack=where)


@asynccontextmanager
async def _signals(stop: StopFlag, worker: asyncio.Task[Any]) -> AsyncIterator[None]:
    """First SIGTERM/SIGINT (Ctrl-Break on Windows): segments drain and queue their
    continuation, the worker takes no new group and ends once they have. A second: the
    worker's jobs are aborted. SIGUSR1 (not on Windows): where every task waits."""
    count = 0

    def on_signal(sig: int) -> None:
        nonlocal count
        count += 1
        if count == 1:
            stop.reason = f"the worker got {signal_name(sig)}"
            stop.drain()
            worker.cancel()  # procrastinate: stop fetching, wait for running jobs
            log.warning("worker.draining", signal=signal_name(sig))
        else:
            worker.cancel()

    # once the worker has stopped, what is left (the job queue's pool closed, the clients,
    # the loop's end) has nothing a stop could stop: ignored from then on, as ``run`` does
    # after its report (a stop landing there was a KeyboardInterrupt wherever it landed:
    # exit 130 for a pass done, -2, or a traceback; host history seed 20)
    stops = handling(on_signal, STOP_SIGNALS, leave=signal.SIG_IGN)
    with stops, handling(_dump_tasks, DUMP_SIGNALS):
        yield


async def _until_done(
    app: App, rt: Runtime, worker: asyncio.Task[Any], out: dict[str, Any]
) -> None:
    """``worker --until-done``: once every group of the job's current pass is finished,
    stop like a SIGTERM would (nothing is running then, so nothing drains); the pass ended
    first if nobody wrote its end (``_end_pass``). A database that cannot be read for longer
    than the store waits makes the worker give up."""
    failing_since: float | None = None
    while True:
        await anyio.sleep(rt.cfg.workers.heartbeat_s)
        try:
            groups = await rt.table.read()
            current = max((g["pass"] for g in groups), default=None)
            state = await rt.table.pass_state(current) if current is not None else None
            failing_since = None
        except StateError as exc:
            now = time.monotonic()
            failing_since = failing_since if failing_since is not None else now
            if now - failing_since >= outage_s():
                rt.give_up(f"{exc} (for {now - failing_since:.0f} s)")
                return
            log.warning("worker.poll_failed", error=str(exc))
            continue
        mine = [g for g in groups if g["pass"] == current]
        # a group released suspended waits for `copyengine resume`: nothing to wait for
        if mine and all(g["state"] in ("done", "failed", "suspended") for g in mine):
            if state is not None and state[0] == "cutover" and not state[1]:
                continue  # a cutover ends once signed off
            out["failed"] = sum(g["state"] == "failed" for g in mine)
            if state is not None and state[2].get("pairs_not_signed_off"):
                out["failed"] += 1
            out["suspended"] = sum(g["state"] == "suspended" for g in mine)
            if current is not None and state is not None and not state[1] and not out["suspended"]:
                await _end_pass(app, rt, current)
            log.info(
                "worker.all_done",
                groups=len(mine),
                failed=out["failed"],
                suspended=out["suspended"],
            )
            rt.stop.reason = "every group is finished"
            rt.stop.drain()
            worker.cancel()
            return


async def _end_pass(app: App, rt: Runtime, number: int) -> None:
    """Pass ``number``, every group of it done or failed, not recorded as ended: the worker
    that ended its last group died between the group's end and the pass's (SIGKILL, or a
    drain past ``drain_timeout_s`` cancelled there), or is about to write it (then one of
    the two ends it). Ended here, before this worker leaves: else nobody would (host soak
    seed 107: the pass left running, the next ``submit --full`` refused)."""
    try:
        await pass_ended(rt, app, await end_late(rt.table, number, "every group had ended"))
    except (StateError, psycopg.Error, exceptions.ProcrastinateException) as exc:
        # the next worker's reaper, or the next submit, ends it
        log.warning("worker.pass_end_failed", pass_number=number, error=str(exc))


class _NoTracebackForOutages(logging.Filter):
    """procrastinate logs a side task or a job that failed with its traceback: for the
    database being unreachable, the message says enough (no traceback for an operator)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (StoreUnavailable, exceptions.ConnectorException, psycopg.Error)):
            said = (record.getMessage().splitlines() or [""])[0]
            if record.name == "asyncio":  # a job whose end procrastinate could not record
                said = "a job's end could not be recorded in the job queue"
            record.msg = f"{said}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


class _QuietStop(logging.Filter):
    """A worker that stops (every group finished, SIGTERM) cancels the queue's listening
    query; psycopg then warns "query cancellation interrupted (CancelledError): closing
    connection" for a connection it closes anyway. Said at every clean exit, it read as a
    fault: once the worker is stopping it is dropped; any other psycopg warning stays."""

    def __init__(self, stop: StopFlag) -> None:
        super().__init__()
        self.stop = stop

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            self.stop.draining
            and record.name == "psycopg"
            and str(record.msg).startswith("query cancellation interrupted")
        )


def _outage_loggers() -> list[logging.Filterer]:
    """Where an outage's exception is logged: procrastinate's loggers (a filter applies
    only to the logger it is on, not to its children's records), asyncio's, which says a
    task's exception nobody retrieved (a job procrastinate could not finish), and the root
    logger's handlers, which every record reaches, from loggers made after this (the
    worker's own, ``procrastinate.worker``, is made when the worker starts: its "poll_jobs_to_abort
    error" went out with its traceback)."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "procrastinate"]
    named = sorted({"procrastinate", "procrastinate.worker", "asyncio", *names})
    return [*map(logging.getLogger, named), *logging.root.handlers]


def _procrastinate_worker(app: App, rt: Runtime, concurrency: int) -> asyncio.Task[Any]:
    w = rt.cfg.workers
    return asyncio.create_task(
        app.run_worker_async(
            queues=[rt.queue],
            concurrency=concurrency,
            name=rt.host,
            wait=True,
            install_signal_handlers=False,
            update_heartbeat_interval=w.heartbeat_s,
            stalled_worker_timeout=w.stalled_after_s,
            shutdown_graceful_timeout=w.drain_timeout_s,
            fetch_job_polling_interval=min(5.0, w.heartbeat_s),
            listen_notify=True,
            additional_context={RUNTIME: rt},
        )
    )


async def _run(
    app: App, rt: Runtime, concurrency: int, until_done: bool, done: dict[str, Any]
) -> None:
    """The worker and its side tasks until it stops (``done``: what ``--until-done`` found)."""
    async with app.open_async():
        worker = _procrastinate_worker(app, rt, concurrency)
        log.info("worker.started", queue=rt.queue, concurrency=concurrency, host=rt.host)

        async def on_gone() -> None:
            await rt.gone_event.wait()
            rt.stop.reason = "the database is unreachable"
            rt.stop.drain()
            worker.cancel()

        async with _signals(rt.stop, worker), anyio.create_task_group() as tg:
            tg.start_soon(_reaper, app, rt)
            if isinstance(rt.notices, Notifier) and rt.notices.cfg.webhooks:
                tg.start_soon(watch_stalls, rt.notices, rt.progress)
            tg.start_soon(on_gone)
            if until_done:
                tg.start_soon(_until_done, app, rt, worker, done)
            try:
                await worker
            except asyncio.CancelledError:
                pass
            except (StateError, exceptions.ProcrastinateException, psycopg.Error) as exc:
                rt.give_up(str(exc) if isinstance(exc, StateError) else explain(exc))
            if not rt.stop.draining and rt.gone is None:
                # procrastinate's worker ended by itself (a side task gave up)
                rt.give_up("the job queue's worker stopped: the database is unreachable")
            tg.cancel_scope.cancel()


async def run_worker(
    cfg: JobConfig,
    clients: Clients,
    concurrency: int,
    until_done: bool = False,
    notifier: Notifier | None = None,
    sign_off: SignOff | None = None,
    stats: WorkerStats | None = None,
) -> int:
    """Run groups until stopped; returns the exit code (``until_done``: 1 when a group of the
    pass failed, else 8 when one waits suspended, 130 when stopped before the pass ended). Raises ``StoreUnavailable`` when the
    database stayed away past the limit. ``notifier``: the job's ``[notify]`` (a pair failed, the pass this worker ended, this
    worker stalled)."""
    assert cfg.state_url is not None
    # The job's state opened once first: a job file that is another job (another name) is
    # refused now (ForeignState), not left waiting on a queue of its own that nobody fills.
    async with store_of(cfg):
        pass
    await apply_schema(cfg.state_url, cfg.state_password)
    rt = Runtime(
        cfg,
        clients,
        StopFlag(),
        {g.key: g for g in mailbox_groups(cfg.pairs)},
        group_store(cfg),
        queue_name(cfg.identity(), cfg.name),
        f"{socket.gethostname()}:{os.getpid()}",
        ByteBudget.for_limits(cfg.limits),
        sign_off,
        stats or WorkerStats(),
        bandwidth=BandwidthCap(cfg.limits.bwlimit_mb_s),
    )
    if notifier is not None:
        notifier.host = rt.host
        rt.notices = notifier
    rt.clock = env_clock()  # the job's schedule and times are read on it
    quiet = _NoTracebackForOutages()
    stopping = _QuietStop(rt.stop)
    loggers = [*_outage_loggers(), logging.getLogger("psycopg")]
    for one in loggers:
        one.addFilter(quiet)
        one.addFilter(stopping)
    done: dict[str, Any] = {}
    try:
        app = make_app(cfg.state_url, cfg.state_password)
        await _run(app, rt, concurrency, until_done, done)
    except (psycopg.Error, exceptions.ProcrastinateException) as exc:
        if rt.gone is None:
            rt.give_up(explain(exc))
    finally:
        for one in loggers:
            one.removeFilter(quiet)
            one.removeFilter(stopping)
    log.info("worker.stopped", host=rt.host)
    if rt.gone is not None:
        raise StoreUnavailable(
            f"{rt.gone}. This worker left; its groups are queued again by any worker once "
            "the database is back (start workers again then)"
        )
    if until_done and not done:
        # stopped (SIGTERM, Ctrl-C) before every group of the pass ended: its segments
        # drained and are queued again; the pass is not done (exit 130: run again to finish)
        return int(ExitCode.INTERRUPTED)
    if done.get("failed"):
        return 1
    return int(ExitCode.PAUSED) if done.get("suspended") else 0
