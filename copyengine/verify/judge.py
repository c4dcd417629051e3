"""The judge of a pair's copy (pure): ``judge`` takes what was listed of one mailbox of a
pair (the selected source folders with their selected items and the target folder each maps
to, every target folder of the copied region with its items, and the state's item records
when there is a state) and says, per selected source item, whether its copy is present once,
in its mapped folder, with its current version; which target items are not copies of a
selected source item (extra, and among them the copies kept of items deleted at the source);
and which target folders of the region are leftovers. The listing around it is
``verify.check``.

A copy is current when the source item's change key is the one the state recorded for the
version copied (``ItemRecord.change_key``) and the target copy's change key is the one the
import or update returned (``ItemRecord.target_change_key``); else it is stale (changed at
the source after the copy, or edited in the target)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..graph import Item
from ..plan import apart
from ..state import SETTLED, ItemRecord, Status

MAX_LISTED = 100


# -- what was listed --------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceFolder:
    """A selected source folder, its selected items, and the target folder it maps to (the
    state's folder record, else placement by path; None: no such target folder)."""

    id: str
    path: str
    target_id: str | None
    target_path: str
    items: Sequence[Item] = ()
    # where the folder belongs in the target (its source path placed), when that differs
    # from ``target_path``, the mapped folder's: renamed or moved there by the target's user
    placed_path: str | None = None


@dataclass(frozen=True)
class TargetFolder:
    """A target folder of the copied region with its items. ``allowed``: never a leftover
    (a well-known folder, or an ancestor of a mapped folder)."""

    id: str
    path: str
    items: Sequence[Item] = ()
    allowed: bool = False


# what a verdict lists, kind by kind (each a list of ids or rows)
KINDS = (
    "missing",
    "misplaced",
    "duplicated",
    "stale",
    "extra",
    "kept",
    "leftover_folders",
    "missing_folders",
    "content_unchecked",
    "pending",
    "moved_folders",
    "kept_unchecked",
)


# -- what was found ---------------------------------------------------------------------------
@dataclass
class FolderCheck:
    """One selected source folder and its mapped target folder."""

    source_path: str
    target_path: str
    expected: int = 0  # selected source items
    found: int = 0  # items in the mapped target folder
    missing: list[str] = field(default_factory=list)  # source ids without a copy
    extra: list[str] = field(default_factory=list)  # target ids here, no selected source
    kept: list[str] = field(default_factory=list)  # of ``extra``: copies kept by the policy
    misplaced: list[str] = field(default_factory=list)  # source ids whose copy is elsewhere
    misplaced_in: list[str] = field(default_factory=list)  # target ids here, belonging elsewhere
    duplicated: list[str] = field(default_factory=list)  # target ids here: a second copy
    stale: list[str] = field(default_factory=list)  # source ids whose copy is not current
    source_folder_id: str = ""
    target_folder_id: str | None = None
    skipped: Counter[str] = field(default_factory=Counter)  # not selected, by reason

    @property
    def unexpected(self) -> list[str]:
        """The extra target ids not kept by ``deletions = "keep"``."""
        kept = set(self.kept)
        return [i for i in self.extra if i not in kept]

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.unexpected
            or self.misplaced
            or self.misplaced_in
            or self.duplicated
            or self.stale
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_path": self.source_path,
            "target_path": self.target_path,
            "expected": self.expected,
            "found": self.found,
            "missing": len(self.missing),
            "extra": len(self.unexpected),
            "kept": len(self.kept),
            "misplaced": len(self.misplaced),
            "duplicated": len(self.duplicated),
            "stale": len(self.stale),
            "missing_ids": self.missing[:MAX_LISTED],
            "extra_ids": self.unexpected[:MAX_LISTED],
            "kept_ids": self.kept[:MAX_LISTED],
            "misplaced_ids": self.misplaced[:MAX_LISTED],
            "duplicated_ids": self.duplicated[:MAX_LISTED],
            "stale_ids": self.stale[:MAX_LISTED],
        }


