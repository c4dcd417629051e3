"""Copy one mailbox pair: resolve both mailboxes, mirror the folders, then producer ->
exporters -> importers, then settlement. A failure of the pair fails this pair only (the
job goes on); a failure of the whole job (the state store) is passed up."""

from __future__ import annotations

import logging
import time

import anyio
import structlog

from ..errors import StateError
from ..failures import classify
from ..report import PairStatus, archive_note
from ..survey import MailboxSide, mailboxes
from .backlog import Backlog
from .context import PairContext
from .enumerate import DeltaListing, Enumerator, FullListing
from .passes import MailboxPass
from .produce import Producer
from .remember import remember, remembered
from .reread import Copied, counted, reread
from .settle import Settler
from .spares import forget_unmapped
from .stages import Stages
from .unsettled import Unsettled


def debug_logging() -> bool:
    """Tracebacks in the log only at debug level: an operator sees the message."""
    return logging.getLogger().isEnabledFor(logging.DEBUG)


class PairRunner:
    def __init__(self, ctx: PairContext) -> None:
        self.ctx = ctx
        self.pair = ctx.pair
        self.key = ctx.key
        self.store = ctx.store
        self.stats = ctx.stats
        self.stop = ctx.stop
        self.log = ctx.log  # the pair is bound per task (contextvars) in run()
        # the items of the mailbox being copied that have no known outcome yet
        self.unsettled: Unsettled | None = None
        self._names: dict[str, str] = {}  # mailbox id -> UPN, once resolved

    async def run(self) -> None:
        # Every event of this pair, from every task it starts, carries ``pair``.
        with structlog.contextvars.bound_contextvars(pair=self.key):
            await self._run()

    async def _run(self) -> None:
        st = self.stats
        st.status, st.started = PairStatus.RUNNING, st.started or time.monotonic()
        await self.store.pair_started(self.key, self.pair.source, self.pair.target)
        self.log.info("pair.started", source=self.pair.source, target=self.pair.target)
        error: str | None = None
        try:
            await self._copy()
            st.status = self._stopped() if self.stop.draining else PairStatus.DONE
        except anyio.get_cancelled_exc_class():
            st.status = self._stopped()
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
                await self.ctx.shares.release_all()
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

    def _stopped(self) -> PairStatus:
        """A drained pair: interrupted, paused by the run's cap (``hold`` says which), or
        held by the operator's controls (the job goes on; the pair continues when its hold
        lifts)."""
        hold, job = self.stop.hold, self.stop.root()
        if not self.stop.held or hold is None:
            if job.paused is None or job.interrupted:
                return PairStatus.INTERRUPTED
            self.stats.hold = job.paused
            return PairStatus.PAUSED
        self.stats.hold = hold.text
        return PairStatus.SUSPENDED if hold.by_operator else PairStatus.WAITING

    async def _copy(self, again: bool = False) -> None:
        done = []
        if not again:  # a second go (``_remake``) keeps what the first counted of its pacers
            self.stats.pacers, self.stats.aux_pacers, self.stats.pacer_base = [], [], {}
        ctx = self.ctx
        boxes = await mailboxes(ctx.src, ctx.dst, self.pair)
        # the budget its last pass ended with (a second go's pacers have it already)
        said = None if again else await remembered(self.store, self.key)
        for side in boxes.found:
            if side.archive and self.stop.draining:
                break
            self._names[side.source_id] = side.source_name
            self._names[side.target_id] = side.target_name
            # each mailbox (an archive too) has throttling budgets of its own: its own pacers
            pacers = (ctx.src.pacer(side.source_id), ctx.dst.pacer(side.target_id))
            if not again:
                for pacer in pacers:
                    self.stats.watch(pacer.account)
                remember(said, self.stats, pacers, self.log)
            done.append(await self._copy_mailbox(side))
        if not again and not self.stop.draining and await self._remake(done):
            await self._copy(again=True)
            return
        self._note_archive_redirects()
        if boxes.missing is not None and not self.stop.draining:
            raise boxes.missing  # the primary mailbox copied; the archive asked for is not there
        if self.stop.draining or ctx.kind.retry_only:
            return
        # a move made during the pass into a folder already read is found before any
        # departure is taken for a deletion (``reread``)
        await reread(ctx, done, self._watch)
        if self.stop.draining:
            return
        # both mailboxes' items are in before either decides what left it: an item moved
        # between the primary mailbox and the archive is then a move, seen from both sides
        for c in done:
            elsewhere = [k for o in done if o is not c for k in o.this.arrived]
            await c.this.finish(c.folders, elsewhere)
        if all(not c.this.incremental for c in done):
            await forget_unmapped(ctx)  # the target listed in full: nothing left to look for

    async def _remake(self, done: list[Copied]) -> bool:
        """Whether the pair goes once more, within this pass, because target folders of it
        were found deleted in the target (by its user) during the pass: their imports
        answered ``ErrorFolderNotFound`` (nothing made: not sent) or their listing 404
        (``FolderJob.target_gone``). Their links are dropped, so that the pair's second go
        reads both trees, makes each folder again where it belongs (the pair's notes say
        so: "… was deleted in the target: made again") and lists its items from nothing,
        copying every one into it; the rest goes on from where this go left it, as a pair
        continued after a hold (``PairStats.continued``: nothing counted twice). Before,
        those items failed (exit 1) until a later pass made the folder again."""
        gone = [j for c in done for j in c.folders if j.target_gone]
        if not gone:
            return False
        await self.store.set_delta_links(self.key, [(j.source_id, None) for j in gone])
        self.log.warning(
            "pair.target_folders_gone", folders=sorted({j.stats.source_path for j in gone})
        )
        self.stats.continued()
        return True

    def _note_archive_redirects(self) -> None:
        """An auto-expanding archive's redirects, said once per pass: a note, not a failure."""
        c = self.stats.archive_redirects
        note = archive_note(c)
        if note is None:
            return
        self.stats.notes.append(note)
        self.log.info(
            "pair.archive_redirects",
            redirected=c["redirected"],
            sessions_renewed=c["sessions_renewed"],
            folders_moved=c["folders_moved"],
            answers_409=c["answers_409"],
        )

    async def _copy_mailbox(self, side: MailboxSide) -> Copied:
        ctx = self.ctx
        this = MailboxPass(ctx, side)
        folders = await this.folders()
        if ctx.kind.retry_only:
            for job in folders:
                job.mode = "full"  # failed items are found by listing, not by what changed
        self.log.info(
            "pair.folders_mirrored",
            folders=len(folders),
            delta=sum(j.mode == "delta" for j in folders),
            mailbox=side.label or "primary",
        )
        self.unsettled = unsettled = Unsettled()
        backlog = Backlog(folders)  # what is left to upload, for the target's pacer
        stages = Stages(ctx, side, unsettled, backlog)
        enumerator: Enumerator = (
            DeltaListing(ctx.src, side.source_id, ctx.store.moment)
            if ctx.sync.delta
            else FullListing(ctx.src, side.source_id, ctx.store.moment)
        )
        producer = Producer(ctx, side, folders, enumerator, unsettled, backlog)
        handed = [0]
        await stages.run(counted(producer.batches(), handed))
        await Settler(ctx, side, stages, unsettled).settle()
        this.items_done()
        return Copied(this, folders, side, stages, unsettled, backlog, enumerator, handed[0])

    def _watch(self, unsettled: Unsettled) -> None:
        """The items being copied now are ``unsettled``'s (handed on if the pair stops)."""
        self.unsettled = unsettled

    def _cut_short(self, reason: str | None = None) -> None:
        """The pair stopped with work under way: what has no known outcome is handed to the
        next run (``Unsettled.cut_short``)."""
        if self.unsettled is not None:
            self.unsettled.cut_short(self.ctx.ledger, reason or self.stop.reason or "interrupted")
