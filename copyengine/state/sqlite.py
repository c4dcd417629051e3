"""The embedded Store: SQLite in WAL mode, one file per job, and the job's lock beside it.

Every copied item goes through: intent (written and committed *before* its import is sent)
-> outcome (done / adopted / failed / unknown, group-committed every ``flush_interval``).
After a crash, an item left in ``INTENT`` may or may not exist in the target: the pipeline
settles it by looking the item up in the target folder by its search key before anything is
resent.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
from filelock import BaseFileLock, FileLock, Timeout

from ..errors import JobLocked, SchemaBehind, StateError
from .moments import moment, not_before
from .pairpasses import table as pair_passes_table
from .records import Intent, Outcome, Status
from .rows import FATE, check_identity
from .sql import SQLITE, SqlStore, Statements
from .writer import StatementThread

T = TypeVar("T")


# An item row is large (four Graph ids of ~150 characters), so the table keeps its rowid: rows
# are appended in insertion order and the key (pair, source_id) is a narrow index of its own.
# A WITHOUT ROWID table stores whole rows in a B-tree ordered by that random id, and each
# commit rewrote a page of it for every item. Nothing indexes status: it changes on every
# outcome, and only a pair's start and its report ask for it, by reading the pair's rows.
# The search key is indexed (``items_by_keys``: every pass's moves, departures and second
# copies): it is written with the intent and never changes after, so its index costs one
# entry per item; a state made before gets it when it is next opened (``SCHEMA`` runs on
# every open, ``IF NOT EXISTS``: no schema version for an index). The one index on status is
# partial, of the kept rows only (``status = 8``, REMOVED: ``kept_beside_live``, every pass):
# an outcome never enters it, only a copy kept as deleted at the source.
ITEMS_TABLE = """CREATE TABLE IF NOT EXISTS items (
    pair TEXT NOT NULL, source_id TEXT NOT NULL, folder_id TEXT NOT NULL,
    search_key BLOB, size INTEGER NOT NULL, target_folder_id TEXT,
    status INTEGER NOT NULL, target_id TEXT, target_change_key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, request_id TEXT, updated REAL NOT NULL,
    source_change_key TEXT, pass INTEGER, fate INTEGER NOT NULL DEFAULT 0, writer INTEGER,
    seen INTEGER, known INTEGER,
    UNIQUE (pair, source_id)
);"""
# the columns schema 4 had (its migration to a rowid table copies these)
ITEM_TABLE_COLUMNS = (
    "pair, source_id, folder_id, search_key, size, target_folder_id, status, target_id, "
    "target_change_key, attempts, error, request_id, updated, source_change_key"
)

PAIR_PASSES_TABLE = pair_passes_table("", "REAL", "INTEGER")
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    pair TEXT PRIMARY KEY, source TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL, started REAL, finished REAL, error TEXT
);
CREATE TABLE IF NOT EXISTS folders (
    pair TEXT NOT NULL, source_folder_id TEXT NOT NULL, source_path TEXT NOT NULL,
    target_folder_id TEXT NOT NULL, target_path TEXT NOT NULL, delta_link TEXT,
    scope TEXT NOT NULL DEFAULT 'primary', began INTEGER,
    PRIMARY KEY (pair, source_folder_id)
) WITHOUT ROWID;
{ITEMS_TABLE}
CREATE INDEX IF NOT EXISTS items_by_folder ON items (pair, folder_id);
CREATE INDEX IF NOT EXISTS items_by_key ON items (pair, search_key);
CREATE INDEX IF NOT EXISTS items_kept ON items (pair) WHERE status = 8;
CREATE TABLE IF NOT EXISTS syncs (
    pair TEXT NOT NULL, scope TEXT NOT NULL, folder_link TEXT, fingerprint TEXT NOT NULL,
    PRIMARY KEY (pair, scope)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS passes (
    pass INTEGER PRIMARY KEY, kind TEXT NOT NULL, started REAL NOT NULL, finished REAL,
    status TEXT NOT NULL, changes TEXT
);
CREATE TABLE IF NOT EXISTS controls (
    scope TEXT NOT NULL, target TEXT NOT NULL, state TEXT NOT NULL, who TEXT NOT NULL,
    since REAL NOT NULL, reason TEXT, seq INTEGER NOT NULL,
    PRIMARY KEY (scope, target)
) WITHOUT ROWID;
{PAIR_PASSES_TABLE};
CREATE TABLE IF NOT EXISTS lost_copies (
    pair TEXT NOT NULL, search_key BLOB NOT NULL, target_id TEXT NOT NULL,
    target_folder_id TEXT, source_id TEXT NOT NULL, PRIMARY KEY (pair, search_key, target_id)
) WITHOUT ROWID;
"""
# ``lost_copies`` (``Store.note_lost_copies``) is made by SCHEMA on every open, ``IF NOT
# EXISTS``, with no schema version: an engine before it never reads it (it only misses the
# second copies it names), and a state made before gets it, empty, when next opened.
SCHEMA_VERSION = "9"


