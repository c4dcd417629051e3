"""The cutover's sign-off: after the last pass, each pair (its primary mailbox, and its
archive when the pair has ``archive = true``) is judged from the target as it is, by the same
check as ``copyengine verify --content`` (``verify.check``): every selected source item
present once, in the target folder the state maps its folder to, with its current version;
no leftover folder in the copied region. What is wrong is listed (ids and paths, capped);
failed items keep the reason the state recorded. Nothing here comes from a counter.

The job does not import this: ``wiring`` hands ``sign_off`` to the job as its
``pipeline.SignOff``."""

from __future__ import annotations

from typing import Any

from ..config import JobConfig, Pair
from ..graph import Clients
from ..report import JobStats, iso
from ..state import Status, Store
from .check import PairCheck, check_pair
from .judge import MAX_LISTED


def pair_entry(pair: Pair, check: PairCheck) -> dict[str, Any]:
    """One pair's sign-off from its check (pure)."""
    v = check.verdict
    failed: list[dict[str, Any]] = []
    unaccounted: list[dict[str, Any]] = []
    for row in v.missing:
        r = check.records.get(row["id"])
        if r is not None and r.status is Status.FAILED:
            failed.append({**row, "reason": r.error or "failed"})
        else:
            why = "no record: never seen by a pass" if r is None else r.status.name.lower()
            unaccounted.append({**row, "state": why})
    complete = check.error is None and not (
        v.missing
        or v.duplicated
        or v.misplaced
        or v.stale
        or v.leftover_folders
        or v.missing_folders
    )
    return {
        "pair": pair.key,
        "source": pair.source,
        "target": pair.target,
        "archive": pair.archive,
        "error": check.error,
        "selected": v.selected,
        "in_target": v.in_target,
        "current": v.content_checked,
        "skipped": dict(check.skipped),
        "failed": len(failed),
        "failed_items": failed[:MAX_LISTED],
        "unaccounted": len(unaccounted),
        "unaccounted_items": unaccounted[:MAX_LISTED],
        "stale": len(v.stale),
        "stale_items": v.stale[:MAX_LISTED],
        "duplicated": len(v.duplicated),
        "duplicated_items": v.duplicated[:MAX_LISTED],
        "misplaced": len(v.misplaced),
        "misplaced_items": v.misplaced[:MAX_LISTED],
        "leftover_folders": len(v.leftover_folders),
        "leftover_folder_list": v.leftover_folders[:MAX_LISTED],
        "missing_folders": len(v.missing_folders),
        "missing_folder_list": v.missing_folders[:MAX_LISTED],
        # copies of present items whose version the state cannot vouch for (adopted copies,
        # items without a record): reported, not held against the sign-off
        "content_unchecked": len(v.content_unchecked),
        # target items of the copied region (folders whose source was deleted included)
        # that are no selected source item's copy; of them, ``kept``: copies of items gone
        # from the source (``deletions = "keep"``)
        "extra_in_target": len(v.extra),
        "extra_items": v.extra[:MAX_LISTED],
        "kept": len(v.kept),
        "kept_deleted_at_source": len(v.kept),
        "complete": complete,
    }


async def sign_off(
    cfg: JobConfig, clients: Clients, store: Store, pairs: tuple[Pair, ...], stats: JobStats
) -> dict[str, Any]:
    await store.flush()
    out: list[dict[str, Any]] = []
    for pair in pairs:
        check = await check_pair(clients.src, clients.dst, pair, store, cfg.sync.deletions)
        out.append(pair_entry(pair, check))
    return {
        # every change made at the source before this time was read by the last pass
        "changes_captured_until": stats.pass_info.get("started") or iso(stats.started_wall),
        "complete": all(e["complete"] for e in out),
        "pairs": out,
    }
