"""Target drift, the source wins: second copies. A target item of a folder listed in full
that no source item there claimed, with the search key of an item whose settled copy is
another target item, is a copy the target's user moved there (Outlook's delete moves it to
Deleted Items) after which the item was copied again where it belongs: a second copy,
removed and reported. Judged at the end of the pass, once its imports are settled and
recorded (the item's own copy may be made again in the same pass, in another folder, after
this folder was listed), or of an item deleted at the source whose kept copy (``keep``) is
found where it was recorded; copies kept as deleted at the source and items nobody copied are
left alone, and nothing is removed while the item's other copy is unsettled (an item moved
at the source whose import into its new folder failed included), nor when the
item's recorded copy is not where the state says (read from that folder's listing): then
the target's user moved the item's only copy here and this one is it. Under ``mirror``, a
spare whose search key no record names but a lost copy does (``Store.note_lost_copies``) is
a copy of an item deleted at the source, moved here before its item was copied again: it
goes as the item's copy went (``_orphaned``).

A folder the engine made only as the path of a selected folder (a rename rule's
``/Inbox/Migrated``, ``FolderRound.paths``) is no folder job's, yet lies in the copied
region: a pass that lists the target in full lists its own items too (``list_paths``), all
of them spares (no source item is placed there), judged as above under either policy: a copy
of a live item the target's user moved into it is drift like any other (soak seed 20110
mirror: the moved copy stayed beside the one made again, duplicated, past a cutover)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from ..errors import Fatal, NotFound, ServiceError
from ..plan import TargetIndex, apart
from ..state import SETTLED, ItemRecord, Status
from ..survey import MAX_ASKED, moved_left_out, still_at_source, target_index, unless_gone
from .context import PairContext
from .work import FolderJob


def spare_copies(index: TargetIndex) -> dict[str, bytes]:
    """The target items of a listed folder that no source item claimed, by id: search key."""
    return {
        tid: key for key, ids in index.by_key.items() for tid in ids if tid not in index.claimed
    }


async def list_paths(ctx: PairContext, dst_id: str, paths: Sequence[FolderJob]) -> None:
    """The items of the folders made only as paths (``paths``: a job each, none of them the
    pair's folders) taken as their spares (see the module), read once the pass's imports
    are settled. A folder gone (its 404 confirmed, ``survey.unless_gone``) holds none; one
    that cannot be read is left for the next full pass (logged; the sign-off lists it)."""
    for job in paths:
        folder = job.target.id
        read = partial(target_index, ctx.dst, dst_id, folder)
        try:
            index = await unless_gone(ctx.dst, dst_id, folder, read)
        except Fatal:
            raise
        except ServiceError as exc:
            ctx.log.warning("pass.path_unread", folder=job.plan.target.path, error=exc.message)
            continue
        if index is not None:
            job.spare = spare_copies(index)


async def remove_second_copies(
    ctx: PairContext,
    dst_id: str,
    jobs: Sequence[FolderJob],
    paths: Sequence[FolderJob] = (),
    began: Mapping[str, int] | None = None,
    *,
    src_id: str,
    at_source: set[str] | None = None,
    left_out: Mapping[bytes, list[tuple[str, str]]] | None = None,
) -> None:
    """Remove the spare items of ``jobs`` (the pair's folders) and of ``paths`` (folders
    made only as paths, ``list_paths``) that are second copies (see the module). A copy
    kept of an item left out whose own item is still at the source (``src_id``'s) is none
    (``KeptOwn``; ``at_source``: the source ids of kept copies found still there in this
    pass, read and extended; ``left_out``: ``survey.moved_left_out``'s); nor is one proven another item's than its twin's (``began``:
    when the round of each source folder's stored link began, ``plan.known_at``; review
    R1b)."""
    spare = [(job, tid, key) for job in (*jobs, *paths) for tid, key in job.spare.items()]
    if not spare:
        return
    # items leaving the source in this pass: their copies go or stay by the job's policy
    # (``passes._departures``), so where their recorded copy is does not matter here
    # (and items of source folders no longer selected, gone with their folder; and items the
    # item filters no longer select, ``FolderJob.deselected``: their copy moved by the
    # target's user stayed, nobody's, and the sign-off said complete: 17011 mirror)
    leaving = {r.source_id for job in jobs for r in (*job.removed, *job.deselected)}
    # and a spare that is such an item's own recorded copy is no second copy of anything: it
    # is unclaimed only because its item left (soak seed 19009 keep: one item recorded twice,
    # a move during a pass that saw only its arrival, gone again: this took the old record's
    # copy for a second copy of the new one's, the departures then removed the new one as
    # the item's second copy, and the item kept none)
    own = {r.target_id for job in jobs for r in (*job.removed, *job.deselected) if r.target_id}
    selected = {job.source_id for job in jobs}
    keys = {key for _, _, key in spare}
    records = await ctx.store.items_by_keys(ctx.key, list(keys))  # read once, for both below
    copies, unsettled, recorded, kept_copies = _other_copies(ctx, records, leaving, selected)
    known = set() if at_source is None else at_source
    kept_own = KeptOwn(ctx, src_id, kept_copies, known, left_out or {})
    orphans = await _orphaned(ctx, keys, recorded)
    own |= _kept_apart(records, began or {})
    indexes: dict[str, TargetIndex | None] = {}
    gone: set[bytes] = set()  # keys whose spare was removed (or found gone)
    kept: set[bytes] = set()  # keys whose spare could not be removed
    for job, tid, key in spare:
        if tid in own:
            continue  # its item's departure decides (``passes._departures``)
        others = [(t, f) for t, f in copies.get(key, []) if t != tid]
        if key in orphans:
            reason = "a copy of an item deleted at the source (moved here in the target): removed"
        elif (
            key in unsettled or not others or not await any_there(ctx, dst_id, key, others, indexes)
        ):
            # no other copy, or none where the state recorded it: the target's user moved
            # the item's only copy here (a new id), and the record is stale, not this copy
            # (seed 1508 keep: it was hard-deleted as a second copy, the item then had none);
            # or the item's copy where it lives now not made by this pass (``unsettled``)
            continue
        elif await kept_own.still_there(tid, key):
            continue  # a copy kept of an item left out, its item still at the source: kept
        else:
            reason = "a second copy (moved here in the target): removed"
        try:
            await ctx.dst.delete_item(dst_id, job.target.id, tid, hard=True)
        except NotFound:
            gone.add(key)
            continue
        except Fatal:
            raise
        except ServiceError as exc:
            ctx.log.warning("item.second_copy_kept", item=tid, error=exc.message)
            kept.add(key)
            continue
        gone.add(key)
        job.stats.drift.append({"id": tid, "reason": reason})
    for job in (*jobs, *paths):
        job.spare = {}
    # an orphan removed: its note has nothing left to find (one that failed is kept)
    if done := (orphans & gone) - kept:
        await ctx.store.forget_lost_copies(ctx.key, sorted(done))


def _other_copies(
    ctx: PairContext, records: Sequence[ItemRecord], leaving: set[str], selected: set[str]
) -> tuple[
    dict[bytes, list[tuple[str, str | None]]], set[bytes], set[bytes], dict[str, ItemRecord]
]:
    """For the spares' search keys (``records``: theirs): the copies their records name (target id, and the folder
    where it must be found to count, None: anywhere), the keys of live items whose copy this
    pass did not settle, the keys some record names, and the records of copies kept
    (``REMOVED``) whose key a live selected item's settled copy has, by target id."""
    copies: dict[bytes, list[tuple[str, str | None]]] = {}
    kept: dict[str, ItemRecord] = {}
    live_keys: set[bytes] = set()
    # keys of items live at the source whose copy this pass did not settle (an import that
    # failed, or whose outcome is unknown): the spare may be the item's only copy (soak seed
    # 9737 mirror: the item moved at the source, its copy moved by the target's user, the
    # import into its new folder failed; the leaving record's copy, taken as there, had the
    # moved copy hard-deleted as a second one, and the item then had none)
    unsettled: set[bytes] = set()
    recorded: set[bytes] = set()
    for r in records:
        if r.search_key:
            recorded.add(r.search_key)
        if (
            r.search_key
            and r.status not in SETTLED
            and r.status is not Status.REMOVED
            and r.source_id not in leaving
        ):
            unsettled.add(r.search_key)
        if not (r.search_key and r.target_id):
            continue
        if r.status in SETTLED:
            live = r.source_id not in leaving and r.folder_id in selected
            folder = r.target_folder_id if live else None
            if live:
                live_keys.add(r.search_key)
            if not live and ctx.sync.deletions == "keep":
                # its copy is kept: the spare is a second copy only where the kept one is
                # found, as for a copy kept before (the target's user moved the item's only
                # copy here in the round it left the source: it was hard-deleted and the
                # item had none; 17011 with the ``_rules`` stream, and without it; and so
                # when it left with its folder, deleted or no longer selected: 18002 keep
                # with rename rules, the copy moved to Deleted Items)
                folder = r.target_folder_id
        elif r.status is Status.REMOVED and r.target_folder_id:
            # a copy kept of an item deleted at the source (``keep``): the spare is a second
            # copy only where the kept one is found (hunt2, seed 9803 keep: the item copied
            # again where it belonged, then deleted at the source before the moved copy was
            # removed: both stayed, kept, and the sign-off said complete)
            folder = r.target_folder_id
            kept[r.target_id] = r
        else:
            continue
        copies.setdefault(r.search_key, []).append((r.target_id, folder))
    kept = {tid: r for tid, r in kept.items() if r.search_key in live_keys}
    return copies, unsettled, recorded, kept


@dataclass
class KeptOwn:
    """The copies kept of items left out (``records``: ``REMOVED`` records by target id; here,
    of keys a live selected item's settled copy has) and whether each one's own source item
    is still there under its id (``survey.still_at_source``, asked only for a copy about to go
    as a second copy: a spare here, or an old folder's copy in ``passes._sweep_old``;
    ``MAX_ASKED`` at most per sweep): then it is that item's kept copy, beside the copy of a
    user's copy of it (review R1: an item the item filters leave out, its kept copy in its
    own, selected folder; removed as a second copy before, soak seed 22302 keep). A read that
    fails, or one past the bound, says "there": the copy stays (the sign-off asks again, and
    names it if its item is gone). ``known``: the source ids of those found there in this
    pass (here, or in ``passes._drop_kept_moves``, which asks for the kept copies beside a
    live one's every pass): not asked twice, nor counted against the bound; a "there"
    answered here is added. ``left_out``: this pass's listings' items left out with no record
    (``survey.moved_left_out``): a kept copy whose item's id is gone and whose key one of them
    has is its item's still, moved under a new id (no request; the departures,
    ``passes._drop_kept_moves``, move its record to the new id)."""

    ctx: PairContext
    src_id: str
    records: dict[str, ItemRecord]
    known: set[str] = field(default_factory=set)
    left_out: Mapping[bytes, list[tuple[str, str]]] = field(default_factory=dict)
    asked: int = 0

    async def still_there(self, tid: str, key: bytes) -> bool:
        r = self.records.get(tid)
        if r is None or r.search_key != key:
            return False
        if r.source_id in self.known:
            return True
        if self.asked >= MAX_ASKED:
            self.ctx.log.info("item.kept_copy_unasked", item=r.source_id)
            return True
        self.asked += 1
        there = await still_at_source(self.ctx.src, self.src_id, r, self.ctx.log)
        if there:
            self.known.add(r.source_id)
        elif there is False and moved_left_out(r, self.left_out) is not None:
            self.ctx.log.info("item.kept_copy_item_moved", item=r.source_id)
            return True
        return there is not False


def _kept_apart(records: Sequence[ItemRecord], began: Mapping[str, int]) -> set[str]:
    """The kept copies (``REMOVED`` records' target ids) of the spares' keys (``records``:
    theirs) whose item is proven another than each other item of its key with a copy
    (``plan.apart``): a user's copy of a message, deleted at the source beside its live
    twin, keeps its copy, no second copy of the twin's (review R1b), also after a switch to
    ``mirror`` (which keeps what ``keep`` kept)."""
    with_copy: dict[bytes | None, list[ItemRecord]] = defaultdict(list)
    for r in records:
        if r.target_id and (r.status in SETTLED or r.status is Status.REMOVED):
            with_copy[r.search_key].append(r)
    out: set[str] = set()
    for r in records:
        if r.status is not Status.REMOVED or not r.target_id:
            continue
        others = [o for o in with_copy[r.search_key] if o.source_id != r.source_id]
        if all(apart(r, o, began) for o in others):
            out.add(r.target_id)
    return out


async def _orphaned(ctx: PairContext, keys: set[bytes], recorded: set[bytes]) -> set[bytes]:
    """Of the spares' search keys, those no record names but a lost copy does
    (``Store.note_lost_copies``), under ``mirror``: the item's copy was made again after an
    update found the recorded one gone (the target's user moved it: this spare), then the
    item left the source and its new copy and record went with it. This spare is a copy of
    an item deleted at the source, which mirror removes (hunt2: it stayed, an extra item,
    and the sign-off said complete). Under ``keep`` the item's record stays (``REMOVED``)
    and the spare is judged against its kept copy."""
    unrecorded = keys - recorded
    if ctx.sync.deletions != "mirror" or not unrecorded:
        return set()
    return {n.search_key for n in await ctx.store.lost_copies(ctx.key, sorted(unrecorded))}


async def any_there(
    ctx: PairContext,
    dst_id: str,
    key: bytes,
    copies: list[tuple[str, str | None]],
    indexes: dict[str, TargetIndex | None],
) -> bool:
    """Whether one of the item's recorded ``copies`` (target id, folder) is where the state
    says (one listing per folder, read once; a folder that cannot be read, or is gone (its
    404 confirmed by ``getFolder``, ``survey.unless_gone``): not known there, the spare kept
    for the next pass). A copy with no folder given is an item's that leaves
    the source in this pass: taken as there, as before this check."""
    for tid, folder in copies:
        if folder is None:  # its item leaves the source: not looked for
            return True
        if folder not in indexes:
            try:
                # a 404 is the folder gone only once its getFolder answers 404 too: one
                # transient 404 kept a second copy to the end of a cutover (duplicated)
                indexes[folder] = await unless_gone(
                    ctx.dst, dst_id, folder, partial(target_index, ctx.dst, dst_id, folder)
                )
            except Fatal:
                raise
            except ServiceError:  # read again and failing: not known there
                indexes[folder] = None
        index = indexes[folder]
        if index is not None and tid in index.by_key.get(key, ()):
            return True
    return False


async def forget_unmapped(ctx: PairContext) -> None:
    """After a pass that listed the target in full, its second copies removed: the settled
    records whose source folder is gone (kept for this pass by ``passes._look_later``, or
    left by a folder deleted on both sides) have nothing left to find: forgotten."""
    gone = await ctx.store.items_unmapped(ctx.key)
    if gone:
        ctx.log.info("pair.records_forgotten", items=len(gone))
        await ctx.store.forget_items(ctx.key, [r.source_id for r in gone])
