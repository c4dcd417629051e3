"""The Store on PostgreSQL: one job shared by several hosts (``submit`` / ``worker``), or one
run of a job whose state an operator wants in a database.

psycopg 3, async, pooled. Intents are written (one statement, one transaction) before their
imports are sent; outcomes are buffered and group-committed, the same contract as SQLite
(``tests/test_store_contract.py`` runs on both). Tables are prefixed ``ce_`` and live in the
database the URL names: one job per database. ``exclusive`` takes the job's lock (a session
advisory lock, released by the server if the process dies): a second ``copyengine run`` of
the job is refused; workers of a shared job do not take it (procrastinate locks each mailbox
group instead).

**The server going away** (restart, failover, network): every statement is retried, with
backoff, while the server is unreachable, for at most ``outage_s`` (then
``StoreUnavailable``). Every statement of the store is an upsert or an update that may run
twice, so a commit whose answer was lost is safe to send again; meanwhile the pipeline waits
(intents not durable: no import is sent; the outcome buffer waits for its flush).

**Item records carry their pass** (``pass``) and what that pass did to the target (``fate``:
created, updated), so a pass's counters are computed from the records (``pass_counts``): they
include what every segment did, even one killed with -9 before it said anything."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import JobLocked, StateError
from ..secrets import Secret
from .pairpasses import table as pair_passes_table
from .records import Intent, Outcome, Status
from .rows import FATE, check_identity
from .sql import POSTGRES, SqlStore, Statements

if TYPE_CHECKING:
    from .fence import GroupFence

T = TypeVar("T")
log = structlog.get_logger("copyengine.state")

SCHEMA_VERSION = "9"
# Nothing indexes an item's status: it changes on every outcome, and an index on it keeps
# PostgreSQL from updating the row in place (HOT). Only a pair's start and its report ask
# for it, by reading the pair's rows. Earlier engines created ce_items_by_status; it is
# dropped (an engine that still wants it creates it again, so the schema stays 3). Schema 4
# adds each item's pass, fate and writer (``rows.FATE``); a schema-3 database gets them in
# place (three nullable or defaulted columns: no table rewrite). Schema 5 adds the
# operator's controls (``ce_controls``: suspend / resume), a new table; schema 6 the table of
# each pair's statistics per pass (``pairpasses``), made in place by ``CREATE ... IF NOT
# EXISTS``; schema 7 the advice on [limits] kept with them (``hints``, a nullable column
# added in place); schema 8 the moments that tell two items of one search key apart (review
# R1b: ``seen`` and ``known`` per item, ``began`` per folder; nullable, added in place);
# schema 9 their clock, a sequence every host shares (``ce_moments``, ``MOMENTS_FROM``).
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS ce_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ce_pairs (
    pair TEXT PRIMARY KEY, source TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL, started DOUBLE PRECISION, finished DOUBLE PRECISION, error TEXT
);
CREATE TABLE IF NOT EXISTS ce_folders (
    pair TEXT NOT NULL, source_folder_id TEXT NOT NULL, source_path TEXT NOT NULL,
    target_folder_id TEXT NOT NULL, target_path TEXT NOT NULL, delta_link TEXT,
    scope TEXT NOT NULL DEFAULT 'primary', began BIGINT,
    PRIMARY KEY (pair, source_folder_id)
);
ALTER TABLE ce_folders ADD COLUMN IF NOT EXISTS began BIGINT;
CREATE TABLE IF NOT EXISTS ce_items (
    pair TEXT NOT NULL, source_id TEXT NOT NULL, folder_id TEXT NOT NULL,
    search_key BYTEA, size BIGINT NOT NULL, target_folder_id TEXT,
    status SMALLINT NOT NULL, target_id TEXT, target_change_key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, request_id TEXT,
    updated DOUBLE PRECISION NOT NULL, source_change_key TEXT,
    pass INTEGER, fate SMALLINT NOT NULL DEFAULT 0, writer BIGINT,
    seen BIGINT, known BIGINT,
    PRIMARY KEY (pair, source_id)
);
ALTER TABLE ce_items ADD COLUMN IF NOT EXISTS pass INTEGER,
    ADD COLUMN IF NOT EXISTS fate SMALLINT NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS writer BIGINT,
    ADD COLUMN IF NOT EXISTS seen BIGINT,
    ADD COLUMN IF NOT EXISTS known BIGINT;
CREATE INDEX IF NOT EXISTS ce_items_by_folder ON ce_items (pair, folder_id);
CREATE INDEX IF NOT EXISTS ce_items_by_key ON ce_items (pair, search_key);
CREATE INDEX IF NOT EXISTS ce_items_kept ON ce_items (pair) WHERE status = 8;
DROP INDEX IF EXISTS ce_items_by_status;
CREATE TABLE IF NOT EXISTS ce_syncs (
    pair TEXT NOT NULL, scope TEXT NOT NULL, folder_link TEXT, fingerprint TEXT NOT NULL,
    PRIMARY KEY (pair, scope)
);
CREATE TABLE IF NOT EXISTS ce_passes (
    pass SERIAL PRIMARY KEY, kind TEXT NOT NULL, started DOUBLE PRECISION NOT NULL,
    finished DOUBLE PRECISION, status TEXT NOT NULL, changes TEXT
);
CREATE TABLE IF NOT EXISTS ce_controls (
    scope TEXT NOT NULL, target TEXT NOT NULL, state TEXT NOT NULL, who TEXT NOT NULL,
    since DOUBLE PRECISION NOT NULL, reason TEXT, seq BIGINT NOT NULL,
    PRIMARY KEY (scope, target)
);
{pair_passes_table("ce_", "DOUBLE PRECISION", "BIGINT")};
ALTER TABLE ce_pair_passes ADD COLUMN IF NOT EXISTS hints TEXT;
CREATE TABLE IF NOT EXISTS ce_lost_copies (
    pair TEXT NOT NULL, search_key BYTEA NOT NULL, target_id TEXT NOT NULL,
    target_folder_id TEXT, source_id TEXT NOT NULL, PRIMARY KEY (pair, search_key, target_id)
);
CREATE SEQUENCE IF NOT EXISTS ce_moments AS BIGINT CACHE 1 NO CYCLE;
"""
# R1b's moments (``moment``) on several hosts: one order, the database's, whatever each
# host's clock says (a host behind by minutes made a move two items: tests/test_hosts_clock.py).
# ``nextval`` is atomic and never goes back, and one that returned before another began
# gave the smaller number: a moment read after a listing is later than every moment read
# before it, on any host. ``CACHE 1``: a session caching numbers would hand out ones
# older than another session's. Made (schema 9) past every moment stored and past a day
# from now in microseconds since the epoch, the scale of the moments earlier schemas took
# from the hosts' clocks, so those keep their order before the new ones: also those a
# segment of an earlier engine still running as the database is upgraded writes (it
# refuses schema 9 at its next segment; ``segment_minutes``, 15, is far less than a day).
MOMENTS_FROM = """
SELECT setval('ce_moments', GREATEST(
    (extract(epoch FROM clock_timestamp() + interval '1 day') * 1000000)::BIGINT,
    (SELECT max(seen) FROM ce_items), (SELECT max(known) FROM ce_items),
    (SELECT max(began) FROM ce_folders)) + 1)
"""
SCHEMA_LOCK = 0x636F7079  # serialises schema creation by workers that start together
MIGRATES_FROM = (
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
)  # schemas SCHEMA itself brings to SCHEMA_VERSION (columns added)
OUTAGE_S = 120.0  # how long the store waits for an unreachable server before giving up
RECONNECT_S = 4.0  # a pool's background reconnection gives up after this (asked again later)


