"""The task a worker runs: one time-boxed segment of a mailbox group, its pairs one after the
other; then the group's continuation queued under the same lock, or the group finished
(``outcome.py`` decides which)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import psycopg
import structlog
from anyio.abc import TaskGroup
from procrastinate import App, JobContext, exceptions

from ..config import JobConfig
from ..controls import SYSTEM, Clock, job_gate, window_caps
from ..controls.suspend import SuspendSource, suspension
from ..errors import StateError
from ..graph import Clients
from ..notify.fields import progress
from ..pacing.bandwidth import BandwidthCap
from ..pipeline.budget import ByteBudget
from ..pipeline.gate import POLL_S, Gate, Hold
from ..pipeline.job import run_pairs
from ..pipeline.notices import QUIET, Notices
from ..pipeline.signoff import SignOff
from ..pipeline.stop import StopFlag
from ..plan import PassKind
from ..report import JobStats, PairStats, PairStatus
from ..state.fence import GroupFence, GroupTaken
from ..state.groups import GroupStore
from ..state.postgres import Outage, StoreUnavailable
from ..tally import WorkerStats
from .connect import group_fence, store_of
from .groups import Group
from .outcome import Next, Outcome, PairEnd, SegmentEnd, said, segment_outcome

log = structlog.get_logger("copyengine.cluster")
TASK = "copyengine.copy_group"
SIGN_OFF_TASK = "copyengine.sign_off"  # a cutover's sign-off, once every group is done
RUNTIME = "runtime"  # the key of the Runtime in the job context's ``additional_context``


@dataclass
class Runtime:
    """What a worker process gives the groups it runs: its job, its clients (one pacer per
    mailbox for the whole process), its group table, and its stop flag. ``gone``: why the
    worker gave the database up (it then leaves, exit 5)."""

    cfg: JobConfig
    clients: Clients
    stop: StopFlag
    groups: dict[str, Group]
    table: GroupStore
    queue: str
    host: str
    budget: ByteBudget
    sign_off: SignOff | None = None  # a cutover's (``verify.sign_off``, handed by the face)
    stats: WorkerStats = field(default_factory=WorkerStats)  # every segment's (metrics)
    # the clock the job's schedule and times are read on (``controls.env_clock``)
    clock: Clock = SYSTEM
    gone: str | None = None
    gone_event: asyncio.Event = field(default_factory=asyncio.Event)
    notices: Notices = QUIET
    # the stall watch's view: the segments running (by group) and what ended ones did
    live: dict[str, JobStats] = field(default_factory=dict)
    ended: tuple[int, ...] = (0, 0, 0)

    def progress(self) -> tuple[tuple[int, ...], bool]:
        """What this worker's segments copied and listed, and whether one is running."""
        total = self.ended
        for stats in list(self.live.values()):
            total = tuple(a + b for a, b in zip(total, progress(stats)[0], strict=True))
        return total, bool(self.live)

    # the process's upload cap (``--bwlimit``): each worker process has its own
    bandwidth: BandwidthCap = field(default_factory=lambda: BandwidthCap(None))

    def give_up(self, why: str) -> None:
        if self.gone is None:
            self.gone = why
            log.error("worker.store_gone", error=why)
        Outage.give_up(why)  # what is left to say to the database fails at once
        self.gone_event.set()


async def defer(
    app: App,
    queue: str,
    key: str,
    pass_number: int,
    segment: int = 1,
    priority: int = 0,
    at: datetime | None = None,
) -> bool:
    """A segment of the group queued under its lock (False: one waits in the queue already);
    workers take higher ``priority`` first, and not before ``at`` (the system's clock)."""
    task = app.configure_task(
        TASK, lock=key, queueing_lock=key, queue=queue, priority=priority, schedule_at=at
    )
    try:
        await task.defer_async(group=key, pass_number=pass_number, segment=segment)
    except exceptions.AlreadyEnqueued:
        return False
    return True


async def defer_sign_off(app: App, queue: str, pass_number: int) -> bool:
    """Pass ``pass_number``'s sign-off queued (False: one waits in the queue already)."""
    lock = f"sign-off-{pass_number}"
    task = app.configure_task(SIGN_OFF_TASK, lock=lock, queueing_lock=lock, queue=queue)
    try:
        await task.defer_async(pass_number=pass_number)
    except exceptions.AlreadyEnqueued:
        return False
    return True