def _add_column(table: str, column: str, decl: str) -> Callable[[sqlite3.Connection], None]:
    """A migration step: the column added to an existing table that lacks it (a table not
    there yet is made whole by SCHEMA)."""

    def step(db: sqlite3.Connection) -> None:
        cols = {r[1] for r in db.execute(f"PRAGMA table_info({table})").fetchall()}
        if cols and column not in cols:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")

    return step


def _items_with_rowid(db: sqlite3.Connection) -> None:
    """A migration step: the items table rebuilt as a rowid table (see ITEMS_TABLE), its rows
    copied, and the status index dropped."""
    db.execute("DROP INDEX IF EXISTS items_by_status")
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='items'").fetchone():
        return
    db.execute("DROP INDEX IF EXISTS items_by_folder")
    db.execute("ALTER TABLE items RENAME TO items_v3")
    db.execute(ITEMS_TABLE)
    db.execute(
        f"INSERT INTO items ({ITEM_TABLE_COLUMNS}) SELECT {ITEM_TABLE_COLUMNS} FROM items_v3"
    )
    db.execute("DROP TABLE items_v3")


def _item_pass_and_fate(db: sqlite3.Connection) -> None:
    """A migration step: each item's pass, fate and writer (``rows.FATE``), empty for the
    records written before (an earlier pass's counters were computed when it ended)."""
    _add_column("items", "pass", "INTEGER")(db)
    _add_column("items", "fate", "INTEGER NOT NULL DEFAULT 0")(db)
    _add_column("items", "writer", "INTEGER")(db)


def _moments(db: sqlite3.Connection) -> None:
    """A migration step: the evidence that tells two items of one search key apart (review
    R1b): each item's ``seen`` and ``known``, each folder's ``began``, empty for what was
    written before (decided by search key, as then)."""
    _add_column("items", "seen", "INTEGER")(db)
    _add_column("items", "known", "INTEGER")(db)
    _add_column("folders", "began", "INTEGER")(db)


# the latest moment the state holds (``SQLiteStore.moment``)
LATEST_MOMENT = (
    "SELECT (SELECT max(seen) FROM items), (SELECT max(known) FROM items), "
    "(SELECT max(began) FROM folders)"
)


def _pair_passes(db: sqlite3.Connection) -> None:
    """A migration step: the table of each pair's statistics per pass (``pairpasses``),
    empty: the passes before have none."""
    db.execute(PAIR_PASSES_TABLE)


# Each step takes a schema to the next: 1 had no source change key; 2 had no passes or
# folder delta links (new tables, created by SCHEMA itself); 3 kept items WITHOUT ROWID and
# indexed their status; 4 had no pass, fate or writer per item; 5 had no controls (a new
# table, created by SCHEMA: the step only says so, and an engine of schema 5, which would
# not see a suspension, refuses the file); 6 had no statistics per pair and pass; 7 kept no
# advice on [limits] with them (``pairpasses.PairPass.hints``); 8 no moments (``_moments``).
# All steps
# run in one transaction: a failure leaves the file as it was.
MIGRATIONS: dict[str, tuple[str, Callable[[sqlite3.Connection], None]]] = {
    "1": ("2", _add_column("items", "source_change_key", "TEXT")),
    "2": ("3", _add_column("folders", "scope", "TEXT NOT NULL DEFAULT 'primary'")),
    "3": ("4", _items_with_rowid),
    "4": ("5", _item_pass_and_fate),
    "5": ("6", lambda db: None),
    "6": ("7", _pair_passes),
    "7": ("8", _add_column("pair_passes", "hints", "TEXT")),
    "8": ("9", _moments),
}

