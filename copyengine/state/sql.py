"""What both stores say the same way: the statements of pairs, folders, syncs, passes and
item reads, spelled for each server (table prefix, placeholder, byte-wise ordering), and the
Store methods built on them. Each store gives three primitives (``_execute``,
``_fetchall``, ``_executemany``); the per-item write path (intents, outcomes), the schema
and the job's lock stay with each store, where the servers differ."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .base import GroupCommitting
from .pairpasses import COLUMNS as PAIR_PASS_COLUMNS
from .pairpasses import PairPass, budget_of, hints_of, latest_budget, latest_hints, pair_pass_of
from .records import SETTLED, Control, FolderRecord, ItemRecord, LostCopy, Status, SyncRecord
from .rows import (
    ITEM_COLUMNS,
    PASS_COLUMNS,
    item_record,
    pair_totals,
    pass_counts,
    pass_of,
    summary,
)

PAIR_KEYS = ("pair", "source", "target", "status", "started", "finished", "error")
CONTROL_COLUMNS = "scope, target, state, who, since, reason, seq"


@dataclass(frozen=True)
class Dialect:
    """How a server spells the shared statements."""

    prefix: str  # of every table name: "ce_" on PostgreSQL (one database, other tables)
    mark: str  # a positional placeholder: "%s" (psycopg) or "?" (sqlite3)
    bytewise: str  # ORDER BY suffix that sorts text by its bytes
    listed: bool  # a list is one parameter (``= ANY(%s)``); else one ``?`` per value
    chunk: int  # values per statement when listed one by one (the server's parameter limit)

    def marks(self, n: int) -> str:
        return ",".join([self.mark] * n)

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values``: the condition and its parameters."""
        if self.listed:
            return f"{column} = ANY({self.mark})", [list(values)]
        return f"{column} IN ({self.marks(len(values))})", list(values)

    def chunks(self, values: Sequence[Any]) -> list[Sequence[Any]]:
        if self.listed or not values:
            return [values]
        return [values[k : k + self.chunk] for k in range(0, len(values), self.chunk)]


POSTGRES = Dialect(prefix="ce_", mark="%s", bytewise=' COLLATE "C"', listed=True, chunk=0)
SQLITE = Dialect(prefix="", mark="?", bytewise="", listed=False, chunk=500)


