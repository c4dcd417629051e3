"""What every Store implementation turns its rows into the same way: item records, the
``summary`` counts, the passes, and the refusal of another job's state."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..errors import ForeignState
from .records import ItemRecord, Status

# the columns of an item record, in ``item_record``'s order
ITEM_COLUMNS = (
    "source_id, folder_id, status, search_key, target_folder_id, target_id, "
    "source_change_key, target_change_key, size, error, seen, known"
)
PASS_COLUMNS = "pass, kind, started, finished, status, changes"


class FATE:
    """What an item's last write in its pass (``pass`` column) did to the target, kept on
    the record itself so that a pass's counters are computed from the records
    (``pass_counts``), whatever happened to the processes that wrote them.

    - CREATED: a DONE outcome that gave the item a new target copy; or an ADOPTED one (its
      copy found by search key) after an import of ours may have gone out: the item's record
      was INTENT from another writer (a segment killed, or cut off by an outage), or UNKNOWN,
      or MAYBE_SENT.
    - UPDATED: a DONE outcome onto the same target copy (an update in place).
    - MAYBE_SENT: an intent recorded over an unsettled one (INTENT or UNKNOWN), or an UNKNOWN
      outcome: an import may have landed; a later ADOPTED is then a copy of ours.
    - 0: nothing (adopted while listing a target that had the item already, failed,
      not attempted, removed).

    An outcome's fate is decided by the store from the record as it was before the outcome,
    in the statement that writes it (no read, no extra round trip)."""

    NONE = 0
    CREATED = 1
    UPDATED = 2
    MAYBE_SENT = 3


# the statuses of items with no copy of this pass (or no current copy), as both counters
# name them
LEFT_AS = {
    Status.FAILED: "failed",
    Status.INTENT: "unknown",
    Status.UNKNOWN: "unknown",
    Status.REMOVED: "kept",
    Status.PENDING: "not_attempted",
}

PASS_COUNT_KEYS = ("created", "updated", "failed", "unknown", "kept", "not_attempted")


def pass_counts(rows: Iterable[tuple[Any, Any, Any]]) -> dict[str, int]:
    """(status, fate, count) rows of one pass's records -> the pass's counters."""
    out = dict.fromkeys(PASS_COUNT_KEYS, 0)
    for status, fate, n in rows:
        s, f, k = Status(status), int(fate), int(n)
        if s in (Status.DONE, Status.ADOPTED) and f == FATE.CREATED:
            out["created"] += k
        elif s is Status.DONE and f == FATE.UPDATED:
            out["updated"] += k
        elif s in LEFT_AS:
            out[LEFT_AS[s]] += k
    return out


PAIR_TOTAL_KEYS = (
    "copied",
    "current",
    "already_present",
    "failed",
    "unknown",
    "not_attempted",
    "kept",
)


def pair_totals(rows: Iterable[tuple[Any, Any, Any, Any]]) -> dict[str, dict[str, int]]:
    """(pair, status, fate, count) rows of the records, over every pass -> per pair what the
    job did to it: ``copied`` (a copy of ours in the target: imported, or an import of ours
    found there by settlement), ``current`` (copied or already present: the target has the
    item as the last pass left it), ``already_present`` (found there before we sent it),
    ``failed``, ``unknown`` (to settle), ``not_attempted``, ``kept`` (deleted at the source,
    the copy kept)."""
    pairs: dict[str, dict[str, int]] = {}
    for pair, status, fate, n in rows:
        out = pairs.setdefault(str(pair), dict.fromkeys(PAIR_TOTAL_KEYS, 0))
        s, f, k = Status(status), int(fate), int(n)
        if s is Status.DONE or (s is Status.ADOPTED and f == FATE.CREATED):
            out["copied"] += k
            out["current"] += k
        elif s is Status.ADOPTED:
            out["already_present"] += k
            out["current"] += k
        elif s in LEFT_AS:
            out[LEFT_AS[s]] += k
    return pairs


SUMMARY_NAMES = {
    Status.DONE: "copied",
    Status.ADOPTED: "already present",
    Status.FAILED: "failed",
    Status.INTENT: "unknown",  # an import was (about to be) sent: settled next run
    Status.UNKNOWN: "unknown",
    Status.PENDING: "not attempted",
    Status.REMOVED: "deleted at source (kept)",
}


def item_record(row: tuple[Any, ...]) -> ItemRecord:
    key = bytes(row[3]) if row[3] is not None else None
    return ItemRecord(
        row[0],
        row[1],
        Status(row[2]),
        key,
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        row[11],
    )


def summary(rows: Iterable[tuple[Any, Any, Any]]) -> dict[str, int]:
    """(status, fate, count) rows -> counts by the names ``status`` and the report use. An
    import of ours that settlement found in the target (adopted, fate created) is copied, as
    ``pair_totals`` counts it: ``status`` and the report's totals said "already present" for
    it while the report's pairs said "copied"."""
    out: dict[str, int] = {}
    for s, f, n in rows:
        st = Status(s)
        name = "copied" if st is Status.ADOPTED and int(f) == FATE.CREATED else SUMMARY_NAMES[st]
        out[name] = out.get(name, 0) + int(n)
    return out


def pass_of(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "pass": row[0],
        "kind": row[1],
        "started": row[2],
        "finished": row[3],
        "status": row[4],
        "changes": json.loads(row[5]) if row[5] else {},
    }


def check_identity(where: str, stored_json: str, identity: dict[str, str], fix: str) -> bool:
    """Refuse another job's state (``stored_json``: the identity the state recorded) with
    ``ForeignState``, naming both jobs and how to move on (``fix``: a state of one's own).
    True when the state is this job's as an earlier version recorded it (no name: the job
    file's name was not part of it then) and is to record ``identity`` now."""
    try:
        stored = json.loads(stored_json)
    except ValueError:
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    if stored == identity:
        return False
    same_tenants = bool(stored) and all(
        stored.get(k) == v for k, v in identity.items() if k != "name"
    )
    if same_tenants and not stored.get("name"):
        return True

    def show(d: dict[str, str]) -> str:
        return f"{d.get('name')!r} ({d.get('source')} -> {d.get('target')})"

    take_over = (
        f", or set [job] name = {json.dumps(stored.get('name'))} in this job's file to take "
        "this one over"
        if same_tenants
        else ""
    )
    raise ForeignState(
        f"state store {where} belongs to another job, {show(stored) if stored else 'unknown'}"
        f"; this job is {show(identity)}. {fix}{take_over}"
    )