class StoreUnavailable(StateError):
    """The server stayed unreachable longer than the store waits (``outage_s``)."""


class Outage:
    """When this process last saw the server unreachable (monotonic; 0: never), and how
    often: the cluster's reaper waits for heartbeats to resume after an outage before it
    calls any worker dead."""

    last: float = 0.0
    count: int = 0
    gone: str | None = None  # once a statement gave up: every later one fails at once

    @classmethod
    def seen(cls) -> None:
        cls.last = time.monotonic()
        cls.count += 1

    @classmethod
    def within(cls, seconds: float) -> bool:
        return cls.last > 0 and time.monotonic() - cls.last < seconds

    @classmethod
    def give_up(cls, why: str) -> None:
        """This process gives the server up (a worker leaving): no statement waits on it
        any more, not even for a connection from its pool (``patiently``)."""
        cls.gone = cls.gone or why


_PERMANENT = (
    "password authentication failed",
    "no password supplied",
    "does not exist",
    "permission denied",
    "no pg_hba.conf entry",
    "role",
)


def transient(exc: BaseException) -> bool:
    """A failure that waiting may cure: the server unreachable, restarting, shutting down,
    the connection cut, no connection from the pool in time. Not: a refused login, a missing
    database, a statement the server rejects."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, psycopg.InterfaceError):
        return "closed" in str(exc).lower()
    if not isinstance(exc, psycopg.OperationalError):
        return False
    low = str(exc).lower()
    return not any(m in low for m in _PERMANENT)


def backoff(attempt: int, cap: float = 2.0) -> float:
    """0.1 s doubling up to ``cap``, with jitter (workers reconnect at different moments)."""
    return min(cap, 0.1 * 2.0 ** min(attempt, 10)) * (0.5 + random.random() / 2)


async def patiently(
    what: str,
    fn: Callable[[float], Awaitable[T]],
    outage_s: float,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """``fn(timeout)`` again, with backoff, while it fails transiently, for at most
    ``outage_s`` from the first failure (bounded in time, and so in attempts); then
    ``StoreUnavailable``. ``timeout`` is what is left, for ``fn``'s own waits."""
    first: float | None = None
    if Outage.gone is not None:
        # this process gave the server up already: not even one attempt, whose wait for a
        # connection from its pool (up to the pool's timeout) would hold a leaving worker
        raise StoreUnavailable(Outage.gone)
    for attempt in range(10_000):
        left = outage_s if first is None else outage_s - (time.monotonic() - first)
        try:
            out = await fn(max(1.0, min(10.0, left)))
            Outage.gone = None  # back
            return out
        except Exception as exc:
            if not transient(exc):
                raise
            Outage.seen()
            now = time.monotonic()
            first = first if first is not None else now
            down = now - first
            if Outage.gone is not None:  # given up meanwhile (another statement, the worker)
                raise StoreUnavailable(Outage.gone) from None
            if down >= outage_s:
                Outage.gone = (
                    f"{what}: unreachable for {down:.0f} s (the limit is {outage_s:.0f} s): "
                    f"{explain(exc)}"
                )
                raise StoreUnavailable(Outage.gone) from None
            if on_retry is not None:
                on_retry(exc, down)
            await anyio.sleep(min(backoff(attempt), max(0.05, outage_s - down)))
    raise StoreUnavailable(f"{what}: unreachable")  # pragma: no cover (bounded above)


