"""The Store on PostgreSQL: one job shared by several hosts (``submit`` / ``worker``), or one
run of a job whose state an operator wants in a database.

psycopg 3, async, pooled. Intents are written (one statement, one transaction) before their
imports are sent; outcomes are buffered and group-committed, the same contract as SQLite
(``tests/test_store_contract.py`` runs on both). Tables are prefixed ``ce_`` and live in the
database the URL names: one job per database. ``exclusive`` takes the job's lock (a session
advisory lock, released by the server if the process dies): a second ``copyengine run`` of
the job is refused; workers of a shared job do not take it (procrastinate locks each mailbox
group instead)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import JobLocked, StateError
from ..secrets import Secret
from .base import GroupCommitting
from .records import FolderRecord, Intent, ItemRecord, Outcome, Status, SyncRecord
from .rows import ITEM_COLUMNS, PASS_COLUMNS, check_identity, item_record, pass_of, summary

T = TypeVar("T")

SCHEMA_VERSION = "3"
# Nothing indexes an item's status: it changes on every outcome, and an index on it keeps
# PostgreSQL from updating the row in place (HOT). Only a pair's start and its report ask
# for it, by reading the pair's rows. Earlier engines created ce_items_by_status; it is
# dropped (an engine that still wants it creates it again, so the schema stays 3).
SCHEMA = """
CREATE TABLE IF NOT EXISTS ce_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ce_pairs (
    pair TEXT PRIMARY KEY, source TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL, started DOUBLE PRECISION, finished DOUBLE PRECISION, error TEXT
);
CREATE TABLE IF NOT EXISTS ce_folders (
    pair TEXT NOT NULL, source_folder_id TEXT NOT NULL, source_path TEXT NOT NULL,
    target_folder_id TEXT NOT NULL, target_path TEXT NOT NULL, delta_link TEXT,
    scope TEXT NOT NULL DEFAULT 'primary',
    PRIMARY KEY (pair, source_folder_id)
);
CREATE TABLE IF NOT EXISTS ce_items (
    pair TEXT NOT NULL, source_id TEXT NOT NULL, folder_id TEXT NOT NULL,
    search_key BYTEA, size BIGINT NOT NULL, target_folder_id TEXT,
    status SMALLINT NOT NULL, target_id TEXT, target_change_key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, request_id TEXT,
    updated DOUBLE PRECISION NOT NULL, source_change_key TEXT,
    PRIMARY KEY (pair, source_id)
);
CREATE INDEX IF NOT EXISTS ce_items_by_folder ON ce_items (pair, folder_id);
DROP INDEX IF EXISTS ce_items_by_status;
CREATE TABLE IF NOT EXISTS ce_syncs (
    pair TEXT NOT NULL, scope TEXT NOT NULL, folder_link TEXT, fingerprint TEXT NOT NULL,
    PRIMARY KEY (pair, scope)
);
CREATE TABLE IF NOT EXISTS ce_passes (
    pass SERIAL PRIMARY KEY, kind TEXT NOT NULL, started DOUBLE PRECISION NOT NULL,
    finished DOUBLE PRECISION, status TEXT NOT NULL, changes TEXT
);
"""
SCHEMA_LOCK = 0x636F7079  # serialises schema creation by workers that start together


def _explain(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        return f"{text}: check [job] state_password (or ~/.pgpass) and the role"
    if "does not exist" in low and "database" in low:
        return f"{text}: create the database first (createdb), or fix the URL's database"
    if "connection refused" in low or "could not connect" in low or "timeout" in low:
        return f"{text}: is the PostgreSQL server running and reachable from this host?"
    if "permission denied" in low:
        return f"{text}: the role needs rights on the job's database (see the README)"
    if "no space left" in low or "disk full" in low:
        return f"{text}: the database server's disk is full; free space and run again"
    return text


def lock_key(identity: dict[str, str] | None, url: str) -> int:
    """The job's advisory lock key: a signed 64-bit number from its identity."""
    text = json.dumps(identity or {"url": url}, sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class PostgresStore(GroupCommitting):
    def __init__(
        self,
        url: str,
        password: Secret | None = None,
        *,
        identity: dict[str, str] | None = None,
        exclusive: bool = True,
        flush_interval: float = 0.05,
        max_buffer: int = 2000,
        pool_size: int = 4,
    ) -> None:
        self.url = url
        self.password = password
        self.identity = identity
        self.exclusive = exclusive
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.pool_size = pool_size
        self._pool: AsyncConnectionPool | None = None
        self._lock_conn: psycopg.AsyncConnection[Any] | None = None
        self._buffer: list[tuple[str, Outcome]] = []
        self._flushing = anyio.Lock()
        self.commits = 0

    def __repr__(self) -> str:
        return f"PostgresStore({self.where})"

    @property
    def where(self) -> str:
        """The URL as shown to an operator (it holds no password: the config refuses one)."""
        return self.url

    def _kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"application_name": f"copyengine@{socket.gethostname()}"}
        if self.password is not None:
            kw["password"] = self.password.reveal()
        return kw

    # -- plumbing ----------------------------------------------------------------------------
    async def _run(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        pool = self._pool
        if pool is None:
            raise StateError(f"state store {self.where} is closed")
        try:
            async with pool.connection() as conn:
                return await fn(conn)
        except PoolTimeout as exc:
            raise StateError(f"state store {self.where}: {_explain(exc)}") from None
        except psycopg.Error as exc:
            raise StateError(f"state store {self.where}: {_explain(exc)}") from exc

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async def fn(conn: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

        return await self._run(fn)

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        async def fn(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(sql, params)

        await self._run(fn)

    async def open(self) -> None:
        try:
            if self.exclusive:
                await self._take_lock()
            # one direct attempt first: a wrong URL, role or password is said at once and
            # plainly (a pool would retry it until its timeout)
            try:
                probe = await psycopg.AsyncConnection.connect(
                    self.url, connect_timeout=10, **self._kwargs()
                )
                await probe.close()
            except psycopg.Error as exc:
                raise StateError(f"cannot open state store {self.where}: {_explain(exc)}") from None
            pool = AsyncConnectionPool(
                self.url,
                kwargs=self._kwargs(),
                min_size=1,
                max_size=self.pool_size,
                open=False,
                timeout=30.0,
            )
            try:
                await pool.open(wait=True, timeout=15.0)
            except PoolTimeout:
                await pool.close()
                raise StateError(
                    f"cannot open state store {self.where}: no connection within 15 s"
                ) from None
            self._pool = pool
            await self._run(self._prepare)
        except BaseException:
            await self._close_pool()
            await self._release_lock()
            raise

    async def _take_lock(self) -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=15, **self._kwargs()
            )
        except psycopg.Error as exc:
            raise StateError(f"cannot open state store {self.where}: {_explain(exc)}") from None
        key = lock_key(self.identity, self.url)
        holder = None
        # A run that just closed may still hold the lock for a moment while its server
        # session ends; a lock whose holder is already gone is asked again (bounded).
        for attempt in range(20):
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            row = await cur.fetchone()
            if row and row[0]:
                break
            cur = await conn.execute(
                "SELECT a.application_name, a.client_addr::text, a.backend_start "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND "
                "((l.classid::bigint << 32) | l.objid::bigint) = %s LIMIT 1",
                (key,),
            )
            holder = await cur.fetchone()
            if holder is not None or attempt == 19:
                break
            await anyio.sleep(0.05)
        if not row or not row[0]:
            await conn.close()
            who = (
                f"{holder[0]} from {holder[1] or 'a local socket'} since "
                f"{holder[2]:%Y-%m-%dT%H:%M:%S%z}"
                if holder
                else "another process"
            )
            raise JobLocked(
                f"another run of this job is in progress ({who}); its state {self.where} is "
                "locked. Wait for it to finish, or stop it; two runs of one job at once would "
                "copy items twice"
            )
        self._lock_conn = conn

    async def _release_lock(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            try:
                # Released explicitly: closing the session alone releases it only once the
                # server has ended the session, which a run opened right after can race.
                await conn.execute(
                    "SELECT pg_advisory_unlock(%s)", (lock_key(self.identity, self.url),)
                )
            except psycopg.Error:
                pass
            try:
                await conn.close()
            except psycopg.Error:
                pass

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _prepare(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    await conn.execute(stmt)
            cur = await conn.execute("SELECT value FROM ce_meta WHERE key = 'schema'")
            row = await cur.fetchone()
            if row is None:
                await conn.execute(
                    "INSERT INTO ce_meta VALUES ('schema', %s) ON CONFLICT DO NOTHING",
                    (SCHEMA_VERSION,),
                )
            elif row[0] != SCHEMA_VERSION:
                raise StateError(
                    f"state store {self.where} has schema {row[0]}, this version needs "
                    f"{SCHEMA_VERSION}"
                )
            if self.identity is None:
                return
            cur = await conn.execute("SELECT value FROM ce_meta WHERE key = 'job'")
            row = await cur.fetchone()
            if row is None:
                await conn.execute(
                    "INSERT INTO ce_meta VALUES ('job', %s) ON CONFLICT DO NOTHING",
                    (json.dumps(self.identity),),
                )
                return
        check_identity(self.where, row[0], self.identity, "Give this job its own database")

    async def close(self) -> None:
        try:
            if self._pool is None:
                return
            try:
                await self.flush()
            finally:
                await self._close_pool()
        finally:
            await self._release_lock()

    # -- pairs and folders -------------------------------------------------------------------
    async def pair_started(self, pair: str, source: str, target: str) -> None:
        await self._execute(
            "INSERT INTO ce_pairs (pair, source, target, status, started) VALUES (%s,%s,%s,%s,%s) "
            "ON CONFLICT (pair) DO UPDATE SET status = excluded.status, "
            "started = excluded.started, finished = NULL, error = NULL",
            (pair, source, target, "running", time.time()),
        )

    async def pair_finished(self, pair: str, status: str, error: str | None) -> None:
        await self.flush()
        await self._execute(
            "UPDATE ce_pairs SET status = %s, finished = %s, error = %s WHERE pair = %s",
            (status, time.time(), error, pair),
        )

    async def pairs(self) -> list[dict[str, Any]]:
        rows = await self._fetchall(
            "SELECT pair, source, target, status, started, finished, error FROM ce_pairs "
            "ORDER BY pair"
        )
        keys = ("pair", "source", "target", "status", "started", "finished", "error")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def folder_mapped(
        self,
        pair: str,
        source_folder_id: str,
        source_path: str,
        target_folder_id: str,
        target_path: str,
        scope: str = "primary",
    ) -> None:
        await self._execute(
            "INSERT INTO ce_folders (pair, source_folder_id, source_path, target_folder_id, "
            "target_path, scope) VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (pair, source_folder_id) "
            "DO UPDATE SET source_path = excluded.source_path, "
            "target_folder_id = excluded.target_folder_id, target_path = excluded.target_path, "
            "scope = excluded.scope",
            (pair, source_folder_id, source_path, target_folder_id, target_path, scope),
        )

    async def folders(self, pair: str) -> list[FolderRecord]:
        rows = await self._fetchall(
            "SELECT source_folder_id, source_path, target_folder_id, target_path, delta_link, "
            'scope FROM ce_folders WHERE pair = %s ORDER BY source_path COLLATE "C"',
            (pair,),
        )
        return [FolderRecord(*r) for r in rows]

    async def set_delta_links(self, pair: str, links: Sequence[tuple[str, str | None]]) -> None:
        """Each folder's link, all in one transaction (a pass stores a link per folder)."""
        if not links:
            return
        rows = [(link, pair, folder_id) for folder_id, link in links]

        async def fn(conn: psycopg.AsyncConnection[Any]) -> None:
            async with conn.transaction(), conn.cursor() as cur:
                await cur.executemany(
                    "UPDATE ce_folders SET delta_link = %s WHERE pair = %s "
                    "AND source_folder_id = %s",
                    rows,
                )

        await self._run(fn)

    async def forget_folder(self, pair: str, source_folder_id: str) -> None:
        await self._execute(
            "DELETE FROM ce_folders WHERE pair = %s AND source_folder_id = %s",
            (pair, source_folder_id),
        )

    async def sync_state(self, pair: str, scope: str) -> SyncRecord | None:
        rows = await self._fetchall(
            "SELECT folder_link, fingerprint FROM ce_syncs WHERE pair = %s AND scope = %s",
            (pair, scope),
        )
        return SyncRecord(rows[0][0], rows[0][1]) if rows else None

    async def set_sync_state(self, pair: str, scope: str, record: SyncRecord | None) -> None:
        if record is None:
            await self._execute(
                "DELETE FROM ce_syncs WHERE pair = %s AND scope = %s", (pair, scope)
            )
            return
        await self._execute(
            "INSERT INTO ce_syncs (pair, scope, folder_link, fingerprint) VALUES (%s,%s,%s,%s) "
            "ON CONFLICT (pair, scope) DO UPDATE SET folder_link = excluded.folder_link, "
            "fingerprint = excluded.fingerprint",
            (pair, scope, record.folder_link, record.fingerprint),
        )

    # -- passes ------------------------------------------------------------------------------
    async def pass_started(self, kind: str) -> int:
        rows = await self._fetchall(
            "INSERT INTO ce_passes (kind, started, status) VALUES (%s,%s,%s) RETURNING pass",
            (kind, time.time(), "running"),
        )
        return int(rows[0][0])

    async def pass_finished(self, number: int, status: str, changes: dict[str, int]) -> None:
        await self._execute(
            "UPDATE ce_passes SET finished = %s, status = %s, changes = %s WHERE pass = %s",
            (time.time(), status, json.dumps(changes, sort_keys=True), number),
        )

    async def passes(self) -> list[dict[str, Any]]:
        rows = await self._fetchall(f"SELECT {PASS_COLUMNS} FROM ce_passes ORDER BY pass")
        return [pass_of(r) for r in rows]

    # -- items -------------------------------------------------------------------------------
    async def items_in_folder(self, pair: str, folder_id: str) -> dict[str, ItemRecord]:
        rows = await self._fetchall(
            f"SELECT {ITEM_COLUMNS} FROM ce_items WHERE pair = %s AND folder_id = %s",
            (pair, folder_id),
        )
        return {r[0]: item_record(r) for r in rows}

    async def unsettled(self, pair: str) -> list[ItemRecord]:
        rows = await self._fetchall(
            f"SELECT {ITEM_COLUMNS} FROM ce_items WHERE pair = %s AND status IN (%s, %s)",
            (pair, int(Status.INTENT), int(Status.UNKNOWN)),
        )
        return [item_record(r) for r in rows]

    async def record_intents(self, pair: str, intents: Sequence[Intent]) -> None:
        """Durable before returning (one statement, committed): imports may then be sent."""
        if not intents:
            return
        last = {i.source_id: i for i in intents}  # one row per item in one statement
        rows = list(last.values())
        now = time.time()

        async def fn(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(
                "INSERT INTO ce_items (pair, source_id, folder_id, search_key, size, "
                "target_folder_id, status, attempts, updated, source_change_key) "
                "SELECT %s, s, f, k, z, t, %s, 1, %s, c FROM unnest("
                "%s::text[], %s::text[], %s::bytea[], %s::bigint[], %s::text[], %s::text[]"
                ") AS v(s, f, k, z, t, c) "
                "ON CONFLICT (pair, source_id) DO UPDATE SET status = excluded.status, "
                "target_folder_id = excluded.target_folder_id, attempts = ce_items.attempts + 1, "
                "updated = excluded.updated, search_key = excluded.search_key, "
                "source_change_key = excluded.source_change_key",
                (
                    pair,
                    int(Status.INTENT),
                    now,
                    [i.source_id for i in rows],
                    [i.folder_id for i in rows],
                    [i.search_key for i in rows],
                    [i.size for i in rows],
                    [i.target_folder_id for i in rows],
                    [i.change_key for i in rows],
                ),
            )

        await self._run(fn)
        self.commits += 1

    async def forget_items(self, pair: str, source_ids: Sequence[str]) -> None:
        if not source_ids:
            return
        await self.flush()
        await self._execute(
            "DELETE FROM ce_items WHERE pair = %s AND source_id = ANY(%s)",
            (pair, list(source_ids)),
        )

    def record_outcome(self, pair: str, outcome: Outcome) -> None:
        self._buffer.append((pair, outcome))

    def needs_flush(self) -> bool:
        return len(self._buffer) >= self.max_buffer

    async def flush(self) -> None:
        if not self._buffer or self._pool is None:
            return
        async with self._flushing:
            batch, self._buffer = self._buffer, []
            if not batch:
                return
            last: dict[tuple[str, str], Outcome] = {}
            for pair, o in batch:  # the later outcome of an item wins, as in order
                last.pop((pair, o.source_id), None)
                last[(pair, o.source_id)] = o
            keys = list(last)
            outs = list(last.values())

            async def fn(conn: psycopg.AsyncConnection[Any]) -> None:
                await conn.execute(
                    "UPDATE ce_items AS i SET status = v.st, "
                    "target_id = COALESCE(v.tid, i.target_id), "
                    "target_change_key = COALESCE(v.tck, i.target_change_key), "
                    "error = v.err, request_id = v.rid, updated = %s "
                    "FROM unnest(%s::text[], %s::text[], %s::smallint[], %s::text[], %s::text[], "
                    "%s::text[], %s::text[]) AS v(p, s, st, tid, tck, err, rid) "
                    "WHERE i.pair = v.p AND i.source_id = v.s",
                    (
                        time.time(),
                        [k[0] for k in keys],
                        [k[1] for k in keys],
                        [int(o.status) for o in outs],
                        [o.target_id for o in outs],
                        [o.target_change_key for o in outs],
                        [o.error for o in outs],
                        [o.request_id for o in outs],
                    ),
                )

            try:
                await self._run(fn)
            except StateError:
                self._buffer[:0] = batch  # kept for the next try
                raise
            self.commits += 1

    async def summary(self, pair: str) -> dict[str, int]:
        rows = await self._fetchall(
            "SELECT status, COUNT(*) FROM ce_items WHERE pair = %s GROUP BY status", (pair,)
        )
        return summary(rows)


def host_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