async def group_of(rt: Runtime, key: str) -> Group | None:
    """The group ``key``: one of the job's, or one ``submit --pair``/``--wave`` made of some
    of a group's pairs (its pairs read from the group table; None if the job file lacks
    one of them)."""
    g = rt.groups.get(key)
    if g is not None:
        return g
    members = (await rt.table.members()).get(key)
    by_key = {p.key: p for p in rt.cfg.pairs}
    if members is None or not members[2] or any(k not in by_key for k in members[2]):
        return None
    g = rt.groups[key] = Group(key, tuple(by_key[k] for k in members[2]))
    return g


async def copy_group(context: JobContext, group: str, pass_number: int, segment: int = 1) -> None:
    """One segment of a group. Never fails the procrastinate job for what it meets: the
    database gone past the limit makes the worker leave (its group is queued again by a
    reaper once the database is back); anything else is recorded on the group (queued again
    when the store was at fault, else failed, with its reason)."""
    rt = context.additional_context.get(RUNTIME)
    if not isinstance(rt, Runtime):
        raise RuntimeError("copy_group runs only inside `copyengine worker`")
    g = await group_of(rt, group)
    if g is None:
        log.error("group.unknown", group=group, hint="the worker's job file lacks this group")
        return
    try:
        await run_segment(rt, g, pass_number, segment, context.job.id, context.app)
    except StoreUnavailable as exc:
        rt.give_up(str(exc))
    except GroupTaken as exc:  # another segment runs the group now: it records its end
        log.warning("group.taken_over", group=group, error=str(exc))
    except Exception as exc:
        store_fault = isinstance(exc, (psycopg.Error, exceptions.ConnectorException, StateError))
        log.error(
            "group.segment_crashed",
            group=group,
            error=f"{type(exc).__name__}: {exc}",
            requeued=store_fault,
            exc_info=logging.getLogger().isEnabledFor(logging.DEBUG),
        )
        crash = SegmentEnd(segment, crashed=f"{type(exc).__name__}: {exc}", store_fault=store_fault)
        try:
            await end_segment(rt, g, pass_number, segment, context.app, segment_outcome(crash))
        except StoreUnavailable as gone:
            rt.give_up(str(gone))
        except Exception as again:  # the reaper's reconciliation queues it again
            log.error("group.not_recorded", group=group, error=str(again))


def _watch(tg: TaskGroup, rt: Runtime, g: Group, stop: StopFlag) -> None:
    """The segment's time box, the worker's stop, and the group's heartbeat."""
    w = rt.cfg.workers

    async def time_box() -> None:
        await anyio.sleep(w.segment_minutes * 60)
        stop.reason = "segment ended"
        stop.drain()

    async def follow() -> None:
        await rt.stop.wait()
        stop.reason = rt.stop.reason or "the worker is stopping"
        stop.drain()

    async def beat() -> None:
        while True:
            await anyio.sleep(w.heartbeat_s)
            failed = await rt.table.beat(g.key, w.heartbeat_s)
            if failed is not None:
                log.warning("group.heartbeat_failed", group=g.key, error=failed)

    tg.start_soon(time_box)
    tg.start_soon(follow)
    tg.start_soon(beat)


async def _copy_segment(
    rt: Runtime,
    g: Group,
    stats: JobStats,
    stop: StopFlag,
    store: Any,
    pass_number: int,
    on_pair: Callable[[str, bool], Awaitable[None]],
    gate: Gate,
) -> None:
    """The segment's pairs, one after the other, watched (``_watch``), its statistics read
    live by the worker's metrics and added to them once it ends."""
    seq = replace(rt.cfg, limits=replace(rt.cfg.limits, pairs_in_parallel=1))
    with rt.stats.segment(stats):
        async with anyio.create_task_group() as tg:
            _watch(tg, rt, g, stop)
            await run_pairs(
                seq,
                rt.clients,
                store,
                stop,
                stats,
                g.pairs,
                pass_number=pass_number,
                write_report=False,
                on_pair=on_pair,
                budget=rt.budget,
                notices=rt.notices,
                gate=gate,
                # a pair held ends the segment held: the group is released (suspended) or
                # queued again for when its hold lifts (the schedule, its times)
                hold_waits=False,
                bandwidth=rt.bandwidth,
            )
            tg.cancel_scope.cancel()


