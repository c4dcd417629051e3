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
        or v.moved_folders
        or v.pending
        or v.kept_unchecked
    )
    unfound = check.unfound()
    entry: dict[str, Any] = {
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
        # mapped target folders renamed or moved in the target (not at their source's path)
        "moved_folders": len(v.moved_folders),
        "moved_folder_list": v.moved_folders[:MAX_LISTED],
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
        # of them, not checked: their item not asked about in time (``check._kept_own``)
        "kept_unchecked": len(v.kept_unchecked),
        "kept_unchecked_items": v.kept_unchecked[:MAX_LISTED],
        # under mirror: copies of ours of items deleted at the source still in the target,
        # held against the pair (``judge.pending_why`` says why each is there)
        "pending_deletions": len(v.pending),
        "pending_deletion_items": v.pending[:MAX_LISTED],
        # records kept for the next ``--full`` whose copy is nowhere in the copied region
        # (deleted there, or moved out of it by the target's user): told, not held against
        "records_unfound": len(unfound),
        # source folders deleted by their user while the sign-off read them (after its walk,
        # before their listing): judged as folders deleted at the source before it, their
        # copies extra (kept under ``keep``); and target folders deleted there likewise
        "gone_at_source": check.gone[:MAX_LISTED],
        "gone_in_target": check.target_gone[:MAX_LISTED],
        "complete": complete,
    }
    entry["said"] = said(entry)
    return entry


# what keeps a pair's sign-off from being complete, in the order said: (count key, words
# for one, words for more)
SHORTFALL: tuple[tuple[str, str, str], ...] = (
    ("unaccounted", "source item missing from the target", "source items missing from the target"),
    ("failed", "item failed", "items failed"),
    ("stale", "stale copy", "stale copies"),
    ("duplicated", "second copy", "second copies"),
    ("misplaced", "copy in another folder than its source's", "copies in other folders"),
    ("missing_folders", "folder missing", "folders missing"),
    ("leftover_folders", "leftover folder", "leftover folders"),
    (
        "moved_folders",
        "folder renamed or moved in the target",
        "folders renamed or moved in the target",
    ),
    ("pending_deletions", "deletion pending", "deletions pending"),
    (
        "kept_unchecked",
        "kept copy not checked (its item not asked about in time: the next sign-off asks)",
        "kept copies not checked (their items not asked about in time: the next sign-off asks)",
    ),
)
MOVED_BY_USER = "moved in the target by its user"


def pending_words(rows: list[dict[str, Any]], n: int) -> str:
    """``n`` copies of items deleted at the source still in the target, in plain words:
    ``1 deletion pending: the copy was moved in the target by its user; the next
    `copyengine run --full` removes it``."""
    moved = sum(MOVED_BY_USER in str(r.get("why", "")) for r in rows)
    text = f"{n:,} deletion{'' if n == 1 else 's'} pending"
    if moved == n:
        text += (": the copy was" if n == 1 else ": the copies were") + " " + MOVED_BY_USER
    elif moved and len(rows) < n:  # the rows are the first listed (``MAX_LISTED``)
        text += f" ({moved:,} of the {len(rows):,} listed {MOVED_BY_USER})"
    elif moved:
        text += f" ({moved:,} {MOVED_BY_USER})"
    return text + f"; the next `copyengine run --full` removes {'it' if n == 1 else 'them'}"


def said(entry: dict[str, Any]) -> str:
    """A pair's sign-off in plain words (pure): ``complete``, or what keeps it from being
    complete and what removes it (the report, the summary and ``job.finished`` say this)."""
    if entry.get("error"):
        return f"not checked: {entry['error']}"
    return _verdict(entry) + _gone_words(entry)


def _gone_words(entry: dict[str, Any]) -> str:
    """The folders deleted while the sign-off read them, in plain words ("" when none)."""
    out = ""
    for key, where, fate in (
        (
            "gone_at_source",
            "at the source",
            "its copy judged as any folder deleted at the source (kept under deletions = "
            "keep, removed by the next pass under mirror)",
        ),
        ("gone_in_target", "in the target", "its items judged missing"),
    ):
        paths = list(entry.get(key) or [])
        if paths:
            more = f" and {len(paths) - 1:,} more" if len(paths) > 1 else ""
            out += f"; folder {paths[0]}{more} deleted {where} while the sign-off read it: {fate}"
    return out


def _verdict(entry: dict[str, Any]) -> str:
    parts = []
    for key, one, more in SHORTFALL:
        n = int(entry.get(key) or 0)
        if not n:
            continue
        part = f"{n:,} {one if n == 1 else more}"
        if key == "pending_deletions":
            part = pending_words(entry.get("pending_deletion_items") or [], n)
        parts.append(part)
    if not parts:
        text = "complete"
        if entry.get("records_unfound"):
            n = int(entry["records_unfound"])
            text += (
                f"; {n:,} record(s) of items deleted at the source kept for the next --full:"
                " their copies are not in the copied region (deleted there, or moved out of it"
                " by the target's user)"
            )
        return text
    return "not complete: " + ", ".join(parts)


async def sign_off(
    cfg: JobConfig, clients: Clients, store: Store, pairs: tuple[Pair, ...], stats: JobStats
) -> dict[str, Any]:
    await store.flush()
    out: list[dict[str, Any]] = []
    for pair in pairs:
        check = await check_pair(clients.src, clients.dst, pair, store, cfg.sync.deletions)
        out.append(pair_entry(pair, check))
    bad = [e for e in out if not e["complete"]]
    return {
        # every change made at the source before this time was read by the last pass
        "changes_captured_until": stats.pass_info.get("started") or iso(stats.started_wall),
        "complete": not bad,
        "pairs": out,
        # in plain words: what the summary and ``job.finished`` say
        "said": "complete"
        if not bad
        else f"{len(bad):,} of {len(out):,} pair(s) not complete: "
        + "; ".join(f"{e['source']} → {e['target']}: {e['said']}" for e in bad[:5])
        + (f"; {len(bad) - 5:,} more in the report" if len(bad) > 5 else ""),
    }