@dataclass
class Verdict:
    """A mailbox (or a whole pair: ``merge``) judged. Lists hold rows for the report: ids
    and folder paths."""

    folders: list[FolderCheck] = field(default_factory=list)
    selected: int = 0
    in_target: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)
    misplaced: list[dict[str, Any]] = field(default_factory=list)
    duplicated: list[dict[str, Any]] = field(default_factory=list)
    stale: list[dict[str, Any]] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)  # not a selected item's copy
    kept: list[dict[str, Any]] = field(default_factory=list)  # of ``extra``: source gone
    leftover_folders: list[dict[str, Any]] = field(default_factory=list)
    missing_folders: list[dict[str, Any]] = field(default_factory=list)
    content_checked: int = 0  # copies whose version was compared
    content_unchecked: list[dict[str, Any]] = field(default_factory=list)  # no usable record
    # of ``extra``, under ``mirror``: copies the state made of items gone from the source,
    # still in the target (their deletion pending: not applied yet, or the copy was moved
    # in the target by its user, so a pass that did not list it in full could not find it)
    pending: list[dict[str, Any]] = field(default_factory=list)
    # mapped target folders not at their source folder's path (renamed or moved in the
    # target by its user; the source wins: a full pass remakes them where they belong)
    moved_folders: list[dict[str, Any]] = field(default_factory=list)
    # of ``kept``: copies kept of items left out beside a selected copy of their key whose
    # own item the sign-off could not ask about in time (``check._kept_own``): not checked
    kept_unchecked: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unexpected(self) -> list[dict[str, Any]]:
        """The extra target items not kept by ``deletions = "keep"``: what ``verify`` calls
        extra (a copy kept of an item deleted at the source is expected in the target)."""
        kept = {r["id"] for r in self.kept}
        return [r for r in self.extra if r["id"] not in kept]

    def merge(self, other: Verdict) -> None:
        self.folders += other.folders
        self.selected += other.selected
        self.in_target += other.in_target
        self.content_checked += other.content_checked
        for name in KINDS:
            getattr(self, name).extend(getattr(other, name))


# what the judge works with: the selected source items, and the target region indexed
Wanted = list[tuple[SourceFolder, Item]]


@dataclass
class _Region:
    """The target region indexed (each item with its folder, items by search key, keyless
    item ids by folder) and the matching made in it (target id -> source id, and back)."""

    where: dict[str, tuple[Item, TargetFolder]] = field(default_factory=dict)
    by_key: dict[bytes, list[str]] = field(default_factory=lambda: defaultdict(list))
    keyless: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    claimed: dict[str, str] = field(default_factory=dict)
    match: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, target: Sequence[TargetFolder]) -> _Region:
        r = cls()
        for tf in target:
            for it in tf.items:
                r.where[it.id] = (it, tf)
                if it.search_key is None:
                    r.keyless[tf.id].append(it.id)
                else:
                    r.by_key[it.search_key].append(it.id)
        return r

    def claim(self, sid: str, tid: str) -> None:
        self.claimed[tid] = sid
        self.match[sid] = tid


@dataclass
class _Folders:
    """The verdict's folder checks, by source folder id and by mapped target folder id."""

    checks: dict[str, FolderCheck] = field(default_factory=dict)
    by_target: dict[str, FolderCheck] = field(default_factory=dict)


def judge(
    source: Sequence[SourceFolder],
    target: Sequence[TargetFolder],
    records: Mapping[str, ItemRecord] | None = None,
    deletions: str = "keep",
    content: bool = True,
    own: frozenset[str] = frozenset(),
    began: Mapping[str, int] | None = None,
) -> Verdict:
    """The verdict on one mailbox of a pair (pure). ``records``: the state's item records by
    source id (None: no state; then no content check, and extra items cannot be told kept,
    unless their folder's source was deleted). ``content``: compare versions (with records).
    ``own``: target ids of copies kept of items left out that are still at the source under
    their ids (``check._kept_own`` asked): each its own item's, never a second copy.
    ``began``: when the round of each source folder's stored link began (``plan.known_at``:
    a kept copy proven another item's than its twin's is no second copy, review R1b)."""
    v = Verdict()
    region = _Region.of(target)
    wanted: Wanted = [(sf, it) for sf in source for it in sf.items]
    _match(wanted, region, records)
    folders = _folder_checks(source, target, v)
    for sf, it in wanted:
        _judge_selected(v, sf, it, region, folders, records if content else None)
    kept_in = _judge_unclaimed(v, target, region, wanted, folders, records, deletions, own, began)
    _leftover_folders(v, target, folders, kept_in, deletions)
    return v


