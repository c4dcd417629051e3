"""The one check of a pair's copy, for ``copyengine verify`` and for the cutover's sign-off
(``pipeline/signoff.py``): a pair's primary mailbox and, when the pair asks for it, its
archive, read as they are (listings of both sides, never an export, never a counter).

The decision is pure: ``judge`` takes what was listed (the selected source folders with
their selected items and the target folder each maps to, every target folder of the copied
region with its items, and the state's item records when there is a state) and says, per
selected source item, whether its copy is present once, in its mapped folder, with its
current version; which target items are not copies of a selected source item (extra, and
among them the copies kept of items deleted at the source); and which target folders of the
region are leftovers. The I/O around it (``check_pair``) only lists.

A copy is current when the source item's change key is the one the state recorded for the
version copied (``ItemRecord.change_key``) and the target copy's change key is the one the
import or update returned (``ItemRecord.target_change_key``); else it is stale (changed at
the source after the copy, or edited in the target)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from .config import JobConfig, Pair
from .failures import classify
from .folderpath import display
from .graph import Clients, Folder, Item, MailboxApi
from .plan import TargetRef, filter_item, plan_folders, root_names
from .state import SETTLED, ItemRecord, Status, Store
from .survey import NoArchive, TargetTree, mailboxes

log = structlog.get_logger("copyengine.verify")
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
    misplaced: list[str] = field(default_factory=list)  # source ids whose copy is elsewhere
    misplaced_in: list[str] = field(default_factory=list)  # target ids here, belonging elsewhere
    duplicated: list[str] = field(default_factory=list)  # target ids here: a second copy
    stale: list[str] = field(default_factory=list)  # source ids whose copy is not current
    source_folder_id: str = ""
    target_folder_id: str | None = None
    skipped: Counter[str] = field(default_factory=Counter)  # not selected, by reason

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.extra
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
            "extra": len(self.extra),
            "misplaced": len(self.misplaced),
            "duplicated": len(self.duplicated),
            "stale": len(self.stale),
            "missing_ids": self.missing[:MAX_LISTED],
            "extra_ids": self.extra[:MAX_LISTED],
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

    def merge(self, other: Verdict) -> None:
        self.folders += other.folders
        self.selected += other.selected
        self.in_target += other.in_target
        self.content_checked += other.content_checked
        for name in KINDS:
            getattr(self, name).extend(getattr(other, name))


def _key(it: Item) -> bytes | None:
    return it.search_key


def judge(
    source: Sequence[SourceFolder],
    target: Sequence[TargetFolder],
    records: Mapping[str, ItemRecord] | None = None,
    deletions: str = "keep",
) -> Verdict:
    """The verdict on one mailbox of a pair (pure). ``records``: the state's item records by
    source id (None: no state; then no content check, and extra items cannot be told kept)."""
    v = Verdict()
    where: dict[str, tuple[Item, TargetFolder]] = {}
    by_key: dict[bytes, list[str]] = defaultdict(list)
    keyless: dict[str, list[str]] = defaultdict(list)  # target folder -> keyless ids
    for tf in target:
        for it in tf.items:
            where[it.id] = (it, tf)
            if it.search_key is None:
                keyless[tf.id].append(it.id)
            else:
                by_key[it.search_key].append(it.id)
    claimed: dict[str, str] = {}  # target id -> source id
    match: dict[str, str] = {}  # source id -> target id
    wanted = [(sf, it) for sf in source for it in sf.items]
    selected_keys = {it.search_key for _, it in wanted if it.search_key is not None}

    def claim(sid: str, tid: str) -> None:
        claimed[tid] = sid
        match[sid] = tid

    # 1: the copy the state recorded, when it is still there
    if records is not None:
        for _sf, it in wanted:
            rec = records.get(it.id)
            tid = rec.target_id if rec is not None else None
            same = tid in where and (it.search_key in (None, where[tid][0].search_key))
            if tid and same and tid not in claimed:
                claim(it.id, tid)
    # 2: by search key in the mapped folder, 3: anywhere in the region
    for anywhere in (False, True):
        for sf, it in wanted:
            if it.id in match or it.search_key is None:
                continue
            for tid in by_key.get(it.search_key, ()):
                if tid not in claimed and (anywhere or where[tid][1].id == sf.target_id):
                    claim(it.id, tid)
                    break
    # 4: keyless items by count within the mapped folder
    for sf, it in wanted:
        if it.id in match or it.search_key is not None or sf.target_id is None:
            continue
        for tid in keyless.get(sf.target_id, ()):
            if tid not in claimed:
                claim(it.id, tid)
                break

    checks: dict[str, FolderCheck] = {}
    by_target: dict[str, FolderCheck] = {}
    for sf in source:
        fc = FolderCheck(sf.path, sf.target_path, source_folder_id=sf.id)
        fc.target_folder_id = sf.target_id
        fc.expected = len(sf.items)
        checks[sf.id] = fc
        if sf.target_id is not None:
            by_target.setdefault(sf.target_id, fc)
        else:
            v.missing_folders.append({"folder": sf.path, "target_path": sf.target_path})
        v.folders.append(fc)
    for tf in target:
        if tf.id in by_target:
            by_target[tf.id].found = len(tf.items)

    source_of: dict[str, tuple[Item, SourceFolder]] = {}
    for sf, it in wanted:
        source_of[it.id] = (it, sf)
        fc = checks[sf.id]
        v.selected += 1
        tid = match.get(it.id)
        rec = records.get(it.id) if records is not None else None
        if tid is None:
            fc.missing.append(it.id)
            row: dict[str, Any] = {"id": it.id, "folder": sf.path}
            v.missing.append(row)
            continue
        v.in_target += 1
        copy, tf = where[tid]
        if tf.id != sf.target_id:
            fc.misplaced.append(it.id)
            if tf.id in by_target:
                by_target[tf.id].misplaced_in.append(tid)
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
            continue
        why = _staleness(it, copy, rec)
        if why is None:
            v.content_checked += 1
        elif why == "":
            v.content_unchecked.append({"id": it.id, "target_id": tid, "folder": sf.path})
        else:
            fc.stale.append(it.id)
            v.stale.append({"id": it.id, "target_id": tid, "folder": sf.path, "reason": why})

    # target items that are no selected item's copy: second copies, kept, extra
    gone_ids: set[str] = set()
    gone_keys: set[bytes] = set()
    if records is not None:
        for rec in records.values():
            if rec.source_id in source_of or rec.status is Status.FAILED:
                continue
            if rec.target_id:
                gone_ids.add(rec.target_id)
            if rec.search_key is not None:
                gone_keys.add(rec.search_key)
    mapped = set(by_target)
    kept_in: Counter[str] = Counter()
    for tf in target:
        for it in tf.items:
            if it.id in claimed:
                continue
            fc_here = by_target.get(tf.id)
            if it.search_key is not None and it.search_key in selected_keys:
                owner = next(
                    (s for s in (claimed.get(t) for t in by_key[it.search_key]) if s), None
                )
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
            known = it.id in gone_ids or (it.search_key is not None and it.search_key in gone_keys)
            if deletions == "keep" and (known or (tf.id not in mapped and not tf.allowed)):
                v.kept.append(row)
                kept_in[tf.id] += 1
    kept_paths = [tf.path for tf in target if kept_in[tf.id]]
    for tf in target:
        if tf.id in mapped or tf.allowed:
            continue
        if deletions == "keep" and (
            kept_in[tf.id] or any(p.startswith(tf.path + "/") for p in kept_paths)
        ):
            continue  # holds copies kept of items deleted at the source, or their folders
        v.leftover_folders.append({"id": tf.id, "path": tf.path, "items": len(tf.items)})
    return v


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


# -- a pair as verify and the sign-off see it -------------------------------------------------
@dataclass
class PairCheck:
    source: str
    target: str
    folders: list[FolderCheck] = field(default_factory=list)
    error: str | None = None
    error_code: str | None = None
    content: bool = False  # versions compared (a state was read)
    verdict: Verdict = field(default_factory=Verdict)
    records: dict[str, ItemRecord] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        """What ``verify`` calls a match: every selected item present once in its folder,
        no other item in the copied region, and (``--content``) every copy current."""
        v = self.verdict
        return self.error is None and not (
            v.missing
            or v.extra
            or v.misplaced
            or v.duplicated
            or v.missing_folders
            or (self.content and v.stale)
        )

    def as_dict(self) -> dict[str, Any]:
        v = self.verdict
        out: dict[str, Any] = {
            "source": self.source,
            "target": self.target,
            "ok": self.ok,
            "error": self.error,
            "error_code": self.error_code,
            "content_checked": self.content,
            "selected": v.selected,
            "in_target": v.in_target,
            "missing": len(v.missing),
            "extra": len(v.extra),
            "misplaced": len(v.misplaced),
            "duplicated": len(v.duplicated),
            "leftover_folders": v.leftover_folders[:MAX_LISTED],
            "missing_folders": v.missing_folders[:MAX_LISTED],
            "extra_items": v.extra[:MAX_LISTED],
            "folders": [f.as_dict() for f in self.folders],
        }
        if self.content:
            out["stale"] = len(v.stale)
            out["stale_items"] = v.stale[:MAX_LISTED]
            out["content_unchecked"] = len(v.content_unchecked)
        return out


async def _listed(
    client: MailboxApi, mbx: str, folder_id: str, pair: Pair | None, skipped: Counter[str]
) -> list[Item]:
    out: list[Item] = []
    async for page in client.list_items(mbx, folder_id, with_keys=True):
        for it in page:
            why = filter_item(it, pair.items) if pair is not None else None
            if why is None:
                out.append(it)
            else:
                skipped[why.value] += 1
    return out


def _path(folders: Mapping[str, Folder], fid: str) -> str:
    names: list[str] = []
    seen: set[str] = set()
    f = folders.get(fid)
    while f is not None and f.id not in seen:
        seen.add(f.id)
        names.append(f.name)
        f = folders.get(f.parent_id or "")
    return display(tuple(reversed(names)))


def region(
    folders: Mapping[str, Folder], mapped: set[str], root: str | None, has_root: bool
) -> tuple[list[str], set[str]]:
    """The copied region of a target tree (pure): the folders to list (mapped folders, and
    every folder under the target root, or in the whole mailbox without one, that is not
    hidden nor a well-known folder the copy does not map to), and of those the ones that
    are never leftovers (well-known folders, ancestors of mapped folders)."""
    kids: dict[str | None, list[str]] = defaultdict(list)
    for f in folders.values():
        parent = f.parent_id if f.parent_id in folders else None
        kids[parent].append(f.id)
    ancestors: set[str] = set()
    for fid in mapped:
        up = folders[fid].parent_id if fid in folders else None
        while up is not None and up in folders and up not in ancestors:
            ancestors.add(up)
            up = folders[up].parent_id
    listed: list[str] = []
    allowed: set[str] = set()
    if has_root and root is None:
        starts: list[str | None] = []
    else:
        starts = [root]
    stack = [fid for s in starts for fid in (kids[s] if s is None else [s])]
    seen: set[str] = set()
    while stack:
        fid = stack.pop()
        if fid in seen:
            continue
        seen.add(fid)
        f = folders[fid]
        if f.hidden and fid not in mapped:
            continue
        if f.well_known and fid not in mapped:
            allowed.add(fid)  # not copied into unless mapped: its items are not ours
            stack.extend(kids[fid])
            continue
        listed.append(fid)
        if fid in ancestors:
            allowed.add(fid)
        stack.extend(kids[fid])
    for fid in mapped:
        if fid not in seen and fid in folders:
            listed.append(fid)
    return listed, allowed


async def _check_mailbox(
    src: MailboxApi,
    dst: MailboxApi,
    pair: Pair,
    s: str,
    d: str,
    label: str,
    store: Store | None,
    deletions: str,
    skipped: Counter[str],
    records: dict[str, ItemRecord],
) -> Verdict:
    scope = "archive" if label else "primary"
    plans = plan_folders(await src.walk_folders(s), pair.folders, pair.source, pair.target)
    tree = TargetTree(dst, d)
    await tree.load()
    mapping = {}
    if store is not None:
        mapping = {r.source_folder_id: r for r in await store.folders(pair.key) if r.scope == scope}
    source: list[SourceFolder] = []
    for plan in plans:
        rec = mapping.get(plan.source.folder.id)
        if rec is not None:  # the state says where this folder went
            tid = rec.target_folder_id if rec.target_folder_id in tree.folders else None
        else:
            tid = (await tree.find(plan.target, plan.source.names[0])).existing
        items = await _listed(src, s, plan.source.folder.id, pair, skipped)
        tpath = label + _path(tree.folders, tid) if tid else label + plan.target.path
        source.append(
            SourceFolder(plan.source.folder.id, label + plan.source.path, tid, tpath, items)
        )
    mine: dict[str, ItemRecord] = {}
    if store is not None:
        for fid in {sf.id for sf in source} | set(mapping):
            mine.update(await store.items_in_folder(pair.key, fid))
        records.update(mine)
    mapped = {sf.target_id for sf in source if sf.target_id}
    root: str | None = None
    names = root_names(pair.folders.target_root, pair.source, pair.target)
    if names:
        root = (await tree.find(TargetRef(None, names), names[0])).existing
    listed, allowed = region(tree.folders, mapped, root, bool(names))
    target: list[TargetFolder] = []
    for fid in listed:
        items = await _listed(dst, d, fid, None, Counter())
        path = label + _path(tree.folders, fid)
        target.append(TargetFolder(fid, path, items, fid in allowed))
    return judge(source, target, mine if store is not None else None, deletions)


async def check_pair(
    src: MailboxApi,
    dst: MailboxApi,
    pair: Pair,
    store: Store | None = None,
    deletions: str = "keep",
) -> PairCheck:
    """A pair judged: its primary mailbox, and its archive when the pair has ``archive``.
    With a ``store`` the versions are compared and extra copies told kept."""
    check = PairCheck(pair.source, pair.target, content=store is not None)
    try:
        boxes = [(m.source_id, m.target_id, m.label) for m in await mailboxes(src, dst, pair)]
        for s_id, d_id, label in boxes:
            v = await _check_mailbox(
                src, dst, pair, s_id, d_id, label, store, deletions, check.skipped, check.records
            )
            check.verdict.merge(v)
        check.folders = check.verdict.folders
    except NoArchive as exc:
        check.error, check.error_code = str(exc), "MailboxNotFound"
    except Exception as exc:  # one pair's failure is that pair's verdict
        verdict = classify(exc)
        if verdict.job_wide:
            raise
        check.error, check.error_code = verdict.message, verdict.error_type
    return check


async def verify_pair(src: MailboxApi, dst: MailboxApi, pair: Pair) -> PairCheck:
    """Presence only (no state): every selected item once, in its folder by path."""
    return await check_pair(src, dst, pair)


async def verify_pairs(cfg: JobConfig, c: Clients, store: Store | None = None) -> list[PairCheck]:
    out: list[PairCheck] = []
    for pair in cfg.pairs:
        out.append(await check_pair(c.src, c.dst, pair, store, cfg.sync.deletions))
        log.info("verify.pair", pair=pair.key, ok=out[-1].ok)
    return out
