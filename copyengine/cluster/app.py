"""One job shared by many hosts, on procrastinate and PostgreSQL.

``submit`` plans the job's mailbox groups (``groups.py``) and enqueues one procrastinate job
per unfinished group, with ``lock`` = ``queueing_lock`` = the group's key: the database runs
a group on one worker at a time and queues it once. ``worker`` processes on every host run
groups, ``[workers] concurrency`` at once, each in time-boxed **segments**: when a segment's
time is up (or the worker is asked to stop) the group drains like a run does (in-flight work
finishes and is committed), and its continuation is queued under the same lock. Workers send
heartbeats; every worker also looks for jobs whose worker has been silent longer than
``[workers] stalled_after_s`` and queues them again: a group whose worker died (kill -9, host
lost) resumes elsewhere, and the state's intents make that safe (every unknown outcome is
settled by search key before anything is resent).

The group table ``ce_groups`` says, for ``status`` and ``report``, where each group is:
queued, running (host, heartbeat), done, failed (why). Its counters, and the pass's, are
computed from the item records (``Store.pass_counts``), so they include what every segment
did, even one killed with -9.

**The database going away** (restart, failover, network) is waited out: every statement of
the store, of the group table and of procrastinate is tried again with backoff while the
server is unreachable, for at most ``OUTAGE_S`` (``COPYENGINE_STORE_OUTAGE_S``); meanwhile
segments stop sending imports (no intent can be made durable). Past that limit the worker
leaves with a clear error (exit 5) and its groups are queued again by the reaper of any
worker once the server is back. After an outage the reaper waits for heartbeats to resume
before it calls anyone dead, and it queues again any unfinished group of the pass that has
no procrastinate job waiting or running (so a group never stays behind a failed job).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import psycopg
import structlog
from procrastinate import App, JobContext, PsycopgConnector, exceptions

from ..config import JobConfig, Pair
from ..errors import StateError
from ..graph import Clients
from ..pipeline.budget import ByteBudget
from ..pipeline.job import run_pairs
from ..pipeline.stop import StopFlag
from ..report import JobStats
from ..secrets import Secret
from ..state.postgres import (
    OUTAGE_S,
    PASS_COUNTS_SQL,
    RECONNECT_S,
    Outage,
    PostgresStore,
    StoreUnavailable,
    _explain,
    patiently,
    transient,
)
from ..state.rows import pass_counts
from .groups import Group, mailbox_groups

log = structlog.get_logger("copyengine.cluster")
TASK = "copyengine.copy_group"

GROUPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS ce_groups (
    group_key TEXT PRIMARY KEY, pairs TEXT NOT NULL, pass INTEGER NOT NULL,
    state TEXT NOT NULL, host TEXT, job_id BIGINT, segments INTEGER NOT NULL DEFAULT 0,
    started DOUBLE PRECISION, heartbeat DOUBLE PRECISION, finished DOUBLE PRECISION,
    copied BIGINT NOT NULL DEFAULT 0, failed BIGINT NOT NULL DEFAULT 0,
    unknown BIGINT NOT NULL DEFAULT 0, error TEXT, retried INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE ce_groups ADD COLUMN IF NOT EXISTS extra TEXT;
CREATE TABLE IF NOT EXISTS ce_group_runs (
    id BIGSERIAL PRIMARY KEY, group_key TEXT NOT NULL, pair TEXT NOT NULL, host TEXT NOT NULL,
    started DOUBLE PRECISION NOT NULL, finished DOUBLE PRECISION
);
"""


MAX_REQUEUES = 20  # a group queued again this often in one pass without finishing: failed


def outage_s() -> float:
    """How long a worker waits for an unreachable database before it gives up."""
    try:
        return max(1.0, float(os.environ.get("COPYENGINE_STORE_OUTAGE_S", OUTAGE_S)))
    except ValueError:
        return OUTAGE_S


def queue_name(cfg_identity: dict[str, str]) -> str:
    """The job's own queue: several jobs may share one database server (not one database)."""
    digest = hashlib.sha256(json.dumps(cfg_identity, sort_keys=True).encode()).hexdigest()
    return f"copyengine-{digest[:12]}"


def _kwargs(password: Secret | None) -> dict[str, Any]:
    kw: dict[str, Any] = {"application_name": f"copyengine-worker@{socket.gethostname()}"}
    if password is not None:
        kw["password"] = password.reveal()
    return kw


