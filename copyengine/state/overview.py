"""What a job's state knows, read once for ``status`` and ``report``: its pairs (with their
items' counts and folders), its passes and, for a job shared by several hosts, its mailbox
groups. From the Store protocol (SQLite or PostgreSQL), never from one process's memory:
what every run and every host did."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..report import MAX_FAILURES_LISTED, hints_said, iso
from . import pairpasses
from .base import Store
from .records import Control, FolderRecord, ItemRecord, Status
from .rows import PAIR_TOTAL_KEYS


class GroupReader(Protocol):
    async def read(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Overview:
    """``pairs`` and ``passes`` with ISO times; ``groups`` as the group table has them."""

    state: str  # where the state is (a path or a URL)
    pairs: list[dict[str, Any]]
    passes: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    # every pair across passes (``migration``): what the customer's report shows
    migration: dict[str, Any] = field(default_factory=dict)
    # the operator's suspend / resume commands (``controls.suspend`` says what they hold)
    controls: list[Control] = field(default_factory=list)
    # where the service gave the job's mailboxes clearly less than ``[limits]``, in each
    # pair's latest pass: the hints a run ended with, read back from the state
    hints: list[str] = field(default_factory=list)

    def total(self, name: str) -> int:
        """Items of every pair counted under ``name`` (``Store.summary``'s names)."""
        return sum(int(p["items"].get(name, 0)) for p in self.pairs)

    def report(self) -> dict[str, Any]:
        """The job's JSON report (``copyengine report``)."""
        groups = [
            {**g, **{k: iso(g[k]) for k in ("started", "heartbeat", "finished")}}
            for g in self.groups
        ]
        return {
            "generated": iso(time.time()),
            "state": self.state,
            "passes": self.passes,
            "totals": {
                "pairs": len(self.pairs),
                "pairs_failed": sum(p["status"] == "failed" for p in self.pairs),
                "copied": self.total("copied"),
                "already_present": self.total("already present"),
                "failed": self.total("failed"),
                "unknown": self.total("unknown"),
                "not_attempted": self.total("not attempted"),
                "deleted_at_source_kept": self.total("deleted at source (kept)"),
                "groups": len(groups),
                "groups_done": sum(g["state"] == "done" for g in groups),
                "groups_failed": sum(g["state"] == "failed" for g in groups),
            },
            "groups": groups,
            "hints": self.hints,
            "pairs": self.pairs,
            "migration": self.migration,
        }


async def _pair(store: Store, p: dict[str, Any]) -> dict[str, Any]:
    folders = [f for f in await store.folders(p["pair"]) if not (f.retired or f.making)]
    return {
        **p,
        "started": iso(p["started"]),
        "finished": iso(p["finished"]),
        "items": await store.summary(p["pair"]),
        "folders": len(folders),
        "folders_with_delta_link": sum(f.delta_link is not None for f in folders),
    }


def _where(folder: FolderRecord | None) -> str:
    if folder is None:
        return ""
    return f"(archive) {folder.source_path}" if folder.scope == "archive" else folder.source_path


def _item(r: ItemRecord, outcome: str, folders: dict[str, FolderRecord]) -> dict[str, Any]:
    """An item as the customer's report lists it: where it is and how large; no content."""
    return {
        "id": r.source_id,
        "folder": _where(folders.get(r.folder_id)),
        "size": r.size,
        "outcome": outcome,
        "reason": r.error or "",
    }


async def _listed(store: Store, pair: str, totals: dict[str, int]) -> list[dict[str, Any]]:
    """The pair's items that failed or wait to be settled (at most ``MAX_FAILURES_LISTED``
    of each), read only when it has some."""
    if not totals["failed"] and not totals["unknown"]:
        return []
    folders = {f.source_folder_id: f for f in await store.folders(pair)}
    failed = (await store.items_with_status(pair, Status.FAILED))[:MAX_FAILURES_LISTED]
    unsettled = (await store.unsettled(pair))[:MAX_FAILURES_LISTED]
    return [_item(r, "failed", folders) for r in failed] + [
        _item(r, "unknown", folders) for r in unsettled
    ]


async def _migration_pair(
    store: Store, p: dict[str, Any], totals: dict[str, int]
) -> dict[str, Any]:
    """One pair across every pass: its counts from the item records and its items that
    failed or wait to be settled."""
    return {
        "pair": p["pair"],
        "source": p["source"],
        "target": p["target"],
        "status": p["status"],
        "error": p["error"],
        "started": iso(p["started"]),
        "finished": iso(p["finished"]),
        **totals,
        # every item the job took on (skipped ones are not recorded); kept ones left
        "selected": sum(totals[k] for k in ("current", "failed", "unknown", "not_attempted")),
        "items": await _listed(store, p["pair"], totals),
    }


async def migration(store: Store) -> dict[str, Any]:
    """The job across its passes, from an open store: every pair (``_migration_pair``) and
    every pass (ISO times)."""
    totals = await store.pair_totals()
    none = dict.fromkeys(PAIR_TOTAL_KEYS, 0)
    pairs = [
        await _migration_pair(store, p, totals.get(p["pair"], none)) for p in await store.pairs()
    ]
    passes = await store.passes()
    for ps in passes:
        ps["started"], ps["finished"] = iso(ps["started"]), iso(ps["finished"])
    return {"pairs": pairs, "passes": passes}


async def overview(store: Store, where: str, groups: GroupReader | None = None) -> Overview:
    """Opens ``store`` (not exclusive: safe beside a run), reads it, closes it."""
    await store.open()
    try:
        pairs = [await _pair(store, p) for p in await store.pairs()]
        across = await migration(store)
        controls = await store.controls()
        advice, budgets = await store.pair_said()
    finally:
        await store.close()
    passes = across["passes"]
    read = await groups.read() if groups is not None else []
    hints = hints_said(a for p in pairs for a in advice.get(p["pair"], ()))
    for p in pairs:
        _budget(p, budgets.get(p["pair"]))
    return Overview(where, pairs, passes, read, across, controls, hints)


def _budget(entry: dict[str, Any], said: tuple[int, dict[str, Any]] | None) -> None:
    """A pair's budget in effect as its latest row said it (``pairpasses.latest_budget``):
    per mailbox, the limits the service's 429s cut, as ``job.finished`` and the report
    say them; with the pass it is of (a running pair: its last pass that ended)."""
    entry["budget_in_effect"] = said[1] if said is not None else None
    entry["budget_pass"] = said[0] if said is not None else None


async def pair_statistics(store: Store, pair: str, source: str, target: str) -> dict[str, Any]:
    """One pair across passes, from an open store (``status --pair``, like Exchange's
    Get-MoveRequestStatistics): a line per pass (its runs added up), the totals, and what
    the item records say of the pair now."""
    rows = await store.pair_passes(pair)
    lines = pairpasses.pass_lines(rows)
    passes = [line.as_dict() for line in lines]
    for line in passes:
        line["started"] = iso(line["started"])
    known = {p["pair"]: p for p in await store.pairs()}
    row = known.get(pair, {})
    out = {
        "pair": pair,
        "source": source,
        "target": target,
        "status": row.get("status", "not started"),
        "error": row.get("error"),
        "passes": passes,
        "totals": pairpasses.totals(lines),
        "now": await store.summary(pair),
        "hints": hints_said(pairpasses.latest_hints((r.pass_number, r.hints) for r in rows)),
    }
    _budget(out, pairpasses.latest_budget((r.pass_number, r.budget) for r in rows))
    return out
