"""Pure decisions of a later pass: what a delta row means given the item's state record, what
becomes of an item that left the source, how the source's folder tree changed against the
mapping the state remembers, and the fingerprint that says whether stored links still fit
the job's rules."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from ..config import Pair
from ..folderpath import split
from ..graph.models import Item
from ..state.records import SETTLED, FolderRecord, ItemRecord, Status
from .folders import FolderPlan, TargetRef


class Change(Enum):
    CREATE = "create"  # not in the state: import (create mode) into the mapped folder
    UPDATE = "update"  # changed since its copy: import in update mode onto the target item
    SETTLE = "settle"  # an earlier import's outcome is not known: look in the target first
    UNCHANGED = "unchanged"  # the copy recorded is of this version


def classify_row(item: Item, record: ItemRecord | None) -> Change:
    """What a delta row (an item added or changed at the source) asks of the target.

    A record with a target item is updated onto that item when the source's change key
    differs, or when the last update's outcome was never recorded (an update is safe to
    repeat: it lands on the same target item). A record without a target item is a create
    whose outcome is unknown: settled by search key before anything is resent."""
    if record is None:
        return Change.CREATE
    if record.status in SETTLED and record.change_key == item.change_key and record.target_id:
        return Change.UNCHANGED
    if record.target_id:
        return Change.UPDATE
    if record.status is Status.REMOVED:
        return Change.CREATE
    return Change.SETTLE


class Fate(Enum):
    MOVED = "moved"  # the same search key arrived elsewhere in this pass: drop the old copy
    DELETE = "delete"  # deletions = "mirror": soft-delete the target's copy
    KEEP = "keep"  # deletions = "keep": the copy stays, recorded as deleted at the source
    DEFER = "defer"  # its key has an unsettled copy in this pass: decide next pass


def removal_fate(
    record: ItemRecord,
    arrived: Mapping[bytes, str],
    unsettled: set[bytes],
    deletions: str,
) -> Fate:
    """What becomes of the target's copy of an item that left its source folder.

    ``arrived``: search key -> source id of items copied, adopted or updated in this pass;
    ``unsettled``: search keys of items whose import failed or is unknown in this pass (the
    item may be on its way to another folder: never drop the only copy before that lands)."""
    key = record.search_key
    if key is not None:
        other = arrived.get(key)
        if other is not None and other != record.source_id:
            return Fate.MOVED
        if key in unsettled:
            return Fate.DEFER
    return Fate.DELETE if deletions == "mirror" else Fate.KEEP


def fingerprint(pair: Pair) -> str:
    """A digest of what decides which source items a pair selects and where they go: stored
    links are valid only under the rules that made them (a link made under a narrower rule
    never brings back what that rule excluded)."""
    f, i = pair.folders, pair.items
    rules = {
        "include": [r.pattern for r in f.include],
        "exclude": [r.pattern for r in f.exclude],
        "rename": [[r.pattern.pattern, r.to] for r in f.rename],
        "target_root": f.target_root,
        "map_well_known": f.map_well_known,
        "classes": list(f.classes),
        "skip_hidden": f.skip_hidden,
        "created_after": i.created_after.isoformat() if i.created_after else None,
        "created_before": i.created_before.isoformat() if i.created_before else None,
        "types": list(i.types),
        "max_size": i.max_size,
    }
    text = json.dumps(rules, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def parse_target_path(path: str) -> TargetRef:
    """The inverse of ``TargetRef.path``: ``<inbox>/a/b`` -> anchor inbox, parts (a, b)."""
    anchor = None
    rest = path
    if path.startswith("<") and ">" in path:
        anchor, rest = path[1 : path.index(">")], path[path.index(">") + 1 :]
    return TargetRef(anchor, split(rest) if rest else ())


@dataclass
class FolderChanges:
    """The selected source folders against the stored mapping of this pair's mailbox."""

    same: list[tuple[FolderPlan, FolderRecord]] = field(default_factory=list)
    renamed: list[tuple[FolderPlan, FolderRecord, str]] = field(default_factory=list)
    moved: list[tuple[FolderPlan, FolderRecord]] = field(default_factory=list)
    new: list[FolderPlan] = field(default_factory=list)
    # mapped before, not selected now: deleted at the source (or moved out of the selection)
    gone: list[FolderRecord] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "folders_created": len(self.new),
            "folders_renamed": len(self.renamed),
            "folders_moved": len(self.moved),
            "folders_deleted": len(self.gone),
        }


def reconcile_folders(plans: Iterable[FolderPlan], stored: Iterable[FolderRecord]) -> FolderChanges:
    """Compare where each selected source folder goes now with where it went last pass.

    A folder whose target differs only in its last name (same anchor and parents, after the
    renames of its parents are applied) was renamed: the target folder is renamed, its items
    stay. Any other difference is a move. ``plans`` lists parents before children."""
    by_id = {r.source_folder_id: r for r in stored}
    out = FolderChanges()
    renames: list[tuple[TargetRef, TargetRef]] = []  # (old, new) of renamed target folders
    seen: set[str] = set()
    for plan in plans:
        rec = by_id.get(plan.source.folder.id)
        if rec is None:
            out.new.append(plan)
            continue
        seen.add(rec.source_folder_id)
        old = _after_renames(parse_target_path(rec.target_path), renames)
        new = plan.target
        if old == new:
            out.same.append((plan, rec))
        elif (
            old.anchor == new.anchor
            and len(old.parts) == len(new.parts) > 0
            and old.parts[:-1] == new.parts[:-1]
            and old.parts[-1].casefold() != new.parts[-1].casefold()
        ):
            out.renamed.append((plan, rec, new.parts[-1]))
            renames.append((old, new))
        else:
            out.moved.append((plan, rec))
    out.gone = [r for r in by_id.values() if r.source_folder_id not in seen]
    return out


def _after_renames(ref: TargetRef, renames: list[tuple[TargetRef, TargetRef]]) -> TargetRef:
    for old, new in renames:
        n = len(old.parts)
        if ref.anchor == old.anchor and ref.parts[:n] == old.parts:
            ref = TargetRef(ref.anchor, new.parts + ref.parts[n:])
    return ref
