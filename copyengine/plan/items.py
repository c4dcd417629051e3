"""Pure item decisions: filters, what to do with a source item given its state record and
the target folder's index, how target items are matched (one rule for items without a
search key), and how items are batched for exportItems."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from ..config import ItemFilters
from ..graph.models import Item, Removed
from ..state.records import SETTLED, ItemRecord, Status
from ..timefmt import parse_graph_datetime

T = TypeVar("T")


class Skip(Enum):
    TOO_LARGE = "larger than max_size"
    OUT_OF_RANGE = "created outside the date range"
    TYPE = "item type not selected"


def filter_item(item: Item, f: ItemFilters) -> Skip | None:
    if f.max_size is not None and item.size > f.max_size:
        return Skip.TOO_LARGE
    if f.types and not any(item.type == t or item.type.startswith(t + ".") for t in f.types):
        return Skip.TYPE
    if f.created_after or f.created_before:
        created = parse_graph_datetime(item.created) if item.created else None
        if created is not None:
            if f.created_after and created < f.created_after:
                return Skip.OUT_OF_RANGE
            if f.created_before and created >= f.created_before:
                return Skip.OUT_OF_RANGE
    return None


class Decision(Enum):
    COPY = "copy"  # no copy of it in this target folder: import (create mode)
    UPDATE = "update"  # a copy is here, of another version (or edited in the target): update it
    ALREADY_DONE = "already done"  # the copy recorded is here, of this version
    ADOPT = "adopt"  # found here by search key, of the version an earlier import sent: record it


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    target_id: str | None = None  # the copy to update, or the one adopted
    drift: str | None = None  # how the target changed under us, when it did


@dataclass
class TargetIndex:
    """The items of one folder by search key (several may share one key). An item without a
    search key cannot be matched to a source item: it is kept apart in ``keyless`` and only
    counted (``surplus``), never claimed. The copy, settlement and ``verify`` all use this
    one rule."""

    by_key: dict[bytes, list[str]] = field(default_factory=lambda: defaultdict(list))
    keyless: list[str] = field(default_factory=list)
    claimed: set[str] = field(default_factory=set)
    change_keys: dict[str, str] = field(default_factory=dict)  # id -> its change key, if listed

    @classmethod
    def of(
        cls, items: Iterable[Item], exclude: set[str] | frozenset[str] = frozenset()
    ) -> TargetIndex:
        """The index of ``items``, leaving out the ids in ``exclude`` (target items already
        recorded for other source items, during settlement)."""
        idx = cls()
        for it in items:
            if it.id in exclude:
                continue
            if it.change_key:
                idx.change_keys[it.id] = it.change_key
            if it.search_key is None:
                idx.keyless.append(it.id)
            else:
                idx.by_key[it.search_key].append(it.id)
        return idx

    def count(self) -> int:
        return sum(map(len, self.by_key.values())) + len(self.keyless)

    def claim(self, key: bytes | None, prefer: str | None = None) -> str | None:
        """Take one unclaimed target item with this search key (``prefer`` first)."""
        if key is None:
            return None
        ids = self.by_key.get(key)
        if not ids:
            return None
        if prefer is not None and prefer in ids and prefer not in self.claimed:
            self.claimed.add(prefer)
            return prefer
        for i in ids:
            if i not in self.claimed:
                self.claimed.add(i)
                return i
        return None


def surplus(a: TargetIndex, b: TargetIndex) -> list[str]:
    """Ids of ``a`` beyond what ``b`` holds: per search key, and for keyless items by count
    (``verify``: source surplus = missing, target surplus = extra)."""
    out = [i for k, ids in a.by_key.items() for i in ids[len(b.by_key.get(k, ())) :]]
    out.extend(a.keyless[len(b.keyless) :])
    return out


def decide(
    item: Item,
    record: ItemRecord | None,
    index: TargetIndex,
    folder_id: str,
    earlier: ItemRecord | None = None,
) -> Verdict:
    """What a folder listed in full asks of the target folder ``folder_id`` for one source
    item, given its state record and the folder's index: presence **and** content.

    ``earlier``: with no record of the item's id, the record of this folder's item with its
    search key that this listing has not met (yet): the same item under an id of before (the
    user moved it away and back between passes: a move makes a new id), whose copy is
    ours, of a version known. Decided as that record's item, and a copy current as it is
    recorded anew for the new id (adopted): taken as it is, a copy of the version before an
    edit made while the item was away was recorded as current (hunt2, seed 9801 keep:
    stale, and signed off complete).

    The copy recorded for this folder is current only when the source's change key is the one
    it was made from and the target's change key is the one our import left (anything else:
    updated in place, the source wins; a change made in the target is reported as drift). A
    copy found by search key that the state does not record as ours is adopted when an
    earlier import of ours sent this very version to this folder (its outcome was never
    recorded), or when the state has no record of the item at all (the state was lost, or the
    copy was made by another tool: taken as it is, as the first pass finds it); a copy found
    against any other record is of an unknown version and is updated in place. An item
    with no copy here is copied (a record pointing to another folder is a copy being re-homed,
    its old one swept after)."""
    if record is None and earlier is not None:
        verdict = decide(item, earlier, index, folder_id)
        if verdict.decision is Decision.ALREADY_DONE:
            return Verdict(Decision.ADOPT, verdict.target_id)  # recorded for its new id
        return verdict
    ours = (
        record is not None
        and record.status in SETTLED
        and record.target_id is not None
        and record.target_folder_id == folder_id
    )
    if ours:
        assert record is not None
        got = index.claim(item.search_key, prefer=record.target_id)
        if got is None:
            if item.search_key is None:
                return Verdict(Decision.ALREADY_DONE, record.target_id)  # cannot be looked for
            return Verdict(Decision.COPY, drift="deleted in the target since it was copied")
        if got != record.target_id:
            return Verdict(Decision.UPDATE, got)  # another copy than ours: its version unknown
        if record.change_key != item.change_key:
            return Verdict(Decision.UPDATE, got)  # changed at the source since it was copied
        now = index.change_keys.get(got)
        if record.target_change_key is None:
            return Verdict(Decision.UPDATE, got)  # the version it holds was never recorded
        if now is not None and now != record.target_change_key:
            return Verdict(
                Decision.UPDATE,
                got,
                "edited in the target since it was copied: restored from the source",
            )
        return Verdict(Decision.ALREADY_DONE, got)
    got = index.claim(item.search_key)
    if got is None:
        return Verdict(Decision.COPY)
    if record is None:
        return Verdict(Decision.ADOPT, got)  # a copy made without our state: taken as it is
    if (
        record.status not in SETTLED
        and record.status is not Status.REMOVED
        and record.target_folder_id == folder_id
        and record.change_key == item.change_key
        and got != record.target_id
    ):
        return Verdict(Decision.ADOPT, got)  # an earlier create of this version did land
    return Verdict(Decision.UPDATE, got)


def batches(items: Iterable[Item], max_items: int, max_bytes: int) -> Iterator[list[Item]]:
    """Group items for exportItems: at most ``max_items`` and about ``max_bytes`` (from the
    listed sizes) per batch; an item larger than ``max_bytes`` travels alone."""
    batch: list[Item] = []
    size = 0
    for it in items:
        if batch and (len(batch) >= max_items or size + it.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(it)
        size += it.size
    if batch:
        yield batch


# Parts open to a later item in ``parts``: an item goes into the first of the last
# ``LOOKBACK`` parts with room for it, so it is exported at most ``LOOKBACK - 1`` parts early.
LOOKBACK = 3


def parts(
    items: Sequence[T], sizes: Sequence[int], most: float, max_items: int, lookback: int = LOOKBACK
) -> list[list[T]]:
    """``items`` (their export data's estimated sizes ``sizes``) in export parts of at most
    ``most`` bytes (an item larger travels alone) and ``max_items`` items, as few as a
    bounded reordering allows: each item goes into the first of the last ``lookback``
    parts with room for it, else into a new part. Cut in order instead, a part closed at
    the first item that did not fit (the large items are spread over the order,
    ``upload_order``): parts of half a share held 60-70% of it, an export request more per
    two or three parts. The order of the parts is kept, and within a part the items' order;
    an item moves ahead of at most ``lookback - 1`` parts (1: cut in order)."""
    out: list[list[T]] = []
    held: list[float] = []
    for it, n in zip(items, sizes, strict=True):
        for k in range(max(0, len(out) - lookback), len(out)):
            if held[k] + n <= most and len(out[k]) < max_items:
                out[k].append(it)
                held[k] += n
                break
        else:
            out.append([it])
            held.append(n)
    return out


def join_parts(cut: Iterable[list[Item]], max_items: int, max_bytes: int) -> list[list[Item]]:
    """Consecutive parts of ``cut`` joined into batches of at most ``max_items`` items and
    about ``max_bytes`` (listed sizes; a part larger travels alone, cut as ``batches``
    cuts), never a part split: a batch cut in order into parts of the size each part of it
    fits (``ByteShares.split``) is cut in no more parts than it was joined from (cut in order,
    each part as long as it can be: its end is never before the end of the joined part of
    the same rank). A pair's batch keeps being what an exporter takes at once, at most 20
    items, as when batches were made before they were cut."""
    out: list[list[Item]] = []
    size = 0
    for part in cut:
        for b in batches(part, max_items, max_bytes):
            n = sum(it.size for it in b)
            if out and len(out[-1]) + len(b) <= max_items and size + n <= max_bytes:
                out[-1] += b
                size += n
            else:
                out.append(list(b))
                size = n
    return out


# The export order when a folder's uploads need more than one window of the target's upload
# budget (issue 26): an item whose body is at least ``LARGE_SHARE`` of the budget is large,
# and the large items are spread evenly over the first ``EARLY_SHARE`` of the order.
LARGE_SHARE = 0.1
EARLY_SHARE = 0.6


def upload_order(items: Sequence[T], bodies: Sequence[int], budget: float) -> list[T]:
    """``items`` (their request bodies' estimated sizes ``bodies``) in the order to export
    them for a target whose upload budget is ``budget`` bytes per window.

    A window's room comes back in the sizes it went out in, and a large body fits only once
    enough of it is back at once: large items listed late were left to the last windows,
    two or three to a window, each of them carrying far less than the budget (an extra
    window for the mailbox: 75-80% of its ceiling). Spread over the first part of the order
    instead, each goes while small items are ready to fill the room around it, and the last
    windows are filled with small ones. The listed order is kept (first in, first out: the
    unthrottled order) when the bodies fit one window, when no body is large, and among the
    large items and among the others."""
    if budget <= 0 or len(items) < 2:
        return list(items)
    total = 0
    large = LARGE_SHARE * budget
    many = False
    for n in bodies:
        total += n
        many = many or n >= large
    if total <= budget or not many:
        return list(items)
    bigs = [it for it, n in zip(items, bodies, strict=True) if n >= large]
    if len(bigs) == len(items):
        return list(items)
    smalls = [it for it, n in zip(items, bodies, strict=True) if n < large]
    span = max(1, int(EARLY_SHARE * len(items)))
    out: list[T] = []
    k = 0
    for j, it in enumerate(bigs):
        at = j * span // len(bigs)  # the large item's place in the order (or next free)
        while len(out) < at and k < len(smalls):
            out.append(smalls[k])
            k += 1
        out.append(it)
    out += smalls[k:]
    return out


def encoded_size(size: int) -> int:
    """Bytes of a base64 ``data`` string for an item of ``size`` (plus stream overhead)."""
    return (size + 1024) * 4 // 3 + 256


class DeltaRound:
    """One change per item in a delta round, page by page: a round may return the same item
    twice (seen in production). An item is handed on once, at its first row (the export
    reads its last version anyway); a removal row notes it in ``removed`` and forgets it, so
    an item removed and then seen again is handed on again. ``removed`` may be the folder
    job's own set (the rows that left it)."""

    __slots__ = ("removed", "seen")

    def __init__(self, removed: set[str] | None = None) -> None:
        self.seen: set[str] = set()
        self.removed: set[str] = removed if removed is not None else set()

    @staticmethod
    def end_state(rows: Iterable[Item | Removed]) -> list[Item | Removed]:
        """A whole round read before anything is decided (``plan``): one row per item, its
        last (its state at the end of the round: the contract applies rows by id), in the
        position of its first. The run streams rows instead (``page``) and reads the last
        version when it exports."""
        last: dict[str, Item | Removed] = {}
        for r in rows:
            last[r.id] = r
        return list(last.values())

    def page(self, rows: Iterable[Item | Removed]) -> list[Item]:
        """The items of ``rows`` not handed on before in this round."""
        seen, removed = self.seen, self.removed
        out: list[Item] = []
        for row in rows:
            if isinstance(row, Removed):
                removed.add(row.id)
                seen.discard(row.id)
            elif row.id not in seen:
                seen.add(row.id)
                removed.discard(row.id)
                out.append(row)
        return out