async def _connect(
    url: str, password: Secret | None, wait_s: float = 15
) -> psycopg.AsyncConnection[Any]:
    """A connection of its own, in autocommit (the group table's short statements)."""
    return await psycopg.AsyncConnection.connect(
        url, autocommit=True, connect_timeout=max(2, int(wait_s)), **_kwargs(password)
    )


class PatientConnector(PsycopgConnector):
    """procrastinate's connector, whose statements (fetch, heartbeat, finish, retry, defer)
    are tried again while the server is unreachable (bounded by ``outage_s``), and whose
    LISTEN connection is opened again: a restart of the database does not stop the worker.
    Every one of them may run twice (a defer twice is refused by its queueing lock)."""

    def __init__(self, *, outage_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outage_s = outage_s

    async def _patient(self, call: Any) -> Any:
        async def once(_wait: float) -> Any:
            try:
                return await call()
            except exceptions.ConnectorException as exc:
                cause = exc.__cause__
                if cause is not None and transient(cause):
                    raise cause from None
                raise

        return await patiently("the job queue", once, self.outage_s, _warn_unreachable)

    async def execute_query_async(self, query: Any, **arguments: Any) -> None:
        await self._patient(lambda: PsycopgConnector.execute_query_async(self, query, **arguments))

    async def execute_query_one_async(self, query: Any, **arguments: Any) -> dict[str, Any]:
        out: dict[str, Any] = await self._patient(
            lambda: PsycopgConnector.execute_query_one_async(self, query, **arguments)
        )
        return out

    async def execute_query_all_async(self, query: Any, **arguments: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = await self._patient(
            lambda: PsycopgConnector.execute_query_all_async(self, query, **arguments)
        )
        return out

    async def listen_notify(self, on_notification: Any, channels: Any) -> None:
        first: float | None = None
        last = 0.0
        for attempt in range(1_000_000):  # bounded in time below
            try:
                await super().listen_notify(on_notification, channels)
                return
            except exceptions.ConnectorException as exc:
                if exc.__cause__ is None or not transient(exc.__cause__):
                    raise
                Outage.seen()
                now = time.monotonic()
                if first is None or now - last > 10.0:  # a new outage
                    first, attempt = now, 0
                last = now
                if now - first >= self.outage_s or Outage.gone is not None:
                    raise StoreUnavailable(
                        f"the job queue: unreachable for {now - first:.0f} s "
                        f"(the limit is {self.outage_s:.0f} s): {_explain(exc.__cause__)}"
                    ) from None
                await anyio.sleep(backoff_s(attempt))


def backoff_s(attempt: int) -> float:
    return min(2.0, 0.1 * 2.0 ** min(attempt, 10))


def _warn_unreachable(exc: BaseException, down: float) -> None:
    if down == 0.0:
        log.warning("store.unreachable", error=_explain(exc), waiting_up_to_s=outage_s())


def make_app(url: str, password: Secret | None) -> App:
    connector = PatientConnector(
        outage_s=outage_s(),
        conninfo=url,
        kwargs=_kwargs(password),
        min_size=1,
        max_size=8,
        timeout=10.0,
        reconnect_timeout=RECONNECT_S,
    )
    app = App(connector=connector)
    app.task(name=TASK, pass_context=True)(copy_group)
    return app


async def apply_schema(url: str, password: Secret | None) -> None:
    """procrastinate's schema and the group table, once (concurrent callers wait; a server
    that is not reachable yet is waited for, up to ``outage_s``)."""

    async def once(wait_s: float) -> None:
        async with await _connect(url, password, wait_s) as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (0x636F7070,))
            try:
                cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
                row = await cur.fetchone()
                if not (row and row[0]):
                    app = make_app(url, password)
                    async with app.open_async():
                        await app.schema_manager.apply_schema_async()
                for stmt in GROUPS_SCHEMA.split(";"):
                    if stmt.strip():
                        await conn.execute(stmt)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (0x636F7070,))

    try:
        await patiently(f"state store {url}", once, outage_s(), _warn_unreachable)
    except (psycopg.Error, exceptions.ProcrastinateException) as exc:
        raise StateError(f"state store {url}: {_explain(exc)}") from exc


def store_of(
    cfg: JobConfig, exclusive: bool = False, pass_number: int | None = None
) -> PostgresStore:
    assert cfg.state_url is not None
    return PostgresStore(
        cfg.state_url,
        cfg.state_password,
        identity=cfg.identity(),
        exclusive=exclusive,
        pass_number=pass_number,
        outage_s=outage_s(),
        wait_on_open=not exclusive,
    )


