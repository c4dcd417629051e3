"""One mailbox of a pair in one pass, before and after its items are copied: the I/O around
the pure decisions of ``plan`` (``plan_folder_round``, ``folder_start``, ``removal_fate``,
``links_to_store``).

Before: the folder delta round (from the stored folder link, else a first round) says whether
the source's folder tree changed. If it did not, the folders come from the mapping the state
remembers, with no walk of either tree; if it did (or there is no mapping), both trees are
walked and ``plan_folder_round`` decides, from the source, the state's mapping (by folder
id, never by name) and the target as it is, the renames and creations to make, in an order
in which no two folders collide. Each mapping is recorded as soon as its action is
confirmed; a moved folder's old copy is recorded as retired at once.

After (only when the pair's items were settled, never after a drain): items that left their
folder are moved, deleted or kept in the target (``[sync] deletions``), a move being decided
from the state's records of the same search key; old target folders (moved folders' old
copies, folders gone from the source, retired ones) are swept and removed once empty,
deepest first; then, and only then, the links that close this pass's rounds are stored with
the fingerprint of the rules they were made under."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import partial

import anyio

from ..errors import DeltaExpired, Fatal, ItemFailed, NotFound, ServiceError
from ..folderpath import display, split
from ..graph import Folder, FolderNode, Item
from ..graph.gone import TRIES as GET_TRIES
from ..plan import (
    KEEPS_COPY,
    Create,
    Fate,
    FolderPlan,
    FolderRound,
    Placed,
    Rename,
    TargetIndex,
    apart,
    fingerprint,
    folder_start,
    is_path,
    known_at,
    links_to_store,
    path_id,
    plan_folder_round,
    plan_folders,
    removal_fate,
    retired_id,
    retired_source,
    second_copies,
    under,
)
from ..plan.changes import parse_target_path
from ..plan.folder_round import KEPT_SUFFIX, TEMP_SUFFIX
from ..report import FolderStats
from ..state import SETTLED, FolderRecord, ItemRecord, Status, SyncRecord
from ..state.records import MAKING
from ..survey import (
    MailboxSide,
    TargetTree,
    folder_path,
    listed_items,
    moved_left_out,
    still_at_source,
    target_index,
    unless_gone,
)
from ..survey.fromdelta import tree_from_rows
from .context import PairContext
from .rehome import Rehome
from .spares import KeptOwn, any_there, list_paths, remove_second_copies
from .work import FolderJob

MAX_FOLDER_ROUNDS = 3  # a folder round refused (link or a fresh page) is read fresh again
MAX_HELD_FOLDERS = 1_000  # folders read under one deleted whole (``_held``); past it, it stays
# a gone folder's copies, the records of the items in it, and its job: by its target folder
Gone = dict[str, list[tuple[FolderJob, FolderRecord, list[ItemRecord]]]]
# one folder under a folder that goes, as read before it goes: its id, its parent's, its items
Held = tuple[str, str | None, list[Item]]


def making_id(scope: str, parent: str, where: str) -> str:
    """The record id of a target folder about to be made in the pair's mailbox ``scope``
    at ``where`` (a display path) under the folder ``parent`` ("" for the root): one per
    place, as two folders cannot share one."""
    return f"{MAKING}{scope}:{parent}:{where.casefold()}"


def _real(made: dict[str, Folder], ref: str | None) -> str | None:
    """The target folder id of ``ref``: a folder made or renamed in this round, or itself."""
    return made[ref].id if ref is not None and ref in made else ref


class _Elsewhere:
    """For a sweep (``MailboxPass._sweep_old``), the copies the records of its keys name: a
    settled one (a live item's copy), or a kept one (``keep``: an item deleted at the
    source), which stands for its item only where it is found and only for a copy no record
    names (two kept copies that records name both stay: each sweep would take the other for
    the copy elsewhere, none left)."""

    def __init__(self, records: list[ItemRecord]) -> None:
        self.live: dict[bytes, set[str]] = defaultdict(set)
        # (target id, its folder)
        self.kept: dict[bytes, list[tuple[str, str | None]]] = defaultdict(list)
        self.named: set[str] = set()  # the copies some record of these keys names
        self.indexes: dict[str, TargetIndex | None] = {}  # one listing per folder
        # the kept copies (``REMOVED`` records) by target id: one whose own item is still at
        # the source is that item's, no second copy of a live item's (``KeptOwn``)
        self.removed: dict[str, ItemRecord] = {}
        # the settled or kept records by the copy they name: forgotten when the sweep
        # removes it (``forget_naming``)
        self.naming: dict[str, list[str]] = defaultdict(list)
        for r in records:
            if r.target_id:
                self.named.add(r.target_id)
            if r.target_id and (r.status in SETTLED or r.status is Status.REMOVED):
                self.naming[r.target_id].append(r.source_id)
            if r.target_id and r.status is Status.REMOVED:
                self.removed[r.target_id] = r
            if r.search_key and r.target_id and r.status in SETTLED:
                self.live[r.search_key].add(r.target_id)
            elif r.search_key and r.target_id and r.status is Status.REMOVED:
                self.kept[r.search_key].append((r.target_id, r.target_folder_id))

    async def copies(self, ctx: PairContext, dst_id: str, it: Item) -> set[str]:
        """The target ids standing for ``it``'s item elsewhere. A kept record names the copy
        as it was when kept; the target's user may have moved it here since (a new id): then
        this one is it, the item's only copy (soak seed 17014 mirror, after keep: hard-deleted
        as a second copy), so a kept copy counts only where its record says it is."""
        key = it.search_key
        copies = set(self.live.get(key, ())) if key else set()
        if key and it.id not in self.named:
            for tid, tfid in self.kept.get(key, []):
                if (
                    tid != it.id
                    and tfid
                    and await any_there(ctx, dst_id, key, [(tid, tfid)], self.indexes)
                ):
                    copies.add(tid)
        return copies

    async def forget_naming(self, ctx: PairContext, tid: str) -> None:
        """Before the sweep removes ``tid`` as a second copy of its item's copy elsewhere:
        the records naming it (a settled one: its item the same as the live copy's, a move's
        old half whose departure no pass took; a kept one: a kept copy beside a live one's)
        forgotten first, durably, as a move's are once its old copy goes. Left, such a
        record named a copy the engine removed and stood for its item later: soak seed 23006
        mirror, its departure beside the live copy's record took that one for a second copy
        (``plan.second_copies``) and hard-deleted the item's only copy. Killed between the
        two, the copy stays, nobody's, and the next sweep removes it as before."""
        stale = self.naming.pop(tid, [])
        if stale:
            ctx.log.info("item.record_of_swept_copy_forgotten", items=stale, copy=tid)
            await ctx.store.forget_items(ctx.key, stale)


class MailboxPass:
    def __init__(self, ctx: PairContext, side: MailboxSide) -> None:
        self.ctx = ctx
        self.src, self.dst = ctx.src, ctx.dst
        self.src_id, self.dst_id = side.source_id, side.target_id
        self.deletions = ctx.sync.deletions
        self.label = side.label
        self.scope = side.scope
        self.fingerprint = fingerprint(ctx.pair)
        self.folder_link: str | None = None
        # this pass's folder round, when the tree was walked (None: the mapping was reused)
        self.round: FolderRound | None = None
        # old target folders left in place for what they hold, checked again every pass
        self.retired: list[FolderRecord] = []
        # target folders a pass cut short may have made and not recorded (``_made_before``)
        self.making: list[FolderRecord] = []
        # of those, the ones found used again as a selected folder's copy or path
        self.made_paths: set[str] = set()
        self.tree_ids: set[str] | None = None  # the target's folders, when walked
        # search key -> (source id, target id, job) of this mailbox's arrivals in this pass
        self.arrived: dict[bytes, tuple[str, str | None, FolderJob]] = {}
        self.incremental = False
        self.rehome: Rehome | None = None  # what old folders hold of live items (``finish``)
        self.in_use: set[str] = set()  # the target folders of this pass's folders (``finish``)
        self.wanted: list[str] = []  # and where they go (``TargetRef.path``)
        self.mapped_elsewhere: set[str] = set()  # source folders the other mailbox maps
        # target folders of kept copies no record maps, as read in this pass (``_kept``)
        self.unmapped: dict[str, Folder | ServiceError | None] = {}
        self.left_out: dict[str, FolderJob] = {}  # their jobs, by source folder
        # the source ids of kept copies whose item this pass found still at the source
        # (``KeptOwn``, ``_drop_kept_moves``): asked once a pass, not by each of them
        self.at_source: set[str] = set()
        # this mailbox's items the item filters leave out, met by this pass's listings with
        # no record (``Ledger.left_out``): where a kept copy's item moved lives on
        self.left_out_seen: dict[bytes, list[tuple[str, str]]] = {}
        # when the round of each source folder's stored link began (``plan.known_at``)
        self.began: dict[str, int] = {}

    # -- before --------------------------------------------------------------------------------
    async def folders(self) -> list[FolderJob]:
        delta = self.ctx.sync.delta
        sync = await self.ctx.store.sync_state(self.ctx.key, self.scope) if delta else None
        pairs = await self.ctx.store.folders(self.ctx.key)
        self.began = {r.source_folder_id: r.link_began for r in pairs if r.link_began is not None}
        every = [r for r in pairs if r.scope == self.scope]
        self.making = [r for r in every if r.making]
        every = [r for r in every if not r.making]
        # the source folders the pair's other mailbox maps: a kept record of one of those is
        # not this mailbox's (``_kept``)
        self.mapped_elsewhere = {
            retired_source(r.source_folder_id) or r.source_folder_id
            for r in pairs
            if r.scope != self.scope
        }
        stored = [r for r in every if retired_source(r.source_folder_id) is None]
        self.retired = [r for r in every if retired_source(r.source_folder_id) is not None]
        self.ctx.ledger.arrived.clear()  # this mailbox's arrivals in this pass (for the counts)
        self.ctx.ledger.left_out.clear()
        # (the keys whose items left out it notes: ``Ledger.kept_keys``)
        kept = await self.ctx.store.kept_beside_live(self.ctx.key) if stored else []
        self.ctx.ledger.kept_keys = frozenset(kept)
        self.ctx.ledger.track_arrivals = bool(stored)
        if sync is not None and sync.fingerprint != self.fingerprint:
            self.ctx.log.info("pass.rules_changed", mailbox=self.scope, folders=len(stored))
            self.ctx.stats.notes.append(
                "the folder rules or item filters changed since the last pass: every folder "
                "listed in full and reconciled by search key (new links made)"
            )
        self.incremental = (
            sync is not None
            and sync.fingerprint == self.fingerprint
            and not self.ctx.kind.lists_in_full
        )
        tree = None
        if delta:
            link = sync.folder_link if self.incremental and sync is not None else None
            self.folder_link, rows, fresh = await self._folder_round(link)
            # a folder with no link (counted empty by the last walk, so not read: ``_job``;
            # or its link refused) needs its item count, which the stored mapping lacks:
            # the tree is read fresh (a request per 200 folders) instead of reused
            # (a folder made and not recorded by a pass cut short: the trees are read)
            quiet = not rows and not self.making
            if self.incremental and quiet and stored and all(r.delta_link for r in stored):
                return [self._cached(r) for r in stored]
            if not fresh:  # the tree changed (or counts needed): a fresh round, not walked
                self.folder_link, rows, fresh = await self._folder_round(None)
            tree = tree_from_rows(rows)  # None: the rows are not a whole tree, walked
        return await self._walk(every, tree)

    async def _folder_round(self, link: str | None) -> tuple[str | None, list[object], bool]:
        """Read the folder delta round: its closing link, its rows, and whether it was a
        fresh round (one that lists every folder). A refused link (410), or a fresh round's
        page refused, starts a fresh round (``MAX_FOLDER_ROUNDS`` rounds at most)."""
        for _ in range(MAX_FOLDER_ROUNDS):
            rows: list[object] = []
            new_link = None
            try:
                async for page in self.src.folder_delta(self.src_id, link):
                    rows += page.items
                    new_link = page.delta_link or new_link
                return new_link, rows, link is None
            except DeltaExpired:
                # a stored link refused, or a fresh round's next page (review5: the same as
                # an item round's, ``enumerate.FRESH_RESTARTS``): read fresh, rows kept
                # only from a round read whole
                self.ctx.log.info("pass.folder_link_expired", mailbox=self.scope)
                link = None
        raise Fatal("folderDelta: a fresh round was refused as expired", call="folderDelta")

    def _cached(self, r: FolderRecord, report: bool = True) -> FolderJob:
        """A folder from the stored mapping (the tree did not change since the last pass)."""
        names = split(r.source_path)
        node = FolderNode(
            Folder(r.source_folder_id, names[-1] if names else "", None, "", None, 0, 0),
            names,
            len(names),
        )
        plan = FolderPlan(node, parse_target_path(r.target_path), "")
        target = Folder(r.target_folder_id, "", None, "", None, 0, 0)
        retired = retired_source(r.source_folder_id) is not None
        if report and not retired:
            fs = self.ctx.stats.folder(self.label + r.source_path, names)
        else:  # an old folder of ours: not one of the pair's folders in the report
            fs = FolderStats(self.label + r.source_path, names=names)
        fs.target_path = r.target_path
        start = folder_start("same", r, incremental=True, mapped_before=True)
        fs.mode = start.mode
        return FolderJob(plan, target, fs, False, mode=start.mode, link=start.link)

    async def _walk(
        self, stored: list[FolderRecord], tree: list[FolderNode] | None = None
    ) -> list[FolderJob]:
        """Walk the source tree (unless a fresh folder round gave it), decide the folder
        round against the synced tree and the target as it is (``plan.plan_folder_round``,
        pure), then apply its renames and creations in the order it gives (an order in
        which no two folders collide)."""
        if tree is None:
            tree = await self.src.walk_folders(self.src_id)
        pair = self.ctx.pair
        plans = plan_folders(tree, pair.folders, pair.source, pair.target)
        target = TargetTree(self.dst, self.dst_id)
        await target.load()
        for anchor in {p.target.anchor for p in plans if p.target.anchor}:
            await target.resolve_anchor(anchor)
        if self.making:
            stored = await self._made_before(plans, stored, target)
        rnd = plan_folder_round(
            plans,
            stored,
            target.nodes(),
            target.anchors,
            self.deletions != "mirror",
            self.made_paths,
        )  # retired records are in ``stored``: never selected, they are gone folders
        self.round = rnd
        self.tree_ids = set(target.folders)
        made = await self._apply(rnd)
        # what the end of the pass needs of the round: its actions and placements are done
        # (the jobs hold what they need), and a pair keeps its round while its items copy
        self.round = FolderRound(gone=rnd.gone, disposal=rnd.disposal)
        mapped_before = any(retired_source(r.source_folder_id) is None for r in stored)
        return [self._job(placed, made, target, mapped_before) for placed in rnd.placed]

    async def _apply(self, rnd: FolderRound) -> dict[str, Folder]:
        """Make the round's renames and creations, recording each folder's mapping as soon
        as it is confirmed (a new folder's with the rest, in one transaction at the end, or
        when an action fails); the folders made or renamed, by the reference the round
        used."""
        made: dict[str, Folder] = {}
        by_target = {p.target: p for p in rnd.placed}
        done: set[str] = set()  # source folders whose mapping is recorded (or made new)
        new: list[tuple[Placed, str]] = []  # made, recorded with the rest
        rest: list[tuple[Placed, str]] = []  # kept or adopted: once every action is made
        # each creation under a folder that exists is journaled first (one transaction): a
        # pass cut short between a creation and its mapping's record leaves a folder nobody's
        # copy, which the next pass adopts where a folder is needed, and otherwise (its source
        # deleted or moved on since) would leave behind for good (``_made_before``)
        intents = self._intents(rnd)
        if intents:
            await self.ctx.store.map_folders(self.ctx.key, list(intents.values()))
        try:
            for action in rnd.actions:
                ref = await self._act(action, made)
                placed_here = by_target.get(ref)
                if placed_here is None or (isinstance(action, Rename) and action.aside):
                    continue
                done.add(placed_here.plan.source.folder.id)
                if placed_here.kind == "new" and placed_here.record is None:
                    # a pass cut short before it records this one meets a target folder
                    # that is nobody's copy: adopted where it is needed, items by search key
                    new.append((placed_here, _real(made, ref) or ref))
                    continue
                # recorded as soon as confirmed: a pass cut short anywhere after this leaves
                # the mapping (and, for a moved folder, its old copy) for the next to finish
                await self._map([(placed_here, _real(made, ref) or ref)])
            rest = [
                (p, _real(made, p.target) or p.target)
                for p in rnd.placed
                if p.plan.source.folder.id not in done
            ]
        finally:  # in one transaction: the new folders made, and the rest
            # and the journal of what was made, recorded now (a folder under a new one goes
            # with it); a creation that failed may have landed: its journal kept for the next
            # pass
            made_ids = [i.source_folder_id for ref, i in intents.items() if ref in made]
            # the folders made only as a path (a rename rule's, an excluded parent's): ours,
            # so that they go once nothing needs them (17009), not left empty and nobody's
            ids = {ref: made[ref].id if ref in made else ref for ref in rnd.paths}
            paths = [
                FolderRecord(path_id(ids[ref]), where, ids[ref], where, None, self.scope)
                for ref, where in rnd.paths.items()
                if ref in made or not ref.startswith("new:")
            ]
            with anyio.CancelScope(shield=True):
                await self._map(new + rest, made_ids, paths)
        return made

    def _intents(self, rnd: FolderRound) -> dict[str, FolderRecord]:
        """The journal of the round's creations, by the round's reference: each by the
        folder that exists now it goes under (``target_folder_id``, "" for the root) and
        the names from there (``target_path``: a folder made under one made in this round
        is journaled by its parent's place and its own name), so that all of it is written
        at once, before the first creation."""
        paths = {p.target: p.plan for p in rnd.placed}
        out: dict[str, FolderRecord] = {}
        for a in rnd.actions:
            if not isinstance(a, Create):
                continue
            up = out.get(a.parent) if a.parent is not None else None
            if a.parent is not None and a.parent.startswith("new:") and up is None:
                continue  # (a placeholder the round did not make: not expected)
            base = up.target_folder_id if up is not None else a.parent or ""
            names = (*split(up.target_path), a.name) if up is not None else (a.name,)
            plan = paths.get(a.ref)
            source = plan.source.path if plan is not None else ""
            where = display(names)
            rid = making_id(self.scope, base, where)
            out[a.ref] = FolderRecord(rid, source, base, where, None, self.scope)
        return out

    async def _made_before(
        self, plans: list[FolderPlan], stored: list[FolderRecord], target: TargetTree
    ) -> list[FolderRecord]:
        """The creations a pass cut short journaled and did not record (``_intents``): a
        folder found where one was made that is nobody's copy and that no selected folder
        needs now (its source deleted, or moved on, since) is recorded as an old folder of
        ours (retired): swept at the end of the pass, deleted once empty, like a moved
        folder's old copy. One a folder needs is left to the round, which adopts it. The
        journal is forgotten then; ``stored`` with the old folders added."""
        owned = {r.target_folder_id for r in stored}
        rnd = plan_folder_round(
            plans, stored, target.nodes(), target.anchors, self.deletions != "mirror"
        )
        used: set[str] = set()  # the round's folders, and every folder above them
        ups = [p.target for p in rnd.placed] + [
            a.parent for a in rnd.actions if isinstance(a, Create) and a.parent
        ]
        for first in ups:
            up: str | None = first
            while up is not None and up not in used:
                used.add(up)
                up = target.parent.get(up)
        olds: list[FolderRecord] = []
        for r in self.making:
            found: str | None = r.target_folder_id or None
            for name in split(r.target_path):  # from the folder it went under, by name
                found = target.children.get(found, {}).get(name.casefold())
                if found is None:
                    break
            if found is None or found in owned or found in target.anchors.values():
                continue
            if found in used:  # a selected folder's copy (adopted), or its path: ours
                self.made_paths.add(found)  # (``FolderRound.paths``, recorded by ``_apply``)
                continue
            owned.add(found)
            path = folder_path(target.folders, found)
            olds.append(self._retired(f"made:{r.source_path}", found, r.source_path, path))
            self.ctx.log.info("pass.unrecorded_folder", folder=path, source=r.source_path)
        # the folders found retired and the journal forgotten: one transaction
        gone = [r.source_folder_id for r in self.making]
        await self.ctx.store.map_folders(self.ctx.key, olds, forgotten=gone)
        self.making = []
        return [*stored, *olds]

    async def _act(self, action: Rename | Create, made: dict[str, Folder]) -> str:
        """Make one rename or creation; the reference the round used for its folder."""
        if isinstance(action, Rename):
            fid = _real(made, action.folder)
            assert fid is not None
            made[fid] = await self.dst.rename_folder(self.dst_id, fid, action.name)
            self.ctx.log.info(
                "pass.folder_renamed", folder=fid, name=action.name, aside=action.aside
            )
            return action.folder
        made[action.ref] = await self.dst.create_folder(
            self.dst_id, _real(made, action.parent), action.name, action.type
        )
        return action.ref

    def _job(
        self, placed: Placed, made: dict[str, Folder], target: TargetTree, mapped_before: bool
    ) -> FolderJob:
        """One selected folder's job this pass, as ``plan.folder_start`` says."""
        plan, rec = placed.plan, placed.record
        fs = self.ctx.stats.folder(self.label + plan.source.path, plan.source.names)
        fs.target_path = plan.target.path
        fid = _real(made, placed.target)
        assert fid is not None
        folder = made.get(fid) or made.get(placed.target) or target.folders.get(fid)
        counted = folder is not None  # the target folder's item count as the service gave it
        if folder is None:
            name = plan.target.parts[-1] if plan.target.parts else ""
            folder = Folder(fid, name, None, plan.type, None, 0, 0)
        start = folder_start(placed.kind, rec, self.incremental, mapped_before)
        if start.kept:
            job = FolderJob(plan, folder, fs, False, mode=start.mode, link=start.link)
        else:
            job = FolderJob(plan, folder, fs, placed.created)
            if placed.kind == "moved":
                job.sweep_from = placed.old
        if start.change is not None:
            self.ctx.stats.folder_changes[start.change] += 1
        if start.remade:
            self.ctx.stats.notes.append(
                f"target folder {rec.target_path if rec else plan.target.path} was "
                "deleted in the target: made again"
            )
        fs.mode = job.mode
        # a folder the walk (or the fresh folder round) counts empty on both sides, with no
        # link to read from: its round from nothing would return nothing and make a link;
        # the producer skips it unless it holds records (``Producer``; ``reread`` reads it
        # from nothing when a departure or a count says something may have gone into it)
        job.empty_at_walk = (
            self.ctx.sync.delta
            and job.mode == "full"
            and counted
            and plan.source.folder.item_count == 0
            and folder.item_count == 0
            and not (rec is not None and rec.delta_link)
        )
        return job

    async def _map(
        self,
        placed: list[tuple[Placed, str]],
        forgotten: Sequence[str] = (),
        paths: Sequence[FolderRecord] = (),
    ) -> None:
        """Record where source folders' items go now, in one transaction (with the records
        of ``forgotten`` deleted: the journal of the creations recorded; and ``paths``, the
        records of the folders made only as a path, added). A folder whose items
        are not all in it yet (moved, made again, adopted, new) loses its item link, so that
        whichever pass comes next lists it in full; a moved folder's old copy is remembered
        as retired until it is swept."""
        maps: list[FolderRecord] = []
        unlinked: list[str] = []
        for one, folder_id in placed:
            plan, rec = one.plan, one.record
            sid = plan.source.folder.id
            new = FolderRecord(sid, plan.source.path, folder_id, plan.target.path, None, self.scope)
            old = replace(rec, delta_link=None, link_began=None) if rec is not None else None
            if old != new:  # else recorded already
                maps.append(new)
            if one.kind not in KEEPS_COPY and rec is not None and rec.delta_link:
                unlinked.append(sid)
            if one.kind == "moved" and one.old is not None:
                old_path = rec.target_path if rec is not None else ""
                maps.append(self._retired(sid, one.old, plan.source.path, old_path))
        maps += paths
        await self.ctx.store.map_folders(self.ctx.key, maps, unlinked, forgotten)

    # -- after ---------------------------------------------------------------------------------
    def items_done(self) -> None:
        """This mailbox's items are copied and settled: keep its arrivals (the ledger is the
        pair's, and the pair's other mailbox is copied next, before either finishes)."""
        self.arrived = dict(self.ctx.ledger.arrived)
        self.left_out_seen = {k: list(v) for k, v in self.ctx.ledger.left_out.items()}

    async def finish(self, jobs: list[FolderJob], elsewhere: Iterable[bytes] = ()) -> None:
        """Apply what left the source (moves decided from the state: another live item of
        the same search key with a settled copy), dispose of old target folders (moved
        folders' old copies swept, folders gone from the source deleted or kept), deepest
        first, then store the links of the rounds whose changes are all settled."""
        await self.ctx.store.flush()  # the outcomes of this pass, read back below
        paths = self._path_jobs(jobs)
        await list_paths(self.ctx, self.dst_id, paths)
        await remove_second_copies(
            self.ctx,
            self.dst_id,
            jobs,
            paths,
            self.began,
            src_id=self.src_id,
            at_source=self.at_source,
            left_out=self.left_out_seen,
        )
        for one in paths:  # a second copy removed there: said in the report
            if one.stats.drift:
                self.ctx.stats.folders.setdefault(one.stats.source_path, one.stats)
        rnd = self.round
        gone = rnd.gone if rnd is not None else self.retired
        forget: list[str] = []
        departing: list[tuple[FolderJob, ItemRecord]] = [
            (job, r) for job in jobs for r in job.removed
        ]
        # copies of items the item filters no longer select (a change of the job's filters:
        # a new baseline lists every folder in full): gone from the selection, as a folder
        # no longer selected is, so decided as deletions at the source (docs/passes.md)
        departing += [(job, r) for job in jobs if job.complete for r in job.deselected]
        if rnd is not None:
            disposal = list(rnd.disposal)
        else:  # only retired folders: the deepest first
            deep = sorted(gone, key=lambda r: len(split(r.target_path)), reverse=True)
            disposal = [r.target_folder_id for r in deep]
        gone_jobs, goes = await self._gone_folders(gone, disposal, departing)
        self.in_use = {job.target.id for job in jobs}
        self.wanted = [job.plan.target.path for job in jobs]
        self.rehome = Rehome(
            self.ctx,
            self.src_id,
            self.dst_id,
            {j.source_id: j for j in jobs},
            frozenset(r.source_id for _, r in departing),
            {k: v[1] for k, v in self.arrived.items() if v[1] is not None},
        )
        # keys that arrived here, or in the pair's other mailbox (an item the archive policy
        # moved from the primary mailbox into the archive is a move, not a deletion)
        arrived = [*self.arrived, *elsewhere]
        # and keys whose kept copy a pass that ended early left beside a settled copy of the
        # item come back (soak seed 14219 keep: restored, copied again by a pass killed before
        # its end; or the kept copy's removal failed): whatever stopped it, this pass drops it
        arrived += await self.ctx.store.kept_beside_live(self.ctx.key)
        if departing or arrived:
            await self._departures(jobs, gone, departing, arrived, goes, forget)
        clean = await self._dispose(jobs, gone_jobs, disposal, forget)
        await self.ctx.store.forget_items(self.ctx.key, forget)
        await self.ctx.store.flush()
        if not self.ctx.sync.delta:
            # no links: when each folder's full listing began, once all it told is applied
            # (every record left in it was listed: at the source after that; review R1b)
            listed = {
                job.source_id: job.began_at
                for job in jobs
                if job.began_at is not None and job.complete and job.settled
            }
            await self.ctx.store.set_listed(self.ctx.key, listed)
            return
        links = links_to_store(job.round_end() for job in jobs)
        # every folder change applied: the folder link too, with the items' links in one
        # transaction; else the next pass reads the tree again
        sync = (self.scope, SyncRecord(self.folder_link, self.fingerprint)) if clean else None
        began = {job.source_id: job.began_at for job in jobs if job.began_at is not None}
        await self.ctx.store.set_delta_links(self.ctx.key, links, sync, began)

    def _path_jobs(self, jobs: list[FolderJob]) -> list[FolderJob]:
        """In a pass that lists the target in full, a job for each folder made only as the
        path of a selected folder that still is one (``FolderRound.paths``): its items are
        looked at as spares (``spares.list_paths``; soak seed 20110). One no selected folder
        needs any more is swept instead (``_gone``), one a selected folder took as its copy
        is that folder's job."""
        if self.incremental:
            return []
        in_use = {job.target.id for job in jobs}
        wanted = [job.plan.target.path for job in jobs]
        out: list[FolderJob] = []
        for rec in self.retired:
            if not is_path(rec.source_folder_id) or rec.target_folder_id in in_use:
                continue
            if any(under(w, rec.target_path) for w in wanted):
                job = self._cached(rec, report=False)
                job.stats.source_path = f"{self.label}{rec.target_path} (made as a path)"
                out.append(job)
        return out

    async def _gone_folders(
        self,
        gone: list[FolderRecord],
        disposal: list[str],
        departing: list[tuple[FolderJob, ItemRecord]],
    ) -> tuple[Gone, dict[str, str]]:
        """The folders mapped before and not selected now, by target folder, their items
        added to ``departing``; and the source folders whose target folder is deleted whole
        (under ``mirror``, with no per-item call for a copy in it), with that folder."""
        gone_jobs: Gone = defaultdict(list)
        goes: dict[str, str] = {}
        ids = [r.source_folder_id for r in gone if retired_source(r.source_folder_id) is None]
        known = await self.ctx.store.items_in_folders(self.ctx.key, ids) if ids else {}
        for rec in gone:
            job = self._cached(rec)
            job.stats.mode = "gone"
            if retired_source(rec.source_folder_id) is not None:
                gone_jobs[rec.target_folder_id].append((job, rec, []))  # its copies: kept
                continue
            records = (known or {}).get(rec.source_folder_id, {})
            mine = [r for r in records.values() if r.status is not Status.REMOVED]
            gone_jobs[rec.target_folder_id].append((job, rec, mine))
            departing.extend((job, r) for r in mine)
            if self.deletions == "mirror" and rec.target_folder_id in disposal:
                goes[rec.source_folder_id] = rec.target_folder_id
        return gone_jobs, goes

    async def _departures(
        self,
        jobs: list[FolderJob],
        gone: list[FolderRecord],
        departing: list[tuple[FolderJob, ItemRecord]],
        arrived: list[bytes],
        goes: dict[str, str],
        forget: list[str],
    ) -> None:
        """Each item that left the source: moved, deleted or kept (``removal_fate``). A copy
        goes with its folder only when it is in the folder deleted whole: one its record puts
        elsewhere (a moved folder's old copy not swept yet, its items never re-homed: the
        folder went at the source during the pass that moved it, or that pass was cut short)
        is removed on its own, else its record went with the folder and the copy stayed, in
        an old folder kept for it as an item nobody copied."""
        keys = [r.search_key for _, r in departing if r.search_key] + arrived
        leaving = {r.source_id for _, r in departing}
        known = await self.ctx.store.items_by_keys(self.ctx.key, keys)
        by_key: dict[bytes, list[ItemRecord]] = defaultdict(list)
        for r in known:
            if r.search_key and r.source_id not in leaving and r.status is not Status.REMOVED:
                by_key[r.search_key].append(r)
        kept = await self._kept(jobs, gone, known)
        await self._settle_departing(departing, known)
        # one item that left more than once (moved, then moved again or deleted): one copy
        # stands for it, the others go first (a pass cut short after them leaves that one);
        # under keep not two items proven apart (review R1b: ``plan.apart``)
        second = second_copies((r for _, r in departing), by_key, self._distinct)
        # a departing item whose copy is kept now stands for its key as a live one would: an
        # older kept copy of that key goes (restored, then deleted again in the pass that
        # copied it back: soak seed 13011 keep, two kept copies of one item)
        kept_now: dict[bytes, list[ItemRecord]] = defaultdict(list)
        for job, r in sorted(departing, key=lambda one: one[1].source_id not in second):
            if r.target_id is None:
                if r.status in SETTLED or r.status is Status.REMOVED or job.deferred:
                    continue  # deferred: its folder not listed, the next pass looks again
                forget.append(r.source_id)  # never landed, gone from the source
                continue
            others = by_key.get(r.search_key, []) if r.search_key else []
            # under keep, another item of its key proven to have been at the source beside
            # it is no move's arrival: its copy is kept (review R1b)
            others = [o for o in others if not self._distinct(r, o)]
            if r.source_id in second:
                others = [second[r.source_id]]
            with_folder = (
                r.target_folder_id is not None and goes.get(r.folder_id) == r.target_folder_id
            )
            fate = await self._removal(job, r, others, forget, folder_goes=with_folder)
            if fate is Fate.KEEP:
                self.ctx.ledger.kept(job, r, known_at(r, self.began))
            if fate is Fate.KEEP and r.search_key and r.status in SETTLED:
                kept_now[r.search_key].append(r)
        await self._drop_kept_moves(kept, by_key, forget, kept_now)
        for job in self.left_out.values():  # a kept copy's removal failed there: said
            if job.stats.unknown:
                self.ctx.stats.folders.setdefault(job.stats.source_path, job.stats)

    async def _dispose(
        self, jobs: list[FolderJob], gone_jobs: Gone, disposal: list[str], forget: list[str]
    ) -> bool:
        """Sweep moved folders' old copies and deal with gone folders, in ``disposal``'s
        order (deepest first); False when some of it is left for the next pass."""
        clean = True
        olds = {j.sweep_from: j for j in jobs if j.sweep_from is not None}
        in_use = {job.target.id for job in jobs}
        # gone folders whose copy is no longer in the target (deleted there) come last
        tree = self.tree_ids
        rest = [
            fid
            for fid in gone_jobs
            if fid not in disposal and fid not in in_use and (tree is None or fid not in tree)
        ]
        for fid in [*disposal, *rest]:
            if fid in olds and not await self._sweep(olds[fid]):
                clean = False
            for one in gone_jobs.pop(fid, []):
                if not await self._gone(*one, forget):
                    clean = False
        for left in gone_jobs.values():  # a folder another uses, or a well-known one: stays
            for _, rec, _ in left:
                if retired_source(rec.source_folder_id) is None:
                    self.ctx.stats.folder_changes["deleted"] += 1
                await self.ctx.store.forget_folder(self.ctx.key, rec.source_folder_id)
        return clean

    async def _kept(
        self, jobs: list[FolderJob], gone: list[FolderRecord], known: list[ItemRecord]
    ) -> list[tuple[FolderJob, ItemRecord]]:
        """Of the records of the keys this pass met, this mailbox's copies kept as deleted
        at the source, with their folder's job (a move seen in two halves drops them)."""
        folders = {j.source_id: j for j in jobs}
        for rec in [*gone, *self.retired]:
            orig = retired_source(rec.source_folder_id) or rec.source_folder_id
            folders.setdefault(orig, self._cached(rec, report=False))
        kept = [r for r in known if r.status is Status.REMOVED and r.search_key and r.target_id]
        for r in kept:
            fid = r.target_folder_id
            if r.folder_id in folders or r.folder_id in self.mapped_elsewhere or not fid:
                continue
            # kept in a folder no record maps any more: a well-known folder the rules left
            # out stays, its mapping forgotten, its kept copies still the job's (soak seed
            # 17018 keep: an item restored into a selected folder, its kept copy in the
            # excluded /Sent Items stayed beside the new one). This mailbox's, when its
            # target folder is one of this mailbox's (read once per pass)
            if fid not in self.unmapped:
                self.unmapped[fid] = await self._ours(fid)
            found = self.unmapped[fid]
            if isinstance(found, Folder):
                path = f"/{found.name} (left out)"  # in the report only if a removal fails
                rec = FolderRecord(r.folder_id, path, found.id, path, None, self.scope)
                job = self.left_out.setdefault(r.folder_id, self._cached(rec, report=False))
                folders[r.folder_id] = job
            elif found is not None:  # could not be read: said, and the next pass looks again
                self._unread_kept(jobs, known, r, found)
        return [(folders[r.folder_id], r) for r in kept if r.folder_id in folders]

    def _unread_kept(
        self, jobs: list[FolderJob], known: list[ItemRecord], kept: ItemRecord, exc: ServiceError
    ) -> None:
        """A kept copy whose folder could not be read: an outcome unknown of the item's copy
        that stands, in its folder (the next pass looks again: ``kept_beside_live``)."""
        by_folder = {j.source_id: j for j in jobs}
        for r in known:
            job = by_folder.get(r.folder_id)
            if r.search_key == kept.search_key and r.status in SETTLED and job is not None:
                why = f"its copy kept in another folder could not be read ({exc.message})"
                job.stats.unknown.append(
                    {
                        "id": r.source_id,
                        "size": r.size,
                        "reason": f"{why}; the next pass tries again",
                        "request_id": exc.request_id,
                    }
                )
                return

    async def _ours(self, folder_id: str) -> Folder | ServiceError | None:
        """Target folder ``folder_id`` when it is one of this pass's target mailbox; None
        when it is not (404); the error when it could not be read."""
        try:
            return await self.dst.get_folder(self.dst_id, folder_id)
        except NotFound:
            return None
        except Fatal:
            raise
        except ServiceError as exc:
            return exc

    async def _settle_departing(
        self, departing: list[tuple[FolderJob, ItemRecord]], known: list[ItemRecord]
    ) -> None:
        """Items gone from the source whose import's outcome was never recorded may have a
        copy nobody knows of: looked for in their target folder by search key, so it is
        removed (or kept) like any other copy, never left behind as an unexplained extra.
        So is one whose record names the copy an update was to go onto when that copy is not
        there: found gone (deleted or moved in the target), the item was copied again
        (``Stages._copy_now``) and the pass cut short before that copy was recorded; its old
        copy's removal met a 404 and the new one stayed, nobody's (soak seed 23002 mirror:
        an extra item signed off complete). A copy another record names (``known``: a kept
        copy, a user's copy of the message beside it) is never taken for it."""
        todo: dict[str, list[int]] = defaultdict(list)
        for k, (_, r) in enumerate(departing):
            unsure = r.status not in SETTLED and r.status is not Status.REMOVED
            if unsure and r.search_key and r.target_folder_id:
                todo[r.target_folder_id].append(k)
        named = {o.target_id for o in known if o.target_id}
        for folder_id, ks in todo.items():
            try:
                # gone only once its getFolder answers 404 too: one transient 404 left the
                # copy nobody knew of behind (an extra item)
                read = partial(target_index, self.dst, self.dst_id, folder_id)
                index = await unless_gone(self.dst, self.dst_id, folder_id, read)
                if index is None:
                    continue
            except Fatal:
                raise
            except ServiceError:
                for k in ks:
                    departing[k][0].deferred = True
                continue
            index.claimed |= named
            for k in ks:
                job, r = departing[k]
                named_there = index.by_key.get(r.search_key, []) if r.search_key else []
                if r.target_id is not None and r.target_id in named_there:
                    continue  # the copy it names is there: removed (or kept) as recorded
                found = index.claim(r.search_key)
                if found is not None:
                    departing[k] = (job, replace(r, target_id=found, status=Status.ADOPTED))

    async def _removal(
        self,
        job: FolderJob,
        rec: ItemRecord,
        others: list[ItemRecord],
        forget: list[str],
        folder_goes: bool = False,
    ) -> Fate:
        """``folder_goes``: the copy's folder is deleted as a whole next (no per-item call).
        Its fate (``removal_fate``)."""
        fate = removal_fate(rec, others, self.deletions)
        if fate is Fate.DEFER:
            job.deferred = True
            return fate
        if fate is Fate.KEEP:  # recorded kept by the caller (``_departures``)
            return fate
        same_copy = any(o.target_id == rec.target_id for o in others)
        remove = rec.target_id and rec.target_folder_id and not same_copy and not folder_goes
        done = await self._delete_copy(job, rec, fate is Fate.MOVED, fate.value) if remove else True
        if done is False:
            return fate
        if done is None and fate is Fate.DELETE and self.incremental:
            self.ctx.log.info("item.copy_not_found", item=rec.source_id)
            return fate  # its record kept for the next full pass (``_look_later``)
        if not folder_goes:
            forget.append(rec.source_id)  # else with its folder (``_gone``)
        if fate is Fate.MOVED:
            arrival = self.arrived.get(rec.search_key) if rec.search_key else None
            self.ctx.ledger.moved(job, rec, arrival[2] if arrival is not None else None)
        else:
            self.ctx.ledger.deleted(job)
        return fate

    async def _look_later(
        self, folder_id: str, records: list[ItemRecord], path: str = ""
    ) -> set[str] | None:
        """Before a folder is deleted whole (``mirror``): read what it holds (one listing).
        A copy in it of an item live at the source in another folder (the target's user
        moved it there) is made again where its item lives first (``rehome``); while one
        cannot be, the folder stays (None, tried next pass). Then, of the records of the
        folder, those whose copy is not in it (by source id): kept for a full pass.

        A mirrored deletion whose copy is not where it was recorded was deleted in the
        target, or moved there by its user (Outlook's delete moves it to Deleted Items,
        under a new id). Only a pass that lists the target in full can tell, so a pass that
        does not keeps the record: the next full pass, while the record is there, removes
        the moved copy by its search key as a second copy, then forgets the record
        (``spares``). Without the record that copy would be an item nobody copied, left.

        A folder that cannot be read (``path``, its source path) stays too, said in the
        pair's notes and the log (``pass.folder_kept``), never silently."""
        try:
            held = await self._held(folder_id)
        except NotFound:
            held = []
        except Fatal:
            raise
        except ServiceError as exc:
            self.ctx.log.warning("pass.folder_kept", folder=path, error=exc.message)
            self.ctx.stats.notes.append(
                f"the target folder of {path or folder_id}, deleted at the source, stays for "
                f"now: what it holds could not be read ({exc.message}); the next pass tries "
                "again"
            )
            return None
        assert self.rehome is not None
        stay: list[str] = []
        for fid, _, some in held:
            stay += [i for i, ok in (await self.rehome.sort(fid, some)).items() if not ok]
        if stay:
            self.ctx.stats.notes.append(
                f"a target folder deleted at the source stays for now: it holds {len(stay)} "
                "copies the target's user moved there of items live elsewhere at the source, "
                "not yet copied back where they live; the next pass tries again"
            )
            return None
        await self.ctx.store.flush()  # the copies made back, recorded before the folder goes
        if not self.incremental:
            return set()
        here = {it.id for _, _, some in held for it in some}
        return {r.source_id for r in records if r.target_id and r.target_id not in here}

    async def _drop_empty(self, held: list[Held], kept: set[str]) -> None:
        """The subfolders of a swept folder (``_held``'s, parents first) that keep nothing,
        nor any folder under them: deleted, the deepest first (the folder itself is the
        caller's). One the target's user made there holds nothing of theirs any more."""
        for fid, parent, _ in reversed(held[1:]):
            if fid in kept:
                if parent is not None:
                    kept.add(parent)  # a folder under it keeps something: it stays too
                continue
            with contextlib.suppress(NotFound):
                await self.dst.delete_folder(self.dst_id, fid)

    async def _held(self, folder_id: str) -> list[Held]:
        """What a folder that goes holds, by folder (id, parent, items; parents first): its
        own items, and those of every folder under it (deleting it takes them all). A mapped
        subfolder that goes was dealt with first (deepest first); one the target's user made
        has no source counterpart, and a copy of a live item moved into it is as much the
        item's only copy as one in the folder itself. A folder of the pair's in use is not
        read (nor anything under it). ``MAX_HELD_FOLDERS`` at most: past that the folder
        stays (``ServiceError``), never deleted unread."""
        out: list[Held] = []
        # (folder, its parent, how many folders it holds: None until read)
        todo: list[tuple[str, str | None, int | None]] = [(folder_id, None, None)]
        while todo:
            fid, parent, children = todo.pop()
            if len(out) >= MAX_HELD_FOLDERS:
                raise ServiceError(f"more than {MAX_HELD_FOLDERS} folders under {folder_id}")
            try:
                # a 404 (its items, itself or its subfolders) is the folder gone only once it
                # answers 404 itself: a transient one taken for gone had a folder deleted
                # whole unread (copies of live items in it)
                read = partial(self._held_one, fid, children)
                got = await unless_gone(self.dst, self.dst_id, fid, read)
                if got is None:
                    raise NotFound(f"listItems: target folder {fid} is gone", status=404)
                out.append((fid, parent, got[0]))
                below = got[1]
            except NotFound:
                if fid == folder_id:
                    raise
                continue  # a subfolder gone meanwhile: nothing of it to take
            todo += [(f.id, fid, f.child_count) for f in below if f.id not in self.in_use]
        return out

    async def _held_one(self, fid: str, children: int | None) -> tuple[list[Item], list[Folder]]:
        """One folder of ``_held``'s: its items and its subfolders (``children``: how many it
        holds, None until read: most hold none, and their subfolders are not asked for)."""
        items = await listed_items(self.dst, self.dst_id, fid)
        if children is None:
            children = (await self.dst.get_folder(self.dst_id, fid)).child_count
        below = await self.dst.list_folders(self.dst_id, fid) if children else []
        return items, below

    async def _delete_copy(
        self, job: FolderJob, rec: ItemRecord, hard: bool, why: str
    ) -> bool | None:
        """Remove one copy from the target: True when removed, None when it is not where it
        was recorded (``_look_later`` says why), False (and the job deferred) when that failed.
        A move leaves nothing behind at the source: neither here (hard delete); a deletion
        is mirrored as Exchange's own (Recoverable Items)."""
        assert rec.target_id and rec.target_folder_id
        try:
            await self.dst.delete_item(self.dst_id, rec.target_folder_id, rec.target_id, hard=hard)
        except NotFound:
            return None
        except Fatal:
            raise
        except ServiceError as exc:
            job.deferred = True
            job.stats.unknown.append(
                {
                    "id": rec.source_id,
                    "size": rec.size,
                    "reason": f"{why}: removing the old copy failed ({exc.message}); "
                    "the next pass tries again",
                    "request_id": exc.request_id,
                }
            )
            return False
        return True

    async def _drop_kept_moves(
        self,
        kept: list[tuple[FolderJob, ItemRecord]],
        by_key: dict[bytes, list[ItemRecord]],
        forget: list[str],
        kept_now: dict[bytes, list[ItemRecord]],
    ) -> None:
        """A copy kept as deleted at the source (``keep``) whose search key is back at the
        source with a settled copy of its own was a move seen in two halves: the kept copy
        goes (one copy per item, whatever the order the passes saw the move in). So does
        one whose key came back with a settled copy that this pass kept in turn
        (``kept_now``: its item deleted again): the newer kept copy stands for the item.
        A search key is not an item, though: a user's copy of a message keeps the key, so
        a kept copy goes only once its own source item is gone (a move, a deletion, a
        restore: each leaves it no item under its id); one whose item is still at the
        source (in a folder the rules left out, its copy beside a copy of its twin: review
        R1) stays (``survey.still_at_source``; a read that fails says "there": the copy stays,
        and the next pass that meets its key asks again)."""
        for job, r in kept:
            assert r.search_key is not None
            live = [o for o in by_key.get(r.search_key, []) if o.status in SETTLED]
            live += [o for o in kept_now.get(r.search_key, []) if o.source_id != r.source_id]
            # another item proven beside it (review R1b; also after a switch to mirror,
            # which keeps what keep kept)
            live = [o for o in live if not apart(r, o, self.began)]
            if not live:
                continue
            there = r.source_id in self.at_source or await still_at_source(
                self.src, self.src_id, r, self.ctx.log
            )
            if there:
                self.at_source.add(r.source_id)
            if there is not False or await self._moved_left_out(r):
                continue
            other_copy = all(o.target_id != r.target_id for o in live)
            if other_copy and await self._delete_copy(job, r, hard=True, why="moved") is False:
                continue
            forget.append(r.source_id)
            job.stats.kept = max(0, job.stats.kept - 1)

    async def _moved_left_out(self, r: ItemRecord) -> bool:
        """Whether the item of kept copy ``r``, gone under its id, lives on under a new one:
        moved at the source and still left out by the item filters (``survey.moved_left_out``:
        this pass's listings met it). Then its record follows it (``Store.move_record``: the
        same record, the same copy, kept, under the new id), so that the next pass, the
        sign-off and a full pass's sweeps find it there (one ``getItem``), and the copy stays
        (review R1). Each item met so stands for one kept copy."""
        found = moved_left_out(r, self.left_out_seen)
        if found is None or r.search_key is None:
            return False
        new_id, folder_id = found
        self.left_out_seen[r.search_key].remove(found)
        # one write: killed, one record or the other (before, the new id's intent, then its
        # outcome, then the old id's forgotten at the pass's end: a kill between them left
        # a bare intent, or both records, and the next pass removed the copy as a move's)
        await self.ctx.store.move_record(self.ctx.key, r.source_id, new_id, folder_id)
        self.at_source.add(new_id)
        self.ctx.log.info("item.kept_copy_moved", item=r.source_id, to=new_id)
        return True

    def _distinct(self, a: ItemRecord, b: ItemRecord) -> bool:
        """Under ``keep``: two records of one search key proven two items (``plan.apart``):
        neither departure is the other's move, nor one copy a second copy of the other.
        Under ``mirror`` both copies of items gone go anyway: decided by key, as before."""
        return self.deletions == "keep" and apart(a, b, self.began)

    async def _sweep(self, job: FolderJob) -> bool:
        """A moved folder's items now live in its new target folder: its old copy is swept
        (``_sweep_old``). False while some of its items are not re-homed yet: the next pass
        walks again and sweeps what is left."""
        old = job.sweep_from
        assert old is not None
        if not await self._sweep_old(old, retired_id(job.source_id, old), job.plan.source.path):
            return False
        job.sweep_from = None
        return job.settled

    async def _sweep_old(self, folder_id: str, record_id: str, path: str) -> bool:
        """An old target folder of ours (a moved folder's old copy, or a folder kept for its
        copies): remove the items whose search key has a settled copy elsewhere (their item
        lives on in another folder) or, no record naming them, a kept one elsewhere, then the
        folder itself once it holds nothing. What is left (copies kept as deleted at the
        source, items nobody copied) stays, and so does the folder, retired: every later pass
        looks at it again. Never deleted while it holds anything, whatever the policy
        (``keep`` then ``mirror`` keeps what ``keep`` kept)."""
        left = 0
        try:
            held = await self._held(folder_id)  # its own items and its subfolders'
            assert self.rehome is not None
            may_go: dict[str, bool] = {}
            for fid, _, some in held:  # copies of live items
                may_go.update(await self.rehome.sort(fid, some))
            items = [(fid, it) for fid, _, some in held for it in some]
            # (the keys of the copies ``may_go`` sorted too: their kept copies' records)
            keys = [it.search_key for _, it in items if it.search_key]
            # a recorded copy elsewhere, a live item's or a kept one (``_Elsewhere``: a moved
            # folder's items re-homed by a pass killed before its sweep, then the folder
            # deleted at the source: soak seed 13011 keep, the old copies left beside)
            # the copies made back (``may_go``), recorded before the removals and read below
            await self.ctx.store.flush()
            elsewhere = _Elsewhere(await self.ctx.store.items_by_keys(self.ctx.key, keys))
            kept: set[str] = set()  # the folders that keep something
            # a kept copy of an item the item filters leave out, still at the source, in a
            # moved folder's old copy beside a copy of its twin elsewhere: kept (review R1)
            own = KeptOwn(
                self.ctx, self.src_id, elsewhere.removed, self.at_source, self.left_out_seen
            )
            for fid, it in items:
                goes = may_go.get(it.id)
                if goes is None:
                    goes = bool(await elsewhere.copies(self.ctx, self.dst_id, it) - {it.id})
                if goes and not (it.search_key and await own.still_there(it.id, it.search_key)):
                    # a 404: the copy is gone already, as wanted (a delete whose answer was
                    # lost, its retry meeting what it did: soak seed 15024 mirror); the sweep
                    # goes on (the folder's own 404 is read by ``_folder_now`` below)
                    await elsewhere.forget_naming(self.ctx, it.id)
                    with contextlib.suppress(NotFound):
                        await self.dst.delete_item(self.dst_id, fid, it.id, hard=True)
                else:
                    left += 1
                    kept.add(fid)
            await self._drop_empty(held, kept)
            folder = await self._folder_now(folder_id)
            if left == 0 and folder.child_count == 0:
                await self.dst.delete_folder(self.dst_id, folder_id)
                await self.ctx.store.forget_folder(self.ctx.key, record_id)
                return True
            if folder.name.endswith(TEMP_SUFFIX):  # moved aside for a pass, stays: say why
                base = folder.name.removesuffix(TEMP_SUFFIX) + KEPT_SUFFIX
                with contextlib.suppress(ItemFailed):
                    await self.dst.rename_folder(self.dst_id, folder_id, base)
        except NotFound as exc:
            # already gone, once it answers 404 itself: a transient 404 (or a listing's of a
            # subfolder gone meanwhile) forgot the record of a folder that is there, left
            # behind for good
            if await self._still_there(folder_id):
                self.ctx.log.warning("pass.sweep_failed", folder=path, error=exc.message)
                return False
            await self.ctx.store.forget_folder(self.ctx.key, record_id)
            return True
        except Fatal:
            raise
        except ServiceError as exc:
            self.ctx.log.warning("pass.sweep_failed", folder=path, error=exc.message)
            return False
        if left:
            self.ctx.stats.notes.append(
                f"an old target folder of {path} keeps {left} items that are no copies of "
                "current source items (kept as deleted at the source or left out by the "
                "rules, or not ours): it stays, and a later pass removes it once empty"
            )
        return True

    async def _folder_now(self, folder_id: str) -> Folder:
        """Target folder ``folder_id`` as it is now (``getFolder``), its 404 read again
        (``gone.TRIES`` in all) before it is raised: one transient 404 as a sweep asked
        whether the old folder is empty left it in place for a pass (a leftover folder after
        a checked pass, a cutover's included)."""
        for n in range(GET_TRIES):
            try:
                return await self.dst.get_folder(self.dst_id, folder_id)
            except NotFound:
                if n == GET_TRIES - 1:
                    raise
                self.ctx.log.info("folder.get_404_again", folder=folder_id, tries=n + 1)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _still_there(self, folder_id: str) -> bool:
        """Whether target folder ``folder_id`` is there (or may be: its ``getFolder`` failed
        otherwise than with a 404)."""
        try:
            await self.dst.get_folder(self.dst_id, folder_id)
        except NotFound:
            return False
        except Fatal:
            raise
        except ServiceError:
            return True
        return True

    def _retired(
        self, source_folder_id: str, target_folder_id: str, path: str, target_path: str
    ) -> FolderRecord:
        """The record of an old target folder of ours (its target path orders the sweeps of
        a pass that does not walk the trees: the deepest first)."""
        rid = retired_id(source_folder_id, target_folder_id)
        return FolderRecord(rid, path, target_folder_id, target_path, None, self.scope)

    async def _gone(
        self, job: FolderJob, rec: FolderRecord, records: list[ItemRecord], forget: list[str]
    ) -> bool:
        """A folder mapped before and no longer selected (deleted at the source, or moved out
        of the selection), once its items were dealt with like any that left the source:
        under ``mirror`` its target folder goes; under ``keep`` it stays while it holds kept
        copies (or folders), retired, and goes once empty. A retired folder is swept."""
        if job.deferred:
            return False
        if is_path(rec.source_folder_id) and any(under(w, rec.target_path) for w in self.wanted):
            return True  # still the path of a selected folder: stays, nothing asked
        if retired_source(rec.source_folder_id) is not None:
            return await self._sweep_old(
                rec.target_folder_id, rec.source_folder_id, rec.source_path
            )
        self.ctx.stats.folder_changes["deleted"] += 1
        try:
            if self.deletions == "mirror":
                away = await self._look_later(rec.target_folder_id, records, rec.source_path)
                if away is None:
                    return False
                await self.dst.delete_folder(self.dst_id, rec.target_folder_id)
                forget.extend(r.source_id for r in records if r.source_id not in away)
            else:
                old = self._retired(
                    rec.source_folder_id, rec.target_folder_id, rec.source_path, rec.target_path
                )
                await self.ctx.store.map_folders(self.ctx.key, [old])
                await self.ctx.store.forget_folder(self.ctx.key, rec.source_folder_id)
                return await self._sweep_old(
                    rec.target_folder_id,
                    retired_id(rec.source_folder_id, rec.target_folder_id),
                    rec.source_path,
                )
        except NotFound:
            pass
        except Fatal:
            raise
        except ServiceError as exc:
            self.ctx.log.warning("pass.folder_delete_failed", folder=rec.target_path, error=exc)
            return False
        await self.ctx.store.forget_folder(self.ctx.key, rec.source_folder_id)
        return True
