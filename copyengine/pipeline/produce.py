"""The producer: enumerate each folder, filter, decide against the state and the target,
and hand on batches for exportItems. Decisions are ``plan``'s; this only applies them."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..config import Limits, Pair
from ..graph import Item, MailboxApi
from ..plan import Decision, TargetIndex, batches, decide, filter_item
from ..report import PairStats
from ..state import ItemRecord, Status, Store
from .enumerate import Enumerator
from .ledger import Ledger
from .mirror import target_index
from .stop import StopFlag
from .work import Exportable, FolderJob

# what ``run --retry-failed`` takes again: failed, unknown, or left pending
RETRIABLE = (Status.FAILED, Status.UNKNOWN, Status.INTENT, Status.PENDING)


async def produce(
    folders: list[FolderJob],
    enumerator: Enumerator,
    dst: MailboxApi,
    dst_id: str,
    pair: Pair,
    store: Store,
    ledger: Ledger,
    limits: Limits,
    stats: PairStats,
    stop: StopFlag,
    retry_only: bool = False,
) -> AsyncIterator[list[Exportable]]:
    """``retry_only`` (``run --retry-failed``): only items whose last outcome was a failure
    or unknown (or left pending) are considered; a folder with none is not listed."""
    for job in folders:
        if stop.draining:
            return
        records: dict[str, ItemRecord] = await store.items_in_folder(pair.key, job.source_id)
        if retry_only:
            records = {k: r for k, r in records.items() if r.status in RETRIABLE}
            if not records:
                continue
        job.index = TargetIndex() if job.new else await target_index(dst, dst_id, job.target.id)
        pending: list[Item] = []
        found: list[tuple[Item, str]] = []
        async for page in enumerator.items(job):
            for item in page:
                if retry_only and item.id not in records:
                    continue
                ledger.listed(job, item)
                skip = filter_item(item, pair.items)
                if skip is not None:
                    ledger.skipped(job, item, skip)
                    continue
                decision, target_id = decide(item, records.get(item.id), job.index)
                if decision is Decision.COPY:
                    pending.append(item)
                    continue
                ledger.present(job)
                if decision is Decision.ADOPT and target_id:
                    found.append((item, target_id))
            if found:
                await ledger.adopted(job, found)
                found = []
            full = len(pending) - len(pending) % limits.batch_items
            if full:
                for b in batches(pending[:full], limits.batch_items, limits.batch_bytes):
                    yield [Exportable(i, job) for i in b]
                pending = pending[full:]
            if stop.draining:
                return
        for b in batches(pending, limits.batch_items, limits.batch_bytes):
            yield [Exportable(i, job) for i in b]
    stats.enumerated_all = True
