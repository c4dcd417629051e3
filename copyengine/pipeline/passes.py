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

from dataclasses import dataclass
from typing import Any

from ..config import Pair
from ..errors import DeltaExpired, Fatal, ItemFailed, NotFound, ServiceError
from ..folderpath import split
from ..graph import Folder, FolderNode, MailboxApi, TargetTree
from ..plan import (
    Fate,
    FolderPlan,
    fingerprint,
    plan_folders,
    reconcile_folders,
    removal_fate,
)
from ..plan.changes import parse_target_path
from ..report import PairStats
from ..state import SETTLED, FolderRecord, ItemRecord, Status, Store, SyncRecord
from .ledger import Ledger
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
        # mapped folders no longer selected, dealt with at the end (the rest of the folder
        # reconciliation is not kept: a pair's working state stays small)
        self.gone: list[FolderRecord] = []
        self.incremental = False

    # -- before --------------------------------------------------------------------------------
    async def folders(self) -> list[FolderJob]:
        sync = await self.store.sync_state(self.key, self.scope) if self.mode.delta else None
        stored = [r for r in await self.store.folders(self.key) if r.scope == self.scope]
        self.ledger.arrived.clear()  # arrivals match removals within one mailbox's pass
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
        return await self._walk(stored)

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
        tree = await self.src.walk_folders(self.src_id)
        plans = plan_folders(tree, self.pair.folders, self.pair.source, self.pair.target)
        changes = reconcile_folders(plans, stored)
        self.gone = changes.gone
        target = TargetTree(self.dst, self.dst_id)
        await target.load()
        kind: dict[str, tuple[str, FolderRecord | None, str | None]] = {}
        what: str
        rec: FolderRecord | None
        name: str | None
        for plan, rec in changes.same:
            kind[plan.source.folder.id] = ("same", rec, None)
        for plan, rec, name in changes.renamed:
            kind[plan.source.folder.id] = ("renamed", rec, name)
        for plan, rec in changes.moved:
            kind[plan.source.folder.id] = ("moved", rec, None)
        jobs: list[FolderJob] = []
        fc = self.stats.folder_changes
        for plan in plans:  # parents before children: a parent is renamed before its child
            what, rec, name = kind.get(plan.source.folder.id, ("new", None, None))
            fs = self.stats.folder(self.label + plan.source.path, plan.source.names)
            fs.target_path = plan.target.path
            folder: Folder | None = None
            if rec is not None and what in ("same", "renamed"):
                folder = target.folders.get(rec.target_folder_id)
                if folder is None:
                    self.stats.notes.append(
                        f"target folder {rec.target_path} was deleted in the target: made again"
                    )
                elif what == "renamed" and name is not None:
                    try:
                        folder = await target.rename(rec.target_folder_id, name)
                        fc["renamed"] += 1
                    except ItemFailed:  # the new name is taken: move into that folder
                        what, folder = "moved", None
            if folder is not None and rec is not None:
                link = rec.delta_link if self.incremental else None
                mode = "delta" if link else "full"
                job = FolderJob(plan, folder, fs, False, mode=mode, link=link)
                await self._mapped(job)
            else:
                folder, new = await target.ensure(plan.target, plan.type, plan.source.names[0])
                job = FolderJob(plan, folder, fs, new)
                if what == "moved" and rec is not None and rec.target_folder_id != folder.id:
                    job.sweep_from = rec.target_folder_id  # mapped once the old one is swept
                    fc["moved"] += 1
                else:
                    fc["created"] += 1 if stored else 0
                    await self._mapped(job)
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
        """Apply what left the source, sweep moved folders, deal with gone folders, then
        store the links of the rounds whose changes are all settled."""
        await self.store.flush()  # the outcomes of this pass, read back by the sweeps
        forget: list[str] = []
        arrived = {k: v[0] for k, v in self.ledger.arrived.items()}
        clean = True
        for job in jobs:
            for removed in job.removed:
                await self._removal(job, removed, arrived, forget)
        for job in reversed(jobs):  # children first: an emptied parent can then go too
            if job.sweep_from is not None and not await self._sweep(job):
                clean = False
        for gone in self.gone:
            if not await self._gone(gone, arrived, forget):
                clean = False
        await self.store.forget_items(self.key, forget)
        await self.store.flush()
        if not self.mode.delta:
            return
        links: list[tuple[str, str | None]] = []
        for job in jobs:
            st = job.stats
            settled = not st.unknown and not st.not_attempted and not job.deferred
            if job.next_link and job.complete and settled:
                links.append((job.source_id, job.next_link))
            elif job.expired:
                links.append((job.source_id, None))
        await self.store.set_delta_links(self.key, links)
        if clean:
            await self.store.set_sync_state(
                self.key, self.scope, SyncRecord(self.folder_link, self.fingerprint)
            )

    async def _removal(
        self,
        job: FolderJob,
        rec: ItemRecord,
        arrived: dict[bytes, str],
        forget: list[str],
        folder_goes: bool = False,
    ) -> None:
        """``folder_goes``: the copy's folder is deleted as a whole next (no per-item call)."""
        fate = removal_fate(rec, arrived, self.ledger.unsettled_keys, self.mode.deletions)
        if fate is Fate.DEFER:
            job.deferred = True
            return
        if fate is Fate.KEEP:
            self.ledger.kept(job, rec)
            return
        arrival = self.ledger.arrived.get(rec.search_key) if rec.search_key else None
        same_copy = arrival is not None and arrival[1] == rec.target_id
        if rec.target_id and rec.target_folder_id and not same_copy and not folder_goes:
            try:
                # a move leaves nothing behind at the source: neither here (hard delete);
                # a deletion is mirrored as Exchange's own (Recoverable Items)
                await self.dst.delete_item(
                    self.dst_id, rec.target_folder_id, rec.target_id, hard=fate is Fate.MOVED
                )
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
                        "reason": f"{fate.value}: removing the old copy failed ({exc.message}); "
                        "the next pass tries again",
                        "request_id": exc.request_id,
                    }
                )
                return
        forget.append(rec.source_id)
        if fate is Fate.MOVED and arrival is not None:
            self.ledger.moved(job, rec, arrival[2])
        else:
            self.ledger.deleted(job)

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
            elif left:
                self.stats.notes.append(
                    f"the old target folder of {job.plan.source.path} keeps {left} items that "
                    "are not copies of its source items; it was left in place"
                )
        except NotFound:
            pass  # the old folder is already gone
        except Fatal:
            raise
        except ServiceError as exc:
            self.log.warning("pass.sweep_failed", folder=job.plan.source.path, error=exc.message)
            return False
        await self._mapped(job)
        job.sweep_from = None
        return True

    async def _gone(self, rec: FolderRecord, arrived: dict[bytes, str], forget: list[str]) -> bool:
        """A folder mapped before and no longer selected (deleted at the source, or moved out
        of the selection): its items are handled like any that left the source; under
        ``mirror`` the target folder goes too."""
        records = await self.store.items_in_folder(self.key, rec.source_folder_id)
        job = self._cached(rec)
        job.stats.mode = "gone"
        mirror = self.mode.deletions == "mirror"
        for r in records.values():
            if r.target_id and r.status is not Status.REMOVED:
                await self._removal(job, r, arrived, forget, folder_goes=mirror)
        if job.deferred:
            return False
        self.stats.folder_changes["deleted"] += 1
        if mirror:
            try:
                await self.dst.delete_folder(self.dst_id, rec.target_folder_id)
            except NotFound:
                pass
            except Fatal:
                raise
            except ServiceError as exc:
                self.log.warning("pass.folder_delete_failed", folder=rec.target_path, error=exc)
                return False
            forget.extend(r.source_id for r in records.values())
        await self.store.forget_folder(self.key, rec.source_folder_id)
        return True