def _match(wanted: Wanted, region: _Region, records: Mapping[str, ItemRecord] | None) -> None:
    """Pair each selected source item with at most one target item, most certain first."""
    where, claimed = region.where, region.claimed
    # 1: the copy the state recorded, when it is still there
    if records is not None:
        for _sf, it in wanted:
            rec = records.get(it.id)
            tid = rec.target_id if rec is not None else None
            same = tid in where and (it.search_key in (None, where[tid][0].search_key))
            if tid and same and tid not in claimed:
                region.claim(it.id, tid)
    # 2: by search key in the mapped folder, 3: anywhere in the region
    for anywhere in (False, True):
        for sf, it in wanted:
            if it.id in region.match or it.search_key is None:
                continue
            for tid in region.by_key.get(it.search_key, ()):
                if tid not in claimed and (anywhere or where[tid][1].id == sf.target_id):
                    region.claim(it.id, tid)
                    break
    # 4: keyless items by count within the mapped folder
    for sf, it in wanted:
        if it.id in region.match or it.search_key is not None or sf.target_id is None:
            continue
        for tid in region.keyless.get(sf.target_id, ()):
            if tid not in claimed:
                region.claim(it.id, tid)
                break


def _folder_checks(
    source: Sequence[SourceFolder], target: Sequence[TargetFolder], v: Verdict
) -> _Folders:
    """One check per selected source folder (into ``v``); a folder without a target folder
    is a missing folder."""
    out = _Folders()
    for sf in source:
        fc = FolderCheck(sf.path, sf.target_path, source_folder_id=sf.id)
        fc.target_folder_id = sf.target_id
        fc.expected = len(sf.items)
        out.checks[sf.id] = fc
        if sf.target_id is not None:
            out.by_target.setdefault(sf.target_id, fc)
            if sf.placed_path is not None and sf.placed_path != sf.target_path:
                row = {"folder": sf.path, "found": sf.target_path, "expected": sf.placed_path}
                v.moved_folders.append(row)
        else:
            v.missing_folders.append({"folder": sf.path, "target_path": sf.target_path})
        v.folders.append(fc)
    for tf in target:
        if tf.id in out.by_target:
            out.by_target[tf.id].found = len(tf.items)
    return out


def _judge_selected(
    v: Verdict,
    sf: SourceFolder,
    it: Item,
    region: _Region,
    folders: _Folders,
    records: Mapping[str, ItemRecord] | None,
) -> None:
    """One selected source item: missing, or present (misplaced or not; and with a state,
    current, stale, or not to be told)."""
    fc = folders.checks[sf.id]
    v.selected += 1
    tid = region.match.get(it.id)
    if tid is None:
        fc.missing.append(it.id)
        v.missing.append({"id": it.id, "folder": sf.path})
        return
    v.in_target += 1
    copy, tf = region.where[tid]
    if tf.id != sf.target_id:
        fc.misplaced.append(it.id)
        if tf.id in folders.by_target:
            folders.by_target[tf.id].misplaced_in.append(tid)
        v.misplaced.append(
            {
                "id": it.id,
                "target_id": tid,
                "folder": sf.path,
                "expected": sf.target_path,
                "found_in": tf.path,
            }
        )
    if records is None:
        return
    why = _staleness(it, copy, records.get(it.id))
    if why is None:
        v.content_checked += 1
    elif why == "":
        v.content_unchecked.append({"id": it.id, "target_id": tid, "folder": sf.path})
    else:
        fc.stale.append(it.id)
        v.stale.append({"id": it.id, "target_id": tid, "folder": sf.path, "reason": why})


def _gone(
    records: Mapping[str, ItemRecord] | None, selected: set[str]
) -> tuple[dict[str, ItemRecord], dict[bytes, ItemRecord]]:
    """The records of the copies the state made of items no longer selected at the source,
    by target id and by search key (failed items made none)."""
    ids: dict[str, ItemRecord] = {}
    keys: dict[bytes, ItemRecord] = {}
    for rec in (records or {}).values():
        if rec.source_id in selected or rec.status is Status.FAILED:
            continue
        if rec.target_id:
            ids[rec.target_id] = rec
        if rec.search_key is not None:
            keys[rec.search_key] = rec
    return ids, keys