def explain(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        return f"{text}: check [job] state_password (or ~/.pgpass) and the role"
    if "does not exist" in low and "database" in low:
        return f"{text}: create the database first (createdb), or fix the URL's database"
    if "connection refused" in low or "could not connect" in low or "timeout" in low:
        return f"{text}: is the PostgreSQL server running and reachable from this host?"
    if "permission denied" in low:
        return f"{text}: the role needs rights on the job's database (docs/several-hosts.md, least privilege)"
    if "no space left" in low or "disk full" in low:
        return f"{text}: the database server's disk is full; free space and run again"
    return text


async def unlock(conn: psycopg.AsyncConnection[Any], key: int) -> None:
    """A session advisory lock released, and its session closed (errors ignored).
    Released explicitly: closing the session alone releases it only once the server has
    ended the session, which a process that takes it right after can race."""
    try:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    except psycopg.Error:
        pass
    try:
        await conn.close()
    except psycopg.Error:
        pass


def lock_key(identity: dict[str, str] | None, url: str) -> int:
    """The job's advisory lock key: a signed 64-bit number from its identity."""
    text = json.dumps(identity or {"url": url}, sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class PostgresStore(SqlStore):
    sql = Statements(POSTGRES)

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
        pass_number: int | None = None,
        outage_s: float = OUTAGE_S,
        wait_on_open: bool = False,
    ) -> None:
        self.url = url
        self.password = password
        self.identity = identity
        self.exclusive = exclusive
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.pool_size = pool_size
        # the pass this store's item writes are stamped with (``pass_started`` sets it; a
        # worker's segment is given the pass ``submit`` started)
        self.pass_number = pass_number
        self.outage_s = outage_s
        self.wait_on_open = wait_on_open  # a worker waits for the server; `run` says at once
        self.writer = random.getrandbits(62)  # who wrote an intent (rows.FATE)
        self.unavailable: str | None = None  # why the store gave up, once it has
        self._pool: AsyncConnectionPool | None = None
        self._lock_conn: psycopg.AsyncConnection[Any] | None = None
        self._buffer: list[tuple[str, Outcome]] = []
        self._flushing = anyio.Lock()
        self.commits = 0
        # a group's fence: its intents are written on the fence's session only
        self.fence: GroupFence | None = None

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
        """``fn`` on a pooled connection, in one transaction; again while the server is
        unreachable (every statement here may run twice), for at most ``outage_s``."""
        pool = self._pool
        if pool is None:
            raise StateError(f"state store {self.where} is closed")

        async def once(wait_s: float) -> T:
            async with pool.connection(timeout=wait_s) as conn:
                return await fn(conn)

        try:
            return await patiently(f"state store {self.where}", once, self.outage_s, self._waiting)
        except StoreUnavailable as exc:
            self.unavailable = str(exc)
            raise
        except psycopg.Error as exc:
            raise StateError(f"state store {self.where}: {explain(exc)}") from exc

    def _waiting(self, exc: BaseException, down: float) -> None:
        if down == 0.0:
            log.warning(
                "state.unreachable",
                store=self.where,
                error=explain(exc),
                waiting_up_to_s=self.outage_s,
            )

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async def fn(conn: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

        return await self._run(fn)

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        async def fn(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(sql, params)

        await self._run(fn)

    async def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async def fn(conn: psycopg.AsyncConnection[Any]) -> None:
            async with conn.transaction(), conn.cursor() as cur:
                await cur.executemany(sql, rows)

        await self._run(fn)

    async def _script(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """In one transaction; a run of the same statement goes as one ``executemany``
        (pipelined by psycopg: one wait for the server, not one per row)."""

        async def fn(conn: psycopg.AsyncConnection[Any]) -> None:
            async with conn.transaction(), conn.cursor() as cur:
                for sql, run in itertools.groupby(statements, key=lambda s: s[0]):
                    await cur.executemany(sql, [args for _, args in run])

        await self._run(fn)

    async def open(self) -> None:
        try:
            if self.exclusive:
                await self._take_lock()

            # one direct attempt first: a wrong URL, role or password is said at once and
            # plainly (a pool would retry it until its timeout)
            async def probe(wait_s: float) -> None:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, connect_timeout=max(2, int(wait_s)), **self._kwargs()
                )
                await conn.close()

            try:
                if self.wait_on_open:
                    await patiently(
                        f"cannot open state store {self.where}",
                        probe,
                        self.outage_s,
                        self._waiting,
                    )
                else:
                    await probe(10)
            except StoreUnavailable as exc:
                self.unavailable = str(exc)
                raise
            except psycopg.Error as exc:
                raise StateError(f"cannot open state store {self.where}: {explain(exc)}") from None
            pool = AsyncConnectionPool(
                self.url,
                kwargs=self._kwargs(),
                min_size=1,
                max_size=self.pool_size,
                open=False,
                timeout=30.0,
                # a connection lost is replaced at once when asked for, not after the
                # pool's own growing backoff (1, 2, 4, ... s: 15 s after a 10 s outage)
                reconnect_timeout=RECONNECT_S,
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
            raise StateError(f"cannot open state store {self.where}: {explain(exc)}") from None
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
            await unlock(conn, lock_key(self.identity, self.url))

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
                await conn.execute(MOMENTS_FROM)
                await conn.execute(
                    "INSERT INTO ce_meta VALUES ('schema', %s) ON CONFLICT DO NOTHING",
                    (SCHEMA_VERSION,),
                )
            elif row[0] in MIGRATES_FROM:  # SCHEMA above added what it lacked
                await conn.execute(MOMENTS_FROM)
                await conn.execute(
                    "UPDATE ce_meta SET value = %s WHERE key = 'schema'", (SCHEMA_VERSION,)
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
            fix = "Give this job a database of its own ([job] state)"
            if check_identity(self.where, row[0], self.identity, fix) and self.exclusive:
                await conn.execute(  # an earlier version's record of this job
                    "UPDATE ce_meta SET value = %s WHERE key = 'job'", (json.dumps(self.identity),)
                )

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

    async def moment(self) -> int:
        """R1b's clock on a store the hosts share: the next of the database's sequence
        (``MOMENTS_FROM``), not this host's clock."""
        row = await self._fetchall("SELECT nextval('ce_moments')")
        return int(row[0][0])

    # -- items -------------------------------------------------------------------------------
    async def record_intents(self, pair: str, intents: Sequence[Intent]) -> None:
        """Durable before returning (one statement, committed): imports may then be sent."""
        if not intents:
            return
        last = {i.source_id: i for i in intents}  # one row per item in one statement
        rows = list(last.values())
        now = time.time()

        async def fn(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(
                INTENTS_SQL,
                (
                    pair,
                    int(Status.INTENT),
                    now,
                    self.pass_number,
                    self.writer,
                    [i.source_id for i in rows],
                    [i.folder_id for i in rows],
                    [i.search_key for i in rows],
                    [i.size for i in rows],
                    [i.target_folder_id for i in rows],
                    [i.change_key for i in rows],
                    [i.seen for i in rows],
                ),
            )

        if self.fence is None:
            await self._run(fn)
        else:
            try:
                await self.fence.run(fn)
            except StoreUnavailable as exc:
                self.unavailable = str(exc)
                raise
            except psycopg.Error as exc:
                raise StateError(f"state store {self.where}: {explain(exc)}") from exc
        self.commits += 1

    async def forget_items(self, pair: str, source_ids: Sequence[str]) -> None:
        if not source_ids:
            return
        await self.flush()
        await self._execute(
            "DELETE FROM ce_items WHERE pair = %s AND source_id = ANY(%s)",
            (pair, list(source_ids)),
        )

    async def detach_items(
        self, pair: str, source_ids: Sequence[str], versions: Mapping[str, str] | None = None
    ) -> None:
        if not source_ids:
            return
        await self.flush()
        got = versions or {}
        await self._execute(
            "UPDATE ce_items AS i SET status = %s, target_id = NULL, target_change_key = NULL, "
            "attempts = i.attempts + 1, updated = %s, pass = %s::integer, writer = %s::bigint, "
            "source_change_key = COALESCE(v.ck, i.source_change_key), fate = 0 "
            "FROM unnest(%s::text[], %s::text[]) AS v(s, ck) "
            "WHERE i.pair = %s AND i.source_id = v.s",
            (
                int(Status.INTENT),
                time.time(),
                self.pass_number,
                self.writer,
                list(source_ids),
                [got.get(i) for i in source_ids],
                pair,
            ),
        )

    def record_outcome(self, pair: str, outcome: Outcome) -> None:
        self._buffer.append((pair, outcome))

    def needs_flush(self) -> bool:
        return len(self._buffer) >= self.max_buffer

    async def flush(self) -> None:
        # the lock first: a caller that finds the buffer empty while another flush is
        # writing waits for that write (what it reads next must include it)
        async with self._flushing:
            if not self._buffer or self._pool is None:
                return
            batch, self._buffer = self._buffer, []
            if not batch:
                return
            last: dict[tuple[str, str], Outcome] = {}
            sent: set[tuple[str, str]] = set()
            for pair, o in batch:  # the later outcome of an item wins, as in order
                last.pop((pair, o.source_id), None)
                last[(pair, o.source_id)] = o
                if o.status is Status.UNKNOWN:  # its import went out (rows.FATE)
                    sent.add((pair, o.source_id))
            keys = list(last)
            outs = list(last.values())

            async def fn(conn: psycopg.AsyncConnection[Any]) -> None:
                await conn.execute(
                    OUTCOMES_SQL,
                    {
                        "now": time.time(),
                        "pass": self.pass_number,
                        "writer": self.writer,
                        "sent": [k in sent for k in keys],
                        "p": [k[0] for k in keys],
                        "s": [k[1] for k in keys],
                        "st": [int(o.status) for o in outs],
                        "tid": [o.target_id for o in outs],
                        "tck": [o.target_change_key for o in outs],
                        "err": [o.error for o in outs],
                        "rid": [o.request_id for o in outs],
                        "kn": [o.known for o in outs],
                    },
                )

            try:
                await self._run(fn)
            except StateError:
                self._buffer[:0] = batch  # kept for the next try
                raise
            self.commits += 1


# The statements of the per-item write path; the fate rules are ``rows.FATE``'s.
INTENTS_SQL = (
    "INSERT INTO ce_items AS i (pair, source_id, folder_id, search_key, size, "
    "target_folder_id, status, attempts, updated, pass, writer, source_change_key, seen) "
    "SELECT %s, s, f, k, z, t, %s, 1, %s, %s::integer, %s::bigint, c, n FROM unnest("
    "%s::text[], %s::text[], %s::bytea[], %s::bigint[], %s::text[], %s::text[], %s::bigint[]"
    ") AS v(s, f, k, z, t, c, n) "
    "ON CONFLICT (pair, source_id) DO UPDATE SET status = excluded.status, "
    "target_folder_id = excluded.target_folder_id, attempts = i.attempts + 1, "
    "updated = excluded.updated, search_key = excluded.search_key, "
    "source_change_key = excluded.source_change_key, "
    f"fate = CASE WHEN i.status IN ({int(Status.INTENT)}, {int(Status.UNKNOWN)}) "
    f"OR i.fate = {FATE.MAYBE_SENT} THEN {FATE.MAYBE_SENT} "
    f"WHEN i.fate = {FATE.CREATED} AND i.pass = excluded.pass THEN {FATE.CREATED} ELSE 0 END, "
    "pass = excluded.pass, writer = excluded.writer, seen = COALESCE(i.seen, excluded.seen)"
)
OUTCOMES_SQL = (
    "UPDATE ce_items AS i SET status = v.st, "
    "target_id = COALESCE(v.tid, i.target_id), "
    "target_change_key = COALESCE(v.tck, i.target_change_key), "
    "known = COALESCE(v.kn, i.known), "
    "error = v.err, request_id = v.rid, updated = %(now)s, pass = %(pass)s::integer, "
    "fate = CASE v.st "
    f"WHEN {int(Status.DONE)} THEN CASE WHEN i.target_id = v.tid AND NOT "
    f"(i.fate = {FATE.CREATED} AND i.pass IS NOT DISTINCT FROM %(pass)s::integer) "
    f"THEN {FATE.UPDATED} ELSE {FATE.CREATED} END "
    f"WHEN {int(Status.ADOPTED)} THEN CASE WHEN v.sent OR i.status = {int(Status.UNKNOWN)} "
    f"OR i.fate = {FATE.MAYBE_SENT} OR (i.status = {int(Status.INTENT)} AND "
    "i.writer IS DISTINCT FROM %(writer)s::bigint) "
    f"OR (i.fate = {FATE.CREATED} AND i.pass IS NOT DISTINCT FROM %(pass)s::integer) "
    f"THEN {FATE.CREATED} ELSE 0 END "
    f"WHEN {int(Status.UNKNOWN)} THEN {FATE.MAYBE_SENT} "
    f"WHEN {int(Status.PENDING)} THEN CASE WHEN i.fate = {FATE.MAYBE_SENT} "
    f"OR i.status = {int(Status.UNKNOWN)} THEN {FATE.MAYBE_SENT} ELSE 0 END "
    "ELSE 0 END "
    "FROM unnest(%(sent)s::boolean[], %(p)s::text[], %(s)s::text[], %(st)s::smallint[], "
    "%(tid)s::text[], %(tck)s::text[], %(err)s::text[], %(rid)s::text[], %(kn)s::bigint[]) "
    "AS v(sent, p, s, st, tid, tck, err, rid, kn) "
    "WHERE i.pair = v.p AND i.source_id = v.s"
)
