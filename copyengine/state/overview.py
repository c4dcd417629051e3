"""What a job's state knows, read once for ``status`` and ``report``: its pairs (with their
items' counts and folders), its passes and, for a job shared by several hosts, its mailbox
groups. From the Store protocol (SQLite or PostgreSQL), never from one process's memory:
what every run and every host did."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from ..report import iso
from .base import Store


class GroupReader(Protocol):
    async def read(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Overview:
    """``pairs`` and ``passes`` with ISO times; ``groups`` as the group table has them."""

    state: str  # where the state is (a path or a URL)
    pairs: list[dict[str, Any]]
    passes: list[dict[str, Any]]
    groups: list[dict[str, Any]]

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
            "pairs": self.pairs,
        }


async def _pair(store: Store, p: dict[str, Any]) -> dict[str, Any]:
    folders = [f for f in await store.folders(p["pair"]) if not f.retired]
    return {
        **p,
        "started": iso(p["started"]),
        "finished": iso(p["finished"]),
        "items": await store.summary(p["pair"]),
        "folders": len(folders),
        "folders_with_delta_link": sum(f.delta_link is not None for f in folders),
    }


async def overview(store: Store, where: str, groups: GroupReader | None = None) -> Overview:
    """Opens ``store`` (not exclusive: safe beside a run), reads it, closes it."""
    await store.open()
    try:
        pairs = [await _pair(store, p) for p in await store.pairs()]
        passes = await store.passes()
    finally:
        await store.close()
    for ps in passes:
        ps["started"], ps["finished"] = iso(ps["started"]), iso(ps["finished"])
    return Overview(where, pairs, passes, await groups.read() if groups is not None else [])
