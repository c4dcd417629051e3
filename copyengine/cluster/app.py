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
queued, running (host, heartbeat), done, failed (why).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
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
from ..state.postgres import PostgresStore, _explain
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
CREATE TABLE IF NOT EXISTS ce_group_runs (
    id BIGSERIAL PRIMARY KEY, group_key TEXT NOT NULL, pair TEXT NOT NULL, host TEXT NOT NULL,
    started DOUBLE PRECISION NOT NULL, finished DOUBLE PRECISION
);
"""


def queue_name(cfg_identity: dict[str, str]) -> str:
    """The job's own queue: several jobs may share one database server (not one database)."""
    digest = hashlib.sha256(json.dumps(cfg_identity, sort_keys=True).encode()).hexdigest()
    return f"copyengine-{digest[:12]}"


def _kwargs(password: Secret | None) -> dict[str, Any]:
    kw: dict[str, Any] = {"application_name": f"copyengine-worker@{socket.gethostname()}"}
    if password is not None:
        kw["password"] = password.reveal()
    return kw


async def _connect(url: str, password: Secret | None) -> psycopg.AsyncConnection[Any]:
    """A connection of its own, in autocommit (the group table's short statements)."""
    return await psycopg.AsyncConnection.connect(
        url, autocommit=True, connect_timeout=15, **_kwargs(password)
    )


def make_app(url: str, password: Secret | None) -> App:
    connector = PsycopgConnector(conninfo=url, kwargs=_kwargs(password), min_size=1, max_size=8)
    app = App(connector=connector)
    app.task(name=TASK, pass_context=True)(copy_group)
    return app


async def apply_schema(url: str, password: Secret | None) -> None:
    """procrastinate's schema and the group table, once (concurrent callers wait)."""
    try:
        async with await _connect(url, password) as conn:
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
    except psycopg.Error as exc:
        raise StateError(f"state store {url}: {_explain(exc)}") from exc


def store_of(cfg: JobConfig, exclusive: bool = False) -> PostgresStore:
    assert cfg.state_url is not None
    return PostgresStore(
        cfg.state_url, cfg.state_password, identity=cfg.identity(), exclusive=exclusive
    )


# -- the task -----------------------------------------------------------------------------------
@dataclass
class Runtime:
    """What a worker process gives the groups it runs: its job, its clients (one pacer per
    mailbox for the whole process), and its stop flag."""

    cfg: JobConfig
    clients: Clients
    stop: StopFlag
    groups: dict[str, Group]
    queue: str
    host: str
    budget: ByteBudget


_runtime: Runtime | None = None


async def copy_group(context: JobContext, group: str, pass_number: int, segment: int = 1) -> None:
    rt = _runtime
    if rt is None:
        raise RuntimeError("copy_group runs only inside `copyengine worker`")
    g = rt.groups.get(group)
    if g is None:
        log.error("group.unknown", group=group, hint="the worker's job file lacks this group")
        return
    await run_segment(rt, g, pass_number, segment, context.job.id, context.app)