# -- the task -----------------------------------------------------------------------------------
@dataclass
class Runtime:
    """What a worker process gives the groups it runs: its job, its clients (one pacer per
    mailbox for the whole process), and its stop flag. ``gone``: why the worker gave the
    database up (it then leaves, exit 5)."""

    cfg: JobConfig
    clients: Clients
    stop: StopFlag
    groups: dict[str, Group]
    queue: str
    host: str
    budget: ByteBudget
    gone: str | None = None
    gone_event: asyncio.Event = field(default_factory=asyncio.Event)

    def give_up(self, why: str) -> None:
        if self.gone is None:
            self.gone = why
            log.error("worker.store_gone", error=why)
        self.gone_event.set()


_runtime: Runtime | None = None


async def copy_group(context: JobContext, group: str, pass_number: int, segment: int = 1) -> None:
    """One segment of a group. Never fails the procrastinate job for what it meets: the
    database gone past the limit makes the worker leave (its group is queued again by a
    reaper once the database is back); anything else is recorded on the group (queued again
    when the store was at fault, else failed, with its reason)."""
    rt = _runtime
    if rt is None:
        raise RuntimeError("copy_group runs only inside `copyengine worker`")
    g = rt.groups.get(group)
    if g is None:
        log.error("group.unknown", group=group, hint="the worker's job file lacks this group")
        return
    try:
        await run_segment(rt, g, pass_number, segment, context.job.id, context.app)
    except StoreUnavailable as exc:
        rt.give_up(str(exc))
    except Exception as exc:
        store_fault = isinstance(exc, (psycopg.Error, exceptions.ConnectorException, StateError))
        log.error(
            "group.segment_crashed",
            group=group,
            error=f"{type(exc).__name__}: {exc}",
            requeued=store_fault,
            exc_info=logging.getLogger().isEnabledFor(logging.DEBUG),
        )
        try:
            await _end_segment(
                rt,
                g,
                pass_number,
                segment,
                context.app,
                "queued" if store_fault else "failed",
                f"segment {segment} crashed: {type(exc).__name__}: {exc}",
                {},
            )
        except StoreUnavailable as gone:
            rt.give_up(str(gone))
        except Exception as again:  # the reaper's reconciliation queues it again
            log.error("group.not_recorded", group=group, error=str(again))


async def _execute(url: str, password: Secret | None, sql: str, params: tuple[Any, ...]) -> None:
    """One statement on a connection of its own; again while the server is unreachable."""

    async def once(wait_s: float) -> None:
        async with await _connect(url, password, wait_s) as conn:
            await conn.execute(sql, params)

    await patiently(f"state store {url}", once, outage_s(), _warn_unreachable)


async def _fetch(url: str, password: Secret | None, sql: str, params: tuple[Any, ...]) -> list[Any]:
    async def once(wait_s: float) -> list[Any]:
        async with await _connect(url, password, wait_s) as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    return await patiently(f"state store {url}", once, outage_s(), _warn_unreachable)