class Statements:
    """The shared statements in one dialect's spelling."""

    def __init__(self, d: Dialect) -> None:
        t, m = d.prefix, d.mark
        self.dialect = d
        self.pair_started = (
            f"INSERT INTO {t}pairs (pair, source, target, status, started) "
            f"VALUES ({d.marks(5)}) ON CONFLICT (pair) DO UPDATE SET status = excluded.status, "
            "started = excluded.started, finished = NULL, error = NULL"
        )
        self.pair_finished = (
            f"UPDATE {t}pairs SET status = {m}, finished = {m}, error = {m} WHERE pair = {m}"
        )
        self.pairs = f"SELECT {', '.join(PAIR_KEYS)} FROM {t}pairs ORDER BY pair"
        self.folder_mapped = (
            f"INSERT INTO {t}folders (pair, source_folder_id, source_path, target_folder_id, "
            f"target_path, scope) VALUES ({d.marks(6)}) ON CONFLICT (pair, source_folder_id) "
            "DO UPDATE SET source_path = excluded.source_path, "
            "target_folder_id = excluded.target_folder_id, target_path = excluded.target_path, "
            "scope = excluded.scope"
        )
        self.folders = (
            "SELECT source_folder_id, source_path, target_folder_id, target_path, delta_link, "
            f"scope, began FROM {t}folders WHERE pair = {m} ORDER BY source_path{d.bytewise}"
        )
        self.delta_link = (
            f"UPDATE {t}folders SET delta_link = {m}, began = COALESCE({m}, began) "
            f"WHERE pair = {m} AND source_folder_id = {m}"
        )
        self.forget_folder = f"DELETE FROM {t}folders WHERE pair = {m} AND source_folder_id = {m}"
        self.sync_state = (
            f"SELECT folder_link, fingerprint FROM {t}syncs WHERE pair = {m} AND scope = {m}"
        )
        self.forget_sync = f"DELETE FROM {t}syncs WHERE pair = {m} AND scope = {m}"
        self.set_sync = (
            f"INSERT INTO {t}syncs (pair, scope, folder_link, fingerprint) VALUES ({d.marks(4)}) "
            "ON CONFLICT (pair, scope) DO UPDATE SET folder_link = excluded.folder_link, "
            "fingerprint = excluded.fingerprint"
        )
        self.pass_insert = f"INSERT INTO {t}passes (kind, started, status) VALUES ({d.marks(3)})"
        self.pass_started = f"{self.pass_insert} RETURNING pass"  # PostgreSQL (SQLite: rowid)
        self.pass_finished = (
            f"UPDATE {t}passes SET finished = {m}, status = {m}, changes = {m} WHERE pass = {m}"
        )
        self.passes = f"SELECT {PASS_COLUMNS} FROM {t}passes ORDER BY pass"
        self.pass_counts = f"SELECT status, fate, count(*) FROM {t}items WHERE pass = {m}"
        self.pair_totals = (
            f"SELECT pair, status, fate, count(*) FROM {t}items GROUP BY pair, status, fate"
        )
        self.items = f"SELECT {ITEM_COLUMNS} FROM {t}items WHERE pair = {m}"
        self.summary = (
            f"SELECT status, fate, count(*) FROM {t}items WHERE pair = {m} GROUP BY status, fate"
        )
        # the operator's controls: read and written beside a run, without its lock
        self.controls = f"SELECT {CONTROL_COLUMNS} FROM {t}controls ORDER BY seq"
        self.set_control = (
            f"INSERT INTO {t}controls ({CONTROL_COLUMNS}) VALUES ({d.marks(6)}, "
            f"(SELECT COALESCE(max(seq), 0) + 1 FROM {t}controls)) "
            "ON CONFLICT (scope, target) DO UPDATE SET state = excluded.state, "
            "who = excluded.who, since = excluded.since, reason = excluded.reason, "
            "seq = excluded.seq"
        )
        self.forget_controls = f"DELETE FROM {t}controls"
        cols = ", ".join(PAIR_PASS_COLUMNS)
        kept = ("pass", "pair", "run", "sign_off")
        self.pair_pass = (
            f"INSERT INTO {t}pair_passes ({cols}) VALUES ({d.marks(len(PAIR_PASS_COLUMNS))}) "
            "ON CONFLICT (pass, pair, run) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in PAIR_PASS_COLUMNS if c not in kept)
            + f", sign_off = COALESCE(excluded.sign_off, {t}pair_passes.sign_off)"
        )
        self.pair_sign_off = (
            f"UPDATE {t}pair_passes SET sign_off = {m} WHERE pass = {m} AND pair = {m}"
        )
        self.pair_passes = (
            f"SELECT {cols} FROM {t}pair_passes WHERE pair = {m} ORDER BY pass, recorded"
        )
        self.pair_hints = (
            f"SELECT pair, pass, hints FROM {t}pair_passes WHERE hints IS NOT NULL "
            "ORDER BY pass, recorded"
        )


