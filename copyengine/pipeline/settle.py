"""Settlement: items whose import outcome is unknown, or that failed transiently, are looked
up in their target folder by search key before anything is resent. After the last resend
round, one more look without resending: an item is reported failed only when it is not in
the target, and unknown (never failed) when even that look fails."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..config import Limits
from ..errors import Fatal, ServiceError
from ..graph import MailboxApi
from ..plan import Settled, batches, settle_verdict
from ..state import Status, Store
from ..survey import target_index
from .ledger import Ledger
from .stages import Stages
from .stop import StopFlag
from .work import Exportable, FolderJob

SETTLE_ROUNDS = 4


class Settler:
    def __init__(
        self,
        stages: Stages,
        dst: MailboxApi,
        dst_id: str,
        pair_key: str,
        store: Store,
        ledger: Ledger,
        limits: Limits,
        stop: StopFlag,
        log: Any,
    ) -> None:
        self.stages = stages
        self.dst = dst
        self.dst_id = dst_id
        self.pair_key = pair_key
        self.store = store
        self.ledger = ledger
        self.limits = limits
        self.stop = stop
        self.log = log

    async def settle(self, leave: Callable[[str], None]) -> None:
        """``leave(reason)`` hands what is left to the next run when a drain stops this."""
        st = self.stages
        for round_ in range(SETTLE_ROUNDS + 1):
            if not st.retry:
                return
            if self.stop.draining:
                leave(self.stop.reason or "interrupted before it could be settled")
                return
            todo, st.retry = st.retry, []
            if round_ == SETTLE_ROUNDS:
                for job, items in await self._look_up(todo):
                    for e in items:
                        reason, rid = st.last_error.get(e.item.id, ("outcome unknown", None))
                        self.ledger.failed(
                            job,
                            e.item,
                            f"not in the target after {SETTLE_ROUNDS + 1} attempts; "
                            f"last error: {reason}",
                            rid,
                        )
                return
            self.log.info("pair.settling", items=len(todo), round=round_ + 1)
            again = await self._look_up(todo)
            if again:
                await st.run(self._resend(again))

    async def _resend(
        self, again: list[tuple[FolderJob, list[Exportable]]]
    ) -> AsyncIterator[list[Exportable]]:
        lim = self.limits
        for job, entries in again:
            # an update stays an update (onto the same copy): never a second copy
            upd = {e.item.id: e.update for e in entries}
            # an item an export answer left out twice goes alone from now on
            alone = [e.item for e in entries if self.stages.missing.get(e.item.id, 0) >= 2]
            rest = [e.item for e in entries if self.stages.missing.get(e.item.id, 0) < 2]
            for i in alone:
                yield [Exportable(i, job, update=upd.get(i.id))]
            for b in batches(rest, lim.batch_items, lim.batch_bytes):
                yield [Exportable(i, job, update=upd.get(i.id)) for i in b]

    async def _look_up(self, todo: list[Exportable]) -> list[tuple[FolderJob, list[Exportable]]]:
        """Record the items of ``todo`` found in their target folder by search key (target
        items already recorded for other source items excluded); return the rest by folder.
        Items of a folder that cannot be listed are reported unknown (if an import of theirs
        was sent) or failed (if none was)."""
        await self.store.flush()
        by_folder: dict[str, list[Exportable]] = defaultdict(list)
        for e in todo:
            by_folder[e.folder.target.id].append(e)
        rest: list[tuple[FolderJob, list[Exportable]]] = []
        for entries in by_folder.values():
            job = entries[0].folder
            try:
                records = await self.store.items_in_folder(self.pair_key, job.source_id)
                known = frozenset(
                    r.target_id
                    for r in records.values()
                    if r.status in (Status.DONE, Status.ADOPTED) and r.target_id
                )
                index = await target_index(self.dst, self.dst_id, job.target.id, known)
            except Fatal:
                raise
            except ServiceError as exc:
                for e in entries:
                    if e.item.id in self.stages.sent:
                        self.ledger.unknown(
                            job, e.item, f"could not be settled: {exc.message}", None
                        )
                    else:
                        self.ledger.failed(job, e.item, f"not copied: {exc.message}", None)
                continue
            copy: list[Exportable] = []
            for e in entries:
                update = e.update is not None
                found = None if update else index.claim(e.item.search_key)
                if settle_verdict(update, found, last_round=False) is Settled.FOUND:
                    assert found is not None
                    self.ledger.found_in_target(job, e.item, found, index.change_keys.get(found))
                else:
                    copy.append(e)
            if copy:
                rest.append((job, copy))
        return rest