async def run_segment(
    rt: Runtime, g: Group, pass_number: int, segment: int, job_id: Any, app: App
) -> None:
    """One time box of a group: its pairs one after the other, drained when the segment's
    time is up or the worker stops; then its continuation queued, or the group finished."""
    fence = group_fence(rt.cfg, g.key)
    if not await _take_fence(rt, g, pass_number, segment, fence):
        return
    try:
        await _fenced_segment(rt, g, pass_number, segment, job_id, app, fence)
    finally:
        await fence.release()


async def _take_fence(
    rt: Runtime, g: Group, pass_number: int, segment: int, fence: GroupFence
) -> bool:
    """The group's fence, waited for while another segment of it still runs (a worker the
    reaper took for dead while it stalled: never two at once). This job stays running
    meanwhile, so the reaper does not queue the group again and again. False: nothing to
    do (the worker stops, or the other segment finished the group or its pass)."""
    for attempt in range(100_000):  # bounded in time too: a worker's stop ends the wait
        if await fence.take():
            break
        if attempt == 0:
            log.warning("group.already_running", group=g.key, segment=segment, host=rt.host)
        if rt.stop.draining:
            return False
        await anyio.sleep(rt.cfg.workers.heartbeat_s)
    else:
        return False
    if attempt == 0:
        return True
    pass_now, state, _ = (await rt.table.members()).get(g.key, (None, "", []))
    if pass_now == pass_number and state in ("queued", "running"):
        return True
    await fence.release()
    log.info("group.finished_elsewhere", group=g.key, state=state, segment=segment)
    return False


async def _fenced_segment(
    rt: Runtime, g: Group, pass_number: int, segment: int, job_id: Any, app: App, fence: GroupFence
) -> None:
    stop = StopFlag()
    stats = JobStats()
    started = time.time()
    await rt.table.segment_started(g.key, rt.host, job_id)
    log.info("group.started", group=g.key, pairs=len(g.pairs), segment=segment, host=rt.host)

    async def on_pair(pair: str, start: bool) -> None:
        if start:
            await rt.table.run_started(g.key, pair, rt.host)
        else:
            await rt.table.run_finished(g.key, pair)

    store = store_of(rt.cfg, pass_number=pass_number)
    # the state's suspensions first, then the job's schedule and times, read now
    suspended = SuspendSource(store, rt.cfg.path.name)
    gate = job_gate(rt.cfg, rt.clock, suspended, *window_caps(rt.cfg, rt.bandwidth, rt.clock))
    store.fence = fence
    rt.live[g.key] = stats
    try:
        await _copy_segment(rt, g, stats, stop, store, pass_number, on_pair, gate)
    finally:
        done = progress(rt.live.pop(g.key))[0]
        rt.ended = tuple(a + b for a, b in zip(rt.ended, done, strict=True))
    kind = PassKind(stats.pass_info.get("kind", "first"))
    by_key = {p.key: p for p in g.pairs}
    end = SegmentEnd(
        segment,
        store_gone=store.unavailable is not None,
        fatal=stats.fatal,
        draining=stop.draining,
        pairs=tuple(
            pair_end(p, gate.hold(by_key[k], kind), rt.clock.now()) for k, p in stats.pairs.items()
        ),
    )
    outcome = segment_outcome(end)
    if fence.lost is not None:
        # another segment took the group over meanwhile: it records the group's end
        log.warning("group.taken_over", group=g.key, segment=segment, host=rt.host)
        return
    if outcome.next is Next.LEAVE:
        # the database stayed away past the limit: this worker leaves; the group's job is
        # still `doing` under this worker, whose heartbeat stops: a reaper queues it again
        raise StoreUnavailable(store.unavailable or "the database is unreachable")
    await end_segment(rt, g, pass_number, segment, app, outcome, said(stats.changes()))
    if outcome.next is Next.SUSPENDED:
        held = {k for k, p in stats.pairs.items() if p.status is PairStatus.SUSPENDED}
        await release_resumed(rt, g, held, app)
    log.info(
        "group.segment_finished",
        group=g.key,
        state=str(outcome.next),
        segment=segment,
        copied_in_segment=stats.total("copied"),
        duration_s=round(time.time() - started, 2),
    )