async def run_segment(
    rt: Runtime, g: Group, pass_number: int, segment: int, job_id: Any, app: App
) -> None:
    """One time box of a group: its pairs one after the other, drained when the segment's
    time is up or the worker stops; then its continuation queued, or the group finished."""
    cfg = rt.cfg
    url, pw = cfg.state_url, cfg.state_password
    assert url is not None
    seq = replace(cfg, limits=replace(cfg.limits, pairs_in_parallel=1))
    stop = StopFlag()
    stats = JobStats()
    started = time.time()
    await _execute(
        url,
        pw,
        "UPDATE ce_groups SET state = 'running', host = %s, job_id = %s, "
        "segments = segments + 1, started = COALESCE(started, %s), heartbeat = %s "
        "WHERE group_key = %s",
        (rt.host, job_id, started, started, g.key),
    )
    log.info("group.started", group=g.key, pairs=len(g.pairs), segment=segment, host=rt.host)

    async def time_box() -> None:
        await anyio.sleep(cfg.workers.segment_minutes * 60)
        stop.reason = "segment ended"
        stop.drain()

    async def follow() -> None:
        await rt.stop.wait()
        stop.reason = rt.stop.reason or "the worker is stopping"
        stop.drain()

    async def beat() -> None:
        while True:
            await anyio.sleep(cfg.workers.heartbeat_s)
            try:
                async with await _connect(url, pw, cfg.workers.heartbeat_s) as conn:
                    await conn.execute(
                        "UPDATE ce_groups SET heartbeat = %s WHERE group_key = %s",
                        (time.time(), g.key),
                    )
            except psycopg.Error as exc:
                if transient(exc):
                    Outage.seen()
                log.warning("group.heartbeat_failed", group=g.key, error=_explain(exc))

    store = store_of(cfg, pass_number=pass_number)
    async with anyio.create_task_group() as tg:
        tg.start_soon(time_box)
        tg.start_soon(follow)
        tg.start_soon(beat)
        await run_pairs(
            seq,
            rt.clients,
            store,
            stop,
            stats,
            g.pairs,
            pass_number=pass_number,
            write_report=False,
            on_pair=lambda pair, start: _record_run(url, pw, g.key, pair, rt.host, start),
            budget=rt.budget,
        )
        tg.cancel_scope.cancel()
    if store.unavailable is not None:
        # the database stayed away past the limit: this worker leaves; the group's job is
        # still `doing` under this worker, whose heartbeat stops: a reaper queues it again
        raise StoreUnavailable(store.unavailable)
    if stats.fatal is None and stop.draining:
        state = "queued"
    elif stats.fatal is not None or any(p.status == "failed" for p in stats.pairs.values()):
        state = "failed"
    else:
        state = "done"
    error = stats.fatal or "; ".join(
        f"{p.source}: {p.error}" for p in stats.pairs.values() if p.error
    )
    extra = {k: v for k, v in stats.changes().items() if k not in COUNTED_FROM_RECORDS and v}
    await _end_segment(rt, g, pass_number, segment, app, state, error or None, extra)
    log.info(
        "group.segment_finished",
        group=g.key,
        state=state,
        segment=segment,
        copied_in_segment=stats.total("copied"),
        duration_s=round(time.time() - started, 2),
    )


# what a pass's counters take from the item records; the rest (moves, deletions, folders)
# is summed from what each segment said
COUNTED_FROM_RECORDS = ("created", "updated", "failed", "unknown", "kept")


async def _end_segment(
    rt: Runtime,
    g: Group,
    pass_number: int,
    segment: int,
    app: App,
    state: str,
    error: str | None,
    extra: dict[str, int],
) -> None:
    """The group's state after a segment, its counters from its item records, and (queued)
    its continuation under the same lock; the pass ended when it was the last group."""
    url, pw = rt.cfg.state_url, rt.cfg.state_password
    assert url is not None
    if state == "queued":
        try:
            await app.configure_task(
                TASK, lock=g.key, queueing_lock=g.key, queue=rt.queue
            ).defer_async(group=g.key, pass_number=pass_number, segment=segment + 1)
        except exceptions.AlreadyEnqueued:
            pass  # a submit (or a reaper) queued it already
    rows = await _fetch(url, pw, "SELECT extra FROM ce_groups WHERE group_key = %s", (g.key,))
    merged = json.loads(rows[0][0]) if rows and rows[0][0] else {}
    for k, v in extra.items():
        merged[k] = int(merged.get(k, 0)) + int(v)
    counts = await _group_counts(url, pw, [p.key for p in g.pairs], pass_number)
    await _execute(
        url,
        pw,
        "UPDATE ce_groups SET state = %s, heartbeat = %s, finished = %s, copied = %s, "
        "failed = %s, unknown = %s, error = %s, extra = %s WHERE group_key = %s",
        (
            state,
            time.time(),
            time.time() if state != "queued" else None,
            max(0, counts["created"] - int(merged.get("moved", 0))),
            counts["failed"],
            counts["unknown"] if state != "queued" else 0,
            error,
            json.dumps(merged, sort_keys=True),
            g.key,
        ),
    )
    if state != "queued":
        await _maybe_finish_pass(url, pw, pass_number)


async def _group_counts(
    url: str, pw: Secret | None, pairs: list[str], pass_number: int
) -> dict[str, int]:
    rows = await _fetch(
        url,
        pw,
        PASS_COUNTS_SQL + " AND pair = ANY(%s) GROUP BY status, fate",
        (pass_number, pairs),
    )
    return pass_counts(rows)


