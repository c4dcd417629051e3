"""Exporters and importers of one pair, joined by bounded anyio memory streams; exported data
is also bounded in bytes by the job-wide budget (``ByteShares``). Intent is committed before
an import is sent and the outcome after; an item that cannot be finished now waits in
``Unsettled`` for settlement."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream

from .. import unsent
from ..errors import Fatal, ItemFailed, NotFound, OutcomeUnknown, ServiceError
from ..graph import Exported, Imported, ImportSessionPool, Item, gone
from ..graph.archive import LOOP, REFUSED
from ..plan import encoded_size
from ..state import LostCopy
from ..survey import MailboxSide
from .backlog import Backlog
from .context import PairContext
from .ready import ReadyItems, body_estimate
from .unsettled import Unsettled
from .work import Exportable

# Items ready to import per importer task: enough choice to keep the upload window full.
READY_PER_IMPORTER = 4
MISSING = "MissingFromResponse"  # the client's code for a requested id the answer left out
STALE_CHANGE_KEY = "ErrorIrresolvableConflict"  # update mode: the change key is not current


class Stages:
    def __init__(
        self,
        ctx: PairContext,
        side: MailboxSide,
        unsettled: Unsettled,
        backlog: Backlog | None = None,
    ) -> None:
        self.backlog = backlog
        self.src = ctx.src
        self.src_id = side.source_id
        self.pool = ImportSessionPool(ctx.dst, side.target_id)
        self.limits = ctx.limits
        self.shares = ctx.shares
        self.ledger = ctx.ledger
        self.store = ctx.store
        self.unsettled = unsettled
        self.stats = ctx.stats
        self.log = ctx.log
        self._moved_counted = (0, 0, 0)  # the pool's 409 sessions, folders, answers counted
        self._aux_seen: set[tuple[str, str]] = set()  # auxiliary archives in the pair's stats
        self.key, self.stop = ctx.key, ctx.stop
        self.quota, self.bandwidth = ctx.quota, ctx.bandwidth
        self._spawn: Callable[[], object] | None = None  # starts one importer (``run``)
        self._importers = 0  # importers started

    async def run(self, source: AsyncIterator[list[Exportable]]) -> None:
        lim = self.limits
        send_b, recv_b = anyio.create_memory_object_stream[list[Exportable]](lim.exporters_per_pair)
        pacer = self.pool.client.pacer(self.pool.mailbox_id)
        ready = ReadyItems(
            lim.importers_per_pair * READY_PER_IMPORTER,
            pacer.upload_room,
            overdue_s=2 * lim.upload_window_s,
            in_order=pacer.in_order,
            slot_open=pacer.slot_open,
        )

        # Exporters are started as batches come and none waits for one (up to
        # exporters_per_pair), importers as exported items become ready and none is free to
        # take them (up to importers_per_pair), and the listing runs in the pair's own task:
        # a pair that lists, or has nothing in flight, holds no tasks of its stages.
        self._importers = exporters = 0
        unfollow = pacer.follow(self.backlog) if self.backlog is not None else None
        unfreed = pacer.on_free(ready.slot_freed)
        try:
            async with anyio.create_task_group() as tg:
                self._spawn = lambda: tg.start_soon(self._importer, ready)
                async with recv_b, send_b:
                    async for batch in source:
                        if (
                            exporters < lim.exporters_per_pair
                            and not recv_b.statistics().tasks_waiting_receive
                        ):
                            exporters += 1
                            ready.producer()
                            tg.start_soon(self._exporter, recv_b.clone(), ready)
                        await send_b.send(batch)
        finally:
            self._spawn = None
            unfreed()
            if unfollow is not None:
                unfollow()
        self._count_moves()

    def _importer_for(self, ready: ReadyItems) -> None:
        """An item is about to be ready: one more importer when none waits for it."""
        if (
            self._spawn is not None
            and ready.idle == 0
            and self._importers < self.limits.importers_per_pair
        ):
            self._importers += 1
            self._spawn()

    def _count_moves(self) -> None:
        """The import host's 409s (auto-expanding archive) into the pair's stats: notes,
        never failures."""
        pool, counts = self.pool, self.stats.archive_redirects
        sessions, folders, answers = self._moved_counted
        if pool.moved > sessions:
            counts["sessions_renewed"] += pool.moved - sessions
        if len(pool.moved_folders) > folders:
            counts["folders_moved"] += len(pool.moved_folders) - folders
        if pool.refusals > answers:
            counts["answers_409"] += pool.refusals - answers
        self._moved_counted = (pool.moved, len(pool.moved_folders), pool.refusals)
        for home in set(pool.homes.values()):
            self._aux("dst", home)

    def _aux(self, side: str, mailbox_id: str) -> None:
        """An auxiliary archive's pacer (its own budgets) into the pair's accounts, once."""
        if (side, mailbox_id) in self._aux_seen:
            return
        self._aux_seen.add((side, mailbox_id))
        api = self.src if side == "src" else self.pool.client
        account = api.pacer(mailbox_id).account
        if all(a is not account for a in self.stats.aux_pacers):  # a pair's second go too
            self.stats.aux_pacers.append(account)

    # -- exporters -----------------------------------------------------------------------------
    async def _exporter(
        self, recv: ObjectReceiveStream[list[Exportable]], ready: ReadyItems
    ) -> None:
        try:
            async with recv:
                await self._export_all(recv, ready)
        finally:
            ready.done()

    async def _export_all(
        self, recv: ObjectReceiveStream[list[Exportable]], ready: ReadyItems
    ) -> None:
        async for whole in recv:
            for batch in self.shares.split(whole, [encoded_size(e.item.size) for e in whole]):
                await self._export(batch, ready)

    def _reserved(self, batch: list[Exportable]) -> list[Exportable]:
        """The items of ``batch`` this run's caps let go (reserved now, before anything of
        them is exported or sent); the others are not attempted (their folder keeps its
        delta link: a next run takes them up)."""
        if self.quota is None or not self.quota.active:
            return batch
        go = self.quota.reserve(self.key, [(e.item.id, e.item.size) for e in batch])
        for e, ok in zip(batch, go, strict=True):
            if not ok:
                self._not_reserved(e)
        return [e for e, ok in zip(batch, go, strict=True) if ok]

    def _not_reserved(self, e: Exportable) -> None:
        """Left by the caps: unknown when an import of it may have gone out (a resend after
        settlement, an earlier run's), as the state keeps it; else not attempted."""
        self.unsettled.settled(e)
        if self.unsettled.was_sent(e):
            self.ledger.unknown(e.folder, e.item, "not resent: this run's cap was reached", None)
        else:
            self.ledger.not_attempted(e.folder)

    async def _export(self, batch: list[Exportable], ready: ReadyItems) -> None:
        batch = self._reserved(batch)
        if not batch:
            return
        nbytes = sum(encoded_size(e.item.size) for e in batch)
        share = await self.shares.take(len(batch), nbytes)
        for e in batch:
            e.share = share
        try:
            # The results hold views of one response buffer; handled in a helper so
            # that no frame of this loop keeps them (and the buffer) alive afterwards.
            ok = await self._accept(
                batch,
                await self.src.export_items(self.src_id, [e.item.id for e in batch]),
            )
        except Fatal:
            await self.shares.done(share, len(batch))
            raise
        except ServiceError as exc:
            await self.shares.done(share, len(batch))
            for e in batch:
                self._gone(e)
                self.unsettled.add(e, exc.message, exc.request_id)
            return
        if not ok:
            return
        # The budget was taken on an estimate from the listed sizes; the data is
        # what is held in memory (larger than the size: properties, structure).
        await self.shares.true_up(share, sum(len(memoryview(e.data)) for e in ok))
        # queued before their intents are written: a stop that cuts the write short cannot
        # say whether it became durable, and a queued item is handed to the next run as not
        # sent either way (an outcome for a record that was not written changes nothing)
        unsettled = self.unsettled
        for e in ok:
            unsettled.queue(e)
        await self._intents(ok)
        for e in ok:
            self._importer_for(ready)
            await ready.put(e)

    async def _intents(self, ok: list[Exportable]) -> None:
        """One durable write per folder in the batch (a batch is almost always one folder)."""
        by: dict[int, list[Exportable]] = {}
        for e in ok:
            by.setdefault(id(e.folder), []).append(e)
        for group in by.values():
            await self.ledger.intents(group[0].folder, [e.item for e in group])

    async def _accept(self, batch: list[Exportable], results: list[Exported]) -> list[Exportable]:
        """Attach exported data to its items; the others leave the pipeline here."""
        ok: list[Exportable] = []
        redirected = 0
        for e, r in zip(batch, results, strict=True):
            if r.ok:
                e.data = r.data
                if r.change_key and r.change_key != e.item.change_key:
                    # changed between the listing and the export: the version exported is
                    # the one the copy holds, and the one its record says (a sign-off
                    # otherwise named the current copy stale, and the next pass updated it)
                    e.item = replace(e.item, change_key=r.change_key)
                ok.append(e)
                if self.backlog is not None:
                    self.backlog.exported(e)
                if r.mailbox_id is not None:
                    redirected += 1
                    self._aux("src", r.mailbox_id)
                continue
            if r.error_code in (REFUSED, LOOP):
                # a redirect the client would not follow: this item's failure, recorded
                # (its intent first, so that a retry pass finds it; its failure even when a
                # stop cuts that write short: a durable intent is not left as an unknown)
                self.unsettled.settled(e)
                try:
                    await self.ledger.intents(e.folder, [e.item])
                finally:
                    self.ledger.failed(e.folder, e.item, f"export: {r.error_message}", None)
            elif r.error_code == "ErrorItemNotFound":
                self.unsettled.settled(e)
                self.ledger.vanished(e.folder)
            elif r.error_code == MISSING:
                self.unsettled.missed(e)
                self.unsettled.add(e, "export: the answer had no row for this item", None)
            else:
                self.unsettled.add(e, f"export: {r.error_code}: {r.error_message}", None)
            self._gone(e)
            await self.shares.done(e.share)
        if redirected:
            self.stats.archive_redirects["redirected"] += redirected
        return ok

    def _gone(self, e: Exportable) -> None:
        """``e`` is no longer to upload (answered, or left unsent): out of the backlog."""
        if self.backlog is not None:
            self.backlog.done(e)

    # -- importers -----------------------------------------------------------------------------
    async def _update(self, e: Exportable) -> Imported | None:
        """Import in update mode onto the target's copy (it keeps its id), with that item's
        current change key read just before; None when the copy is no longer there."""
        assert e.update is not None and e.data is not None
        folder_id, target_id = e.update
        for attempt in range(2):
            current = await self._copy_now(folder_id, target_id)
            if current is None:
                return None
            try:
                return await self.pool.import_item(
                    folder_id, e.data, item_id=target_id, change_key=current.change_key
                )
            except ItemFailed as exc:
                # The change key moved under the update: most often its own first send
                # landed and lost its answer, and the transport's resend (update mode is
                # safe to resend) met the new key. The same data onto the current version,
                # once.
                if exc.code != STALE_CHANGE_KEY or attempt:
                    raise
                self.log.info("item.update_conflict", item=e.item.id, status=exc.status)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    async def _copy_now(self, folder_id: str, target_id: str) -> Item | None:
        """The copy to update as it is now; None once it answers 404 ``gone.TRIES`` times
        in a row: one transient 404 (a replica behind, the emulator's ``not_found``) took a
        copy that is there for deleted in the target, and the item was copied again beside
        it (duplicated, its old copy stale)."""
        dst = self.pool.client
        for n in range(gone.TRIES):
            try:
                return await dst.get_item(self.pool.mailbox_id, folder_id, target_id)
            except NotFound:
                if n == gone.TRIES - 1:
                    return None
                self.log.info("item.copy_404_again", item=target_id, tries=n + 1)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _timed_import(self, folder_id: str, data: Any) -> Imported:
        """Import, and tell the byte budget how long it took and whether the mailbox's pacer
        held anything back meanwhile (``budget.Demand``)."""
        account = self.pool.client.pacer(self.pool.mailbox_id).account
        if account.waiting:  # its pacer holds an import back now: no need to wait for its answer
            self.shares.budget.pacing()
        throttled, start = account.throttle_wall_s(), time.monotonic()
        res = await self.pool.import_item(folder_id, data)
        paced = account.throttle_wall_s() != throttled
        self.shares.budget.observe(time.monotonic() - start, paced)
        return res

    async def _importer(self, ready: ReadyItems) -> None:
        with unsent.watched() as mark:  # whether its request is parked by a drain
            await self._imports(ready, mark)

    async def _imports(self, ready: ReadyItems, mark: unsent.Parked) -> None:
        unsettled = self.unsettled
        while (e := await ready.get()) is not None:
            item = e.item
            if self.bandwidth is not None and not await self.bandwidth.take(
                body_estimate(e), self.stop
            ):
                # a drain while it waited for the bandwidth cap: not sent (Ctrl-C never
                # waits for a cap); its intent stays for the next run
                unsettled.not_sent(e, self.ledger)
                self._gone(e)
                e.data = None
                await self.shares.done(e.share)
                e.share = None
                continue
            sent_before = unsettled.was_sent(e)
            unsettled.send(e)
            answered, mark.now = True, False
            try:
                assert e.data is not None
                if e.update is not None:
                    upd = await self._update(e)
                    if upd is not None:
                        self.ledger.updated(e.folder, item, upd.item_id, upd.change_key)
                        continue
                    # the copy to update is gone from the target: created again. Gone from
                    # where it was recorded: the target's user may have moved it, and once
                    # the item's record is forgotten (deleted at the source, mirror) nothing
                    # would say whose it is: noted, for a full pass to find it by search key
                    # (``spares``; hunt2: such a copy stayed, an extra item signed off complete)
                    if item.search_key:
                        folder_id, target_id = e.update
                        note = LostCopy(item.search_key, target_id, folder_id, item.id)
                        await self.store.note_lost_copies(self.key, [note])
                    self.ledger.drift(e.folder, item, "deleted in the target: copied again")
                res = await self._timed_import(e.folder.target.id, e.data)
            except (Fatal, anyio.get_cancelled_exc_class()):
                # no answer: it stays in flight, and the pair's stop hands it to the next
                # run as unknown (its intent is durable; it may have landed), unless its
                # request was parked by the drain, never sent
                answered = False
                if mark.now:
                    unsettled.parked(e, sent_before)
                raise
            except OutcomeUnknown as exc:
                self.ledger.unanswered(item, exc.message, exc.request_id)
                self.unsettled.add(e, exc.message, exc.request_id)
            except (ItemFailed, NotFound) as exc:
                if exc.code == "ErrorFolderNotFound":
                    # its target folder is gone (deleted in the target by its user since
                    # the pass placed it): nothing was made, so the item is not sent, not
                    # failed; the pair makes the folder again and copies its items within
                    # this pass (``PairRunner._remake``; failed, pass after pass, before)
                    e.folder.target_gone = True
                    self.log.info(
                        "item.target_folder_gone", item=item.id, folder=e.folder.stats.source_path
                    )
                    self.ledger.not_sent(e.folder, item)
                else:
                    self.ledger.failed(e.folder, item, exc.message, exc.request_id)
            except ServiceError as exc:
                self.unsettled.add(e, exc.message, exc.request_id)
            else:
                self.ledger.copied(e.folder, item, res.item_id, res.change_key)
            finally:
                if answered:
                    unsettled.answered(e)
                self._gone(e)
                e.data = None
                await self.shares.done(e.share)
                e.share = None
            await self.ledger.flush_if_needed()
