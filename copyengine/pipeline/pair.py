"""Copy one mailbox pair: resolve both mailboxes, mirror the folders, then producer ->
exporters -> importers, then settlement. A failure of the pair fails this pair only (the
job goes on); a failure of the whole job (the state store) is passed up."""

from __future__ import annotations

import logging
import time

import anyio
import structlog

from ..config import Limits, Pair
from ..errors import StateError
from ..failures import classify
from ..graph import ImportSessionPool, MailboxApi
from ..report import PairStats, PairStatus
from ..state import Store
from ..survey import mailboxes
from .budget import ByteBudget
from .enumerate import DeltaListing, Enumerator, FullListing
from .ledger import Ledger
from .passes import MailboxPass, PassMode
from .produce import Producer
from .settle import Settler
from .stages import Stages
from .stop import StopFlag
from .work import ByteShares, FolderJob

log = structlog.get_logger("copyengine.pipeline")


def debug_logging() -> bool:
    """Tracebacks in the log only at debug level: an operator sees the message."""
    return logging.getLogger().isEnabledFor(logging.DEBUG)


class PairRunner:
    def __init__(
        self,
        pair: Pair,
        src: MailboxApi,
        dst: MailboxApi,
        store: Store,
        stats: PairStats,
        limits: Limits,
        budget: ByteBudget,
        stop: StopFlag,
        retry_only: bool = False,
        mode: PassMode | None = None,
    ) -> None:
        self.retry_only = retry_only
        self.mode = mode or PassMode()
        self.pair = pair
        self.key = pair.key
        self.src = src
        self.dst = dst
        self.store = store
        self.stats = stats
        self.limits = limits
        self.shares = ByteShares(budget)
        self.stop = stop
        self.log = log  # the pair is bound per task (contextvars) in run()
        self.ledger = Ledger(self.key, store, self.log, limits.max_failed_items_per_pair)
        self.stages: Stages | None = None
        self._names: dict[str, str] = {}  # mailbox id -> UPN, once resolved

    async def run(self) -> None:
        # Every event of this pair, from every task it starts, carries ``pair``.
        with structlog.contextvars.bound_contextvars(pair=self.key):
            await self._run()

    async def _run(self) -> None:
        st = self.stats
        st.status, st.started = PairStatus.RUNNING, time.monotonic()
        await self.store.pair_started(self.key, self.pair.source, self.pair.target)
        self.log.info("pair.started", source=self.pair.source, target=self.pair.target)
        error: str | None = None
        try:
            await self._copy()
            st.status = PairStatus.INTERRUPTED if self.stop.draining else PairStatus.DONE
        except anyio.get_cancelled_exc_class():
            st.status = PairStatus.INTERRUPTED
            self._cut_short()
            raise
        except Exception as exc:  # one pair's failure fails that pair only
            verdict = classify(exc)
            message = verdict.message
            for mailbox_id, upn in self._names.items():
                message = message.replace(mailbox_id, upn)  # the operator knows the UPN
            st.status, st.error, st.error_code = PairStatus.FAILED, message, verdict.error_type
            if verdict.job_wide:
                raise
            error = message
            self._cut_short(f"not copied: the pair stopped ({verdict.error_type})")
            self.log.error(
                "pair.failed", error=error, error_type=verdict.error_type, exc_info=debug_logging()
            )
        finally:
            st.finished = time.monotonic()
            st.freeze_pacing()
            with anyio.CancelScope(shield=True):
                await self.shares.release_all()
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

    async def _copy(self) -> None:
        done = []
        self.stats.pacers = []
        for side in await mailboxes(self.src, self.dst, self.pair):
            if side.archive and self.stop.draining:
                break
            self._names[side.source_id] = side.source_name
            self._names[side.target_id] = side.target_name
            # each mailbox (an archive too) has throttling budgets of its own: its own pacers
            self.stats.pacers += [
                self.src.pacer(side.source_id).account,
                self.dst.pacer(side.target_id).account,
            ]
            done.append(await self._copy_mailbox(side.source_id, side.target_id, side.label))
        if self.stop.draining or self.retry_only:
            return
        # both mailboxes' items are in before either decides what left it: an item moved
        # between the primary mailbox and the archive is then a move, seen from both sides
        for this, folders in done:
            elsewhere = [k for other, _ in done if other is not this for k in other.arrived]
            await this.finish(folders, elsewhere)

    async def _copy_mailbox(
        self, src_id: str, dst_id: str, label: str
    ) -> tuple[MailboxPass, list[FolderJob]]:
        this = MailboxPass(
            self.src,
            self.dst,
            src_id,
            dst_id,
            self.pair,
            self.store,
            self.stats,
            self.ledger,
            self.mode,
            label,
            self.log,
        )
        folders = await this.folders()
        if self.retry_only:
            for job in folders:
                job.mode = "full"  # failed items are found by listing, not by what changed
        self.log.info(
            "pair.folders_mirrored",
            folders=len(folders),
            delta=sum(j.mode == "delta" for j in folders),
            mailbox=label or "primary",
        )
        self.stages = stages = Stages(
            self.src,
            src_id,
            ImportSessionPool(self.dst, dst_id),
            self.limits,
            self.shares,
            self.ledger,
        )
        enumerator: Enumerator = (
            DeltaListing(self.src, src_id) if self.mode.delta else FullListing(self.src, src_id)
        )
        producer = Producer(
            folders,
            enumerator,
            self.dst,
            dst_id,
            self.pair,
            self.store,
            self.ledger,
            self.limits,
            self.stats,
            self.stop,
            stages,
            self.retry_only,
        )
        await stages.run(producer.batches())
        settler = Settler(
            stages,
            self.dst,
            dst_id,
            self.key,
            self.store,
            self.ledger,
            self.limits,
            self.stop,
            self.log,
        )
        await settler.settle(self._leave)
        this.items_done()
        return this, folders

    def _cut_short(self, reason: str | None = None) -> None:
        """The pair stopped with work under way: imports in flight have an unknown outcome
        (their intents are durable; the next run settles them), items exported but not
        sent are marked so, retries are left undone."""
        st = self.stages
        if st is None:
            return
        why = reason or self.stop.reason or "interrupted"
        for e in list(st.inflight.values()):
            self.ledger.unknown(e.folder, e.item, f"{why}: the import was in flight", None)
        st.inflight.clear()
        for e in list(st.queued.values()):
            self.ledger.not_sent(e.folder, e.item)
        st.queued.clear()
        self._leave(why)

    def _leave(self, why: str) -> None:
        """Items waiting for a retry when the run stops: unknown when an import of theirs was
        sent, else simply not attempted."""
        st = self.stages
        if st is None:
            return
        for e in st.retry:
            last = st.last_error.get(e.item.id)
            if e.item.id in st.sent:
                reason = f"{why}; last error: {last[0]}" if last else why
                self.ledger.unknown(e.folder, e.item, reason, last[1] if last else None)
            else:
                self.ledger.not_attempted(e.folder)
        st.retry = []