async def _record_run(
    url: str, pw: Secret | None, group: str, pair: str, host: str, start: bool
) -> None:
    """When each pair of a group ran, and where (the shared-mailbox guarantee, checkable)."""
    if start:
        await _execute(
            url,
            pw,
            "INSERT INTO ce_group_runs (group_key, pair, host, started) VALUES (%s,%s,%s,%s)",
            (group, pair, host, time.time()),
        )
    else:
        await _execute(
            url,
            pw,
            "UPDATE ce_group_runs SET finished = %s WHERE id = (SELECT max(id) FROM "
            "ce_group_runs WHERE group_key = %s AND pair = %s AND finished IS NULL)",
            (time.time(), group, pair),
        )


async def _maybe_finish_pass(url: str, pw: Secret | None, pass_number: int) -> None:
    """Once every group of the pass is done or failed: the pass's counters from the item
    records (what every segment did, killed ones included), each group's too."""
    groups = await _fetch(
        url,
        pw,
        "SELECT group_key, pairs, state, extra FROM ce_groups WHERE pass = %s",
        (pass_number,),
    )
    states: dict[str, int] = {}
    for _, _, st, _ in groups:
        states[str(st)] = states.get(str(st), 0) + 1
    if not groups or set(states) - {"done", "failed"}:
        return
    rows = await _fetch(
        url,
        pw,
        "SELECT pair, status, fate, count(*) FROM ce_items WHERE pass = %s "
        "GROUP BY pair, status, fate",
        (pass_number,),
    )
    by_pair: dict[str, list[tuple[Any, Any, Any]]] = {}
    for pair, st, fate, n in rows:
        by_pair.setdefault(str(pair), []).append((st, fate, n))
    changes = pass_counts(r for rs in by_pair.values() for r in rs)
    extra_total: dict[str, int] = {}
    for key, pairs_json, _, extra_json in groups:
        extra = json.loads(extra_json) if extra_json else {}
        for k, v in extra.items():
            extra_total[k] = extra_total.get(k, 0) + int(v)
        mine = pass_counts(r for p in json.loads(pairs_json) for r in by_pair.get(p, []))
        await _execute(
            url,
            pw,
            "UPDATE ce_groups SET copied = %s, failed = %s, unknown = %s WHERE group_key = %s",
            (
                max(0, mine["created"] - int(extra.get("moved", 0))),
                mine["failed"],
                mine["unknown"],
                key,
            ),
        )
    out = {k: changes[k] for k in COUNTED_FROM_RECORDS}
    out["created"] = max(0, out["created"] - extra_total.get("moved", 0))
    out.update(extra_total)
    out["groups_done"] = states.get("done", 0)
    out["groups_failed"] = states.get("failed", 0)
    await _execute(
        url,
        pw,
        "UPDATE ce_passes SET finished = %s, status = %s, changes = %s "
        "WHERE pass = %s AND finished IS NULL",
        (
            time.time(),
            "ok" if not states.get("failed") else "items_failed",
            json.dumps(out, sort_keys=True),
            pass_number,
        ),
    )


# -- submit ---------------------------------------------------------------------------------------
async def submit(cfg: JobConfig) -> dict[str, Any]:
    """Create what is missing, plan the groups, queue every unfinished one. A pass whose
    groups are all finished is over: submitting again starts the next pass (deltas)."""
    assert cfg.state_url is not None
    url, pw = cfg.state_url, cfg.state_password
    await apply_schema(url, pw)
    store = store_of(cfg)
    await store.open()
    try:
        passes = await store.passes()
        current = next((p for p in reversed(passes) if p["finished"] is None), None)
        if current is None:
            kind = "delta" if passes else "first"
            number = await store.pass_started(kind)
        else:
            number, kind = int(current["pass"]), str(current["kind"])
    finally:
        await store.close()
    groups = mailbox_groups(cfg.pairs)
    app = make_app(url, pw)
    queue = queue_name(cfg.identity())
    queued = skipped_running = already_done = 0
    async with (
        app.open_async(),
        await _connect(url, pw) as conn,
    ):
        cur = await conn.execute("SELECT group_key, pass, state FROM ce_groups")
        known = {r[0]: (int(r[1]), str(r[2])) for r in await cur.fetchall()}
        for g in groups:
            prev = known.get(g.key)
            if prev is not None and prev[0] == number:
                if prev[1] == "done":
                    already_done += 1
                    continue
                if prev[1] == "running":
                    skipped_running += 1
                    continue
            await conn.execute(
                "INSERT INTO ce_groups (group_key, pairs, pass, state) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT (group_key) DO UPDATE SET pairs = excluded.pairs, "
                "pass = excluded.pass, state = excluded.state, error = NULL, "
                "finished = NULL, started = CASE WHEN ce_groups.pass = excluded.pass "
                "THEN ce_groups.started END, copied = CASE WHEN ce_groups.pass = "
                "excluded.pass THEN ce_groups.copied ELSE 0 END, extra = CASE WHEN "
                "ce_groups.pass = excluded.pass THEN ce_groups.extra END, retried = CASE "
                "WHEN ce_groups.pass = excluded.pass THEN ce_groups.retried ELSE 0 END",
                (g.key, json.dumps([p.key for p in g.pairs]), number, "queued"),
            )
            try:
                await app.configure_task(
                    TASK, lock=g.key, queueing_lock=g.key, queue=queue
                ).defer_async(group=g.key, pass_number=number)
                queued += 1
            except exceptions.AlreadyEnqueued:
                queued += 1  # waiting in the queue already: once is enough
    out = {
        "pass": number,
        "kind": kind,
        "groups": len(groups),
        "queued": queued,
        "running": skipped_running,
        "done": already_done,
        "queue": queue,
    }
    log.info("job.submitted", **out)
    return out