def pending_why(rec: ItemRecord, copy_id: str, folder_id: str) -> str:
    """Why a copy of an item gone from the source is still in the target (plain words)."""
    if rec.target_id == copy_id and rec.target_folder_id == folder_id:
        return "deleted at the source; its copy's removal not applied yet"
    return (
        "deleted at the source; its copy was moved in the target by its user, so a pass "
        "that did not list the target in full could not find it"
    )


def _judge_unclaimed(
    v: Verdict,
    target: Sequence[TargetFolder],
    region: _Region,
    wanted: Wanted,
    folders: _Folders,
    records: Mapping[str, ItemRecord] | None,
    deletions: str,
    own: frozenset[str],
    began: Mapping[str, int] | None = None,
) -> Counter[str]:
    """Target items that are no selected item's copy: second copies, kept, extra. Returns
    the number kept per target folder."""
    selected_keys = {it.search_key for _, it in wanted if it.search_key is not None}
    gone_ids, gone_keys = _gone(records, {it.id for _, it in wanted})
    present = {it.id for tf in target for it in tf.items}
    stands = _standing(target, region, selected_keys, gone_ids)
    if deletions != "keep":  # under ``mirror`` only the keys of copies ``keep`` kept before
        stands = {k: v for k, v in stands.items() if _kept_before(gone_keys.get(k))}
    proven = _proven_apart(wanted, records, gone_ids, stands, began, deletions)
    kept_in: Counter[str] = Counter()
    for tf in target:
        fc_here = folders.by_target.get(tf.id)
        for it in tf.items:
            if it.id in region.claimed:
                continue
            # of an item deleted at the source, a copy other than its recorded one while
            # that one is here: a second copy (the target's user moved the copy, the item
            # was copied again, then deleted; hunt2: two kept, signed off complete)
            gone = gone_keys.get(it.search_key) if it.search_key is not None else None
            second = (
                gone is not None
                and it.id not in gone_ids
                and gone.target_id is not None
                and gone.target_id in present
            )
            # under keep, of one gone item's copies (one search key) all but the one that stands
            # for it (``_standing``; each kept one of its own too: soak seed 13011 keep)
            spare = it.search_key is not None and stands.get(it.search_key, it.id) != it.id
            twin = it.search_key is not None and it.search_key in selected_keys
            if it.id in own or it.id in proven:  # its item's own kept copy (R1, item filters;
                spare = twin = False  # R1b: proven another item's than its twin's): kept
            if second or spare or twin:
                if second and gone is not None:
                    owner: str | None = gone.source_id
                elif spare:
                    assert it.search_key is not None
                    one = gone_ids.get(stands[it.search_key]) or gone_keys.get(it.search_key)
                    owner = one.source_id if one is not None else None
                else:
                    assert it.search_key is not None
                    owners = (region.claimed.get(t) for t in region.by_key[it.search_key])
                    owner = next((s for s in owners if s), None)
                v.duplicated.append({"id": it.id, "source_id": owner, "folder": tf.path})
                if fc_here is not None:
                    fc_here.duplicated.append(it.id)
                continue
            row = {"id": it.id, "folder": tf.path}
            v.extra.append(row)
            if fc_here is not None:
                fc_here.extra.append(it.id)
            # a copy kept of an item deleted at the source: the state knows it, or its
            # folder is no selected folder's copy any more (its source folder was deleted)
            ours = gone_ids.get(it.id) or (
                gone_keys.get(it.search_key) if it.search_key is not None else None
            )
            orphan = tf.id not in folders.by_target and not tf.allowed
            # a copy a pass under ``keep`` kept (its record ``REMOVED``) stays kept after a
            # switch to ``mirror``: the policy applies to the deletions a pass sees (a lost
            # copy's note, a record of no folder, is no kept copy: ``check._lost``)
            kept_before = _kept_before(ours)
            if deletions == "mirror" and ours is not None and not kept_before:
                why = pending_why(ours, it.id, tf.id)
                v.pending.append({**row, "source_id": ours.source_id, "why": why})
            if (deletions == "keep" and (ours is not None or orphan)) or kept_before:
                v.kept.append(row)
                kept_in[tf.id] += 1
                if fc_here is not None:
                    fc_here.kept.append(it.id)
    return kept_in


