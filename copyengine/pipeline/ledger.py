"""The one writer of a pair's outcomes and statistics: every item's fate goes through here,
to the state store and to the report's counters together, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import BadItemLimit
from ..graph import Item
from ..plan import Skip
from ..state import Intent, ItemRecord, Outcome, Status, Store
from .work import FolderJob

VANISHED = "deleted at source during the copy"


def described(item: Item, **more: Any) -> dict[str, Any]:
    """An item as the report lists it: what listing says of it (id, size, type, created
    date), never its content, and ``more``."""
    return {"id": item.id, "size": item.size, "type": item.type, "created": item.created, **more}


class Ledger:
    def __init__(self, pair: str, store: Store, log: Any, max_failed: int | None = None) -> None:
        self.pair = pair
        self.store = store
        self.log = log
        self.max_failed = max_failed
        self.failures = 0
        # this pass's arrivals by search key: (source id, target id, folder) of items copied,
        # adopted or updated (the keys a pass looks up to decide moves, and the move counts)
        self.arrived: dict[bytes, tuple[str, str | None, FolderJob]] = {}
        # a first pass has nothing that could have moved: it keeps no arrivals (their memory
        # would grow with the mailbox)
        self.track_arrivals = True
        # this pass's items the item filters leave out that no record of their folder names,
        # by search key: (source id, source folder id) each. A kept copy whose own item's id
        # is gone may find it here, moved under a new id and still left out (review R1:
        # ``passes.MailboxPass._drop_kept_moves``, ``spares.KeptOwn``); kept as arrivals are.
        # Only those of ``kept_keys``: the keys of kept copies beside a settled copy of their
        # key as the pass began (``Store.kept_beside_live``), the ones a pass asks about, so
        # that a filter leaving out most of a mailbox does not hold each item it leaves out
        self.left_out: dict[bytes, list[tuple[str, str]]] = {}
        self.kept_keys: frozenset[bytes] = frozenset()

    def _arrived(self, job: FolderJob, item: Item, target_id: str | None) -> None:
        if self.track_arrivals and item.search_key is not None:
            self.arrived[item.search_key] = (item.id, target_id, job)

    # -- enumeration ---------------------------------------------------------------------------
    def listed(self, job: FolderJob, item: Item) -> None:
        if job.stats.relist:  # listed again after a hold: its listing counts start over
            job.stats.restart_listing()
        job.stats.source_items += 1
        job.stats.source_bytes += item.size

    def skipped(self, job: FolderJob, item: Item, why: Skip, recorded: bool = True) -> None:
        """An item the item filters leave out (``recorded``: its folder has a record of it)."""
        job.seen_at.pop(item.id, None)  # no intent: its listing moment let go
        if not recorded and item.search_key in self.kept_keys:
            assert item.search_key is not None
            self.left_out.setdefault(item.search_key, []).append((item.id, job.source_id))
        job.stats.skipped[why.value] += 1
        if why is Skip.TOO_LARGE:
            job.stats.skipped_items.append(described(item, folder=job.plan.source.path))

    def present(self, job: FolderJob, item_id: str | None = None) -> None:
        """An item whose copy is current: no intent to write (its listing moment, kept
        for one, let go: ``FolderJob.seen_at``)."""
        if item_id is not None:
            job.seen_at.pop(item_id, None)
        if job.stats.present_offset > 0:  # done before its pair was held: counted then
            job.stats.present_offset -= 1
        else:
            job.stats.already_present += 1

    async def adopted(self, job: FolderJob, found: list[tuple[Item, str, str | None]]) -> None:
        """Items found in the target by search key while listing, of the version an earlier
        import of ours sent: recorded (with the copy's change key), not copied. Recorded
        even when the intents' write is cut short (a stop): the report has counted them
        present, and intents that did become durable must not be left as unknowns (an
        outcome for a record that was not written changes nothing)."""
        try:
            await self.intents(job, [i for i, _, _ in found])
        finally:
            for item, target_id, change_key in found:
                self.store.record_outcome(
                    self.pair, Outcome(item.id, Status.ADOPTED, target_id, change_key)
                )
                self._arrived(job, item, target_id)

    # -- copying -------------------------------------------------------------------------------
    async def intents(self, job: FolderJob, items: Iterable[Item]) -> None:
        """Durable before returning: imports of these items may be sent once it returns."""
        await self.store.record_intents(
            self.pair,
            [
                Intent(
                    i.id,
                    job.source_id,
                    i.search_key,
                    i.size,
                    job.target.id,
                    i.change_key,
                    job.seen_at.pop(i.id, None),
                )
                for i in items
            ],
        )

    def copied(self, job: FolderJob, item: Item, target_id: str, change_key: str) -> None:
        self.store.record_outcome(self.pair, Outcome(item.id, Status.DONE, target_id, change_key))
        job.stats.copied += 1
        job.stats.copied_bytes += item.size
        self._arrived(job, item, target_id)

    def updated(self, job: FolderJob, item: Item, target_id: str, change_key: str) -> None:
        """Changed at the source: its copy updated in place (same target id)."""
        self.store.record_outcome(self.pair, Outcome(item.id, Status.DONE, target_id, change_key))
        job.stats.updated += 1
        job.stats.copied_bytes += item.size
        self._arrived(job, item, target_id)

    def drift(self, job: FolderJob, item: Item, reason: str) -> None:
        """The target changed under us between passes (a user deleted or edited a copy)."""
        job.stats.drift.append({"id": item.id, "reason": reason})
        self.log.warning("item.target_drift", item=item.id, reason=reason)

    # -- items that left the source ------------------------------------------------------------
    def moved(self, job: FolderJob, record: ItemRecord, to: FolderJob | None) -> None:
        """Its new copy exists; the old copy is gone (counted once, as a move, not as a
        copy, when the new copy arrived in ``to`` in this pass)."""
        job.stats.moved_out += 1
        if to is None:
            return
        to.stats.moved_in += 1
        to.stats.copied = max(0, to.stats.copied - 1)
        to.stats.copied_bytes = max(0, to.stats.copied_bytes - record.size)

    def deleted(self, job: FolderJob) -> None:
        job.stats.deleted += 1

    def kept(self, job: FolderJob, record: ItemRecord, known: int | None = None) -> None:
        """``known``: a moment its item was still at the source at or after (R1b's evidence,
        ``ItemRecord.known``)."""
        # its copy with it: one found by search key as it left (``_settle_departing``)
        # was recorded nowhere before
        outcome = Outcome(record.source_id, Status.REMOVED, record.target_id, known=known)
        self.store.record_outcome(self.pair, outcome)
        job.stats.kept += 1

    def found_in_target(
        self, job: FolderJob, item: Item, target_id: str, change_key: str | None = None
    ) -> None:
        """Settlement found the item's copy: an earlier import did land (the version that
        import sent, whose copy now has ``change_key``)."""
        self.store.record_outcome(
            self.pair, Outcome(item.id, Status.ADOPTED, target_id, change_key)
        )
        job.stats.copied += 1
        job.stats.copied_bytes += item.size
        self._arrived(job, item, target_id)

    def vanished(self, job: FolderJob) -> None:
        job.stats.skipped[VANISHED] += 1

    def unanswered(self, item: Item, message: str, request_id: str | None) -> None:
        """An import whose response was lost: settled later, never resent blindly."""
        self.store.record_outcome(
            self.pair, Outcome(item.id, Status.UNKNOWN, error=message, request_id=request_id)
        )
        self.log.info("item.import_unanswered", item=item.id, error=message)

    # -- final fates ---------------------------------------------------------------------------
    def failed(self, job: FolderJob, item: Item, reason: str, request_id: str | None) -> None:
        self.store.record_outcome(
            self.pair, Outcome(item.id, Status.FAILED, error=reason, request_id=request_id)
        )
        job.stats.failed.append(described(item, reason=reason, request_id=request_id))
        self.log.warning(
            "item.failed",
            item=item.id,
            folder=job.plan.source.path,
            reason=reason,
            request_id=request_id,
        )
        self.failures += 1
        if self.max_failed is not None and self.failures > self.max_failed:
            raise BadItemLimit(
                f"more than {self.max_failed} items failed in this pair "
                "([limits] max_failed_items_per_pair): the pair stopped; see its failures"
            )

    def unknown(self, job: FolderJob, item: Item, reason: str, request_id: str | None) -> None:
        """Sent, and whether it landed could not be established (the state keeps its
        intent; the next run settles it). Never counted as failed."""
        job.stats.unknown.append(described(item, reason=reason, request_id=request_id))
        self.log.warning("item.outcome_unknown", item=item.id, reason=reason)

    def not_sent(self, job: FolderJob, item: Item) -> None:
        """Its intent was recorded, but the run stopped before its import was sent."""
        self.store.record_outcome(self.pair, Outcome(item.id, Status.PENDING))
        job.stats.not_attempted += 1

    def not_attempted(self, job: FolderJob) -> None:
        job.stats.not_attempted += 1

    async def flush_if_needed(self) -> None:
        if self.store.needs_flush():
            await self.store.flush()