# -- worker ----------------------------------------------------------------------------------------
async def _group_alive(cfg: JobConfig, group: str) -> bool:
    assert cfg.state_url is not None
    rows = await _fetch(
        cfg.state_url,
        cfg.state_password,
        "SELECT heartbeat FROM ce_groups WHERE group_key = %s",
        (group,),
    )
    beat = rows[0][0] if rows else None
    return beat is not None and time.time() - float(beat) < cfg.workers.stalled_after_s


async def _reaper(app: App, cfg: JobConfig, queue: str) -> None:
    """Queue again the groups of workers that stopped sending heartbeats, and any unfinished
    group of the pass that has no job waiting or running. Not while heartbeats may still be
    resuming after an outage (seen here, or a server that started recently): a live worker
    whose beats the outage held back is not dead."""
    w = cfg.workers
    quiet = w.stalled_after_s + 2 * w.heartbeat_s
    assert cfg.state_url is not None
    url, pw = cfg.state_url, cfg.state_password
    while True:  # as long as the worker runs; each round bounded by the store's own limit
        await anyio.sleep(w.heartbeat_s)
        if Outage.within(quiet):
            continue
        try:
            rows = await _fetch(
                url, pw, "SELECT extract(epoch FROM now() - pg_postmaster_start_time())", ()
            )
            if rows and float(rows[0][0]) < quiet:
                continue
            stalled = await app.job_manager.get_stalled_jobs(
                queue=queue, seconds_since_heartbeat=w.stalled_after_s
            )
            for job in stalled:
                group = job.task_kwargs.get("group")
                if await _group_alive(cfg, str(group)):
                    # its worker stopped beating while it drains (procrastinate stops the
                    # heartbeat on shutdown), but the group's own heartbeat goes on: not dead
                    continue
                if Outage.within(quiet):
                    break
                await app.job_manager.retry_job(job)
                await _execute(
                    url,
                    pw,
                    "UPDATE ce_groups SET state = 'queued', retried = retried + 1, "
                    "error = %s WHERE group_key = %s",
                    ("its worker stopped sending heartbeats: queued again", group),
                )
                log.warning("group.requeued", group=group, job=job.id, reason="worker silent")
            if not Outage.within(quiet):
                await _reconcile(app, cfg, queue)
        except (psycopg.Error, exceptions.ProcrastinateException, StateError) as exc:
            log.warning("worker.reaper_failed", error=str(exc))