class SqlStore(GroupCommitting):
    """The Store methods both stores share, on their three primitives."""

    sql: Statements
    pass_number: int | None

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    async def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Every row, in one transaction."""
        raise NotImplementedError

    # -- pairs and folders ---------------------------------------------------------------------
    async def pair_started(self, pair: str, source: str, target: str) -> None:
        await self._execute(self.sql.pair_started, (pair, source, target, "running", time.time()))

    async def pair_finished(self, pair: str, status: str, error: str | None) -> None:
        await self.flush()
        await self._execute(self.sql.pair_finished, (status, time.time(), error, pair))

    async def pairs(self) -> list[dict[str, Any]]:
        return [dict(zip(PAIR_KEYS, r, strict=True)) for r in await self._fetchall(self.sql.pairs)]

    async def folder_mapped(
        self,
        pair: str,
        source_folder_id: str,
        source_path: str,
        target_folder_id: str,
        target_path: str,
        scope: str = "primary",
    ) -> None:
        row = (pair, source_folder_id, source_path, target_folder_id, target_path, scope)
        await self._execute(self.sql.folder_mapped, row)

    async def map_folders(
        self,
        pair: str,
        maps: Sequence[FolderRecord],
        unlinked: Sequence[str] = (),
        forgotten: Sequence[str] = (),
    ) -> None:
        """Several folder mappings (as ``folder_mapped``: a record's ``delta_link`` is not
        written, a stored one is kept), then the item links of the ``unlinked`` source
        folders dropped and the records of the ``forgotten`` ones deleted (as
        ``forget_folder``), all in one transaction: a pair's setup writes its folders at
        once, a creation's journal forgotten with the mapping of what it made."""
        statements: list[tuple[str, Sequence[Any]]] = [
            (
                self.sql.folder_mapped,
                (
                    pair,
                    m.source_folder_id,
                    m.source_path,
                    m.target_folder_id,
                    m.target_path,
                    m.scope,
                ),
            )
            for m in maps
        ]
        statements += [(self.sql.delta_link, (None, None, pair, fid)) for fid in unlinked]
        statements += [(self.sql.forget_folder, (pair, fid)) for fid in forgotten]
        if len(statements) == 1:
            await self._execute(*statements[0])
        elif statements:
            await self._script(statements)

    async def folders(self, pair: str) -> list[FolderRecord]:
        return [FolderRecord(*r) for r in await self._fetchall(self.sql.folders, (pair,))]

    async def set_delta_links(
        self,
        pair: str,
        links: Sequence[tuple[str, str | None]],
        sync: tuple[str, SyncRecord] | None = None,
        began: Mapping[str, int] | None = None,
    ) -> None:
        """Each folder's link, with when the round it closes began (``began``, by folder:
        ``FolderRecord.link_began``; a folder not in it keeps the moment it had, which stays
        true of its records: a link cleared, refused or stored without one), and then a
        mailbox's folder link and fingerprint (``sync``: its scope and record), all in one
        transaction (a pass stores a link per folder)."""
        when = began or {}
        rows = [(link, when.get(fid) if link else None, pair, fid) for fid, link in links]
        if sync is None:
            if rows:
                await self._executemany(self.sql.delta_link, rows)
            return
        scope, rec = sync
        statements: list[tuple[str, Sequence[Any]]] = [(self.sql.delta_link, r) for r in rows]
        statements.append((self.sql.set_sync, (pair, scope, rec.folder_link, rec.fingerprint)))
        await self._script(statements)

    async def set_listed(self, pair: str, began: Mapping[str, int]) -> None:
        """When each folder's last full listing began (``delta = false``), its link kept."""
        d = self.sql.dialect
        rows = [(when, pair, fid) for fid, when in began.items()]
        if rows:
            await self._executemany(
                f"UPDATE {d.prefix}folders SET began = {d.mark} "
                f"WHERE pair = {d.mark} AND source_folder_id = {d.mark}",
                rows,
            )

    async def forget_folder(self, pair: str, source_folder_id: str) -> None:
        await self._execute(self.sql.forget_folder, (pair, source_folder_id))

    async def sync_state(self, pair: str, scope: str) -> SyncRecord | None:
        rows = await self._fetchall(self.sql.sync_state, (pair, scope))
        return SyncRecord(rows[0][0], rows[0][1]) if rows else None

    async def set_sync_state(self, pair: str, scope: str, record: SyncRecord | None) -> None:
        if record is None:
            await self._execute(self.sql.forget_sync, (pair, scope))
            return
        row = (pair, scope, record.folder_link, record.fingerprint)
        await self._execute(self.sql.set_sync, row)

    # -- passes --------------------------------------------------------------------------------
    async def pass_started(self, kind: str) -> int:
        rows = await self._fetchall(self.sql.pass_started, (kind, time.time(), "running"))
        self.pass_number = int(rows[0][0])
        return self.pass_number

    async def pass_finished(self, number: int, status: str, changes: dict[str, int]) -> None:
        text = json.dumps(changes, sort_keys=True)
        await self._execute(self.sql.pass_finished, (time.time(), status, text, number))

    async def passes(self) -> list[dict[str, Any]]:
        return [pass_of(r) for r in await self._fetchall(self.sql.passes)]

    async def pass_counts(self, number: int, pairs: Sequence[str] | None = None) -> dict[str, int]:
        """What pass ``number`` did, from the item records (of ``pairs``, or all)."""
        await self.flush()
        sql, args = self.sql.pass_counts, [number]
        if pairs is not None:
            cond, values = self.sql.dialect.one_of("pair", pairs)
            sql, args = f"{sql} AND {cond}", [number, *values]
        return pass_counts(await self._fetchall(sql + " GROUP BY status, fate", args))

    # -- the operator's controls ------------------------------------------------------------
    async def controls(self) -> list[Control]:
        """Every suspend / resume command in force, oldest first."""
        return [Control(*r) for r in await self._fetchall(self.sql.controls)]

    async def set_control(self, c: Control, replace_all: bool = False) -> None:
        """``c`` recorded as the latest command (its ``seq`` is given by the store);
        ``replace_all``: every earlier command forgotten first (``--all``), in one
        transaction."""
        row = (c.scope, c.target, c.state, c.who, c.since, c.reason)
        if replace_all:
            await self._script([(self.sql.forget_controls, ()), (self.sql.set_control, row)])
        else:
            await self._execute(self.sql.set_control, row)

    async def _script(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Several statements in one transaction."""
        raise NotImplementedError

    # -- a pair's statistics per pass (``pairpasses``) ------------------------------------------
    async def record_pair_pass(self, row: PairPass) -> None:
        """What one run did to a pair in a pass (a row per pass, pair and run: written again
        by the same run, it is replaced; the sign-off it has is kept)."""
        await self._execute(self.sql.pair_pass, row.row())

    async def record_pair_sign_off(self, number: int, pair: str, entry: dict[str, Any]) -> None:
        """The pair's entry of pass ``number``'s sign-off, on its rows of that pass."""
        text = json.dumps(entry, default=str)
        await self._execute(self.sql.pair_sign_off, (text, number, pair))

    async def pair_passes(self, pair: str) -> list[PairPass]:
        """Every row of ``pair``, by pass, then in the order they were recorded."""
        return [pair_pass_of(r) for r in await self._fetchall(self.sql.pair_passes, (pair,))]

    async def pair_hints(self) -> dict[str, list[dict[str, Any]]]:
        """Each pair's advice now (``pairpasses.latest_hints``): where the service gave a
        mailbox of the pair clearly less than ``[limits]`` in its latest pass; pairs
        without any are left out."""
        return (await self.pair_said())[0]

    async def pair_said(
        self,
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, tuple[int, dict[str, dict[str, float]]]]]:
        """``pair_hints``, and each pair's budget in effect (``pairpasses.latest_budget``:
        the pass that said it and, per mailbox, the limits the service's 429s cut, as their
        share of [limits]; pairs whose rows do not say are left out), from one read of the
        rows (``status``)."""
        rows: dict[str, list[tuple[int, Any]]] = {}
        for pair, number, text in await self._fetchall(self.sql.pair_hints):
            rows.setdefault(pair, []).append((int(number), text))
        hints, budgets = {}, {}
        for pair, said in rows.items():
            advice = latest_hints([(n, hints_of(t)) for n, t in said])
            if advice:
                hints[pair] = advice
            budget = latest_budget([(n, budget_of(t)) for n, t in said])
            if budget is not None:
                budgets[pair] = budget
        return hints, budgets

    # -- items ---------------------------------------------------------------------------------
    async def _items(self, where: str, params: Sequence[Any]) -> list[ItemRecord]:
        rows = await self._fetchall(f"{self.sql.items} AND {where}", params)
        return [item_record(r) for r in rows]

    async def items_in_folder(self, pair: str, folder_id: str) -> dict[str, ItemRecord]:
        m = self.sql.dialect.mark
        found = await self._items(f"folder_id = {m}", (pair, folder_id))
        return {r.source_id: r for r in found}

    async def items_in_folders(
        self, pair: str, folder_ids: Sequence[str], at_most: int | None = None
    ) -> dict[str, dict[str, ItemRecord]] | None:
        """The records of these folders by folder, then source id (a folder with none is
        absent), in one read (on SQLite one per 500 folders); None when they are more than
        ``at_most``: the caller reads them folder by folder instead, never holding more."""
        out: dict[str, dict[str, ItemRecord]] = {}
        left = at_most
        for chunk in self.sql.dialect.chunks(list(dict.fromkeys(folder_ids))):
            if not chunk:
                continue
            cond, values = self.sql.dialect.one_of("folder_id", chunk)
            sql = f"{self.sql.items} AND {cond}"
            if left is not None:
                sql += f" LIMIT {int(left) + 1}"
            rows = await self._fetchall(sql, [pair, *values])
            if left is not None:
                if len(rows) > left:
                    return None
                left -= len(rows)
            for r in rows:
                rec = item_record(r)
                out.setdefault(rec.folder_id, {})[rec.source_id] = rec
        return out

    async def unsettled(self, pair: str) -> list[ItemRecord]:
        m = self.sql.dialect.mark
        unsettled = (pair, int(Status.INTENT), int(Status.UNKNOWN))
        return await self._items(f"status IN ({m}, {m})", unsettled)

    async def items_by_keys(self, pair: str, keys: Sequence[bytes]) -> list[ItemRecord]:
        out: list[ItemRecord] = []
        for chunk in self.sql.dialect.chunks(list(dict.fromkeys(keys))):
            if chunk:
                cond, values = self.sql.dialect.one_of("search_key", chunk)
                out.extend(await self._items(cond, [pair, *values]))
        return out

    async def move_record(self, pair: str, source_id: str, to: str, folder_id: str) -> None:
        await self.flush()  # (an outcome of either id buffered: written first)
        d, m = self.sql.dialect, self.sql.dialect.mark
        await self._execute(
            f"UPDATE {d.prefix}items SET source_id = {m}, folder_id = {m} "
            f"WHERE pair = {m} AND source_id = {m} AND NOT EXISTS (SELECT 1 FROM "
            f"{d.prefix}items o WHERE o.pair = {m} AND o.source_id = {m})",
            (to, folder_id, pair, source_id, pair, to),
        )

    async def kept_beside_live(self, pair: str) -> list[bytes]:
        d = self.sql.dialect
        settled = ", ".join(str(int(s)) for s in SETTLED)
        # ``status = REMOVED`` spelled as the partial index's literal, so the planner uses it
        rows = await self._fetchall(
            f"SELECT DISTINCT k.search_key FROM {d.prefix}items k WHERE k.pair = {d.mark} "
            f"AND k.status = {int(Status.REMOVED)} AND k.target_id IS NOT NULL "
            f"AND k.search_key IS NOT NULL AND EXISTS (SELECT 1 FROM {d.prefix}items o "
            "WHERE o.pair = k.pair AND o.search_key = k.search_key "
            f"AND o.status IN ({settled}) AND o.source_id <> k.source_id)",
            (pair,),
        )
        return [bytes(k) for (k,) in rows]

    async def note_lost_copies(self, pair: str, notes: Sequence[LostCopy]) -> None:
        if not notes:
            return
        d = self.sql.dialect
        await self._executemany(
            f"INSERT INTO {d.prefix}lost_copies "
            "(pair, search_key, target_id, target_folder_id, source_id) "
            f"VALUES ({d.marks(5)}) ON CONFLICT (pair, search_key, target_id) DO NOTHING",
            [(pair, n.search_key, n.target_id, n.target_folder_id, n.source_id) for n in notes],
        )

    async def lost_copies(self, pair: str, keys: Sequence[bytes]) -> list[LostCopy]:
        d = self.sql.dialect
        out: list[LostCopy] = []
        for chunk in d.chunks(list(dict.fromkeys(keys))):
            if chunk:
                cond, values = d.one_of("search_key", chunk)
                rows = await self._fetchall(
                    "SELECT search_key, target_id, target_folder_id, source_id "
                    f"FROM {d.prefix}lost_copies WHERE pair = {d.mark} AND {cond}",
                    [pair, *values],
                )
                out.extend(LostCopy(bytes(k), t, f, s) for k, t, f, s in rows)
        return out

    async def forget_lost_copies(self, pair: str, keys: Sequence[bytes]) -> None:
        d = self.sql.dialect
        for chunk in d.chunks(list(dict.fromkeys(keys))):
            if chunk:
                cond, values = d.one_of("search_key", chunk)
                await self._execute(
                    f"DELETE FROM {d.prefix}lost_copies WHERE pair = {d.mark} AND {cond}",
                    [pair, *values],
                )

    async def items_with_status(self, pair: str, status: Status) -> list[ItemRecord]:
        # the status spelled as a literal (an IntEnum's int): ``status = 8`` (REMOVED, the
        # sign-off's kept copies under ``mirror``) is then read through the kept rows' index
        return await self._items(f"status = {int(status)}", (pair,))

    async def items_unmapped(self, pair: str) -> list[ItemRecord]:
        d = self.sql.dialect
        settled = f"{int(Status.DONE)}, {int(Status.ADOPTED)}"
        mapped = f"SELECT source_folder_id FROM {d.prefix}folders WHERE pair = {d.mark}"
        return await self._items(
            f"status IN ({settled}) AND folder_id NOT IN ({mapped})", (pair, pair)
        )

    async def summary(self, pair: str) -> dict[str, int]:
        return summary(await self._fetchall(self.sql.summary, (pair,)))

    async def pair_totals(self) -> dict[str, dict[str, int]]:
        """What every pass did to each pair, from the item records (``rows.pair_totals``),
        in one statement."""
        await self.flush()
        return pair_totals(await self._fetchall(self.sql.pair_totals))
