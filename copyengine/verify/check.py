"""The one check of a pair's copy, for ``copyengine verify`` and for the cutover's sign-off
(``verify.signoff``): a pair's primary mailbox and, when the pair asks for it, its archive,
read as they are (listings of both sides, never an export, never a counter) through the
reading room (``copyengine.survey``), and judged by ``verify.judge``. This module only
lists."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from ..config import JobConfig, Pair
from ..failures import classify
from ..folderpath import display
from ..graph import Clients, Item, MailboxApi
from ..plan import FolderPlan
from ..state import SETTLED, ItemRecord, Status, Store
from ..survey import (
    MailboxSide,
    TargetTree,
    copied_region,
    folder_path,
    listed_items,
    mailboxes,
    still_at_source,
    survey,
    unless_gone,
)
from .judge import MAX_LISTED, FolderCheck, SourceFolder, TargetFolder, Verdict, judge

log = structlog.get_logger("copyengine.verify")
# a mailbox's questions to the source about kept copies of items left out (``_kept_own``):
# this many at once (each ``getItem`` paced by the mailbox's pacer, as every read), for this
# long at most; one not answered by then, or whose read failed, is "not checked"
KEPT_ASK_AT_ONCE = 4
KEPT_ASK_S = 900.0


@dataclass
class PairCheck:
    """A pair as ``verify`` and the sign-off see it."""

    source: str
    target: str
    folders: list[FolderCheck] = field(default_factory=list)
    error: str | None = None
    error_code: str | None = None
    content: bool = False  # versions compared (a state was read)
    state_read: bool = False  # the state's records read (copies kept told from extra)
    deletions: str = "keep"  # the job's [sync] deletions
    verdict: Verdict = field(default_factory=Verdict)
    records: dict[str, ItemRecord] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    selected_ids: set[str] = field(default_factory=set)  # every side's selected source items
    # source folders the walk listed and their user deleted before their listing (``_gone``):
    # judged as folders deleted at the source before the check (their copies extra, kept
    # under ``keep``), said, never the pair's error
    gone: list[str] = field(default_factory=list)
    # mapped target folders deleted in the target (by its user) before their listing: their
    # items missing, said
    target_gone: list[str] = field(default_factory=list)

    def unfound(self) -> list[ItemRecord]:
        """Under ``mirror``, the records of copies of items gone from the source that are
        kept for the next ``--full`` (a pass did not find the copy where it was recorded)
        and whose copy is nowhere in the copied region: deleted in the target, or moved out
        of the region by its user. Nothing of the region differs: told, not held against."""
        if self.deletions != "mirror":
            return []
        found = {r.get("source_id") for r in self.verdict.pending}
        return [
            r
            for r in self.records.values()
            if r.target_id
            and r.status in SETTLED
            and r.source_id not in self.selected_ids
            and r.source_id not in found
        ]

    @property
    def ok(self) -> bool:
        """What ``verify`` calls a match: every selected item present once in its folder,
        no other item in the copied region but the copies ``deletions = "keep"`` kept, and
        (``--content``) every copy current."""
        v = self.verdict
        return self.error is None and not (
            v.missing
            or v.unexpected
            or v.misplaced
            or v.duplicated
            or v.missing_folders
            or v.moved_folders
            or v.kept_unchecked
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
            "extra": len(v.unexpected),
            "kept": len(v.kept),  # copies kept of items deleted at the source (not extra)
            "misplaced": len(v.misplaced),
            "duplicated": len(v.duplicated),
            "leftover_folders": v.leftover_folders[:MAX_LISTED],
            "missing_folders": v.missing_folders[:MAX_LISTED],
            "moved_folders": v.moved_folders[:MAX_LISTED],
            "extra_items": v.unexpected[:MAX_LISTED],
            # of ``extra``, under mirror: copies of ours of items deleted at the source
            "pending": len(v.pending),
            "pending_items": v.pending[:MAX_LISTED],
            "kept_items": v.kept[:MAX_LISTED],
            # of ``kept``: kept copies of items left out the source was not asked about in
            # time (``_kept_own``): neither told their item's nor named second copies
            "kept_unchecked": len(v.kept_unchecked),
            "kept_unchecked_items": v.kept_unchecked[:MAX_LISTED],
            "folders": [f.as_dict() for f in self.folders],
            "gone_at_source": self.gone[:MAX_LISTED],
            "gone_in_target": self.target_gone[:MAX_LISTED],
        }
        if self.content:
            out["stale"] = len(v.stale)
            out["stale_items"] = v.stale[:MAX_LISTED]
            out["content_unchecked"] = len(v.content_unchecked)
        return out


async def placed_path(tree: TargetTree, plan: FolderPlan) -> str:
    """The display path where ``plan``'s folder belongs in the target: its well-known
    anchor's path there (a top folder named like the source's when the target lacks it),
    then the planned names."""
    ref = plan.target
    await tree.find(ref, plan.source.names[0])  # resolves the anchor
    anchor = tree.anchors.get(ref.anchor) if ref.anchor else None
    parts = ref.parts
    if ref.anchor and anchor is None:
        parts = (plan.source.names[0], *parts)
    head = folder_path(tree.folders, anchor) if anchor else ""
    tail = display(parts) if parts else ""
    return (head.rstrip("/") + tail) or "/"


async def _check_mailbox(
    src: MailboxApi,
    dst: MailboxApi,
    pair: Pair,
    side: MailboxSide,
    store: Store | None,
    deletions: str,
    check: PairCheck,
) -> Verdict:
    """One mailbox of the pair listed and judged (its records gathered into ``check``)."""
    label = side.label
    plans, tree = await survey(src, dst, pair, side)
    mapping = {}
    if store is not None:
        folders = await store.folders(pair.key)
        mapping = {r.source_folder_id: r for r in folders if r.scope == side.scope}
    source: list[SourceFolder] = []
    for plan in plans:
        fid = plan.source.folder.id
        skipped: Counter[str] = Counter()
        items = await _listed(src, side.source_id, fid, pair, skipped)
        if items is None:  # deleted at the source since the walk: as if before it
            check.gone.append(label + plan.source.path)
            log.info("verify.folder_gone_at_source", pair=pair.key, folder=check.gone[-1])
            continue
        check.skipped.update(skipped)
        rec = mapping.get(fid)
        tid = rec.target_folder_id if rec is not None else None  # where the state says
        if tid not in tree.folders:
            # no record, or its folder is gone (deleted in the target, or remade by a pass
            # stopped before it recorded the new one): the folder at the path it belongs
            tid = (await tree.find(plan.target, plan.source.names[0])).existing
        tpath = label + (folder_path(tree.folders, tid) if tid else plan.target.path)
        placed = label + await placed_path(tree, plan) if tid else None
        source.append(SourceFolder(fid, label + plan.source.path, tid, tpath, items, placed))
    mine: dict[str, ItemRecord] = {}
    if store is not None:
        fids = sorted({sf.id for sf in source} | set(mapping))
        for records in (await store.items_in_folders(pair.key, fids) or {}).values():
            mine.update(records)  # every folder's records in one read
        # and the records a pass kept for a copy it could not find once their folder was
        # gone (``pipeline.passes``): without them such a copy would look like nobody's
        mine.update({r.source_id: r for r in await store.items_unmapped(pair.key)})
        # and the copies a pass under ``keep`` kept (under ``mirror``: before the job's
        # switch, kept still: the policy applies to what a pass sees), in an old folder kept
        # for them too, whose source folder no record maps any more (under ``keep`` their
        # records tell two items' kept copies of one search key apart: review R1b)
        kept = await store.items_with_status(pair.key, Status.REMOVED)
        mine.update({r.source_id: r for r in kept if r.source_id not in mine})
        check.records.update(mine)
    check.selected_ids.update(it.id for sf in source for it in sf.items)
    mapped = {sf.target_id for sf in source if sf.target_id}
    listed, allowed = await copied_region(tree, pair, mapped)
    target: list[TargetFolder] = []
    for fid in listed:
        path = label + folder_path(tree.folders, fid)
        titems = await _listed(dst, side.target_id, fid)
        if titems is None:  # deleted in the target since its tree was read: holds nothing
            check.target_gone.append(path)
            log.info("verify.folder_gone_in_target", pair=pair.key, folder=path)
            continue
        target.append(TargetFolder(fid, path, titems, fid in allowed))
    own: frozenset[str] = frozenset()
    unchecked: frozenset[str] = frozenset()
    if store is not None:
        own, unchecked = await _kept_own(src, side, mine, source, target)
        target += await _kept_outside((src, dst), side, store, pair.key, tree, set(listed))
    if store is not None and deletions == "mirror":
        mine = {**mine, **await _lost(store, pair.key, source, target, mine)}
    began = {r.source_folder_id: r.link_began for r in mapping.values() if r.link_began}
    told = mine if store is not None else None
    # a kept copy not checked is judged as its own item's (kept), and said not checked
    v = judge(source, target, told, deletions, check.content, own | unchecked, began)
    v.kept_unchecked = [
        {"id": it.id, "folder": tf.path} for tf in target for it in tf.items if it.id in unchecked
    ]
    return v


async def _kept_own(
    src: MailboxApi,
    side: MailboxSide,
    records: Mapping[str, ItemRecord],
    source: Sequence[SourceFolder],
    target: Sequence[TargetFolder],
) -> tuple[frozenset[str], frozenset[str]]:
    """Of the copies kept of items left out (``REMOVED`` records) found in the copied region,
    those whose search key a selected item has (a user's copy of the item, "Copy to folder")
    and whose own source item is still there under its id: each its own item's kept copy,
    never a second copy of the selected one's (``judge``'s ``own``; review R1: an item the
    item filters leave out, ``created_after``..., has its kept copy in its own folder, a
    selected one, beside the copy of its twin); and those not checked: not answered within
    ``KEPT_ASK_S`` or whose read failed (said "not checked", never named a second copy nor
    told kept). One ``getItem`` per such copy, every one of them (``KEPT_ASK_AT_ONCE`` at
    once, paced as every read; before, 500 at most, and every one beyond them was named a
    second copy at every sign-off); none, and no request, when no kept copy shares a key
    with a selected item."""
    keys = {it.search_key for sf in source for it in sf.items if it.search_key is not None}
    selected = {it.id for sf in source for it in sf.items}
    present = {it.id: it.search_key for tf in target for it in tf.items}
    asked = sorted(
        (
            r
            for r in records.values()
            if r.status is Status.REMOVED
            and r.target_id
            and r.target_id in present
            and r.search_key in keys
            and present[r.target_id] == r.search_key
            and r.source_id not in selected
        ),
        key=lambda r: r.source_id,
    )
    own: set[str] = set()
    unchecked = {r.target_id for r in asked if r.target_id}
    failed: list[Exception] = []
    todo = iter(asked)

    async def ask(scope: anyio.CancelScope) -> None:
        for r in todo:
            assert r.target_id is not None
            try:
                there = await still_at_source(src, side.source_id, r, log)
            except Exception as exc:  # (Fatal): the sign-off's error, raised as itself
                failed.append(exc)
                scope.cancel()
                return
            if there is not None:
                unchecked.discard(r.target_id)
            if there:
                own.add(r.target_id)

    with anyio.move_on_after(KEPT_ASK_S) as bound:
        async with anyio.create_task_group() as tg:
            for _ in range(min(KEPT_ASK_AT_ONCE, len(asked))):
                tg.start_soon(ask, bound)
    if failed:
        raise failed[0]
    if unchecked:
        timed_out = bound.cancelled_caught
        log.warning(
            "verify.kept_copies_unchecked",
            mailbox=side.label,
            unchecked=len(unchecked),
            asked=len(asked),
            timed_out=timed_out,
        )
    return frozenset(own), frozenset(unchecked)


async def _kept_outside(
    apis: tuple[MailboxApi, MailboxApi],
    side: MailboxSide,
    store: Store,
    pair: str,
    tree: TargetTree,
    listed: set[str],
) -> list[TargetFolder]:
    """The copies kept as deleted at the source whose item is back with a settled copy of
    its own (``Store.kept_beside_live``: the pass that copied it back drops the kept one),
    still there in a folder beyond the copied region: a well-known folder the rules left
    out, read only for those copies (its other items are not the job's). Judged with the
    rest, each is a second copy of a selected item (soak seed 17018 keep: the kept copy in
    an excluded /Sent Items beside the restored item's new copy, signed off complete).
    A kept copy whose own source item is still there under its id (``apis``: source and
    target) is that item's, left out, beside a user's copy of it that shares its key (review
    R1): no second copy of anything, as the pass that copied the twin left it."""
    src, dst = apis
    keys = await store.kept_beside_live(pair)
    if not keys:
        return []
    wanted: dict[str, set[str]] = {}
    for r in await store.items_by_keys(pair, keys):
        fid = r.target_folder_id
        if r.status is not Status.REMOVED or not r.target_id or fid is None:
            continue
        beyond = fid in tree.folders and fid not in listed  # the copied region's
        # (a read that fails says "not there": judged as before, named if a second copy)
        if beyond and await still_at_source(src, side.source_id, r, log) is not True:
            wanted.setdefault(fid, set()).add(r.target_id)
    out: list[TargetFolder] = []
    for fid, ids in wanted.items():
        items = await _listed(dst, side.target_id, fid)
        if items:
            path = side.label + folder_path(tree.folders, fid)
            out.append(TargetFolder(fid, path, [it for it in items if it.id in ids], True))
    return out


async def _lost(
    store: Store,
    pair: str,
    source: Sequence[SourceFolder],
    target: Sequence[TargetFolder],
    records: Mapping[str, ItemRecord],
) -> dict[str, ItemRecord]:
    """Under ``mirror``, for the judge: a record for each lost copy (``Store.note_lost_copies``)
    whose search key a target item has and no record or selected item does: a copy the
    target's user moved, of an item copied again and then deleted at the source, its record
    forgotten with its new copy. The judge names such a copy a deletion pending, never an
    item nobody copied (hunt2: signed off complete with it left)."""
    known = {r.search_key for r in records.values()}
    known |= {it.search_key for sf in source for it in sf.items}
    keys = {it.search_key for tf in target for it in tf.items} - known
    keys.discard(None)
    if not keys:
        return {}
    out: dict[str, ItemRecord] = {}
    for n in await store.lost_copies(pair, sorted(k for k in keys if k is not None)):
        if n.source_id not in records:
            out[n.source_id] = ItemRecord(
                n.source_id, "", Status.REMOVED, n.search_key, n.target_folder_id, n.target_id
            )
    return out


async def _listed(
    client: MailboxApi,
    mailbox_id: str,
    folder_id: str,
    pair: Pair | None = None,
    skipped: Counter[str] | None = None,
) -> list[Item] | None:
    """A folder's items (``listed_items``); None when the folder is gone: its listing answered
    404 and so did the folder itself (``survey.unless_gone``: a transient 404 from a folder
    that is there is read again, then raised)."""

    async def read() -> list[Item]:
        if skipped is not None:
            skipped.clear()  # counted again by a listing read again
        return await listed_items(client, mailbox_id, folder_id, pair, skipped)

    return await unless_gone(client, mailbox_id, folder_id, read)


async def check_pair(
    src: MailboxApi,
    dst: MailboxApi,
    pair: Pair,
    store: Store | None = None,
    deletions: str = "keep",
    content: bool = True,
) -> PairCheck:
    """A pair judged: its primary mailbox, and its archive when the pair has ``archive``.
    With a ``store`` extra copies are told kept, and (``content``) the versions compared."""
    check = PairCheck(pair.source, pair.target, content=store is not None and content)
    check.state_read, check.deletions = store is not None, deletions
    try:
        for side in await mailboxes(src, dst, pair):
            v = await _check_mailbox(src, dst, pair, side, store, deletions, check)
            check.verdict.merge(v)
    except Exception as exc:  # one pair's failure is that pair's verdict
        verdict = classify(exc)
        if verdict.job_wide:
            raise
        check.error, check.error_code = verdict.message, verdict.error_type
    check.folders = check.verdict.folders
    return check


async def verify_pair(src: MailboxApi, dst: MailboxApi, pair: Pair) -> PairCheck:
    """Presence only (no state): every selected item once, in its folder by path."""
    return await check_pair(src, dst, pair)


async def verify_pairs(
    cfg: JobConfig, c: Clients, store: Store | None = None, content: bool = True
) -> list[PairCheck]:
    """Every pair checked; with a ``store`` copies kept by the policy are told from extra
    items, and (``content``) the versions compared."""
    out: list[PairCheck] = []
    for pair in cfg.pairs:
        out.append(await check_pair(c.src, c.dst, pair, store, cfg.sync.deletions, content))
        log.info("verify.pair", pair=pair.key, ok=out[-1].ok)
    return out
