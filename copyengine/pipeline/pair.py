"""Copy one mailbox pair: resolve, mirror folders, then producer -> exporters -> importers.

Stages are joined by bounded anyio memory streams; exported data is also bounded in bytes by
the job-wide ``ByteBudget``. Intent is committed before an import is sent and the outcome
after; anything whose outcome is unknown is settled against the target by search key before
it is ever sent again.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ..config import Limits, Pair
from ..errors import (
    Fatal,
    ItemFailed,
    NotFound,
    OutcomeUnknown,
    ServiceError,
    StateError,
)
from ..failures import classify
from ..graph import Exported, Folder, GraphClient, ImportSessionPool, Item
from ..report import FolderStats, PairStats
from ..state import Intent, ItemRecord, Outcome, SQLiteStore, Status
from .budget import ByteBudget
from .plan import (
    Decision,
    FolderPlan,
    Skip,
    TargetIndex,
    TargetRef,
    Work,
    batches,
    decide,
    encoded_size,
    filter_item,
    plan_folders,
)

log = structlog.get_logger("copyengine.pipeline")
SETTLE_ROUNDS = 4
VANISHED = "deleted at source during the copy"


class StopFlag:
    """Drain: stop taking new work, finish what is in flight. Abort is a cancellation.
    ``reason`` says why in-flight work was cut short (the drain's deadline passed, or the
    service stopped answering), for the report."""

    def __init__(self) -> None:
        self.draining = False
        self.reason: str | None = None
        self._event: anyio.Event | None = None

    def drain(self) -> None:
        self.draining = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Until a drain is asked for."""
        if self.draining:
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()


class TargetTree:
    """The target mailbox's folders, loaded once, extended as folders are created."""

    def __init__(self, client: GraphClient, mailbox_id: str) -> None:
        self.client = client
        self.mailbox_id = mailbox_id
        self.children: dict[str | None, dict[str, Folder]] = defaultdict(dict)
        self.well_known: dict[str, Folder] = {}

    async def load(self) -> None:
        for node in await self.client.walk_folders(self.mailbox_id):
            f = node.folder
            parent = None if node.depth == 1 else f.parent_id
            self.children[parent][f.name.casefold()] = f
            if f.well_known:
                self.well_known[f.well_known] = f

    async def ensure(
        self, ref: TargetRef, folder_type: str, fallback_top: str
    ) -> tuple[Folder, bool]:
        """The target folder for ``ref``, created (with parents) if missing; (folder, new)."""
        parent: str | None = None
        parts = ref.parts
        current: Folder | None = None
        if ref.anchor:
            current = self.well_known.get(ref.anchor)
            if current is None:
                try:
                    current = await self.client.get_folder(self.mailbox_id, ref.anchor)
                    self.well_known[ref.anchor] = current
                except NotFound:
                    parts = (fallback_top, *parts)
            if current is not None:
                parent = current.id
        created = False
        for k, name in enumerate(parts):
            child = self.children[parent].get(name.casefold())
            if child is None:
                kind = folder_type if k == len(parts) - 1 else "IPF.Note"
                child = await self.client.create_folder(self.mailbox_id, parent, name, kind)
                self.children[parent][name.casefold()] = child
                created = True
            else:
                created = False
            current, parent = child, child.id
        assert current is not None
        return current, created


@dataclass
class FolderJob:
    plan: FolderPlan
    target: Folder
    stats: FolderStats
    new: bool  # created in this run: nothing to match against
    index: TargetIndex = field(default_factory=TargetIndex)


@dataclass
class BatchShare:
    """One export response: its items' data are slices of one buffer, which lives until the
    last of them is imported, so the budget is held per response, not per item."""

    left: int
    nbytes: int


@dataclass
class Exportable:
    work: Work
    folder: FolderJob
    data: Any  # msgspec.Raw from the export, None once imported
    batch: BatchShare | None = None  # the export response this item's data lives in


