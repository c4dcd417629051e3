"""The producer: enumerate each folder, filter, decide against the state (and, when listing in
full, the target), and hand on batches for exportItems. Decisions are ``plan``'s; this only
applies them.

A folder listed in full is reconciled by search key: what the target already holds is
adopted, what the state says was copied and is still there is done, everything else is
copied. A folder read through its delta link sees only what changed: new items are created,
changed items updated in place, earlier imports without an outcome settled first. Either
way the items that left the folder are noted on its job for the end of the pass."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..errors import NotFound
from ..graph import Item
from ..plan import (
    LOOKBACK,
    Change,
    Decision,
    Listing,
    TargetIndex,
    classify_row,
    decide,
    encoded_size,
    filter_item,
    folder_listing,
    join_parts,
    parts,
    upload_order,
)
from ..report import GONE_AT_SOURCE
from ..state import ItemRecord, Status
from ..survey import MailboxSide, target_index, unless_gone
from .backlog import Backlog
from .context import PairContext
from .enumerate import Enumerator
from .spares import spare_copies
from .unsettled import Unsettled
from .work import Exportable, FolderJob

# what ``run --retry-failed`` takes again: failed, unknown, or left pending
RETRIABLE = (Status.FAILED, Status.UNKNOWN, Status.INTENT, Status.PENDING)
UNSETTLED_BEFORE = "an earlier run's import of it has no recorded outcome"
# an earlier run's import of it may have landed: unknown, never "not attempted", if this run
# stops before it is settled (the state says unknown too)
MAYBE_SENT = (Status.UNKNOWN, Status.INTENT)
# a mailbox with at most this many records has them read in one statement, grouped by folder
READ_AT_ONCE = 5_000
# reads of a folder's round whose first page answers 404 while the folder is found (``_round``)
ROUND_TRIES = 3


class Producer:
    def __init__(
        self,
        ctx: PairContext,
        side: MailboxSide,
        folders: list[FolderJob],
        enumerator: Enumerator,
        unsettled: Unsettled,
        backlog: Backlog | None = None,
        retake: bool = True,
    ) -> None:
        self.ctx = ctx
        # a folder's round takes up again what earlier passes left unfinished in it; not a
        # round read again in the same pass (``reread``): this pass has just dealt with it
        self.retake = retake
        self.backlog = backlog
        self.folders = folders
        self.enumerator = enumerator
        self.dst = ctx.dst
        self.dst_id = side.target_id
        self.src_id = side.source_id
        self.filters = ctx.pair.items
        self.ledger = ctx.ledger
        self.limits = ctx.limits
        self.stop = ctx.stop
        self.unsettled = unsettled
        self.retry_only = ctx.kind.retry_only

    async def batches(self) -> AsyncIterator[list[Exportable]]:
        """``run --retry-failed``: only items whose last outcome was a failure or unknown
        (or left pending) are considered; a folder with none is not listed."""
        store, key = self.ctx.store, self.ctx.key
        # the records of every folder in one read, unless the mailbox holds many: then
        # folder by folder, one folder's records held at a time
        ids = [job.source_id for job in self.folders]
        known = await store.items_in_folders(key, ids, at_most=READ_AT_ONCE) if ids else None
        for job in self.folders:
            if self.stop.draining:
                return
            if known is not None:
                records = known.pop(job.source_id, {})
            else:
                records = await store.items_in_folder(key, job.source_id)
            if self.retry_only:
                records = {k: r for k, r in records.items() if r.status in RETRIABLE}
            listing = folder_listing(self.retry_only, job.mode, bool(records))
            if listing is Listing.SKIP:
                continue
            if listing is Listing.FULL and job.empty_at_walk and not records:
                _skip(job)
                continue
            if listing is Listing.DELTA:
                async for b in self._delta(job, records):
                    yield b
                if not job.expired:
                    continue
                job.mode = "full"  # the link was refused: a new baseline, by search key
                job.stats.mode = "expired"
                records = await store.items_in_folder(key, job.source_id)
            async for b in self._full(job, records):
                yield b
        self.ctx.stats.enumerated_all = not self.stop.draining

    def _listed(self, pending: list[Item], before: int) -> None:
        """``pending[before:]``, a page's items decided to copy or update: bytes to upload
        (``backlog``), put in the order to export them (``plan.upload_order``: large items
        early when they need more than one of the target's upload windows)."""
        items = pending[before:]
        if not items:
            return
        if self.backlog is not None:
            self.backlog.listed(items)
        if len(items) > 1:
            budget = self.limits.upload_bytes_per_window
            pending[before:] = upload_order(items, [encoded_size(i.size) for i in items], budget)

    def _full_batches(
        self, pending: list[Item], final: bool = False
    ) -> tuple[list[list[Item]], list[Item]]:
        """The batches of ``pending`` to hand on now, and the rest (kept for the next page:
        a page's tail joins the next page's items in one batch). Made of the parts the
        exporters export (``plan.parts``: at most half the pair's share of the byte budget,
        ``ByteShares.part_bytes``), cut over the page (packed while the share sets their
        size, ``ByteShares.packs``), then joined, whole parts at a time, into batches of at
        most ``batch_items`` (``plan.join_parts``): an exporter cuts a batch in parts again,
        in order, and in no more parts than it was joined from.
        Batches of 20 cut in parts only after they were made, in order, were cut at each
        large item and each one's tail was a part, an export request, of its own (``fleet``
        at 200 pairs: 5.3 ids per export request, 18.8 requests for a mailbox's 100 items
        where its bytes needed 15). The last batch waits for the next page unless it is
        whole (``final``: the folder's round ended, everything goes)."""
        lim, shares = self.limits, self.ctx.shares
        cut = parts(
            pending,
            [encoded_size(i.size) for i in pending],
            shares.part_bytes(),
            lim.batch_items,
            LOOKBACK if shares.packs() else 1,
        )
        out = join_parts(cut, lim.batch_items, lim.batch_bytes)
        if final or not out or len(out[-1]) >= lim.batch_items:
            return out, []
        return out[:-1], out[-1]

    async def _full(
        self, job: FolderJob, records: dict[str, ItemRecord]
    ) -> AsyncIterator[list[Exportable]]:
        ledger = self.ledger
        # The target folder's index lives while the folder is listed, not with the pair, and
        # is read only once the source folder has an item to decide: most folders of a
        # mailbox (Junk, Outbox, Journal, ...) are empty, and listing each one's target copy
        # cost a request per folder per pair (half a request per item with 20-item mailboxes).
        index: TargetIndex | None = TargetIndex() if job.new else None
        unseen = dict(records)
        # the folder's records by search key (one each): an item met under a new id may be
        # one of them moved away and back (``decide``'s ``earlier``)
        keyed: dict[bytes, ItemRecord] | None = None
        pending: list[Item] = []
        updates: dict[str, tuple[str, str]] = {}
        found: list[tuple[Item, str, str | None]] = []
        async for page in self._round(job):
            if not page:
                continue
            if index is None:
                index = await self._target_index(job)
            before = len(pending)
            for item in page:
                if self.retry_only and item.id not in records:
                    continue
                record = unseen.pop(item.id, None)
                ledger.listed(job, item)
                skip = filter_item(item, self.filters)
                if skip is not None:
                    ledger.skipped(job, item, skip, recorded=record is not None)
                    if record is not None and _departed(record):  # copied under other rules
                        job.deselected.append(record)
                    continue
                earlier = None
                if record is None and item.search_key is not None:
                    if keyed is None:
                        keyed = _keyed(records)
                    earlier = keyed.get(item.search_key)
                    if earlier is not None and earlier.source_id not in unseen:
                        earlier = None  # met under its own id already: another item's
                verdict = decide(item, record, index, job.target.id, earlier)
                if verdict.drift is not None:
                    ledger.drift(job, item, verdict.drift)
                if verdict.decision is Decision.COPY:
                    pending.append(item)
                elif verdict.decision is Decision.UPDATE:
                    assert verdict.target_id is not None
                    updates[item.id] = (job.target.id, verdict.target_id)
                    pending.append(item)
                elif verdict.decision is Decision.ADOPT:
                    assert verdict.target_id is not None
                    found.append(
                        (item, verdict.target_id, index.change_keys.get(verdict.target_id))
                    )
                    ledger.present(job)
                else:
                    ledger.present(job, item.id)
            if found:
                await ledger.adopted(job, found)
                found = []
            self._listed(pending, before)
            ready, pending = self._full_batches(pending)
            for b in ready:
                yield [Exportable(i, job, update=updates.get(i.id)) for i in b]
            if self.stop.draining:
                return
        for b in self._full_batches(pending, final=True)[0]:
            yield [Exportable(i, job, update=updates.get(i.id)) for i in b]
        if job.complete and not self.retry_only:
            # copied before, not listed now: gone from this folder (moved or deleted)
            job.removed = [r for r in unseen.values() if _departed(r)]
            _seen_leaving(job)
            if index is None and job.target.item_count != 0:  # (None: not known)
                # nothing to decide at the source, but the target's copy holds items (as
                # read this pass): a copy the target's user moved here is looked for too
                index = await self._target_index(job)
            if index is not None:
                # checked once the pass's imports are settled (``spares.remove_second_copies``):
                # the item's own copy may still be on its way
                job.spare = spare_copies(index)

    async def _delta(
        self, job: FolderJob, records: dict[str, ItemRecord]
    ) -> AsyncIterator[list[Exportable]]:
        ledger = self.ledger
        pending: list[Item] = []
        updates: dict[str, tuple[str, str]] = {}
        rows: set[str] = set()
        # the ids told leaving by earlier rounds of this pass (``reread``: a reading again
        # adds to the same set): a stray is an id this round saw leave (was: the whole set,
        # so that one unknown id that left in the first round made every reading again
        # take every folder once more, ``MAX_REREADS`` readings in a quiet pass after churn)
        left_before = set(job.removed_ids)

        def take(item: Item, record: ItemRecord | None) -> None:
            change = classify_row(item, record)
            if change is Change.UNCHANGED:
                ledger.present(job, item.id)
            elif change is Change.SETTLE:
                # a create whose outcome was never recorded: looked up in the target by
                # search key before anything is resent (settlement)
                self.unsettled.add(
                    Exportable(item, job),
                    UNSETTLED_BEFORE,
                    None,
                    sent=record is not None and record.status in MAYBE_SENT,
                )
            else:
                if change is Change.UPDATE and record is not None and record.target_id:
                    updates[item.id] = (record.target_folder_id or job.target.id, record.target_id)
                pending.append(item)

        async for page in self._round(job):
            before = len(pending)
            for item in page:
                rows.add(item.id)
                ledger.listed(job, item)
                skip = filter_item(item, self.filters)
                if skip is not None:
                    ledger.skipped(job, item, skip, recorded=item.id in records)
                    continue
                take(item, records.get(item.id))
            self._listed(pending, before)
            ready, pending = self._full_batches(pending)
            for b in ready:
                yield [Exportable(i, job, update=updates.get(i.id)) for i in b]
            if self.stop.draining:
                return
        if job.expired:
            return
        if job.gone_at_source:  # what was handed on goes on (its export says it vanished)
            for b in self._full_batches(pending, final=True)[0]:
                yield [Exportable(i, job, update=updates.get(i.id)) for i in b]
            return
        # what earlier passes left unfinished in this folder (failed, unknown, not sent) and
        # the round did not bring again: taken up once more
        departed = job.departed_ids(records)
        again = rows | departed
        before = len(pending)
        for rec in records.values() if self.retake else ():
            if rec.status in RETRIABLE and rec.source_id not in again:
                item = Item(
                    rec.source_id, rec.change_key or "", "", rec.size, "", "", (), rec.search_key
                )
                ledger.listed(job, item)
                take(item, rec)
        self._listed(pending, before)
        for b in self._full_batches(pending, final=True)[0]:
            yield [Exportable(i, job, update=updates.get(i.id)) for i in b]
        gone = (records.get(i) for i in departed)
        job.removed = [r for r in gone if r is not None and _departed(r)]
        _seen_leaving(job)
        if job.complete and not job.removed_ids - left_before <= records.keys():
            # an id nobody recorded left: an item new since the last pass, moved on during
            # it (maybe into a folder read before: ``reread``), or created and deleted
            job.stray_at = job.round_ended

    async def _target_index(self, job: FolderJob) -> TargetIndex:
        """The target folder's items by search key. A target folder deleted in the target
        (by its user) since the pass's walk answers 404: nothing of it to match, its items
        are decided as for a copy deleted in the target, and their imports answer
        ``ErrorFolderNotFound``, each a failed item saying so (``stages``), as when it goes
        after its listing: never the whole pair failed (exit 5). Its link is cleared
        (``FolderJob.target_gone``): the next pass reads both trees and makes it again.
        Gone only once the folder itself answers 404 too, as at the source (``_round``): a
        transient 404 from a folder that is there, taken for gone, had every item of the
        folder copied again beside its copy (``survey.unless_gone``)."""
        tid = job.target.id
        index = await unless_gone(
            self.dst, self.dst_id, tid, lambda: target_index(self.dst, self.dst_id, tid)
        )
        if index is not None:
            return index
        self.ctx.log.info("folder.target_gone", folder=job.stats.source_path)
        job.target_gone = True
        return TargetIndex()

    async def _round(self, job: FolderJob) -> AsyncIterator[list[Item]]:
        """The folder's round (``enumerate``). A folder deleted at the source after the pass's
        walk listed it answers its round 404 (``ErrorItemNotFound``, contract §5), at its
        first page or a later one: once the folder itself answers 404 too (one request), its
        round ends there, incomplete (``gone_at_source``): what it handed on goes on (each
        export of an item gone with it answers ``ErrorItemNotFound``: vanished, not failed),
        its link is not stored, nothing is taken for a departure, and the rest of the pair
        goes on. The next pass's folder round tells the deletion, and the folder's copy is
        dealt with as any folder deleted at the source between passes (``MailboxPass._gone``:
        deleted under ``mirror``, kept under ``keep``), from the state's records of its items,
        this pass's copies included. A 404 from a folder that still answers is no such case:
        a transient one at the round's first page (nothing handed on) reads the round again
        (``ROUND_TRIES`` in all: one such 404 failed the pair, exit 5); after a page, or
        every time, raised as it was."""
        for attempt in range(ROUND_TRIES):
            handed = False
            try:
                async for page in self.enumerator.items(job):
                    handed = True
                    yield page
                return
            except NotFound:
                try:
                    await self.ctx.src.get_folder(self.src_id, job.source_id)
                except NotFound:
                    _gone_at_source(self.ctx, job)
                    return
                if handed or attempt == ROUND_TRIES - 1:
                    raise
                self.ctx.log.info("folder.round_404_again", folder=job.stats.source_path)


def _gone_at_source(ctx: PairContext, job: FolderJob) -> None:
    """``Producer._round``: the folder went while the pass read it: said in the log, the
    report's folder (mode ``gone``) and the pair's notes, once per folder."""
    job.complete = False
    if job.gone_at_source:
        return
    job.gone_at_source = True
    job.stats.mode = "gone"
    path = job.stats.source_path
    fate = (
        "removes its copy in the target (deletions = mirror)"
        if ctx.sync.deletions == "mirror"
        else "keeps its copy in the target while it holds copies (deletions = keep)"
    )
    ctx.log.info("folder.gone_at_source", folder=path, deletions=ctx.sync.deletions)
    note = (
        f"folder {path} {GONE_AT_SOURCE}: its round ended there, "
        f"nothing failed; the next pass {fate}, as for any folder deleted at the source"
    )
    ctx.stats.notes.append(note)
    ctx.stats.gone_at_source[path] = note


def _skip(job: FolderJob) -> None:
    """A folder the walk counted empty at both sides, with no link and no record: its round
    from nothing is not read (it would return nothing: 11 of 12 folders of a typical new
    mailbox, a request each). Taken as a round read at the walk, before every round of the
    pass (``round_started`` 0), that returned nothing (``counted``) and closed with no link:
    a departure that looks like a deletion makes ``reread`` read it from nothing, and so
    does a count that changed since the walk (``_changed_since_listed``); the next pass reads
    it from nothing (or skips it again, the walk counting it empty)."""
    job.skipped = True
    job.complete = True
    job.counted = 0
    job.round_started = job.round_ended = 0


def _departed(r: ItemRecord) -> bool:
    """Whether the record of an item gone from its folder has a copy to decide on: one
    recorded, or one an import whose outcome was never recorded may have made (a create's
    answer lost, a pass killed, ``rehome``'s copy made back): that one is looked for by
    search key first (``passes._settle_departing``), never left for nobody to claim."""
    if r.status is Status.REMOVED:
        return False
    return bool(r.target_id or (r.status in MAYBE_SENT and r.search_key and r.target_folder_id))


def _seen_leaving(job: FolderJob) -> None:
    """When each departure of the folder was first seen: at the end of the round that first
    brought it (``reread``)."""
    for r in job.removed:
        job.removed_at.setdefault(r.source_id, job.round_ended)


def _keyed(records: dict[str, ItemRecord]) -> dict[bytes, ItemRecord]:
    """Records by search key, of the keys only one record holds (pure)."""
    out: dict[bytes, ItemRecord] = {}
    twice: set[bytes] = set()
    for r in records.values():
        if r.search_key is None or r.search_key in twice:
            continue
        if r.search_key in out:
            del out[r.search_key]
            twice.add(r.search_key)
            continue
        out[r.search_key] = r
    return out