def pair_end(p: PairStats, hold: Hold | None = None, now: datetime | None = None) -> PairEnd:
    """How a pair's segment ended: failed, suspended (the group is released until resumed),
    or waiting for the clock (``hold``: what holds it now, its ``until`` when the group is
    queued again; lifted meanwhile: ``now``, at once)."""
    suspended = p.status is PairStatus.SUSPENDED
    end = PairEnd(
        p.source, p.status == "failed", p.error or (p.hold if suspended else None), suspended
    )
    if p.status is not PairStatus.WAITING:
        return end
    if hold is None or hold.until is None:
        return replace(end, hold=p.hold, until=now)
    return replace(end, hold=hold.text, until=hold.until)


async def release_resumed(rt: Runtime, g: Group, held: set[str], app: App) -> None:
    """After the group was released suspended: a pair of ``held`` resumed meanwhile (its
    ``resume`` may have looked before the group was released) queues the group again. The
    release is written before the controls are read, and ``resume`` writes the controls
    before it looks at the groups: one of the two sees the other."""
    controls = await rt.table.controls()
    if all(suspension(p, controls) is not None for p in g.pairs if p.key in held):
        return
    again = await rt.table.unsuspended(g.key)
    if again is not None:
        await defer(app, rt.queue, g.key, again[0], again[1] + 1, g.priority)
        log.info("group.resumed", group=g.key)


async def end_segment(
    rt: Runtime,
    g: Group,
    pass_number: int,
    segment: int,
    app: App,
    outcome: Outcome,
    extra: dict[str, int] | None = None,
) -> None:
    """The group's state after a segment, and (continuing) its next segment queued under
    the same lock; the pass ended when it was the last group."""
    if outcome.continues:
        await defer(app, rt.queue, g.key, pass_number, segment + 1, g.priority)  # or queued
    elif outcome.next is Next.WAITING and outcome.at is not None:
        # not sooner than a poll from now: a hold that lifts as it is read is not a busy loop
        at = max(rt.clock.real(outcome.at), datetime.now(UTC) + timedelta(seconds=POLL_S))
        await defer(app, rt.queue, g.key, pass_number, segment + 1, g.priority, at)
        log.info("group.waiting", group=g.key, until=outcome.at.isoformat(), why=outcome.error)
    summary = await rt.table.segment_ended(
        g.key, [p.key for p in g.pairs], pass_number, str(outcome.next), outcome.error, extra or {}
    )
    await pass_ended(rt, app, summary)


async def end_late(table: GroupStore, number: int, reason: str) -> dict[str, Any] | None:
    """Pass ``number`` ended now if every group of it has (``GroupStore.finish_pass_if_done``)
    while its end was not written: the worker that ended its last group died between the
    two writes, or is about to write it (then one of the two ends it). Said in the log as
    ``pass.ended_late`` with ``reason``; its summary (None: not ended here). The one way
    a worker's reaper, a worker leaving and ``submit`` end such a pass (host soak seed 107:
    the pass left running, the next ``submit --full`` refused)."""
    summary = await table.finish_pass_if_done(number)
    if summary is not None:
        log.warning(
            "pass.ended_late", pass_number=number, status=summary.get("status"), reason=reason
        )
    return summary


async def pass_ended(rt: Runtime, app: App, summary: dict[str, Any] | None) -> None:
    """What follows a pass's last group (``GroupStore.finish_pass_if_done``'s summary): a
    cutover's sign-off queued (for any worker), or the pass's end announced by the one
    worker that ended it."""
    if summary is None:
        return
    if summary.get("sign_off_due"):
        await defer_sign_off(app, rt.queue, int(summary["pass"]))
    else:
        rt.notices.shared_pass_finished(summary)
