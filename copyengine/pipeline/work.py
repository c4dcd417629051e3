"""What flows through a pair's pipeline: folders with their target, and items with their
exported data and the share of the byte budget that data holds."""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..graph import Folder, Item
from ..plan import FolderPlan, RoundEnd
from ..report import FolderStats
from ..state import ItemRecord
from ..wakeup import Wakeup
from .budget import ByteBudget

T = TypeVar("T")
MAX_SHARE_WAITS = 1_000_000  # bound on a pair's waits for its own imports to free bytes
# bytes: the smallest export part worth its own request. 512 kB, not 256: at 1,000 pairs at
# once (`scale`) parts are cut for every pair (128 kB a pair's half share), and at 256 kB the
# job made 7,294 export requests for 20,000 items against 4,530 at 512 kB, 108% of the
# items/s (peak RSS 276 against 273 MB); `fleet` at 200 / 400 pairs 95% / 94.8% of
# mailboxes at their ceiling against 96.5% / 92.2% (one run each, 2026-12-05 17:26-17:46)
MIN_PART = 512 * 1024


@dataclass(slots=True)
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
    # records of items a full listing met that the item filters no longer select (the
    # operator changed them): gone from the selection, so deleted at the source to the
    # policy (``mirror`` removes the copy, ``keep`` keeps it); never a departure to read for
    deselected: list[ItemRecord] = field(default_factory=list)
    deferred: bool = False  # a change could not be finished: keep the old link
    sweep_from: str | None = None  # moved folder: the old target folder, emptied after
    # target items no source item claimed in a full listing: second copies? (``spares``)
    spare: dict[str, bytes] = field(default_factory=dict)
    # when its last round began and ended (``enumerate.TICKS``, one order for the whole
    # process), and when each departure in ``removed`` was first seen: an item that left
    # for a folder whose round began before that may have arrived unseen (``reread``)
    round_started: int = 0
    round_ended: int = 0
    removed_at: dict[str, int] = field(default_factory=dict)
    # R1b's evidence (``plan.apart``), in moments (``state.moments``): when its last round
    # began (stored with the link that closes it: ``FolderRecord.link_began``), and when a
    # listing first returned each item (``Intent.seen``; let go once its intent is written,
    # or once it is found current or left out: a folder listed in full every pass holds no
    # id per item to its end)
    began_at: int | None = None
    seen_at: dict[str, int] = field(default_factory=dict)
    # ``delta = false``: the ids its last full listing returned (what a listing again tells
    # arrivals and departures since by, ``reread.Relisting``); None: not listed in full
    listed: Listed | None = None
    # ...and those a listing again no longer found (``Listed.gone``): departures, told by
    # the records they name (``departed_ids``)
    gone: frozenset[int] = frozenset()
    # ``delta = true``: how many items its round from nothing (no link) returned, for
    # ``reread`` to compare with the pass's walk; None: read from a link
    counted: int | None = None
    # ...and when its last round saw an id leave that no record knows (an item new since the
    # last pass moved on during it: maybe into a folder read before, ``reread``); 0: none,
    # or already taken into account
    stray_at: int = 0
    # ``delta = true``: the pass's walk counted the folder empty at the source and in the
    # target, and it has no link (``MailboxPass._job``); ``skipped``: so its round from
    # nothing was not read (no records either, ``Producer``): taken as a round at the walk,
    # before every other, that returned nothing and made no link; ``reread`` reads it from
    # nothing when something may have gone into it since
    empty_at_walk: bool = False
    skipped: bool = False
    # deleted at the source while the pass read it: its round answered 404 and ended there,
    # incomplete (``produce.Producer._round``); the next pass deals with its copy
    gone_at_source: bool = False
    # its target folder answered 404 during the pass (deleted in the target by its user):
    # its link is cleared, so that the next pass reads both trees and makes it again
    # (``round_end``); else a pass that reuses the mapping sends its items there again
    target_gone: bool = False

    @property
    def source_id(self) -> str:
        return self.plan.source.folder.id

    @property
    def settled(self) -> bool:
        """Nothing unknown, nothing left unsent, no change put off."""
        return not (self.deferred or self.stats.unknown or self.stats.not_attempted)

    def departed_ids(self, records: Mapping[str, ItemRecord]) -> set[str]:
        """The ids gone from the folder this round: a delta round's, and the recorded ones
        among those a listing again no longer found (an id with no record has no copy)."""
        if not self.gone:
            return self.removed_ids
        return self.removed_ids | {sid for sid in records if hash(sid) in self.gone}

    def round_end(self) -> RoundEnd:
        """How this folder's round ended, for ``plan.links_to_store`` (a folder whose target
        folder went: as a refused link, cleared)."""
        if self.target_gone:
            return RoundEnd(self.source_id, None, self.complete, True, self.settled)
        return RoundEnd(self.source_id, self.next_link, self.complete, self.expired, self.settled)


