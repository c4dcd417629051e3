"""What flows through a pair's pipeline: folders with their target, and items with their
exported data and the share of the byte budget that data holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..graph import Folder, Item
from ..plan import FolderPlan
from ..report import FolderStats
from ..state import ItemRecord
from .budget import ByteBudget


@dataclass
class FolderJob:
    plan: FolderPlan
    target: Folder
    stats: FolderStats
    new: bool  # created in this run: nothing to match against
    # "full": every item listed and reconciled by search key; "delta": only what changed
    # since ``link`` (the item delta link stored by the last pass)
    mode: str = "full"
    link: str | None = None
    next_link: str | None = None  # this round's delta link, stored once the pass is settled
    expired: bool = False  # the stored link was refused (410): listed in full instead
    complete: bool = False  # the enumeration ran to its end
    removed_ids: set[str] = field(default_factory=set)  # delta rows: gone from the folder
    removed: list[ItemRecord] = field(default_factory=list)  # their records (copied before)
    deferred: bool = False  # a change could not be finished: keep the old link
    sweep_from: str | None = None  # moved folder: the old target folder, emptied after

    @property
    def source_id(self) -> str:
        return self.plan.source.folder.id


@dataclass(eq=False)
class BatchShare:
    """One export response: its items' data are slices of one buffer, which lives until the
    last of them has left the pipeline, so the budget is held per response."""

    left: int
    nbytes: int


@dataclass(eq=False)
class Exportable:
    item: Item
    folder: FolderJob
    data: Any = None  # msgspec.Raw from the export; None once imported
    # update mode: (target folder id, target item id) of the copy to update in place
    update: tuple[str, str] | None = None
    share: BatchShare | None = None


class ByteShares:
    """The pair's shares of the job-wide byte budget, released in one place: when the last
    item of an export response leaves the pipeline (imported, failed, gone), or all at once
    when the pair stops with data still queued."""

    def __init__(self, budget: ByteBudget) -> None:
        self.budget = budget
        self._open: set[BatchShare] = set()

    async def take(self, items: int, nbytes: int) -> BatchShare:
        await self.budget.acquire(nbytes)
        share = BatchShare(items, nbytes)
        self._open.add(share)
        return share

    async def done(self, share: BatchShare | None, items: int = 1) -> None:
        if share is None or share not in self._open:
            return
        share.left -= items
        if share.left <= 0:
            self._open.discard(share)
            await self.budget.release(share.nbytes)

    async def true_up(self, share: BatchShare, nbytes: int) -> None:
        """Hold ``nbytes`` (the export's real data length) instead of the estimate."""
        if share not in self._open or nbytes == share.nbytes:
            return
        if nbytes > share.nbytes:
            self.budget.add(nbytes - share.nbytes)
        else:
            await self.budget.release(share.nbytes - nbytes)
        share.nbytes = nbytes

    async def release_all(self) -> None:
        shares, self._open = self._open, set()
        for s in shares:
            await self.budget.release(s.nbytes)

    @property
    def held(self) -> int:
        return sum(s.nbytes for s in self._open)
