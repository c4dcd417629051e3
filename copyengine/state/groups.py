"""The group table of a job shared by several hosts, on PostgreSQL: ``ce_groups`` says where
each mailbox group is (queued, running on a host with its heartbeat, done, failed and why),
``ce_group_runs`` when each pair of a group ran and where. The cluster (``copyengine.cluster``)
decides; this is where it reads and writes.

Each statement runs on a connection of its own, in autocommit (short statements from many
segments at once), and is tried again with backoff while the server is unreachable, for at
most ``outage_s`` (``postgres.patiently``). A group's counters, and those of the pass once
its last group ends, are computed from the item records (``rows.pass_counts``), so they
include what every segment did, even one killed with -9."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import psycopg
import structlog

from ..errors import StateError
from ..secrets import Secret
from .postgres import OUTAGE_S, Outage, explain, patiently, transient
from .records import Control
from .rows import pass_counts
from .sql import POSTGRES, Statements

log = structlog.get_logger("copyengine.state")

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
SCHEMA_LOCK = 0x636F7070  # serialises the queue's and the group table's creation
GROUP_KEYS = (
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
GROUP_COLUMNS = (
    "group_key, pairs, pass, state, host, segments, started, heartbeat, finished, copied, "
    "failed, unknown, error, retried"
)
RUN_KEYS = ("group", "pair", "host", "started", "finished")
# what a pass's counters take from the item records; the rest (moves, deletions, folders)
# is summed from what each segment said (``extra``)
COUNTED_FROM_RECORDS = ("created", "updated", "failed", "unknown", "kept")
UPSERT_GROUP = (
    "INSERT INTO ce_groups (group_key, pairs, pass, state) VALUES (%s,%s,%s,%s) "
    "ON CONFLICT (group_key) DO UPDATE SET pairs = excluded.pairs, "
    "pass = excluded.pass, state = excluded.state, error = NULL, "
    "finished = NULL, started = CASE WHEN ce_groups.pass = excluded.pass "
    "THEN ce_groups.started END, copied = CASE WHEN ce_groups.pass = "
    "excluded.pass THEN ce_groups.copied ELSE 0 END, failed = CASE WHEN ce_groups.pass = "
    "excluded.pass THEN ce_groups.failed ELSE 0 END, unknown = CASE WHEN ce_groups.pass = "
    "excluded.pass THEN ce_groups.unknown ELSE 0 END, extra = CASE WHEN "
    "ce_groups.pass = excluded.pass THEN ce_groups.extra END, retried = CASE "
    "WHEN ce_groups.pass = excluded.pass THEN ce_groups.retried ELSE 0 END"
)
ORPHANS = (
    "SELECT g.group_key, g.pass, g.retried, g.segments FROM ce_groups g "
    "WHERE g.state IN ('queued', 'running') "
    "AND g.pass = (SELECT max(pass) FROM ce_groups) "
    "AND COALESCE(g.heartbeat, 0) < %s "
    "AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE j.queue_name = %s "
    "AND j.lock = g.group_key AND j.status IN ('todo', 'doing'))"
)
STALLED = (
    "SELECT count(*) FROM ce_groups WHERE state = 'running' "
    "AND pass = (SELECT max(pass) FROM ce_groups) AND COALESCE(heartbeat, 0) < %s"
)
SIGN_OFFS_DUE = (
    "SELECT p.pass FROM ce_passes p WHERE p.kind = 'cutover' AND p.finished IS NULL "
    "AND EXISTS (SELECT 1 FROM ce_groups g WHERE g.pass = p.pass) "
    "AND NOT EXISTS (SELECT 1 FROM ce_groups g WHERE g.pass = p.pass "
    "AND g.state NOT IN ('done', 'failed')) "
    "AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE j.queue_name = %s "
    "AND j.lock = 'sign-off-' || p.pass AND j.status IN ('todo', 'doing'))"
)
# passes not recorded as ended whose groups all are (done or failed): the worker that ended the
# last group died before it wrote the pass's end (``GroupStore.passes_due``); a cutover's is
# its sign-off's (``SIGN_OFFS_DUE``)
PASSES_DUE = (
    "SELECT p.pass FROM ce_passes p WHERE p.kind <> 'cutover' AND p.finished IS NULL "
    "AND EXISTS (SELECT 1 FROM ce_groups g WHERE g.pass = p.pass) "
    "AND NOT EXISTS (SELECT 1 FROM ce_groups g WHERE g.pass = p.pass "
    "AND g.state NOT IN ('done', 'failed')) "
    "AND (SELECT max(COALESCE(g.finished, 0)) FROM ce_groups g WHERE g.pass = p.pass) < %s "
    "ORDER BY p.pass"
)
SQL = Statements(POSTGRES)
# the states of a group not ended in its pass: its counters are its item records' so far
NOT_ENDED = ("running", "queued", "waiting")


class Orphan(NamedTuple):
    """A group of the current pass that no job waits for or runs."""

    key: str
    pass_number: int
    retried: int
    segments: int


def connection_kwargs(password: Secret | None) -> dict[str, Any]:
    """How a worker's connections introduce themselves (and the password, if any)."""
    kw: dict[str, Any] = {"application_name": f"copyengine-worker@{socket.gethostname()}"}
    if password is not None:
        kw["password"] = password.reveal()
    return kw