async def _reconcile(app: App, cfg: JobConfig, queue: str) -> None:
    """A group of the current pass that is queued or running, silent for ``stalled_after_s``,
    with no procrastinate job waiting or running under its lock (its job failed, was
    aborted, or ended while the database could not record the group's end): queued again,
    at most ``MAX_REQUEUES`` times in a pass, then failed with the reason."""
    assert cfg.state_url is not None
    url, pw = cfg.state_url, cfg.state_password
    rows = await _fetch(
        url,
        pw,
        "SELECT g.group_key, g.pass, g.retried, g.segments FROM ce_groups g "
        "WHERE g.state IN ('queued', 'running') "
        "AND g.pass = (SELECT max(pass) FROM ce_groups) "
        "AND COALESCE(g.heartbeat, 0) < %s "
        "AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE j.queue_name = %s "
        "AND j.lock = g.group_key AND j.status IN ('todo', 'doing'))",
        (time.time() - cfg.workers.stalled_after_s, queue),
    )
    for key, number, retried, segments in rows:
        if int(retried) >= MAX_REQUEUES:
            await _execute(
                url,
                pw,
                "UPDATE ce_groups SET state = 'failed', finished = %s, error = %s "
                "WHERE group_key = %s AND state IN ('queued', 'running')",
                (time.time(), f"queued again {retried} times without finishing", key),
            )
            log.error("group.given_up", group=key, retried=retried)
            await _maybe_finish_pass(url, pw, int(number))
            continue
        try:
            await app.configure_task(TASK, lock=key, queueing_lock=key, queue=queue).defer_async(
                group=key, pass_number=int(number), segment=int(segments) + 1
            )
        except exceptions.AlreadyEnqueued:
            continue
        await _execute(
            url,
            pw,
            "UPDATE ce_groups SET state = 'queued', retried = retried + 1, heartbeat = %s, "
            "error = %s WHERE group_key = %s",
            (time.time(), "its job ended without finishing the group: queued again", key),
        )
        log.warning("group.requeued", group=key, reason="no job waiting or running")


@asynccontextmanager
async def _signals(stop: StopFlag, worker: asyncio.Task[Any]) -> AsyncIterator[None]:
    """First SIGTERM/SIGINT: segments drain and queue their continuation, the worker takes
    no new group and ends once they have. A second: the worker's jobs are aborted."""
    loop = asyncio.get_running_loop()
    count = 0

    def on_signal(sig: int) -> None:
        nonlocal count
        count += 1
        if count == 1:
            stop.reason = f"the worker got {signal.Signals(sig).name}"
            stop.drain()
            worker.cancel()  # procrastinate: stop fetching, wait for running jobs
            log.warning("worker.draining", signal=signal.Signals(sig).name)
        else:
            worker.cancel()

    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, on_signal, s)

    def dump() -> None:  # SIGUSR1: where every task of this worker waits, into the log
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

    loop.add_signal_handler(signal.SIGUSR1, dump)
    try:
        yield
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            loop.remove_signal_handler(s)


async def _until_done(
    cfg: JobConfig, rt: Runtime, worker: asyncio.Task[Any], out: dict[str, Any]
) -> None:
    """``worker --until-done``: once every group of the job's current pass is finished,
    stop like a SIGTERM would (nothing is running then, so nothing drains). A database that
    cannot be read for longer than the store waits makes the worker give up."""
    failing_since: float | None = None
    while True:
        await anyio.sleep(cfg.workers.heartbeat_s)
        try:
            groups = await read_groups(cfg)
            failing_since = None
        except StateError as exc:
            now = time.monotonic()
            failing_since = failing_since if failing_since is not None else now
            if now - failing_since >= outage_s():
                rt.give_up(f"{exc} (for {now - failing_since:.0f} s)")
                return
            log.warning("worker.poll_failed", error=str(exc))
            continue
        current = max((g["pass"] for g in groups), default=None)
        mine = [g for g in groups if g["pass"] == current]
        if mine and all(g["state"] in ("done", "failed") for g in mine):
            out["failed"] = sum(g["state"] == "failed" for g in mine)
            log.info("worker.all_done", groups=len(mine), failed=out["failed"])
            rt.stop.reason = "every group is finished"
            rt.stop.drain()
            worker.cancel()
            return