# The per-item write path; the fate rules are ``rows.FATE``'s (the same as PostgreSQL's:
# outcomes are applied one by one, in order, so an UNKNOWN before an ADOPTED is seen).
INTENTS_SQL = (
    "INSERT INTO items (pair, source_id, folder_id, search_key, size, "
    "target_folder_id, status, attempts, updated, source_change_key, pass, writer, seen) "
    "VALUES (?,?,?,?,?,?,?,1,?,?,?,?,?) "
    "ON CONFLICT(pair, source_id) DO UPDATE SET status=excluded.status, "
    "target_folder_id=excluded.target_folder_id, attempts=items.attempts+1, "
    "updated=excluded.updated, search_key=excluded.search_key, "
    "source_change_key=excluded.source_change_key, "
    f"fate=CASE WHEN items.status IN ({int(Status.INTENT)}, {int(Status.UNKNOWN)}) "
    f"OR items.fate = {FATE.MAYBE_SENT} THEN {FATE.MAYBE_SENT} "
    f"WHEN items.fate = {FATE.CREATED} AND items.pass IS excluded.pass THEN {FATE.CREATED} "
    "ELSE 0 END, pass=excluded.pass, writer=excluded.writer, "
    "seen=COALESCE(items.seen, excluded.seen)"
)
# ?1 status, ?2 target id, ?3 target change key, ?4 error, ?5 request id, ?6 now, ?7 pass,
# ?8 writer, ?9 pair, ?10 source id, ?11 known
OUTCOMES_SQL = (
    "UPDATE items SET status=?1, target_id=COALESCE(?2, target_id), known=COALESCE(?11, known), "
    "target_change_key=COALESCE(?3, target_change_key), error=?4, request_id=?5, "
    "updated=?6, pass=?7, fate=CASE ?1 "
    f"WHEN {int(Status.DONE)} THEN CASE WHEN target_id = ?2 AND NOT "
    f"(fate = {FATE.CREATED} AND pass IS ?7) THEN {FATE.UPDATED} ELSE {FATE.CREATED} END "
    f"WHEN {int(Status.ADOPTED)} THEN CASE WHEN status = {int(Status.UNKNOWN)} "
    f"OR fate = {FATE.MAYBE_SENT} OR (status = {int(Status.INTENT)} AND writer IS NOT ?8) "
    f"OR (fate = {FATE.CREATED} AND pass IS ?7) THEN {FATE.CREATED} ELSE 0 END "
    f"WHEN {int(Status.UNKNOWN)} THEN {FATE.MAYBE_SENT} "
    f"WHEN {int(Status.PENDING)} THEN CASE WHEN fate = {FATE.MAYBE_SENT} "
    f"OR status = {int(Status.UNKNOWN)} THEN {FATE.MAYBE_SENT} ELSE 0 END "
    "ELSE 0 END WHERE pair=?9 AND source_id=?10"
)


def _explain(exc: BaseException) -> str:
    """The SQLite or OS error, with what the operator can do about it."""
    text = str(exc)
    low = text.lower()
    if "malformed" in low or "not a database" in low:
        return (
            f"{text}: the file is damaged; restore it from a backup, or move it aside and run "
            "again (a run without state matches every item in the target by search key and "
            "copies nothing twice)"
        )
    if "disk is full" in low or "no space" in low:
        return f"{text}: free some space on that disk and run again (nothing is lost)"
    if "readonly" in low or "read-only" in low or "permission" in low:
        return f"{text}: the state file or its directory is not writable"
    return text