class PairRunner:
    def __init__(
        self,
        pair: Pair,
        src: GraphClient,
        dst: GraphClient,
        store: SQLiteStore,
        stats: PairStats,
        limits: Limits,
        budget: ByteBudget,
        stop: StopFlag,
    ) -> None:
        self.pair = pair
        self.key = pair.key
        self.src = src
        self.dst = dst
        self.store = store
        self.stats = stats
        self.limits = limits
        self.budget = budget
        self.stop = stop
        self.src_id = ""
        self.dst_id = ""
        self.log = log.bind(pair=self.key)
        self._retry: list[tuple[Work, FolderJob]] = []
        self._last_error: dict[str, tuple[str, str | None]] = {}
        self._pool: ImportSessionPool | None = None
        self._inflight: dict[str, Exportable] = {}  # imports sent, no answer yet
        self._queued: dict[str, Exportable] = {}  # intent recorded, import not yet sent
        self._sent: set[str] = set()  # items with at least one import sent in this run

    # -- the pair ------------------------------------------------------------------------------
    async def run(self) -> None:
        st = self.stats
        st.status, st.started = "running", time.monotonic()
        await self.store.pair_started(self.key, self.pair.source, self.pair.target)
        self.log.info("pair.started", source=self.pair.source, target=self.pair.target)
        error: str | None = None
        try:
            folders = await self._prepare()
            await self._pipeline(self._produce(folders))
            await self._settle()
            st.status = "interrupted" if self.stop.draining else "done"
        except anyio.get_cancelled_exc_class():
            st.status = "interrupted"
            self._cut_short()
            raise
        except Exception as exc:  # one pair's failure fails that pair only
            verdict = classify(exc)
            if verdict.job_wide:
                st.status, st.error, st.error_code = "failed", verdict.message, verdict.error_type
                raise
            st.status, error = "failed", verdict.message
            st.error, st.error_code = error, verdict.error_type
            self._cut_short(f"not copied: the pair stopped ({verdict.error_type})")
            self.log.error(
                "pair.failed", error=error, error_type=verdict.error_type, exc_info=_debug()
            )
        finally:
            st.finished = time.monotonic()
            st.freeze_pacing()
            with anyio.CancelScope(shield=True):
                try:
                    await self.store.pair_finished(self.key, st.status, error)
                except StateError:
                    # the job sees the store's failure on its next write; this pair's
                    # status is in the report either way
                    self.log.warning("pair.status_not_saved", status=st.status)
            self.log.info(
                "pair.finished",
                status=st.status,
                copied=st.total("copied"),
                already_present=st.total("already_present"),
                failed=st.failed,
                unknown=st.unknown,
                skipped=st.skipped,
                duration_s=round(st.duration(), 2),
            )

    def _cut_short(self, reason: str | None = None) -> None:
        """The pair stopped with work under way: imports in flight have an unknown outcome
        (their intents are durable; the next run settles them), retries are left undone."""
        why = reason or self.stop.reason or "interrupted"
        for e in list(self._inflight.values()):
            self._unknown(e.work, e.folder, f"{why}: the import was in flight", None)
        self._inflight.clear()
        for e in list(self._queued.values()):
            e.folder.stats.not_attempted += 1
            self.store.record_outcome(self.key, Outcome(e.work.item.id, Status.PENDING))
        self._queued.clear()
        self._leave(why)

    def _leave(self, why: str) -> None:
        """Items waiting for a retry when the run stops: unknown when an import of theirs was
        sent, else simply not attempted."""
        for w, job in self._retry:
            last = self._last_error.get(w.item.id)
            if w.item.id in self._sent:
                reason = f"{why}; last error: {last[0]}" if last else why
                self._unknown(w, job, reason, last[1] if last else None)
            else:
                job.stats.not_attempted += 1
        self._retry = []

    def _unknown(self, w: Work, job: FolderJob, reason: str, request_id: str | None) -> None:
        job.stats.unknown.append(
            {"id": w.item.id, "size": w.item.size, "reason": reason, "request_id": request_id}
        )
        self.log.warning("item.outcome_unknown", item=w.item.id, reason=reason)

    async def _prepare(self) -> list[FolderJob]:
        src_ref = await self.src.resolve_mailbox(self.pair.source)
        dst_ref = await self.dst.resolve_mailbox(self.pair.target)
        self.src_id, self.dst_id = src_ref.primary_id, dst_ref.primary_id
        self.stats.pacers = [self.src.pacer(self.src_id), self.dst.pacer(self.dst_id)]
        self._pool = ImportSessionPool(self.dst, self.dst_id)
        tree = await self.src.walk_folders(self.src_id)
        plans = plan_folders(tree, self.pair.folders, self.pair.source, self.pair.target)
        target = TargetTree(self.dst, self.dst_id)
        await target.load()
        jobs: list[FolderJob] = []
        for plan in plans:
            top = plan.source.names[0]
            folder, new = await target.ensure(plan.target, plan.type, top)
            fs = self.stats.folder(plan.source.path, plan.source.names)
            fs.target_path = plan.target.path
            await self.store.folder_mapped(
                self.key, plan.source.folder.id, plan.source.path, folder.id, plan.target.path
            )
            jobs.append(FolderJob(plan, folder, fs, new))
        self.log.info("pair.folders_mirrored", folders=len(jobs))
        return jobs

    # -- producer ------------------------------------------------------------------------------
    async def _target_index(self, job: FolderJob) -> TargetIndex:
        items: list[Item] = []
        async for page in self.dst.list_items(
            self.dst_id, job.target.id, with_keys=True, select=("id", "size")
        ):
            items.extend(page)
        return TargetIndex.of(items)

    async def _produce(self, folders: list[FolderJob]) -> AsyncIterator[list[Exportable]]:
        lim = self.limits
        filters = self.pair.items
        for job in folders:
            if self.stop.draining:
                return
            records: dict[str, ItemRecord] = await self.store.items_in_folder(
                self.key, job.plan.source.folder.id
            )
            job.index = TargetIndex() if job.new else await self._target_index(job)
            pending: list[Work] = []
            adopted: list[tuple[Item, str]] = []
            async for page in self.src.list_items(
                self.src_id, job.plan.source.folder.id, with_keys=True
            ):
                for item in page:
                    fs = job.stats
                    fs.source_items += 1
                    fs.source_bytes += item.size
                    skip = filter_item(item, filters)
                    if skip is not None:
                        fs.skipped[skip.value] += 1
                        if skip is Skip.TOO_LARGE:
                            fs.skipped_items.append(
                                {"id": item.id, "size": item.size, "folder": job.plan.source.path}
                            )
                        continue
                    decision, target_id = decide(item, records.get(item.id), job.index)
                    if decision is Decision.COPY:
                        pending.append(Work(item, job.plan, job.target.id))
                    else:
                        fs.already_present += 1
                        if decision is Decision.ADOPT and target_id:
                            adopted.append((item, target_id))
                if adopted:
                    await self._adopt(job, adopted)
                    adopted = []
                full = len(pending) - len(pending) % lim.batch_items
                if full:
                    for b in batches(pending[:full], lim.batch_items, lim.batch_bytes):
                        yield [Exportable(w, job, None) for w in b]
                    pending = pending[full:]
                if self.stop.draining:
                    return
            for b in batches(pending, lim.batch_items, lim.batch_bytes):
                yield [Exportable(w, job, None) for w in b]
        self.stats.enumerated_all = True

    async def _adopt(self, job: FolderJob, adopted: list[tuple[Item, str]]) -> None:
        """Record items found in the target by search key as copied (no import)."""
        await self.store.record_intents(
            self.key,
            [
                Intent(i.id, job.plan.source.folder.id, i.search_key, i.size, job.target.id)
                for i, _ in adopted
            ],
        )
        for item, target_id in adopted:
            self.store.record_outcome(self.key, Outcome(item.id, Status.ADOPTED, target_id))

    # -- stages --------------------------------------------------------------------------------
    async def _pipeline(self, source: AsyncIterator[list[Exportable]]) -> None:
        lim = self.limits
        send_b, recv_b = anyio.create_memory_object_stream[list[Exportable]](lim.exporters_per_pair)
        send_i, recv_i = anyio.create_memory_object_stream[Exportable](lim.importers_per_pair * 2)

        async def produce() -> None:
            async with send_b:
                async for batch in source:
                    await send_b.send(batch)

        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            async with send_i, recv_b:
                for _ in range(lim.exporters_per_pair):
                    tg.start_soon(self._exporter, recv_b.clone(), send_i.clone())
            async with recv_i:
                for _ in range(lim.importers_per_pair):
                    tg.start_soon(self._importer, recv_i.clone())

    async def _exporter(
        self, recv: ObjectReceiveStream[list[Exportable]], send: ObjectSendStream[Exportable]
    ) -> None:
        async with recv, send:
            async for batch in recv:
                shares = [encoded_size(e.work.item.size) for e in batch]
                await self.budget.acquire(sum(shares))
                try:
                    # The results hold views of one response buffer; handled in a helper so
                    # that no frame of this loop keeps them (and the buffer) alive afterwards.
                    ok = self._accept(
                        batch,
                        await self.src.export_items(self.src_id, [e.work.item.id for e in batch]),
                    )
                except Fatal:
                    await self.budget.release(sum(shares))
                    raise
                except ServiceError as exc:
                    await self.budget.release(sum(shares))
                    for e in batch:
                        self._failed(e, exc.message, exc.request_id, retry=True)
                    continue
                if not ok:
                    await self.budget.release(sum(shares))
                    continue
                share = BatchShare(len(ok), sum(shares))
                for e in ok:
                    e.batch = share
                if ok:
                    await self.store.record_intents(
                        self.key,
                        [
                            Intent(
                                e.work.item.id,
                                e.folder.plan.source.folder.id,
                                e.work.item.search_key,
                                e.work.item.size,
                                e.folder.target.id,
                            )
                            for e in ok
                        ],
                    )
                for e in ok:
                    self._queued[e.work.item.id] = e
                for e in ok:
                    await send.send(e)

    def _accept(self, batch: list[Exportable], results: list[Exported]) -> list[Exportable]:
        """Attach exported data to its items; record per-item export failures."""
        ok: list[Exportable] = []
        for e, r in zip(batch, results, strict=True):
            if r.ok:
                e.data = r.data
                ok.append(e)
            elif r.error_code == "ErrorItemNotFound":
                e.folder.stats.skipped[VANISHED] += 1
            else:
                self._failed(e, f"export: {r.error_code}: {r.error_message}", None, retry=True)
        return ok

    async def _importer(self, recv: ObjectReceiveStream[Exportable]) -> None:
        assert self._pool is not None
        async with recv:
            async for e in recv:
                item = e.work.item
                self._queued.pop(item.id, None)
                self._inflight[item.id] = e
                self._sent.add(item.id)
                try:
                    assert e.data is not None
                    res = await self._pool.import_item(e.folder.target.id, e.data)
                except Fatal:
                    raise
                except OutcomeUnknown as exc:
                    self.store.record_outcome(
                        self.key,
                        Outcome(
                            item.id, Status.UNKNOWN, error=exc.message, request_id=exc.request_id
                        ),
                    )
                    self._retry.append((e.work, e.folder))
                    self._last_error[item.id] = (exc.message, exc.request_id)
                    self.log.info("item.import_unanswered", item=item.id, error=exc.message)
                except ServiceError as exc:
                    retry = not isinstance(exc, ItemFailed | NotFound)
                    self._failed(e, exc.message, exc.request_id, retry=retry)
                else:
                    self.store.record_outcome(
                        self.key, Outcome(item.id, Status.DONE, res.item_id, res.change_key)
                    )
                    e.folder.stats.copied += 1
                    e.folder.stats.copied_bytes += item.size
                finally:
                    self._inflight.pop(item.id, None)
                    e.data = None
                    b = e.batch
                    if b is not None:
                        b.left -= 1
                        if b.left == 0:
                            await self.budget.release(b.nbytes)
                if self.store.needs_flush():
                    await self.store.flush()

    def _failed(self, e: Exportable, reason: str, request_id: str | None, retry: bool) -> None:
        if retry:
            # Not a failure yet: settled (and retried) at the end of the pair. The state keeps
            # its intent, if any, so that a run stopped now settles it next time.
            self._retry.append((e.work, e.folder))
            self._last_error[e.work.item.id] = (reason, request_id)
            return
        self._record_failure(e.work, e.folder, reason, request_id)

    def _record_failure(self, w: Work, job: FolderJob, reason: str, request_id: str | None) -> None:
        self.store.record_outcome(
            self.key, Outcome(w.item.id, Status.FAILED, error=reason, request_id=request_id)
        )
        job.stats.failed.append(
            {
                "id": w.item.id,
                "size": w.item.size,
                "type": w.item.type,
                "reason": reason,
                "request_id": request_id,
            }
        )
        self.log.warning(
            "item.failed",
            item=w.item.id,
            folder=job.plan.source.path,
            reason=reason,
            request_id=request_id,
        )

    # -- settling ------------------------------------------------------------------------------
    async def _settle(self) -> None:
        """Items whose import outcome is unknown or that failed transiently: look in the target
        by search key first (adopt what is there), copy again only what is not. After the
        last round, one more look without resending: an item is reported failed only when
        it is not in the target, and unknown (never failed) when even that look fails."""
        for round_ in range(SETTLE_ROUNDS + 1):
            todo, self._retry = self._retry, []
            if not todo:
                return
            if self.stop.draining:
                self._retry = todo
                self._leave(self.stop.reason or "interrupted before it could be settled")
                return
            if round_ == SETTLE_ROUNDS:
                break  # the last look, below, resends nothing
            self.log.info("pair.settling", items=len(todo), round=round_ + 1)
            again = await self._look_up(todo)
            if again:
                await self._pipeline(
                    _aiter(
                        [
                            [Exportable(w, job, None) for w in b]
                            for job, works in again
                            for b in batches(
                                works, self.limits.batch_items, self.limits.batch_bytes
                            )
                        ]
                    )
                )
        for job, works in await self._look_up(todo):
            for w in works:
                reason, request_id = self._last_error.get(w.item.id, ("outcome unknown", None))
                self._record_failure(
                    w,
                    job,
                    f"not in the target after {SETTLE_ROUNDS + 1} attempts; last error: {reason}",
                    request_id,
                )

    async def _look_up(
        self, todo: list[tuple[Work, FolderJob]]
    ) -> list[tuple[FolderJob, list[Work]]]:
        """Adopt the items of ``todo`` found in their target folder by search key (target
        items already recorded for other source items excluded); returns the rest, by folder.
        Items of a folder that cannot be listed are reported unknown."""
        await self.store.flush()
        by_folder: dict[str, list[tuple[Work, FolderJob]]] = defaultdict(list)
        for w, job in todo:
            by_folder[job.target.id].append((w, job))
        rest: list[tuple[FolderJob, list[Work]]] = []
        for entries in by_folder.values():
            job = entries[0][1]
            try:
                known = {
                    r.target_id
                    for r in (
                        await self.store.items_in_folder(self.key, job.plan.source.folder.id)
                    ).values()
                    if r.status in (Status.DONE, Status.ADOPTED) and r.target_id
                }
                fresh = await self._target_index(job)
            except Fatal:
                raise
            except ServiceError as exc:
                for w, _ in entries:
                    if w.item.id in self._sent:
                        self._unknown(w, job, f"could not be settled: {exc.message}", None)
                    else:
                        self._record_failure(w, job, f"not copied: {exc.message}", None)
                continue
            index = TargetIndex()
            for key, ids in fresh.by_key.items():
                for i in ids:
                    if i not in known:
                        index.by_key[key].append(i)
            copy: list[Work] = []
            for w, _ in entries:
                found = index.claim(w.item.search_key)
                if found is not None:
                    self.store.record_outcome(self.key, Outcome(w.item.id, Status.ADOPTED, found))
                    job.stats.copied += 1
                    job.stats.copied_bytes += w.item.size
                else:
                    copy.append(w)
            if copy:
                rest.append((job, copy))
        return rest


def _debug() -> bool:
    """Tracebacks in the log only at debug level: an operator sees the message."""
    import logging

    return logging.getLogger().isEnabledFor(logging.DEBUG)


async def _aiter(items: list[Any]) -> AsyncIterator[Any]:
    for i in items:
        yield i