async def _execute(url: str, password: Secret | None, sql: str, params: tuple[Any, ...]) -> None:
    async with await _connect(url, password) as conn:
        await conn.execute(sql, params)


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
                await _execute(
                    url,
                    pw,
                    "UPDATE ce_groups SET heartbeat = %s WHERE group_key = %s",
                    (time.time(), g.key),
                )
            except psycopg.Error as exc:
                log.warning("group.heartbeat_failed", group=g.key, error=_explain(exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(time_box)
        tg.start_soon(follow)
        tg.start_soon(beat)
        await run_pairs(
            seq,
            rt.clients,
            store_of(cfg),
            stop,
            stats,
            g.pairs,
            pass_number=pass_number,
            write_report=False,
            on_pair=lambda pair, start: _record_run(url, pw, g.key, pair, rt.host, start),
            budget=rt.budget,
        )
        tg.cancel_scope.cancel()
    copied = stats.total("copied")
    failed = sum(p.failed for p in stats.pairs.values())
    unknown = sum(p.unknown for p in stats.pairs.values())
    if stats.fatal is None and stop.draining:
        state = "queued"
        try:
            await app.configure_task(
                TASK, lock=g.key, queueing_lock=g.key, queue=rt.queue
            ).defer_async(group=g.key, pass_number=pass_number, segment=segment + 1)
        except exceptions.AlreadyEnqueued:
            pass  # a submit queued it already
    elif stats.fatal is not None or any(p.status == "failed" for p in stats.pairs.values()):
        state = "failed"
    else:
        state = "done"
    error = stats.fatal or "; ".join(
        f"{p.source}: {p.error}" for p in stats.pairs.values() if p.error
    )
    await _execute(
        url,
        pw,
        "UPDATE ce_groups SET state = %s, heartbeat = %s, finished = %s, copied = copied + %s, "
        "failed = %s, unknown = %s, error = %s WHERE group_key = %s",
        (
            state,
            time.time(),
            time.time() if state != "queued" else None,
            copied,
            failed,
            unknown,
            error or None,
            g.key,
        ),
    )
    log.info(
        "group.segment_finished",
        group=g.key,
        state=state,
        segment=segment,
        copied=copied,
        failed=failed,
        unknown=unknown,
        duration_s=round(time.time() - started, 2),
    )
    if state != "queued":
        await _maybe_finish_pass(url, pw, pass_number)


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
    async with await _connect(url, pw) as conn:
        cur = await conn.execute(
            "SELECT state, count(*), sum(copied), sum(failed), sum(unknown) FROM ce_groups "
            "WHERE pass = %s GROUP BY state",
            (pass_number,),
        )
        rows = await cur.fetchall()
        states = {r[0]: int(r[1]) for r in rows}
        if set(states) - {"done", "failed"}:
            return
        changes = {
            "created": sum(int(r[2] or 0) for r in rows),
            "failed": sum(int(r[3] or 0) for r in rows),
            "unknown": sum(int(r[4] or 0) for r in rows),
            "groups_done": states.get("done", 0),
            "groups_failed": states.get("failed", 0),
        }
        await conn.execute(
            "UPDATE ce_passes SET finished = %s, status = %s, changes = %s "
            "WHERE pass = %s AND finished IS NULL",
            (
                time.time(),
                "ok" if not states.get("failed") else "items_failed",
                json.dumps(changes, sort_keys=True),
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
                "excluded.pass THEN ce_groups.copied ELSE 0 END",
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
    async with await _connect(cfg.state_url, cfg.state_password) as conn:
        cur = await conn.execute("SELECT heartbeat FROM ce_groups WHERE group_key = %s", (group,))
        row = await cur.fetchone()
    beat = row[0] if row else None
    return beat is not None and time.time() - float(beat) < cfg.workers.stalled_after_s


async def _reaper(app: App, cfg: JobConfig, queue: str) -> None:
    """Queue again the groups of workers that stopped sending heartbeats."""
    w = cfg.workers
    while True:
        await anyio.sleep(w.heartbeat_s)
        try:
            stalled = await app.job_manager.get_stalled_jobs(
                queue=queue, seconds_since_heartbeat=w.stalled_after_s
            )
            assert cfg.state_url is not None
            for job in stalled:
                group = job.task_kwargs.get("group")
                if await _group_alive(cfg, str(group)):
                    # its worker stopped beating while it drains (procrastinate stops the
                    # heartbeat on shutdown), but the group's own heartbeat goes on: not dead
                    continue
                await app.job_manager.retry_job(job)
                await _execute(
                    cfg.state_url,
                    cfg.state_password,
                    "UPDATE ce_groups SET state = 'queued', retried = retried + 1, "
                    "error = %s WHERE group_key = %s",
                    ("its worker stopped sending heartbeats: queued again", group),
                )
                log.warning("group.requeued", group=group, job=job.id, reason="worker silent")
        except (psycopg.Error, exceptions.ProcrastinateException) as exc:
            log.warning("worker.reaper_failed", error=str(exc))


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
    cfg: JobConfig, stop: StopFlag, worker: asyncio.Task[Any], out: dict[str, Any]
) -> None:
    """``worker --until-done``: once every group of the job's current pass is finished,
    stop like a SIGTERM would (nothing is running then, so nothing drains)."""
    while True:
        await anyio.sleep(cfg.workers.heartbeat_s)
        try:
            groups = await read_groups(cfg)
        except StateError as exc:
            log.warning("worker.poll_failed", error=str(exc))
            continue
        current = max((g["pass"] for g in groups), default=None)
        mine = [g for g in groups if g["pass"] == current]
        if mine and all(g["state"] in ("done", "failed") for g in mine):
            out["failed"] = sum(g["state"] == "failed" for g in mine)
            log.info("worker.all_done", groups=len(mine), failed=out["failed"])
            stop.reason = "every group is finished"
            stop.drain()
            worker.cancel()
            return


async def run_worker(
    cfg: JobConfig, clients: Clients, concurrency: int, until_done: bool = False
) -> int:
    """Run groups until stopped; returns the exit code (``until_done``: 1 when a group of the
    pass failed)."""
    global _runtime
    assert cfg.state_url is not None
    await apply_schema(cfg.state_url, cfg.state_password)
    queue = queue_name(cfg.identity())
    host = f"{socket.gethostname()}:{os.getpid()}"
    stop = StopFlag()
    _runtime = Runtime(
        cfg,
        clients,
        stop,
        {g.key: g for g in mailbox_groups(cfg.pairs)},
        queue,
        host,
        ByteBudget(cfg.limits.bytes_in_flight),
    )
    app = make_app(cfg.state_url, cfg.state_password)
    w = cfg.workers
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
        done: dict[str, Any] = {}
        async with _signals(stop, worker), anyio.create_task_group() as tg:
            tg.start_soon(_reaper, app, cfg, queue)
            if until_done:
                tg.start_soon(_until_done, cfg, stop, worker, done)
            try:
                await worker
            except asyncio.CancelledError:
                pass
            tg.cancel_scope.cancel()
    _runtime = None
    log.info("worker.stopped", host=host)
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