class Listed:
    """The ids one full listing of a folder returned, kept for the whole pass
    (``delta = false``) and so kept compact: their hashes, sorted, 8 bytes an item against
    about 200 for the id (a Graph id is some 150 characters): 0.4 MB for 50,000 items, not
    10. ``hash`` of a string is stable within the process, which is all a pass needs; two ids
    of one folder sharing one (about n^2 / 2^64) would hide an arrival until the next pass."""

    __slots__ = ("_h",)

    def __init__(self, hashes: Iterable[int]) -> None:
        self._h = array("q", sorted(set(hashes)))

    def __len__(self) -> int:
        return len(self._h)

    def __contains__(self, item_id: object) -> bool:
        h = hash(item_id)
        i = bisect_left(self._h, h)
        return i < len(self._h) and self._h[i] == h

    def gone(self, now: Listed) -> frozenset[int]:
        """The hashes of the ids listed here and not in ``now`` (a later listing)."""
        return frozenset(set(self._h).difference(now._h))

    def nbytes(self) -> int:
        return self._h.itemsize * len(self._h)


@dataclass(eq=False, slots=True)
class BatchShare:
    """One export response: its items' data are slices of one buffer, which lives until the
    last of them has left the pipeline, so the budget is held per response."""

    left: int
    nbytes: int


@dataclass(eq=False, slots=True)
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
    when the pair stops with data still queued.

    A pair holds at most its fair part of the budget (the budget over the pairs holding some
    of it) while it holds anything: a pair whose items wait on its mailbox's throttling
    budget does not keep the bytes another pair's ready work needs (an empty pair may always
    take one response, so nothing stalls)."""

    def __init__(self, budget: ByteBudget, min_part: int = MIN_PART) -> None:
        self.budget = budget
        self.min_part = min_part
        self._open: set[BatchShare] = set()
        self.held = 0
        self._joined = False
        self._freed = Wakeup()  # some of this pair's bytes were given back

    def _fair(self) -> float:
        return self.budget.effective / max(1, self.budget.holders)

    def split(self, batch: list[T], sizes: list[int]) -> list[list[T]]:
        """``batch`` in parts of at most ``part_bytes`` each (one item at least), in order:
        while one part is imported the next is exported. The producer joined the batch from
        parts packed to that size (``plan.parts``, ``plan.join_parts``): cut in order, it is
        cut in no more parts than that (more only when more pairs share the budget now)."""
        most = self.part_bytes()
        if sum(sizes) <= most:
            return [batch]
        parts: list[list[T]] = [[]]
        held = 0
        for e, n in zip(batch, sizes, strict=True):
            if parts[-1] and held + n > most:
                parts.append([])
                held = 0
            parts[-1].append(e)
            held += n
        return parts

    def part_bytes(self) -> float:
        """The most bytes of one export part: half the pair's fair share of the budget,
        while one part is imported the next is exported (a batch larger than the share
        would wait for the whole previous one to be imported first). Never in parts smaller
        than ``min_part``: with thousands of pairs the share is a few kB, and an export
        request per item costs both sides more CPU than the bytes it saves."""
        # parts are cut from the configured budget's share, not the part the job holds now:
        # a budget followed down must not make more export requests. Over the pairs the job
        # runs at once, not only those holding some so far: at the start the first pairs to
        # ask found few holders and took the budget in parts of several MB (a whole batch,
        # its large items exported first), and the pairs that asked a moment later waited
        # for it to come back at their mailboxes' upload pace (fleet at 100 pairs: 40 pairs
        # without a share until 2-8 s, the largest mailbox starting at 8.1 s instead of 2.7)
        return max(self._half_share(), self.min_part)

    def packs(self) -> bool:
        """Whether parts are packed (``plan.parts``) or cut in order: packed when half the
        pair's share sets their size; in order when ``min_part`` does (many pairs): a part
        then holds more than the share already, and packed fuller it put more bytes in
        flight than the shares mean to (``scale``, 1,000 pairs: peak RSS 290-293 MB against
        271-274, the target under 300)."""
        return self._half_share() >= self.min_part

    def _half_share(self) -> float:
        pairs = max(1, self.budget.holders, self.budget.expected)
        return self.budget.limit / pairs / 2

    async def take(self, items: int, nbytes: int) -> BatchShare:
        if not self._joined:
            self._joined = True
            self.budget.holders += 1
        for _ in range(MAX_SHARE_WAITS):
            if self.held == 0 or self.held + nbytes <= self._fair():
                break
            self.budget.demand.starved = True
            await self._freed.wait()
        await self.budget.acquire(nbytes)
        share = BatchShare(items, nbytes)
        self._open.add(share)
        self.held += nbytes
        return share

    async def _give_back(self, nbytes: int) -> None:
        self.held -= nbytes
        await self.budget.release(nbytes)
        self._freed.set()

    async def done(self, share: BatchShare | None, items: int = 1) -> None:
        if share is None or share not in self._open:
            return
        share.left -= items
        if share.left <= 0:
            self._open.discard(share)
            await self._give_back(share.nbytes)

    async def true_up(self, share: BatchShare, nbytes: int) -> None:
        """Hold ``nbytes`` (the export's real data length) instead of the estimate."""
        if share not in self._open or nbytes == share.nbytes:
            return
        if nbytes > share.nbytes:
            self.budget.add(nbytes - share.nbytes)
            self.held += nbytes - share.nbytes
        else:
            await self._give_back(share.nbytes - nbytes)
        share.nbytes = nbytes

    async def release_all(self) -> None:
        shares, self._open = self._open, set()
        for s in shares:
            await self._give_back(s.nbytes)
        if self._joined:
            self._joined = False
            self.budget.holders -= 1