class _NoTracebackForOutages(logging.Filter):
    """procrastinate logs a side task or a job that failed with its traceback: for the
    database being unreachable, the message says enough (no traceback for an operator)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (StoreUnavailable, exceptions.ConnectorException, psycopg.Error)):
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


async def run_worker(
    cfg: JobConfig, clients: Clients, concurrency: int, until_done: bool = False
) -> int:
    """Run groups until stopped; returns the exit code (``until_done``: 1 when a group of the
    pass failed). Raises ``StoreUnavailable`` when the database stayed away past the limit."""
    global _runtime
    assert cfg.state_url is not None
    await apply_schema(cfg.state_url, cfg.state_password)
    queue = queue_name(cfg.identity())
    host = f"{socket.gethostname()}:{os.getpid()}"
    stop = StopFlag()
    rt = _runtime = Runtime(
        cfg,
        clients,
        stop,
        {g.key: g for g in mailbox_groups(cfg.pairs)},
        queue,
        host,
        ByteBudget(cfg.limits.bytes_in_flight),
    )
    quiet = _NoTracebackForOutages()
    plog = logging.getLogger("procrastinate")
    plog.addFilter(quiet)
    app = make_app(cfg.state_url, cfg.state_password)
    w = cfg.workers
    done: dict[str, Any] = {}
    try:
        async with app.open_async():
            worker = asyncio.create_task(
                app.run_worker_async(
                    queues=[queue],
                    concurrency=concurrency,
                    name=host,
                    wait=True,
                    install_signal_handlers=False,
                    update_heartbeat_interval=w.heartbeat_s,
                    stalled_worker_timeout=w.stalled_after_s,
                    shutdown_graceful_timeout=w.drain_timeout_s,
                    fetch_job_polling_interval=min(5.0, w.heartbeat_s),
                    listen_notify=True,
                )
            )
            log.info("worker.started", queue=queue, concurrency=concurrency, host=host)

            async def on_gone() -> None:
                await rt.gone_event.wait()
                stop.reason = "the database is unreachable"
                stop.drain()
                worker.cancel()

            async with _signals(stop, worker), anyio.create_task_group() as tg:
                tg.start_soon(_reaper, app, cfg, queue)
                tg.start_soon(on_gone)
                if until_done:
                    tg.start_soon(_until_done, cfg, rt, worker, done)
                try:
                    await worker
                except asyncio.CancelledError:
                    pass
                except (StateError, exceptions.ProcrastinateException, psycopg.Error) as exc:
                    rt.give_up(str(exc) if isinstance(exc, StateError) else _explain(exc))
                if not stop.draining and rt.gone is None:
                    # procrastinate's worker ended by itself (a side task gave up)
                    rt.give_up("the job queue's worker stopped: the database is unreachable")
                tg.cancel_scope.cancel()
    except (psycopg.Error, exceptions.ProcrastinateException) as exc:
        if rt.gone is None:
            rt.give_up(_explain(exc))
    finally:
        plog.removeFilter(quiet)
        _runtime = None
    log.info("worker.stopped", host=host)
    if rt.gone is not None:
        raise StoreUnavailable(
            f"{rt.gone}. This worker left; its groups are queued again by any worker once "
            "the database is back (start workers again then)"
        )
    return 1 if done.get("failed") else 0


# -- status and report ---------------------------------------------------------------------------
async def read_groups(cfg: JobConfig) -> list[dict[str, Any]]:
    assert cfg.state_url is not None
    try:
        async with await _connect(cfg.state_url, cfg.state_password) as conn:
            cur = await conn.execute("SELECT to_regclass('ce_groups') IS NOT NULL")
            row = await cur.fetchone()
            if not (row and row[0]):
                return []
            cur = await conn.execute(
                "SELECT group_key, pairs, pass, state, host, segments, started, heartbeat, "
                "finished, copied, failed, unknown, error, retried FROM ce_groups "
                "ORDER BY group_key"
            )
            keys = (
                "group",
                "pairs",
                "pass",
                "state",
                "host",
                "segments",
                "started",
                "heartbeat",
                "finished",
                "copied",
                "failed",
                "unknown",
                "error",
                "retried",
            )
            out = []
            for r in await cur.fetchall():
                d = dict(zip(keys, r, strict=True))
                d["pairs"] = json.loads(d["pairs"])
                end = d["finished"] or time.time()
                span = end - d["started"] if d["started"] else 0.0
                d["items_per_s"] = round(d["copied"] / span, 1) if span > 0 else 0.0
                out.append(d)
            return out
    except psycopg.Error as exc:
        raise StateError(f"state store {cfg.state_url}: {_explain(exc)}") from exc


async def group_runs(cfg: JobConfig) -> list[dict[str, Any]]:
    assert cfg.state_url is not None
    async with await _connect(cfg.state_url, cfg.state_password) as conn:
        cur = await conn.execute(
            "SELECT group_key, pair, host, started, finished FROM ce_group_runs ORDER BY id"
        )
        keys = ("group", "pair", "host", "started", "finished")
        return [dict(zip(keys, r, strict=True)) for r in await cur.fetchall()]


def pairs_of(cfg: JobConfig, keys: list[str]) -> list[Pair]:
    by = {p.key: p for p in cfg.pairs}
    return [by[k] for k in keys if k in by]
