"""Target drift around old folders: what an old target folder holds of live items, before it
goes. A target folder that is deleted whole (its source folder deleted, under ``mirror``) or
swept (a moved folder's old copy, a folder kept under ``keep``) may hold a copy the target's
user moved there of an item still live at the source, in another folder. The state still
records that item's copy where it was made (a delta pass does not see the target), so the
copy in the old folder is the item's only one: deleting the folder, or removing the copy as
a second copy, would leave the item with none until a full pass copies it again.

``Rehome.sort`` takes the listing of such a folder and says, per copy of a live item, whether
it may go: yes when the item's copy recorded elsewhere is there (read from that folder's
listing, one per folder, or made in this pass); else the copy is first copied back where the
item lives at the source (exported from the source, the source wins, imported in create
mode into the item's target folder, the record pointing to it), and may go once that is
done. Graph cannot move an item: the copy made back carries the item's search key, its
identity for every pass, as any copy does. An item whose copy could not be made back (or
whose record is not settled) keeps the copy, and the folder stays for the next pass.

Crash-safe as any import: before the copy is made back, the item's record becomes a
create's intent into its folder (``Store.detach_items``: no copy recorded, the moved one
not the record's any more). A pass killed, or an answer lost, before the outcome was
recorded (an answer lost is first looked for there by search key, in the pass,
``_import_settled``: one lost answer kept the folder and a second copy, soak seed 10001)
leaves the old folder in place, and the next pass settles the intent by search key
in the item's folder, as it settles any create whose answer was lost: it finds the copy made
back and takes it (or, if the item left the source meanwhile, removes or keeps it by the
job's policy: kept, the copy in the old folder is then a second copy, and goes), or makes
it, never leaving a copy nobody claims (review 3, finding 1); an item changed meanwhile is
updated onto the copy found (``settle``). A copy made back by an older engine, with no
intent, is found by the listing of the item's folder here and taken as the record's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from ..errors import Fatal, ServiceError
from ..graph import Item
from ..graph.sessions import ImportSessionPool
from ..plan import TargetIndex
from ..state import SETTLED, ItemRecord, Outcome, Status
from ..survey import target_index, unless_gone
from .context import PairContext
from .work import FolderJob

# imports of one copy made back, each after a look for the last one's copy (a lost answer)
COPY_BACK_TRIES = 3


@dataclass
class Rehome:
    ctx: PairContext
    src_id: str
    dst_id: str
    jobs: dict[str, FolderJob]  # the selected source folders' jobs, by source folder id
    leaving: frozenset[str]  # source ids of items that left the source in this pass
    made: dict[bytes, str]  # search key -> target id of a copy made in this pass

    def __post_init__(self) -> None:
        self._indexes: dict[str, TargetIndex | None] = {}
        self._pool: ImportSessionPool | None = None

    async def sort(self, folder_id: str, items: Sequence[Item]) -> dict[str, bool]:
        """Of ``items`` (what target folder ``folder_id`` holds, about to go), the copies of
        live items recorded in other folders of this mailbox, by id: True when the copy may
        go (the item's own copy is elsewhere, found or made back now, or its copy kept as
        deleted at the source is), False when it must stay. Items not in the answer are no
        copies of live items (kept as deleted at the source here, nobody's, or recorded
        elsewhere than this mailbox): the caller's policy."""
        keys = list({it.search_key for it in items if it.search_key})
        if not keys:
            return {}
        await self.ctx.store.flush()  # this pass's outcomes (its departures kept), read below
        live: dict[bytes, list[ItemRecord]] = {}
        kept: dict[bytes, list[ItemRecord]] = {}
        for r in await self.ctx.store.items_by_keys(self.ctx.key, keys):
            # live in a selected folder; a copy recorded here is the caller's to judge
            mine = r.folder_id in self.jobs
            here = r.target_folder_id == folder_id
            if not mine or here or not r.search_key:
                continue
            if r.status is Status.REMOVED:
                if r.target_id:
                    kept.setdefault(r.search_key, []).append(r)
            elif r.source_id not in self.leaving:
                live.setdefault(r.search_key, []).append(r)
        out: dict[str, bool] = {}
        for it in items:
            records = live.get(it.search_key) if it.search_key else None
            if records:
                out[it.id] = await self._elsewhere(it, records)
            elif it.search_key in kept and await self._kept_elsewhere(it, kept[it.search_key]):
                out[it.id] = True
        return out

    async def _kept_elsewhere(self, it: Item, records: list[ItemRecord]) -> bool:
        """Whether ``it``'s item, deleted at the source, has its kept copy in another folder
        (``keep``): ``it`` is then a second copy (the item's left for good after a copy was
        made back where it lived, review 3's finding 1), and may go."""
        assert it.search_key is not None
        for r in records:
            index = await self._index(r.target_folder_id) if r.target_folder_id else None
            if index is not None and r.target_id in index.by_key.get(it.search_key, []):
                return True
        return False

    async def _elsewhere(self, it: Item, records: list[ItemRecord]) -> bool:
        """Whether ``it``'s item has a copy where it lives (made back now if it had none)."""
        assert it.search_key is not None
        settled = [r for r in records if r.status in SETTLED and r.target_id]
        if len(settled) != len(records):
            return False  # a copy on its way, failed or unknown: nothing to tell yet
        r = settled[0]
        job = self.jobs[r.folder_id]
        home = r.target_folder_id
        if home is None or home != job.target.id:
            return False  # its folder re-homed and this record not yet: next pass
        if any(self.made.get(it.search_key) == s.target_id for s in settled):
            return True  # copied in this pass
        index = await self._index(home)
        if index is None:
            return False
        here = index.by_key.get(it.search_key, [])
        if any(s.target_id in here for s in settled):
            return True
        if here:  # copied back by a pass killed before it recorded the copy: that one is it
            found = here[0]
            self.ctx.store.record_outcome(
                self.ctx.key,
                Outcome(r.source_id, Status.ADOPTED, found, index.change_keys.get(found)),
            )
            return True
        return await self._copy_back(it, r, job, index)

    async def _copy_back(self, it: Item, r: ItemRecord, job: FolderJob, index: TargetIndex) -> bool:
        """Export the item from the source and import it where it lives: the record's copy."""
        assert r.target_folder_id is not None and it.search_key is not None
        try:
            (got,) = await self.ctx.src.export_items(self.src_id, [r.source_id])
            if got.data is None:
                self.ctx.log.warning(
                    "item.copy_back_failed", item=r.source_id, error=got.error_message
                )
                return False
            # an intent of its own, as every import has (review 3, finding 1): the record
            # becomes a create's intent into the item's folder, its copy the moved one no
            # more. An answer lost or a pass killed from here on, the next pass settles it
            # by search key there (``Change.SETTLE``; ``_settle_departing`` if the item left
            # the source meanwhile), so the copy made back is never one nobody claims
            # ... at the version exported (the item may have changed since its record and
            # its listing: a sign-off otherwise named the copy made back stale)
            version = {r.source_id: got.change_key} if got.change_key else None
            await self.ctx.store.detach_items(self.ctx.key, [r.source_id], version)
            if self._pool is None:
                self._pool = ImportSessionPool(self.ctx.dst, self.dst_id)
        except Fatal:
            raise
        except ServiceError as exc:
            self.ctx.log.warning("item.copy_back_failed", item=r.source_id, error=exc.message)
            return False
        made = await self._import_settled(it.search_key, r, got.data)
        if made is None:  # the intent stays: the next pass settles it by search key first
            return False
        self.ctx.store.record_outcome(self.ctx.key, Outcome(r.source_id, *made))
        index.by_key[it.search_key].append(made[1])
        reason = (
            "moved in the target into a folder that goes: copied back where it lives "
            "(the moved copy removed)"
        )
        job.stats.drift.append({"id": r.source_id, "reason": reason})
        self.ctx.log.warning("item.target_drift", item=r.source_id, reason=reason)
        return True

    async def _import_settled(
        self, key: bytes, r: ItemRecord, data: str
    ) -> tuple[Status, str, str | None] | None:
        """The copy made back into the item's folder: (status, target id, change key), or
        None when it could not be told. An import whose answer was lost or refused is looked
        for there by search key before it is sent again (``COPY_BACK_TRIES`` imports at
        most), as the stages settle any: a lost answer kept the old folder and its copy, a
        second copy, for the next pass (soak seed 10001: a 429 storm's lost import answer)."""
        assert r.target_folder_id is not None and self._pool is not None
        for attempt in range(COPY_BACK_TRIES):
            try:
                res = await self._pool.import_item(r.target_folder_id, data)
                return Status.DONE, res.item_id, res.change_key
            except Fatal:
                raise
            except ServiceError as exc:
                self.ctx.log.warning(
                    "item.copy_back_failed", item=r.source_id, error=exc.message, attempt=attempt
                )
            try:  # read afresh: the copy may have landed behind the lost answer
                fresh = await target_index(self.ctx.dst, self.dst_id, r.target_folder_id)
            except Fatal:
                raise
            except ServiceError:
                return None
            found = fresh.by_key.get(key, [])
            if found:
                return Status.ADOPTED, found[0], fresh.change_keys.get(found[0])
        return None

    async def _index(self, folder_id: str) -> TargetIndex | None:
        """The items of a folder of live items' copies (read once a pass); None: unread."""
        if folder_id not in self._indexes:
            try:
                # gone only once its getFolder answers 404 too (``survey.unless_gone``): one
                # transient 404 kept a folder that goes (and its copies) until the next pass
                self._indexes[folder_id] = await unless_gone(
                    self.ctx.dst,
                    self.dst_id,
                    folder_id,
                    partial(target_index, self.ctx.dst, self.dst_id, folder_id),
                )  # None: gone, a full pass makes it again
            except Fatal:
                raise
            except ServiceError:
                return None
        return self._indexes[folder_id]