def _select(sql: str, args: Sequence[Any], db: sqlite3.Connection) -> list[Any]:
    return db.execute(sql, args).fetchall()


def _many(sql: str, rows: Sequence[Sequence[Any]], db: sqlite3.Connection) -> None:
    db.execute("BEGIN")
    db.executemany(sql, rows)
    db.execute("COMMIT")


@dataclass(eq=False, slots=True)
class _Intents:
    """One caller's intents waiting for the group commit."""

    rows: list[tuple[Any, ...]]
    written: bool = False
    error: StateError | None = None


class SQLiteStore(SqlStore):
    """SQLite in WAL mode; every statement runs in the store's one thread
    (``writer.StatementThread``) so the event loop never waits on the disk. Outcomes are
    buffered and committed together."""

    sql = Statements(SQLITE)

    def __init__(
        self,
        path: Path,
        flush_interval: float = 0.05,
        max_buffer: int = 2000,
        *,
        identity: dict[str, str] | None = None,
        exclusive: bool = True,
        pass_number: int | None = None,
    ) -> None:
        self.path = path
        # the pass this store's item writes are stamped with (``pass_started`` sets it)
        self.pass_number = pass_number
        self.writer = int.from_bytes(os.urandom(7), "big")  # who wrote an intent (rows.FATE)
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.identity = identity
        self.exclusive = exclusive
        self._file_lock: BaseFileLock | None = None
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._buffer: list[tuple[str, Outcome]] = []
        self._flushing = anyio.Lock()
        self._intents_queued: list[_Intents] = []
        self._intents_lock = anyio.Lock()
        self.commits = 0
        self._thread = StatementThread(f"state {path.name}")
        self._moments_read = False  # ``moment``: the state's latest read

    async def moment(self) -> int:
        """R1b's clock on one host (``moments``): its clock, and never before the latest
        moment this state holds (read at the first moment of the run)."""
        if not self._moments_read:
            (row,) = await self._fetchall(LATEST_MOMENT)
            not_before(max((m for m in row if m is not None), default=0))
            self._moments_read = True
        return moment()

    # -- plumbing ------------------------------------------------------------------------------
    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._db is None:
                raise StateError(f"state store {self.path} is closed")
            try:
                return fn(self._db)
            except sqlite3.Error as exc:
                try:
                    self._db.rollback()
                except sqlite3.Error:
                    pass
                raise StateError(f"state store {self.path}: {_explain(exc)}") from exc

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._thread.run(partial(self._run, fn))

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._call(partial(_select, sql, params))

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self._call(partial(_select, sql, params))

    async def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._call(partial(_many, sql, rows))

    async def _script(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        def fn(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            for sql, args in statements:
                db.execute(sql, args)
            db.execute("COMMIT")

        await self._call(fn)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @property
    def holder_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock.json")

    def _take_lock(self) -> None:
        """The job's lock: ``filelock`` on a file beside the state, held until close. It is
        an operating-system lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) that is
        released when the process dies, so a kill -9 or a closed console leaves no stale
        lock. Who holds it is written to a file of its own beside it: Windows' lock makes the
        locked file unreadable to others, and filelock truncates it when it tries."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(self.lock_path, thread_local=False)
            lock.acquire(blocking=False)
        except Timeout:
            raise JobLocked(
                f"another run of this job is in progress ({self._holder()}); its state "
                f"{self.path} is locked. Wait for it to finish, or stop it; two runs of one "
                "job at once would copy items twice"
            ) from None
        except OSError as exc:
            raise StateError(f"cannot lock {self.lock_path}: {exc}") from exc
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        try:
            self.holder_path.write_text(json.dumps(info), encoding="utf-8")
        except OSError:
            pass  # who holds it is a courtesy; the file lock is the lock
        self._file_lock = lock

    def _holder(self) -> str:
        try:
            holder = json.loads(self.holder_path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            holder = {}
        if not isinstance(holder, dict) or not holder:
            return "another process"
        return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"

    def _release_lock(self) -> None:
        lock, self._file_lock = self._file_lock, None
        if lock is not None:
            try:
                self.holder_path.unlink(missing_ok=True)  # before the lock: never another's
            except OSError:
                pass
            lock.release(force=True)

    async def open(self) -> None:
        if self.exclusive:
            await anyio.to_thread.run_sync(self._take_lock)
        try:
            self._db = await anyio.to_thread.run_sync(self._open)
        except BaseException:
            self._release_lock()
            raise

    def _open(self) -> sqlite3.Connection:
        if not self.exclusive and not self.path.exists():
            raise StateError(f"no state store at {self.path}")
        db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint every ~40 MB of WAL instead of every ~4 MB: the pages a run keeps
            # changing (the table's last page, the indexes' hot pages) are then copied back
            # once per checkpoint rather than ten times (SQLite's CPU per item -20% in a
            # microbenchmark); the WAL file is truncated back to 64 MB after a checkpoint.
            db.execute("PRAGMA wal_autocheckpoint=10000")
            db.execute("PRAGMA journal_size_limit=67108864")
            db.execute("PRAGMA busy_timeout=10000")
            row = None
            if db.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchone():
                row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                self._refuse_foreign(db)  # before anything is written to another job's state
            if row is not None and row[0] != SCHEMA_VERSION and row[0] not in MIGRATIONS:
                raise StateError(self._ahead(row[0]))  # before this version's tables go in
            if row is not None and row[0] in MIGRATIONS and not self.exclusive:
                raise SchemaBehind(self._behind(row[0]))
            if row is not None and row[0] in MIGRATIONS and self.exclusive:
                db.execute("BEGIN IMMEDIATE")
                try:
                    while row[0] in MIGRATIONS:
                        nxt, step = MIGRATIONS[row[0]]
                        step(db)
                        db.execute("UPDATE meta SET value=? WHERE key='schema'", (nxt,))
                        row = (nxt,)
                    db.execute("COMMIT")
                except BaseException:
                    db.rollback()
                    raise
            db.executescript(SCHEMA)
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise StateError(self._behind(row[0]))
            self._record_identity(db)
            return db
        except BaseException as exc:
            if db is not None:
                db.close()  # a refused state is let go at once (its WAL files too)
            if isinstance(exc, sqlite3.Error | OSError):
                raise StateError(f"cannot open state store {self.path}: {_explain(exc)}") from exc
            raise

    def _ahead(self, version: str) -> str:
        return (
            f"state store {self.path} has schema {version}, which this version does not know "
            f"(it knows up to {SCHEMA_VERSION}): a newer copyengine made it; run the job with "
            "that version, or give this one another state with [job] state (or --state)"
        )

    def _behind(self, version: str) -> str:
        return f"state store {self.path} has schema {version}, this version needs {SCHEMA_VERSION}"

    def _refuse_foreign(self, db: sqlite3.Connection) -> bool:
        """ForeignState when the state is another job's; True when it is to record this
        job's identity (a new state, or one an earlier version made for this job)."""
        if self.identity is None:
            return False
        row = db.execute("SELECT value FROM meta WHERE key='job'").fetchone()
        if row is None:
            return True
        return check_identity(
            str(self.path),
            row[0],
            self.identity,
            "Use --state PATH (or [job] state) for a state of its own",
        )

    def _record_identity(self, db: sqlite3.Connection) -> None:
        if self.exclusive and self._refuse_foreign(db):
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('job', ?)", (json.dumps(self.identity),)
            )

    async def close(self) -> None:
        try:
            if self._db is None:
                return
            try:
                await self.flush()
            finally:
                db, self._db = self._db, None
                await self._thread.run(db.close)
                self._thread.stop()
        finally:
            self._release_lock()

    # -- items -------------------------------------------------------------------------------
    async def pass_started(self, kind: str) -> int:
        """As the shared store's, without ``RETURNING`` (SQLite 3.35+; older systems ship
        3.26-3.31): the row id of the insert, read on the same connection in the same call."""

        def fn(db: sqlite3.Connection) -> int:
            cur = db.execute(self.sql.pass_insert, (kind, time.time(), "running"))
            return int(cur.lastrowid or 0)

        self.pass_number = await self._call(fn)
        return self.pass_number

    async def forget_items(self, pair: str, source_ids: Sequence[str]) -> None:
        """Drop the records of items that are gone from both sides (mirrored deletions,
        completed moves). Durable when it returns."""
        if not source_ids:
            return
        await self.flush()

        rows = [(pair, i) for i in source_ids]
        await self._executemany("DELETE FROM items WHERE pair=? AND source_id=?", rows)

    async def detach_items(
        self, pair: str, source_ids: Sequence[str], versions: Mapping[str, str] | None = None
    ) -> None:
        if not source_ids:
            return
        await self.flush()
        now = time.time()
        got = versions or {}
        rows = [
            (int(Status.INTENT), now, self.pass_number, self.writer, got.get(i), pair, i)
            for i in source_ids
        ]
        await self._executemany(
            "UPDATE items SET status=?, target_id=NULL, target_change_key=NULL, "
            "attempts=attempts+1, updated=?, pass=?, writer=?, "
            "source_change_key=COALESCE(?, source_change_key), fate=0 "
            "WHERE pair=? AND source_id=?",
            rows,
        )

    async def record_intents(self, pair: str, intents: Sequence[Intent]) -> None:
        """Durable before returning: the imports may be sent once this returns."""
        now = time.time()
        rows = [
            (
                pair,
                i.source_id,
                i.folder_id,
                i.search_key,
                i.size,
                i.target_folder_id,
                int(Status.INTENT),
                now,
                i.change_key,
                self.pass_number,
                self.writer,
                i.seen,
            )
            for i in intents
        ]

        # Group commit: callers that arrive while a transaction is being written wait for
        # the lock; the first of them then writes every batch queued meanwhile in one
        # transaction (one commit for many exporters instead of one each).
        mine = _Intents(rows)
        self._intents_queued.append(mine)
        try:
            await self._intents_lock.acquire()
        except BaseException:
            # given up (cancelled) before its rows were taken: no later writer writes them
            # (its caller cannot know they became durable)
            if mine in self._intents_queued:
                self._intents_queued.remove(mine)
            raise
        try:
            if not mine.written:
                batch, self._intents_queued = self._intents_queued, []
                all_rows = [r for b in batch for r in b.rows]
                try:
                    await self._call(partial(self._write_intents, all_rows))
                except StateError as exc:
                    for b in batch:
                        b.error = exc
                except BaseException as exc:
                    # never let a caller believe its intents durable when they may not be
                    lost = StateError(
                        f"state store {self.path}: intents not written ({type(exc).__name__})"
                    )
                    for b in batch:
                        b.error = lost
                    raise
                finally:
                    for b in batch:
                        b.written = True
        finally:
            self._intents_lock.release()
        if mine.error is not None:
            raise mine.error

    def _write_intents(self, rows: list[tuple[Any, ...]], db: sqlite3.Connection) -> None:
        _many(INTENTS_SQL, rows, db)
        self.commits += 1

    def record_outcome(self, pair: str, outcome: Outcome) -> None:
        self._buffer.append((pair, outcome))

    def needs_flush(self) -> bool:
        return len(self._buffer) >= self.max_buffer

    async def flush(self) -> None:
        """Commit the buffered outcomes. Flushes run one at a time: a caller that finds the
        buffer empty while another flush is writing waits for that write, so what it reads
        next includes every outcome recorded before it asked (a pass reads outcomes back to
        decide moves); and batches commit in the order they were taken."""
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        if not self._buffer or self._db is None:
            return
        batch, self._buffer = self._buffer, []
        now = time.time()
        number, writer = self.pass_number, self.writer
        rows = [
            (
                int(o.status),
                o.target_id,
                o.target_change_key,
                o.error,
                o.request_id,
                now,
                number,
                writer,
                pair,
                o.source_id,
                o.known,
            )
            for pair, o in batch
        ]

        def fn(db: sqlite3.Connection) -> None:
            _many(OUTCOMES_SQL, rows, db)
            self.commits += 1

        try:
            await self._call(fn)
        except StateError:
            self._buffer[:0] = batch  # keep them for the next try
            raise