def _proven_apart(
    wanted: Wanted,
    records: Mapping[str, ItemRecord] | None,
    gone_ids: Mapping[str, ItemRecord],
    stands: Mapping[bytes, str],
    began: Mapping[str, int] | None,
    deletions: str,
) -> set[str]:
    """The copies the state recorded for items gone from the source (by target id) proven
    another item's (``plan.apart``) than each selected item of their search key and than
    the copy that stands for their key: a user's copy of a message deleted at the source
    beside its live twin (or deleted with it) keeps its own copy, which is no second copy
    (review R1b). A pass killed before it recorded the departure: its folder's link says.
    Only a copy that stays: under ``mirror`` one not kept before the switch is a deletion
    pending, or a second copy, as before (soak seed 22306 keep, mirror from r1: a copy the
    oracle counts duplicated was named a pending deletion at a killed cutover)."""
    if records is None or began is None:
        return set()
    by_key: dict[bytes, list[ItemRecord | None]] = defaultdict(list)
    for _, it in wanted:
        if it.search_key is not None:
            by_key[it.search_key].append(records.get(it.id))
    out: set[str] = set()
    for tid, rec in gone_ids.items():
        if rec.search_key is None or (deletions != "keep" and not _kept_before(rec)):
            continue
        others = list(by_key.get(rec.search_key, ()))
        standing = stands.get(rec.search_key)
        if standing is not None and standing != tid:
            others.append(gone_ids.get(standing))
        if all(o is not None and apart(rec, o, began) for o in others):
            out.add(tid)
    return out


def _kept_before(rec: ItemRecord | None) -> bool:
    """A record of a copy a pass under ``keep`` kept (``REMOVED``): kept still after the
    job's switch to ``mirror`` (the policy applies to the deletions a pass sees). A lost
    copy's note (``check._lost``: no source folder) is none."""
    return rec is not None and rec.status is Status.REMOVED and bool(rec.folder_id)


def _standing(
    target: Sequence[TargetFolder],
    region: _Region,
    selected_keys: set[bytes],
    gone_ids: Mapping[str, ItemRecord],
) -> dict[bytes, str]:
    """Under ``keep``, the copy that stands for each item gone from the source, by search
    key (what identifies the item, as in the matching; a move or a restore at the source
    keeps it, under a new id): of the copies of the key that no selected item claimed, the
    first one the state recorded as a copy of an item gone, else the first listed. The
    others are second copies, also when the state recorded each one for a source id of its
    own (the item restored, then deleted again: two records of one item; soak seed 13011
    keep, two kept copies of one soft-deleted item signed off complete)."""
    out: dict[bytes, str] = {}
    for tf in target:
        for it in tf.items:
            key = it.search_key
            if key is None or key in selected_keys or it.id in region.claimed:
                continue
            if key not in out or (it.id in gone_ids and out[key] not in gone_ids):
                out[key] = it.id
    return out


def _leftover_folders(
    v: Verdict,
    target: Sequence[TargetFolder],
    folders: _Folders,
    kept_in: Counter[str],
    deletions: str,
) -> None:
    """Target folders of the region that no selected folder maps to and that hold nothing
    kept (nor a folder that does)."""
    kept_paths = [tf.path for tf in target if kept_in[tf.id]]
    for tf in target:
        if tf.id in folders.by_target or tf.allowed:
            continue
        # (``kept_in`` counts under ``mirror`` only the copies a pass under ``keep`` kept)
        if kept_in[tf.id] or any(p.startswith(tf.path + "/") for p in kept_paths):
            continue  # holds copies kept of items deleted at the source, or their folders
        v.leftover_folders.append({"id": tf.id, "path": tf.path, "items": len(tf.items)})


def _staleness(src: Item, copy: Item, rec: ItemRecord | None) -> str | None:
    """Why the copy is not the source item's current version ("" when that cannot be told
    from the record; None when it is current)."""
    if rec is None or rec.change_key is None:
        return ""
    if rec.change_key != src.change_key:
        return "changed at the source after it was copied"
    if rec.status not in SETTLED:
        # the last import or update of this copy failed or has no outcome: the version the
        # copy holds is not the one recorded
        return f"its last copy or update did not complete ({rec.status.name.lower()})"
    # a target change key is the copy's only when we wrote or adopted it (recorded with
    # the copy's key since 2026-12) and the copy found is the one recorded
    if not rec.target_change_key or rec.target_id != copy.id:
        return ""
    if copy.change_key != rec.target_change_key:
        return "changed in the target after it was copied"
    return None
