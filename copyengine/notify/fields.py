"""Each event's fields from the job's accounts (pure): plain JSON values, never a secret
(errors come redacted from ``failures.classify``; they are redacted here once more)."""

from __future__ import annotations

import re
from typing import Any

from ..exitcodes import HELP, ExitCode
from ..report import JobStats, PairStats
from ..secrets import redact

# the exit codes' meanings as the command's help says them ("  0    every selected …")
MEANINGS = {
    int(m.group(1)): m.group(2).strip() for m in re.finditer(r"^\s+(\d+)\s+(.+)$", HELP, re.M)
}
# a sign-off's pairs listed in an event: the incomplete ones first, at most this many
MAX_PAIRS_LISTED = 50
# what a sign-off entry says of a pair, in an event (counts; the report has the items)
SIGNOFF_COUNTS = (
    "selected",
    "in_target",
    "failed",
    "unaccounted",
    "duplicated",
    "misplaced",
    "stale",
    "missing_folders",
    "leftover_folders",
    "moved_folders",
    "pending_deletions",
    "kept_unchecked",
)


def outcome(code: ExitCode) -> dict[str, Any]:
    return {
        "outcome": code.name.lower(),
        "exit_code": int(code),
        "meaning": MEANINGS.get(int(code), ""),
    }


def pass_finished(stats: JobStats) -> dict[str, Any]:
    t = stats.totals()
    return {
        "pass": stats.pass_info.get("number"),
        "kind": stats.pass_info.get("kind"),
        **outcome(stats.exit_code()),
        "pairs": t["pairs"],
        "pairs_failed": t["pairs_failed"],
        "copied": t["copied"],
        "copied_bytes": t["copied_bytes"],
        "failed": t["failed"],
        "unknown": t["unknown"],
        "not_done": t["not_done"],
        "changes": stats.changes(),
        "duration_s": round(stats.duration(), 1),
        "stop_reason": stats.stop_reason,
        "error": redact(stats.fatal) if stats.fatal else None,
    }


def shared_pass_finished(summary: dict[str, Any]) -> dict[str, Any]:
    """A shared job's pass (``GroupStore.finish_pass_if_done``): its groups done or failed."""
    groups = summary.get("groups", {})
    failed = int(groups.get("failed", 0))
    changes = summary.get("changes", {})
    code = ExitCode.ITEMS_FAILED if failed or changes.get("failed") else ExitCode.OK
    return {
        "pass": summary.get("pass"),
        "kind": summary.get("kind"),
        **outcome(code),
        "groups": sum(int(n) for n in groups.values()),
        "groups_failed": failed,
        "copied": changes.get("created", 0),
        "failed": changes.get("failed", 0),
        "unknown": changes.get("unknown", 0),
        "changes": changes,
    }


def pair_failed(key: str, p: PairStats) -> dict[str, Any]:
    return {
        "pair": key,
        "source": p.source,
        "target": p.target,
        "error": redact(p.error or ""),
        "error_type": p.error_code,
        "copied": p.total("copied"),
        "failed": p.failed,
    }


def bad_item_limit(key: str, p: PairStats, limit: int | None) -> dict[str, Any]:
    return {
        "pair": key,
        "source": p.source,
        "target": p.target,
        "limit": limit,
        "failed": p.failed,
        "copied": p.total("copied"),
    }


def signed_off(stats: JobStats) -> dict[str, Any]:
    so = stats.sign_off or {}
    entries = list(so.get("pairs", []))
    entries.sort(key=lambda e: bool(e.get("complete")))  # the incomplete first
    listed = [
        {
            "pair": e.get("pair"),
            "complete": bool(e.get("complete")),
            **{k: e[k] for k in SIGNOFF_COUNTS if e.get(k)},
            **({"error": redact(str(e["error"]))} if e.get("error") else {}),
        }
        for e in entries[:MAX_PAIRS_LISTED]
    ]
    return {
        "pass": stats.pass_info.get("number"),
        "complete": bool(so.get("complete")),
        "pairs_complete": sum(bool(e.get("complete")) for e in entries),
        "pairs_incomplete": sum(not e.get("complete") for e in entries),
        "changes_captured_until": so.get("changes_captured_until"),
        "pairs": listed,
        "pairs_not_listed": max(0, len(entries) - MAX_PAIRS_LISTED),
    }


def progress(stats: JobStats) -> tuple[tuple[int, ...], bool]:
    """What counts as progress (items copied or listed, bytes copied), and whether a pair
    is unfinished (pending or running)."""
    counters = (
        stats.total("copied") + stats.total("updated"),
        stats.total("copied_bytes"),
        stats.total("source_items"),
    )
    unfinished = any(p.status in ("pending", "running") for p in stats.pairs.values())
    return counters, unfinished
