"""One mailbox of a pair in one pass, before and after its items are copied.

Before: the folder delta round (from the stored folder link, else a first round) says whether
the source's folder tree changed. If it did not, the folders come from the mapping the state
remembers, with no walk of either tree; if it did (or there is no mapping), the source tree
is walked, planned, and reconciled with the mapping: renamed folders are renamed in the
target, moved folders get a new target folder (their items re-homed, the old folder swept),
new folders are created, and folders gone from the source are dealt with at the end.

After (only when the pair's items were settled, never after a drain): items that left their
folder are moved, deleted or kept in the target (``[sync] deletions``), old folders are swept,
and then, and only then, the links that close this pass's rounds are stored with the
fingerprint of the rules they were made under."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from ..config import Pair
from ..errors import DeltaExpired, Fatal, NotFound, ServiceError
from ..folderpath import split
from ..graph import Folder, FolderNode, MailboxApi, TargetTree
from ..plan import (
    Fate,
    FolderPlan,
    FolderRound,
    Rename,
    RoundEnd,
    fingerprint,
    links_to_store,
    plan_folder_round,
    plan_folders,
    removal_fate,
    retired_id,
    retired_source,
)
from ..plan.changes import parse_target_path
from ..report import PairStats
from ..state import SETTLED, FolderRecord, ItemRecord, Status, Store, SyncRecord
from .ledger import Ledger
from .mirror import target_index
from .work import FolderJob

MAX_FOLDER_ROUNDS = 2  # a folder round whose link was refused is started once more, fresh


@dataclass(frozen=True)
class PassMode:
    """How this run treats what earlier passes left."""

    full: bool = False  # ``run --full``: list every folder in full, reconcile, new links
    delta: bool = True  # ``[sync] delta``: false lists in full and stores no link
    deletions: str = "keep"  # ``[sync] deletions``


class MailboxPass:
    def __init__(
        self,
        src: MailboxApi,
        dst: MailboxApi,
        src_id: str,
        dst_id: str,
        pair: Pair,
        store: Store,
        stats: PairStats,
        ledger: Ledger,
        mode: PassMode,
        label: str,
        log: Any,
    ) -> None:
        self.src, self.dst = src, dst
        self.src_id, self.dst_id = src_id, dst_id
        self.pair = pair
        self.key = pair.key
        self.store = store
        self.stats = stats
        self.ledger = ledger
        self.mode = mode
        self.label = label
        self.scope = "archive" if label else "primary"
        self.log = log
        self.fingerprint = fingerprint(pair)
        self.folder_link: str | None = None
        # this pass's folder round, when the tree was walked (None: the mapping was reused)
        self.round: FolderRound | None = None
        # old target folders left in place for what they hold, checked again every pass
        self.retired: list[FolderRecord] = []
        self.incremental = False

    # -- before --------------------------------------------------------------------------------
    async def folders(self) -> list[FolderJob]:
        sync = await self.store.sync_state(self.key, self.scope) if self.mode.delta else None
        every = [r for r in await self.store.folders(self.key) if r.scope == self.scope]
        stored = [r for r in every if retired_source(r.source_folder_id) is None]
        self.retired = [r for r in every if retired_source(r.source_folder_id) is not None]
        self.ledger.arrived.clear()  # this mailbox's arrivals in this pass (for the counts)
        self.ledger.track_arrivals = bool(stored)
        if sync is not None and sync.fingerprint != self.fingerprint:
            self.log.info("pass.rules_changed", mailbox=self.scope, folders=len(stored))
            self.stats.notes.append(
                "the folder rules or item filters changed since the last pass: every folder "
                "listed in full and reconciled by search key (new links made)"
            )
        self.incremental = (
            sync is not None and sync.fingerprint == self.fingerprint and not self.mode.full
        )
        rows = -1
        if self.mode.delta:
            link = sync.folder_link if self.incremental and sync is not None else None
            self.folder_link, rows = await self._folder_round(link)
        if self.incremental and rows == 0 and stored:
            return [self._cached(r) for r in stored]
        return await self._walk(every)

    async def _folder_round(self, link: str | None) -> tuple[str | None, int]:
        """Read the folder delta round; (its closing link, rows in it). A refused link
        (410) starts a fresh round, which lists every folder: the tree is walked."""
        for _ in range(MAX_FOLDER_ROUNDS):
            rows, new_link = 0, None
            try:
                async for page in self.src.folder_delta(self.src_id, link):
                    rows += len(page.items)
                    new_link = page.delta_link or new_link
                return new_link, rows
            except DeltaExpired:
                if link is None:
                    raise
                self.log.info("pass.folder_link_expired", mailbox=self.scope)
                link = None
        raise Fatal("folderDelta: a fresh round was refused as expired", call="folderDelta")

    def _cached(self, r: FolderRecord) -> FolderJob:
        """A folder from the stored mapping (the tree did not change since the last pass)."""
        names = split(r.source_path)
        node = FolderNode(
            Folder(r.source_folder_id, names[-1] if names else "", None, "", None, 0, 0),
            names,
            len(names),
        )
        plan = FolderPlan(node, parse_target_path(r.target_path), "")
        target = Folder(r.target_folder_id, "", None, "", None, 0, 0)
        fs = self.stats.folder(self.label + r.source_path, names)
        fs.target_path = r.target_path
        mode = "delta" if r.delta_link else "full"
        fs.mode = mode
        return FolderJob(plan, target, fs, False, mode=mode, link=r.delta_link)

    async def _walk(self, stored: list[FolderRecord]) -> list[FolderJob]:
        """Walk the source tree, decide the folder round against the synced tree and the
        target as it is (``plan.plan_folder_round``, pure), then apply its renames and
        creations in the order it gives (an order in which no two folders collide)."""
        tree = await self.src.walk_folders(self.src_id)
        plans = plan_folders(tree, self.pair.folders, self.pair.source, self.pair.target)
        target = TargetTree(self.dst, self.dst_id)
        await target.load()
        for anchor in {p.target.anchor for p in plans if p.target.anchor}:
            await target.resolve_anchor(anchor)
        rnd = plan_folder_round(
            plans, stored, target.nodes(), target.anchors, self.mode.deletions != "mirror"
        )  # retired records are in ``stored``: never selected, they are gone folders
        self.round = rnd
        made: dict[str, Folder] = {}

        def real(ref: str | None) -> str | None:
            return made[ref].id if ref is not None and ref in made else ref

        for action in rnd.actions:
            if isinstance(action, Rename):
                fid = real(action.folder)
                assert fid is not None
                made[fid] = await self.dst.rename_folder(self.dst_id, fid, action.name)
                self.log.info(
                    "pass.folder_renamed", folder=fid, name=action.name, aside=action.aside
                )
            else:
                made[action.ref] = await self.dst.create_folder(
                    self.dst_id, real(action.parent), action.name, action.type
                )
        jobs: list[FolderJob] = []
        fc = self.stats.folder_changes
        for placed in rnd.placed:
            plan, rec = placed.plan, placed.record
            fs = self.stats.folder(self.label + plan.source.path, plan.source.names)
            fs.target_path = plan.target.path
            fid = real(placed.target)
            assert fid is not None
            folder = made.get(fid) or made.get(placed.target) or target.folders.get(fid)
            if folder is None:
                folder = Folder(
                    fid,
                    plan.target.parts[-1] if plan.target.parts else "",
                    None,
                    plan.type,
                    None,
                    0,
                    0,
                )
            if placed.kind in ("same", "renamed") and rec is not None:
                link = rec.delta_link if self.incremental else None
                job = FolderJob(
                    plan, folder, fs, False, mode="delta" if link else "full", link=link
                )
                if placed.kind == "renamed":
                    fc["renamed"] += 1
            else:
                job = FolderJob(plan, folder, fs, placed.created)
                if placed.kind == "moved":
                    job.sweep_from = placed.old
                    fc["moved"] += 1
                elif placed.kind == "remade":
                    self.stats.notes.append(
                        f"target folder {rec.target_path if rec else plan.target.path} was "
                        "deleted in the target: made again"
                    )
                elif any(retired_source(r.source_folder_id) is None for r in stored):
                    fc["created"] += 1
            if job.sweep_from is None:
                await self._mapped(job)  # a moved folder: once its old copy is swept
            fs.mode = job.mode
            jobs.append(job)
        return jobs

    async def _mapped(self, job: FolderJob) -> None:
        await self.store.folder_mapped(
            self.key,
            job.source_id,
            job.plan.source.path,
            job.target.id,
            job.plan.target.path,
            self.scope,
        )

    # -- after ---------------------------------------------------------------------------------
    async def finish(self, jobs: list[FolderJob]) -> None:
        """Apply what left the source (moves decided from the state: another live item of
        the same search key with a settled copy), dispose of old target folders (moved
        folders' old copies swept, folders gone from the source deleted or kept), deepest
        first, then store the links of the rounds whose changes are all settled."""
        await self.store.flush()  # the outcomes of this pass, read back below
        rnd = self.round
        gone = rnd.gone if rnd is not None else self.retired
        forget: list[str] = []
        clean = True
        departing: list[tuple[FolderJob, ItemRecord]] = [
            (job, r) for job in jobs for r in job.removed
        ]
        gone_jobs: dict[str, list[tuple[FolderJob, FolderRecord, list[ItemRecord]]]] = defaultdict(
            list
        )
        for rec in gone:
            job = self._cached(rec)
            job.stats.mode = "gone"
            if retired_source(rec.source_folder_id) is not None:
                gone_jobs[rec.target_folder_id].append((job, rec, []))  # kept copies only
                continue
            records = await self.store.items_in_folder(self.key, rec.source_folder_id)
            mine = [r for r in records.values() if r.status is not Status.REMOVED]
            gone_jobs[rec.target_folder_id].append((job, rec, mine))
            departing.extend((job, r) for r in mine)
        kept = await self._kept(jobs, gone) if self.ledger.arrived or departing else []
        if departing or kept:
            keys = [r.search_key for _, r in departing if r.search_key]
            keys += [r.search_key for _, r in kept if r.search_key]
            by_key = await self._live_by_key(keys, {r.source_id for _, r in departing})
            await self._settle_departing(departing)
            mirror = self.mode.deletions == "mirror"
            goes = {rec.source_folder_id for rec in gone} if mirror else set()
            for job, r in departing:
                if r.target_id is None:
                    if r.status in SETTLED or r.status is Status.REMOVED:
                        continue
                    forget.append(r.source_id)  # never landed, gone from the source
                    continue
                others = by_key.get(r.search_key, []) if r.search_key else []
                await self._removal(job, r, others, forget, folder_goes=r.folder_id in goes)
            await self._drop_kept_moves(kept, by_key, forget)
        olds = {j.sweep_from: j for j in jobs if j.sweep_from is not None}
        if rnd is not None:
            disposal = rnd.disposal
        else:  # only retired folders: the deepest first
            deep = sorted(gone, key=lambda r: len(split(r.target_path)), reverse=True)
            disposal = [r.target_folder_id for r in deep]
        in_use = {job.target.id for job in jobs}
        # gone folders whose copy is no longer in the target (deleted there) come last
        rest = [fid for fid in gone_jobs if fid not in disposal and fid not in in_use]
        for fid in [*disposal, *rest]:
            if fid in olds and not await self._sweep(olds[fid]):
                clean = False
            for one in gone_jobs.pop(fid, []):
                if not await self._gone(*one, forget):
                    clean = False
        for left in gone_jobs.values():  # their copy is now another folder's: it stays
            for _, rec, _ in left:
                await self.store.forget_folder(self.key, rec.source_folder_id)
        await self.store.forget_items(self.key, forget)
        await self.store.flush()
        if not self.mode.delta:
            return
        rounds = [
            RoundEnd(
                job.source_id,
                job.next_link,
                job.complete,
                job.expired,
                not job.stats.unknown and not job.stats.not_attempted and not job.deferred,
            )
            for job in jobs
        ]
        await self.store.set_delta_links(self.key, links_to_store(rounds))
        if clean:  # every folder change applied: else the next pass walks again
            await self.store.set_sync_state(
                self.key, self.scope, SyncRecord(self.folder_link, self.fingerprint)
            )

    async def _live_by_key(
        self, keys: list[bytes], departing: set[str]
    ) -> dict[bytes, list[ItemRecord]]:
        """The state's records of the items with these search keys that are still at the
        source (not removed, not departing in this pass), by key, in any folder of the pair."""
        out: dict[bytes, list[ItemRecord]] = defaultdict(list)
        for r in await self.store.items_by_keys(self.key, keys):
            if r.search_key and r.source_id not in departing and r.status is not Status.REMOVED:
                out[r.search_key].append(r)
        return out

    async def _kept(
        self, jobs: list[FolderJob], gone: list[FolderRecord]
    ) -> list[tuple[FolderJob, ItemRecord]]:
        """This mailbox's copies kept as deleted at the source, with their folder's job."""
        folders = {j.source_id: j for j in jobs}
        for rec in [*gone, *self.retired]:
            orig = retired_source(rec.source_folder_id) or rec.source_folder_id
            folders.setdefault(orig, self._cached(rec))
        return [
            (folders[r.folder_id], r)
            for r in await self.store.items_with_status(self.key, Status.REMOVED)
            if r.folder_id in folders and r.search_key and r.target_id
        ]

    async def _settle_departing(self, departing: list[tuple[FolderJob, ItemRecord]]) -> None:
        """Items gone from the source whose import's outcome was never recorded may have a
        copy nobody knows of: looked for in their target folder by search key, so it is
        removed (or kept) like any other copy, never left behind as an unexplained extra."""
        todo: dict[str, list[int]] = defaultdict(list)
        for k, (_, r) in enumerate(departing):
            unsure = r.status not in SETTLED and r.status is not Status.REMOVED
            if r.target_id is None and unsure and r.search_key and r.target_folder_id:
                todo[r.target_folder_id].append(k)
        for folder_id, ks in todo.items():
            try:
                index = await target_index(self.dst, self.dst_id, folder_id)
            except NotFound:
                continue
            except Fatal:
                raise
            except ServiceError:
                for k in ks:
                    departing[k][0].deferred = True
                continue
            for k in ks:
                job, r = departing[k]
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
    ) -> None:
        """``folder_goes``: the copy's folder is deleted as a whole next (no per-item call)."""
        fate = removal_fate(rec, others, self.mode.deletions)
        if fate is Fate.DEFER:
            job.deferred = True
            return
        if fate is Fate.KEEP:
            self.ledger.kept(job, rec)
            return
        same_copy = any(o.target_id == rec.target_id for o in others)
        remove = rec.target_id and rec.target_folder_id and not same_copy and not folder_goes
        if remove and not await self._delete_copy(
            job, rec, hard=fate is Fate.MOVED, why=fate.value
        ):
            return
        forget.append(rec.source_id)
        if fate is Fate.MOVED:
            arrival = self.ledger.arrived.get(rec.search_key) if rec.search_key else None
            self.ledger.moved(job, rec, arrival[2] if arrival is not None else None)
        else:
            self.ledger.deleted(job)

    async def _delete_copy(self, job: FolderJob, rec: ItemRecord, hard: bool, why: str) -> bool:
        """Remove one copy from the target; False (and the job deferred) when that failed.
        A move leaves nothing behind at the source: neither here (hard delete); a deletion
        is mirrored as Exchange's own (Recoverable Items)."""
        assert rec.target_id and rec.target_folder_id
        try:
            await self.dst.delete_item(self.dst_id, rec.target_folder_id, rec.target_id, hard=hard)
        except NotFound:
            pass  # already gone
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
    ) -> None:
        """A copy kept as deleted at the source (``keep``) whose search key is back at the
        source with a settled copy of its own was a move seen in two halves: the kept copy
        goes (one copy per item, whatever the order the passes saw the move in)."""
        for job, r in kept:
            assert r.search_key is not None
            live = [o for o in by_key.get(r.search_key, []) if o.status in SETTLED]
            if not live:
                continue
            other_copy = all(o.target_id != r.target_id for o in live)
            if other_copy and not await self._delete_copy(job, r, hard=True, why="moved"):
                continue
            forget.append(r.source_id)
            job.stats.kept = max(0, job.stats.kept - 1)

    async def _sweep(self, job: FolderJob) -> bool:
        """A moved folder's items now live in its new target folder: remove their copies from
        the old one, and the old folder itself once it holds nothing else."""
        old = job.sweep_from
        assert old is not None
        records = await self.store.items_in_folder(self.key, job.source_id)
        keys = {
            r.search_key
            for r in records.values()
            if r.status in SETTLED and r.target_folder_id == job.target.id and r.search_key
        }
        left = 0
        try:
            async for page in self.dst.list_items(self.dst_id, old, with_keys=True):
                for it in page:
                    if it.search_key in keys:
                        await self.dst.delete_item(self.dst_id, old, it.id, hard=True)
                    else:
                        left += 1
            folder = await self.dst.get_folder(self.dst_id, old)
            if left == 0 and folder.child_count == 0:
                await self.dst.delete_folder(self.dst_id, old)
            else:
                if left:
                    self.stats.notes.append(
                        f"the old target folder of {job.plan.source.path} keeps {left} items "
                        "that are not copies of its current source items; it is left in place "
                        "and removed by a later pass once empty"
                    )
                await self._retire(job.source_id, old, job.plan.source.path)
        except NotFound:
            pass  # the old folder is already gone
        except Fatal:
            raise
        except ServiceError as exc:
            self.log.warning("pass.sweep_failed", folder=job.plan.source.path, error=exc.message)
            return False
        if job.deferred or job.stats.unknown or job.stats.not_attempted:
            return False  # some items may not be re-homed yet: the old mapping stays
        await self._mapped(job)
        job.sweep_from = None
        return True

    async def _retire(self, source_folder_id: str, target_folder_id: str, path: str) -> None:
        await self.store.folder_mapped(
            self.key,
            retired_id(source_folder_id, target_folder_id),
            path,
            target_folder_id,
            "",
            self.scope,
        )

    async def _gone(
        self, job: FolderJob, rec: FolderRecord, records: list[ItemRecord], forget: list[str]
    ) -> bool:
        """A folder mapped before and no longer selected (deleted at the source, or moved out
        of the selection), once its items were dealt with like any that left the source:
        under ``mirror`` its target folder goes; under ``keep`` it stays while it holds kept
        copies (or folders), and goes once empty."""
        if job.deferred:
            return False
        orig = retired_source(rec.source_folder_id)
        if orig is None:
            self.stats.folder_changes["deleted"] += 1
        delete = self.mode.deletions == "mirror"
        try:
            if not delete:
                folder = await self.dst.get_folder(self.dst_id, rec.target_folder_id)
                delete = folder.item_count == 0 and folder.child_count == 0
            if delete:
                await self.dst.delete_folder(self.dst_id, rec.target_folder_id)
            elif orig is None:  # kept: checked again by later passes, deleted once empty
                await self._retire(rec.source_folder_id, rec.target_folder_id, rec.source_path)
            else:
                return True  # still holds kept copies
        except NotFound:
            pass
        except Fatal:
            raise
        except ServiceError as exc:
            self.log.warning("pass.folder_delete_failed", folder=rec.target_path, error=exc)
            return False
        if self.mode.deletions == "mirror":
            forget.extend(r.source_id for r in records)
        await self.store.forget_folder(self.key, rec.source_folder_id)
        return True
