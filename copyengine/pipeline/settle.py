"""Settlement: items whose import outcome is unknown, or that failed transiently, are looked
up in their target folder by search key before anything is resent. After the last resend
round, one more look without resending: an item is reported failed only when it is not in
the target, and unknown (never failed) when even that look fails. What becomes of each item
is ``plan.settle_verdict``'s."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator

from ..errors import Fatal, NotFound, ServiceError
from ..plan import Settled, TargetIndex, batches, settle_verdict
from ..state import Status
from ..survey import MailboxSide, target_index, unless_gone
from .context import PairContext
from .stages import Stages
from .unsettled import Unsettled
from .work import Exportable, FolderJob

SETTLE_ROUNDS = 4


class Settler:
    def __init__(
        self, ctx: PairContext, side: MailboxSide, stages: Stages, unsettled: Unsettled
    ) -> None:
        self.ctx = ctx
        self.dst_id = side.target_id
        self.stages = stages
        self.unsettled = unsettled

    async def settle(self) -> None:
        """What is left when a drain stops this is handed to the next run (``leave``)."""
        ctx, unsettled = self.ctx, self.unsettled
        for round_ in range(SETTLE_ROUNDS + 1):
            if not unsettled.outstanding():
                return
            if ctx.stop.draining:
                why = ctx.stop.reason or "interrupted before it could be settled"
                unsettled.leave(ctx.ledger, why)
                return
            todo = unsettled.take()
            last = round_ == SETTLE_ROUNDS
            if not last:
                ctx.log.info("pair.settling", items=len(todo), round=round_ + 1)
            again = await self._look_up(todo, last)
            if last:
                return
            if again:
                await self.stages.run(self._resend(again))

    def _failed(self, job: FolderJob, e: Exportable) -> None:
        self.unsettled.settled(e)
        reason, rid = self.unsettled.last_error(e) or ("outcome unknown", None)
        self.ctx.ledger.failed(
            job,
            e.item,
            f"not in the target after {SETTLE_ROUNDS + 1} attempts; last error: {reason}",
            rid,
        )

    async def _resend(
        self, again: list[tuple[FolderJob, list[Exportable]]]
    ) -> AsyncIterator[list[Exportable]]:
        lim = self.ctx.limits
        for job, entries in again:
            # an update stays an update (onto the same copy): never a second copy
            upd = {e.item.id: e.update for e in entries}
            # an item an export answer left out twice goes alone from now on
            alone = [e.item for e in entries if self.unsettled.alone(e)]
            rest = [e.item for e in entries if not self.unsettled.alone(e)]
            for i in alone:
                yield [Exportable(i, job, update=upd.get(i.id))]
            for b in batches(rest, lim.batch_items, lim.batch_bytes):
                yield [Exportable(i, job, update=upd.get(i.id)) for i in b]

    async def _look_up(
        self, todo: list[Exportable], last_round: bool
    ) -> list[tuple[FolderJob, list[Exportable]]]:
        """Record the items of ``todo`` found in their target folder by search key (target
        items already recorded for other source items excluded, copies kept as deleted at
        the source included); the others are resent
        (returned by folder) or, after the ``last_round``, failed. Items of a folder that
        cannot be listed are reported unknown (if an import of theirs was sent) or failed
        (if none was)."""
        ctx = self.ctx
        await ctx.store.flush()
        by_folder: dict[str, list[Exportable]] = defaultdict(list)
        for e in todo:
            by_folder[e.folder.target.id].append(e)
        rest: list[tuple[FolderJob, list[Exportable]]] = []
        failed: list[
            tuple[FolderJob, Exportable]
        ] = []  # reported once every folder's copies are recorded
        for entries in by_folder.values():
            job = entries[0].folder
            try:
                records = await ctx.store.items_in_folder(ctx.key, job.source_id)
                # a copy kept as deleted at the source (``keep``) is no copy of an item
                # imported now, even of the same item restored from the recoverable items
                # (same search key, new id): taken for it, that kept copy, of an older
                # version, was recorded as the item's and the one just imported left as a
                # second (soak seed 11002 keep; the sign-off then said complete of it)
                known = frozenset(
                    r.target_id
                    for r in records.values()
                    if r.status in (Status.DONE, Status.ADOPTED, Status.REMOVED) and r.target_id
                )
                index = await self._index(job, known)
            except Fatal:
                raise
            except ServiceError as exc:
                for e in entries:
                    self.unsettled.settled(e)
                    if self.unsettled.was_sent(e):
                        ctx.ledger.unknown(
                            job, e.item, f"could not be settled: {exc.message}", None
                        )
                    else:
                        ctx.ledger.failed(job, e.item, f"not copied: {exc.message}", None)
                continue
            copy: list[Exportable] = []
            for e in entries:
                update = e.update is not None
                found = None if update else index.claim(e.item.search_key)
                verdict = settle_verdict(update, found, last_round)
                rec = records.get(e.item.id)
                sent = rec.change_key if rec is not None else None  # the version sent
                stale = sent and sent != e.item.change_key and not last_round
                if verdict is Settled.FOUND and stale:
                    # the copy found is of the version sent, the item changed since (an
                    # answer lost, then the item modified before this pass): updated onto
                    # that copy, never left stale nor copied twice (on the last round it
                    # is taken as it is: a full pass updates it)
                    assert found is not None
                    e.update = (job.target.id, found)
                    copy.append(e)
                elif verdict is Settled.FOUND:
                    assert found is not None
                    self.unsettled.settled(e)
                    ctx.ledger.found_in_target(job, e.item, found, index.change_keys.get(found))
                elif verdict is Settled.FAILED:
                    failed.append((job, e))
                else:
                    copy.append(e)
            if copy:
                rest.append((job, copy))
        for job, e in failed:
            self._failed(job, e)
        return rest

    async def _index(self, job: FolderJob, known: frozenset[str]) -> TargetIndex:
        """The items of ``job``'s target folder by search key (``known`` excluded). A 404 is
        the folder gone only once its ``getFolder`` answers 404 too (``survey.unless_gone``):
        one transient 404 taken for gone left the folder's items unknown or failed (exit
        nonzero) while their copies were there; a folder gone is raised (``NotFound``)."""
        tid = job.target.id
        index = await unless_gone(
            self.ctx.dst,
            self.dst_id,
            tid,
            lambda: target_index(self.ctx.dst, self.dst_id, tid, known),
        )
        if index is None:
            raise NotFound(f"target folder {job.stats.source_path} is gone", status=404)
        return index