def copied(counts: dict[str, int], extra: dict[str, Any]) -> int:
    """A group's items copied: created in the target, less those that were moves."""
    return max(0, counts["created"] - int(extra.get("moved", 0)))


def merged(into: dict[str, Any], extra: dict[str, int]) -> dict[str, int]:
    out = {k: int(v) for k, v in into.items()}
    for k, v in extra.items():
        out[k] = out.get(k, 0) + int(v)
    return out


def pass_changes(
    states: dict[str, int], records: dict[str, int], extras: Iterable[dict[str, Any]]
) -> dict[str, int]:
    """A finished pass's counters: ``records`` (its item records' ``pass_counts``), with
    what every group's segments said (moves, deletions, folders) and how its groups ended."""
    extra_total: dict[str, int] = {}
    for extra in extras:
        extra_total = merged(extra_total, extra)
    out = {k: records[k] for k in COUNTED_FROM_RECORDS}
    out["created"] = max(0, out["created"] - extra_total.get("moved", 0))
    out.update(extra_total)
    out["groups_done"] = states.get("done", 0)
    out["groups_failed"] = states.get("failed", 0)
    return out


class GroupStore:
    def __init__(
        self, url: str, password: Secret | None = None, *, outage_s: float = OUTAGE_S
    ) -> None:
        self.url = url
        self.password = password
        self.outage_s = outage_s
        self._conn: psycopg.AsyncConnection[Any] | None = None  # inside ``session``

    def __repr__(self) -> str:
        return f"GroupStore({self.url})"

    # -- plumbing ------------------------------------------------------------------------------
    async def connect(self, wait_s: float = 15) -> psycopg.AsyncConnection[Any]:
        """A connection of its own, in autocommit (the group table's short statements)."""
        return await psycopg.AsyncConnection.connect(
            self.url,
            autocommit=True,
            connect_timeout=max(2, int(wait_s)),
            **connection_kwargs(self.password),
        )

    def warn_unreachable(self, exc: BaseException, down: float) -> None:
        if down == 0.0:
            log.warning("store.unreachable", error=explain(exc), waiting_up_to_s=self.outage_s)

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """One statement (on the session's connection, or on its own, patiently)."""
        if self._conn is not None:
            cur = await self._conn.execute(sql, params)
            return await cur.fetchall() if cur.description else []

        async def once(wait_s: float) -> list[Any]:
            async with await self.connect(wait_s) as conn:
                cur = await conn.execute(sql, params)
                return await cur.fetchall() if cur.description else []

        return await patiently(
            f"state store {self.url}", once, self.outage_s, self.warn_unreachable
        )

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._fetch(sql, params)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[GroupStore]:
        """One connection for many statements (``submit``), not tried again."""
        async with await self.connect() as conn:
            self._conn = conn
            try:
                yield self
            finally:
                self._conn = None

    async def prepare(self, queue_schema: Callable[[], Awaitable[None]]) -> None:
        """The job queue's schema (``queue_schema``, when its table is missing) and the group
        table, once: concurrent callers wait; a server not reachable yet is waited for."""

        async def once(wait_s: float) -> None:
            async with await self.connect(wait_s) as conn:
                await conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
                try:
                    cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
                    row = await cur.fetchone()
                    if not (row and row[0]):
                        await queue_schema()
                    for stmt in GROUPS_SCHEMA.split(";"):
                        if stmt.strip():
                            await conn.execute(stmt)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))

        try:
            await patiently(f"state store {self.url}", once, self.outage_s, self.warn_unreachable)
        except psycopg.Error as exc:
            raise StateError(f"state store {self.url}: {explain(exc)}") from exc

    # -- a segment -----------------------------------------------------------------------------
    async def segment_started(self, key: str, host: str, job_id: Any) -> None:
        now = time.time()
        await self._execute(
            "UPDATE ce_groups SET state = 'running', host = %s, job_id = %s, "
            "segments = segments + 1, started = COALESCE(started, %s), heartbeat = %s "
            "WHERE group_key = %s",
            (host, job_id, now, now, key),
        )

    async def beat(self, key: str, wait_s: float) -> str | None:
        """The group's heartbeat, tried once: None, or why it could not be written."""
        try:
            async with await self.connect(wait_s) as conn:
                await conn.execute(
                    "UPDATE ce_groups SET heartbeat = %s WHERE group_key = %s", (time.time(), key)
                )
        except psycopg.Error as exc:
            if transient(exc):
                Outage.seen()
            return explain(exc)
        return None

    async def run_started(self, key: str, pair: str, host: str) -> None:
        """When each pair of a group ran, and where (the shared-mailbox guarantee, checkable)."""
        await self._execute(
            "INSERT INTO ce_group_runs (group_key, pair, host, started) VALUES (%s,%s,%s,%s)",
            (key, pair, host, time.time()),
        )

    async def run_finished(self, key: str, pair: str) -> None:
        await self._execute(
            "UPDATE ce_group_runs SET finished = %s WHERE id = (SELECT max(id) FROM "
            "ce_group_runs WHERE group_key = %s AND pair = %s AND finished IS NULL)",
            (time.time(), key, pair),
        )

    async def segment_ended(
        self,
        key: str,
        pairs: Sequence[str],
        pass_number: int,
        state: str,
        error: str | None,
        extra: dict[str, int],
    ) -> dict[str, Any] | None:
        """The group's state after a segment, its counters from its item records (and from
        ``extra``, what the segments said); the pass ended when it was the last group (then
        ``finish_pass_if_done``'s summary, or, for a cutover, that its sign-off is due)."""
        rows = await self._fetch("SELECT extra FROM ce_groups WHERE group_key = %s", (key,))
        said = merged(json.loads(rows[0][0]) if rows and rows[0][0] else {}, extra)
        counts = pass_counts(
            await self._fetch(
                f"{SQL.pass_counts} AND pair = ANY(%s) GROUP BY status, fate",
                (pass_number, list(pairs)),
            )
        )
        ended = state not in ("queued", "waiting")
        await self._execute(
            "UPDATE ce_groups SET state = %s, heartbeat = %s, finished = %s, copied = %s, "
            "failed = %s, unknown = %s, error = %s, extra = %s WHERE group_key = %s",
            (
                state,
                time.time(),
                time.time() if ended else None,
                copied(counts, said),
                counts["failed"],
                counts["unknown"] if ended else 0,
                error,
                json.dumps(said, sort_keys=True),
                key,
            ),
        )
        return await self.finish_pass_if_done(pass_number) if ended else None

    async def finish_pass_if_done(
        self, pass_number: int, signed_off: dict[str, int] | None = None
    ) -> dict[str, Any] | None:
        """Once every group of the pass is done or failed: the pass's counters from the item
        records (what every segment did, killed ones included), each group's too. Returns
        the pass's summary (number, kind, status, changes, groups by state) to the one
        caller that ended it (two workers ending their last groups at once: one of them),
        else None. A cutover ends once signed off (``signed_off``: what its sign-off found):
        until then this returns ``{"pass": n, "sign_off_due": True}`` and leaves it open."""
        groups = await self._fetch(
            "SELECT group_key, pairs, state, extra FROM ce_groups WHERE pass = %s",
            (pass_number,),
        )
        states: dict[str, int] = {}
        for _, _, st, _ in groups:
            states[str(st)] = states.get(str(st), 0) + 1
        if not groups or set(states) - {"done", "failed"}:
            return None
        recorded = await self._fetch("SELECT kind FROM ce_passes WHERE pass = %s", (pass_number,))
        if signed_off is None and recorded and recorded[0][0] == "cutover":
            return {"pass": pass_number, "sign_off_due": True}
        rows = await self._fetch(
            "SELECT pair, status, fate, count(*) FROM ce_items WHERE pass = %s "
            "GROUP BY pair, status, fate",
            (pass_number,),
        )
        by_pair: dict[str, list[tuple[Any, Any, Any]]] = {}
        for pair, st, fate, n in rows:
            by_pair.setdefault(str(pair), []).append((st, fate, n))
        extras = []
        for key, pairs_json, _, extra_json in groups:
            extra = json.loads(extra_json) if extra_json else {}
            extras.append(extra)
            mine = pass_counts(r for p in json.loads(pairs_json) for r in by_pair.get(p, []))
            await self._execute(
                "UPDATE ce_groups SET copied = %s, failed = %s, unknown = %s WHERE group_key = %s",
                (copied(mine, extra), mine["failed"], mine["unknown"], key),
            )
        changes = pass_changes(
            states, pass_counts(r for rs in by_pair.values() for r in rs), extras
        )
        changes.update(signed_off or {})
        bad = states.get("failed") or (signed_off or {}).get("pairs_not_signed_off")
        status = "items_failed" if bad else "ok"
        ended = await self._fetch(
            f"{SQL.pass_finished} AND finished IS NULL RETURNING kind",
            (time.time(), status, json.dumps(changes, sort_keys=True), pass_number),
        )
        if not ended:
            return None
        kind = str(ended[0][0])
        return {
            "pass": pass_number,
            "kind": kind,
            "status": status,
            "changes": changes,
            "groups": states,
        }

    async def sign_offs_due(self, queue: str) -> list[int]:
        """The cutover passes whose groups are all done or failed, not signed off, with no
        sign-off job of ``queue`` waiting or running (its worker died, or never queued it)."""
        rows = await self._fetch(SIGN_OFFS_DUE, (queue,))
        return [int(r[0]) for r in rows]

    async def passes_due(self, ended_s: float = 0.0) -> list[int]:
        """The passes (not cutovers) whose groups all are done or failed, the last for at
        least ``ended_s``, while the pass is not recorded as ended: the worker that ended the
        last group was killed (or its drain cancelled) between the group's end and the
        pass's. ``finish_pass_if_done`` ends them (any caller: the one whose write ends it
        gets the summary)."""
        rows = await self._fetch(PASSES_DUE, (time.time() - ended_s,))
        return [int(r[0]) for r in rows]

    async def pass_state(self, pass_number: int) -> tuple[str, bool, dict[str, Any]] | None:
        """Pass ``pass_number``'s kind, whether it is finished, and its changes."""
        rows = await self._fetch(
            "SELECT kind, finished, changes FROM ce_passes WHERE pass = %s", (pass_number,)
        )
        if not rows:
            return None
        kind, finished, changes = rows[0]
        return str(kind), finished is not None, json.loads(changes) if changes else {}

    async def pass_pairs(self, pass_number: int) -> list[str]:
        """The pairs of every group of pass ``pass_number``."""
        rows = await self._fetch(
            "SELECT pairs FROM ce_groups WHERE pass = %s ORDER BY group_key", (pass_number,)
        )
        return [p for (text,) in rows for p in json.loads(text)]

    # -- the reaper ----------------------------------------------------------------------------
    async def heartbeat(self, key: str) -> float | None:
        rows = await self._fetch("SELECT heartbeat FROM ce_groups WHERE group_key = %s", (key,))
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    async def server_up_s(self) -> float | None:
        """How long the database server has been running."""
        rows = await self._fetch("SELECT extract(epoch FROM now() - pg_postmaster_start_time())")
        return float(rows[0][0]) if rows else None

    async def requeued(self, key: str, why: str, beat: bool = False) -> None:
        """Queued again (``beat``: as if it had just sent a heartbeat)."""
        if beat:
            await self._execute(
                "UPDATE ce_groups SET state = 'queued', retried = retried + 1, heartbeat = %s, "
                "error = %s WHERE group_key = %s",
                (time.time(), why, key),
            )
        else:
            await self._execute(
                "UPDATE ce_groups SET state = 'queued', retried = retried + 1, "
                "error = %s WHERE group_key = %s",
                (why, key),
            )

    async def orphans(self, queue: str, silent_s: float) -> list[Orphan]:
        """The groups of the current pass, queued or running, silent for ``silent_s``, with
        no job of ``queue`` waiting or running under their lock."""
        rows = await self._fetch(ORPHANS, (time.time() - silent_s, queue))
        return [Orphan(str(k), int(p), int(r), int(s)) for k, p, r, s in rows]

    async def stalled(self, silent_s: float) -> int:
        """How many groups of the current pass are running while their heartbeat is older
        than ``silent_s`` (their worker went silent: the reaper queues them again)."""
        try:
            rows = await self._fetch(STALLED, (time.time() - silent_s,))
        except psycopg.Error as exc:
            raise StateError(f"state store {self.url}: {explain(exc)}") from exc
        return int(rows[0][0]) if rows else 0

    async def given_up(self, key: str, why: str) -> None:
        await self._execute(
            "UPDATE ce_groups SET state = 'failed', finished = %s, error = %s "
            "WHERE group_key = %s AND state IN ('queued', 'running')",
            (time.time(), why, key),
        )

    # -- submit --------------------------------------------------------------------------------
    async def known(self) -> dict[str, tuple[int, str]]:
        """Each group's pass and state."""
        rows = await self._fetch("SELECT group_key, pass, state FROM ce_groups")
        return {r[0]: (int(r[1]), str(r[2])) for r in rows}

    async def members(self) -> dict[str, tuple[int, str, list[str]]]:
        """Each group's pass, state and pairs."""
        rows = await self._fetch("SELECT group_key, pass, state, pairs FROM ce_groups")
        return {r[0]: (int(r[1]), str(r[2]), json.loads(r[3])) for r in rows}

    async def forget(self, keys: Sequence[str]) -> None:
        """Groups of earlier passes whose pairs are now in other groups (``submit --pair``
        runs a pair apart from the group it shared a mailbox with, a later pass joins them
        again): one row per pair, its latest group's."""
        if keys:
            await self._execute(
                "DELETE FROM ce_groups WHERE group_key = ANY(%s) AND state <> 'running'",
                (list(keys),),
            )

    async def queued(
        self, key: str, pairs: Sequence[str], pass_number: int, waits: str | None = None
    ) -> None:
        """The group queued for ``pass_number`` (its counters kept within the same pass);
        ``waits``: why its job is queued for later (the schedule, its pairs' times)."""
        state = "queued" if waits is None else "waiting"
        await self._execute(UPSERT_GROUP, (key, json.dumps(list(pairs)), pass_number, state))
        if waits is not None:
            await self._execute(
                "UPDATE ce_groups SET error = %s WHERE group_key = %s", (waits, key)
            )

    async def held(self, key: str, pairs: Sequence[str], pass_number: int) -> None:
        """The group of ``pass_number`` left suspended, not queued (its pairs are)."""
        await self._execute(UPSERT_GROUP, (key, json.dumps(list(pairs)), pass_number, "suspended"))

    # -- suspend and resume --------------------------------------------------------------------
    async def controls(self) -> list[Control]:
        """The operator's suspend / resume commands (``Store.controls``)."""
        return [Control(*r) for r in await self._fetch(SQL.controls)]

    async def unsuspended(self, key: str) -> tuple[int, int] | None:
        """The group queued again if it is suspended (its pass and segments so far, for its
        next segment), once: of several callers at once, one is answered."""
        rows = await self._fetch(
            "UPDATE ce_groups SET state = 'queued', finished = NULL, error = NULL "
            "WHERE group_key = %s AND state = 'suspended' RETURNING pass, segments",
            (key,),
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    # -- status and report ---------------------------------------------------------------------
    async def read(self) -> list[dict[str, Any]]:
        """Every group, with its pace (items per second while it ran) and whether it is at
        work in its pass (``at_work``: running, or between two segments, its next queued).
        A group's counters are of its pass (``pass``) only; a group not ended in it has them
        from its pairs' item records of the pass so far, read in one statement per pass
        (they are written when a segment ends: a running group said "copied 0" while its
        pairs had copied hundreds, and one between segments "unknown 0" while it had items
        to settle)."""
        try:
            async with await self.connect() as conn:
                cur = await conn.execute("SELECT to_regclass('ce_groups') IS NOT NULL")
                row = await cur.fetchone()
                if not (row and row[0]):
                    return []
                cur = await conn.execute(
                    f"SELECT {GROUP_COLUMNS}, extra FROM ce_groups ORDER BY group_key"
                )
                rows = [
                    (dict(zip(GROUP_KEYS, row, strict=True)), extra)
                    for *row, extra in await cur.fetchall()
                ]
                live: dict[int, set[str]] = {}
                for g, _ in rows:
                    if g["state"] in NOT_ENDED:
                        live.setdefault(int(g["pass"]), set()).update(json.loads(g["pairs"]))
                by_pair: dict[tuple[int, str], list[tuple[Any, Any, Any]]] = {}
                for number, pairs in live.items():
                    cur = await conn.execute(
                        "SELECT pair, status, fate, count(*) FROM ce_items WHERE pass = %s "
                        "AND pair = ANY(%s) GROUP BY pair, status, fate",
                        (number, sorted(pairs)),
                    )
                    for pair, st, fate, n in await cur.fetchall():
                        by_pair.setdefault((number, str(pair)), []).append((st, fate, n))
                out = []
                for g, extra in rows:
                    if g["state"] in NOT_ENDED:
                        number = int(g["pass"])
                        counts = pass_counts(
                            r for p in json.loads(g["pairs"]) for r in by_pair.get((number, p), ())
                        )
                        g["copied"] = copied(counts, json.loads(extra) if extra else {})
                        g["failed"], g["unknown"] = counts["failed"], counts["unknown"]
                    out.append(group_of(tuple(g[k] for k in GROUP_KEYS)))
                return out
        except psycopg.Error as exc:
            raise StateError(f"state store {self.url}: {explain(exc)}") from exc

    async def runs(self) -> list[dict[str, Any]]:
        async with await self.connect() as conn:
            cur = await conn.execute(
                "SELECT group_key, pair, host, started, finished FROM ce_group_runs ORDER BY id"
            )
            return [dict(zip(RUN_KEYS, r, strict=True)) for r in await cur.fetchall()]


def group_of(row: Sequence[Any]) -> dict[str, Any]:
    d = dict(zip(GROUP_KEYS, row, strict=True))
    d["pairs"] = json.loads(d["pairs"])
    # a continuing group is queued between its segments (its next one waits for a worker):
    # at work in its pass all the same; one queued that has not started in it is not
    d["at_work"] = d["state"] == "running" or (d["state"] == "queued" and bool(d["started"]))
    end = d["finished"] or time.time()
    span = end - d["started"] if d["started"] else 0.0
    d["items_per_s"] = round(d["copied"] / span, 1) if span > 0 else 0.0
    return d
