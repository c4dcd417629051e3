"""Pure decisions of a later pass: what a delta row means given the item's state record, what
becomes of an item that left the source, how the source's folder tree changed against the
mapping the state remembers, and the fingerprint that says whether stored links still fit
the job's rules."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from ..config import Pair
from ..folderpath import split
from ..graph.models import Item
from ..state.records import SETTLED, FolderRecord, ItemRecord, Status
from .folders import TargetRef


class Change(Enum):
    CREATE = "create"  # not in the state: import (create mode) into the mapped folder
    UPDATE = "update"  # changed since its copy: import in update mode onto the target item
    SETTLE = "settle"  # an earlier import's outcome is not known: look in the target first
    UNCHANGED = "unchanged"  # the copy recorded is of this version


def classify_row(item: Item, record: ItemRecord | None) -> Change:
    """What a delta row (an item added or changed at the source) asks of the target.

    A record with a target item is updated onto that item when the source's change key
    differs, or when the last update's outcome was never recorded (an update is safe to
    repeat: it lands on the same target item). A record without a target item is a create
    whose outcome is unknown: settled by search key before anything is resent."""
    if record is None:
        return Change.CREATE
    if record.status in SETTLED and record.change_key == item.change_key and record.target_id:
        return Change.UNCHANGED
    if record.target_id:
        return Change.UPDATE
    if record.status is Status.REMOVED:
        return Change.CREATE
    return Change.SETTLE


class Fate(Enum):
    MOVED = "moved"  # another live source item has its search key and a copy: drop the old one
    DELETE = "delete"  # deletions = "mirror": soft-delete the target's copy
    KEEP = "keep"  # deletions = "keep": the copy stays, recorded as deleted at the source
    DEFER = "defer"  # its key's new copy is not settled yet: decide next pass


def removal_fate(record: ItemRecord, others: Iterable[ItemRecord], deletions: str) -> Fate:
    """What becomes of the target's copy of an item that left its source folder.

    ``others``: the state's records of the other source items with the same search key that
    are still at the source (not recorded as removed, not departing in this pass), whatever
    pass recorded them. A departure is a move when one of them holds a settled copy (the old
    copy goes, under either policy); while the new copy's import is unsettled the old one is
    kept and the decision waits (never drop the only copy). Only a departure with no other
    item of its key is a deletion. Decided from the state, not from this pass's memory, so a
    move is seen whichever pass saw its two halves (a move made while a pass ran, a pass
    killed between importing the new copy and removing the old one)."""
    live = [o for o in others if o.source_id != record.source_id]
    if any(o.status in SETTLED and o.target_id for o in live):
        return Fate.MOVED
    if live:
        return Fate.DEFER
    return Fate.DELETE if deletions == "mirror" else Fate.KEEP


def unexplained(departing: Iterable[ItemRecord], known: Iterable[ItemRecord]) -> list[ItemRecord]:
    """Of the records of items that left their folder this pass (each with a copy), those
    that ``removal_fate`` would take for deletions now: no other record of their search key
    (``known``: the state's records of those keys) that is not itself leaving or removed.
    Any other such record makes the departure a move (or puts it off)."""
    departing = list(departing)
    leaving = {r.source_id for r in departing}
    live = {
        r.search_key
        for r in known
        if r.search_key and r.source_id not in leaving and r.status is not Status.REMOVED
    }
    return [r for r in departing if r.target_id and r.search_key and r.search_key not in live]


def known_at(record: ItemRecord, began: Mapping[str, int]) -> int | None:
    """A moment at or after which ``record``'s item was still at the source (None: not
    known): a kept copy's ``ItemRecord.known``; any other record's, the moment the round of
    its folder's stored link began (``began``, by source folder: ``link_began``), for that
    round did not tell it gone (an item listed after it was there when listed, later)."""
    if record.status is Status.REMOVED:
        return record.known
    return began.get(record.folder_id)


def apart(a: ItemRecord, b: ItemRecord, began: Mapping[str, int]) -> bool:
    """Whether two records of one search key are proven two items, not one item that moved
    (review R1b: a user's copy of a message keeps its key). A move ends the old id before the
    new one is listed, so two ids each at the source after the other was first listed
    (``ItemRecord.seen``, an upper bound of a moment it was there; ``known_at``) coexisted:
    neither is the other moved. Without that evidence (records or links written before it
    was kept, ``delta = false``) they may be one item: decided by search key, as before."""
    ka, kb = known_at(a, began), known_at(b, began)
    if a.seen is None or b.seen is None or ka is None or kb is None:
        return False
    return a.seen < kb and b.seen < ka


def second_copies(
    departing: Iterable[ItemRecord],
    live: Iterable[bytes],
    distinct: Callable[[ItemRecord, ItemRecord], bool] | None = None,
) -> dict[str, ItemRecord]:
    """Departures of one search key none of whose other records is live: one item that left
    its folder more than once before the pass applied it (moved, then moved again or
    deleted; a pass that reads a folder again sees both). One copy stands for the item (the
    first settled one): the others are second copies, removed as moves are. Returns, per
    source id of a second copy, the record of the copy that stays (``removal_fate`` then
    says MOVED for it; the one that stays is deleted or kept by the policy). A departure
    ``distinct`` (under ``keep``: ``apart``) from the one that stays is another item, no
    second copy (review R1b: an item and a user's copy of it, deleted together)."""
    live_keys = set(live)
    groups: dict[bytes, list[ItemRecord]] = {}
    for r in departing:
        if r.search_key and r.target_id and r.search_key not in live_keys:
            groups.setdefault(r.search_key, []).append(r)
    out: dict[str, ItemRecord] = {}
    for group in groups.values():
        stays = next((r for r in group if r.status in SETTLED), None)
        if stays is None:
            continue
        for r in group:
            if r.source_id != stays.source_id and not (distinct and distinct(r, stays)):
                out[r.source_id] = stays
    return out


def to_reread(seen: Iterable[int], rounds: Iterable[tuple[str, int, bool]]) -> list[str]:
    """The folders whose round is read once more before a pass applies its deletions.

    ``seen``: when each departure that looks like a deletion was first seen (a tick of the
    one order of rounds, ``enumerate.TICKS``); ``rounds``: per folder (source id, when its
    last round began, whether it can be read again from the link that closed it). A single
    round of one folder cannot tell a move from a deletion: an item moved during the pass
    into a folder whose round began before the departure was seen may have arrived unseen
    (a new id there, the same search key). Such a folder is read once more (one delta
    request when nothing changed), so the arrival is copied and the departure becomes a
    move of that copy. A folder whose round began after the departure was seen saw an
    arrival made before it (``reread`` takes every folder for the first reading again: an
    item may move on again after its departure was seen); one that cannot be read again is
    not."""
    last = max(seen, default=0)
    return [sid for sid, began, again in rounds if again and began < last]


@dataclass(frozen=True, slots=True)
class RoundEnd:
    """How one folder's round of this pass ended, as the link decision needs it."""

    source_id: str
    next_link: str | None  # the link that closes the round, when it was read to its end
    complete: bool  # every page was read
    expired: bool  # the stored link was refused (the folder was listed in full)
    settled: bool  # nothing unknown, nothing left unsent, no change put off


def links_to_store(rounds: Iterable[RoundEnd]) -> list[tuple[str, str | None]]:
    """The item delta links a pass stores: a round's closing link only once every change it
    brought is settled (else the next pass reads the same changes again from the old link);
    an expired link is cleared when no new one can be stored (the next pass lists in full)."""
    out: list[tuple[str, str | None]] = []
    for r in rounds:
        if r.next_link and r.complete and r.settled:
            out.append((r.source_id, r.next_link))
        elif r.expired:
            out.append((r.source_id, None))
    return out


# placements whose target folder is the one the state maps (its copies are all in it)
KEEPS_COPY = ("same", "renamed")


@dataclass(frozen=True, slots=True)
class FolderStart:
    """How a selected folder starts this pass: how its items are read, and which folder
    change of the report it counts as."""

    mode: str  # "delta": only what changed since ``link``; "full": every item, reconciled
    link: str | None = None
    change: str | None = None  # "renamed", "moved" or "created" (counted), or none
    kept: bool = False  # its target folder is the mapped one (not one made or found now)
    remade: bool = False  # its copy was deleted in the target: made again (a note says so)


def folder_start(
    placed: str, record: FolderRecord | None, incremental: bool, mapped_before: bool
) -> FolderStart:
    """A folder placed as ``placed`` (``plan.Placed.kind``) with its state ``record``. Its
    copy kept (same, renamed): read through the record's link when the pass is incremental,
    else listed in full. Any other placement is listed in full (its items are not all in its
    new copy); a folder is counted as created only when the pair had a mapping before (a
    first pass creates everything: nothing to report)."""
    if placed in KEEPS_COPY and record is not None:
        link = record.delta_link if incremental else None
        change = "renamed" if placed == "renamed" else None
        return FolderStart("delta" if link else "full", link, change, kept=True)
    if placed == "moved":
        return FolderStart("full", change="moved")
    if placed == "remade":
        return FolderStart("full", remade=True)
    return FolderStart("full", change="created" if mapped_before else None)


class Listing(Enum):
    DELTA = "delta"  # through the folder's stored link: only what changed
    FULL = "full"  # every item, reconciled by search key; what left the folder is noted
    RETRY = "retry"  # every item listed, only those whose last outcome was unsettled taken
    SKIP = "skip"  # nothing to do in it this pass


def folder_listing(retry_only: bool, mode: str, retriable: bool) -> Listing:
    """What the producer does with a folder this pass: ``run --retry-failed`` lists only the
    folders holding an item to take again (``retriable``); otherwise the folder's mode says
    (a delta round refused as expired is listed in full after it, by the producer)."""
    if retry_only:
        return Listing.RETRY if retriable else Listing.SKIP
    return Listing.DELTA if mode == "delta" else Listing.FULL


class Settled(Enum):
    FOUND = "found"  # the import landed: its copy is recorded, nothing is sent
    RESEND = "resend"  # not in the target (or an update, which is safe to repeat): send again
    FAILED = "failed"  # not in the target after the last round: reported failed


def settle_verdict(update: bool, found: str | None, last_round: bool) -> Settled:
    """An item whose import's outcome is unknown (or failed transiently), after its target
    folder was listed. A copy found by search key settles a create; it says nothing of an
    update (the copy was there before), which is simply sent again."""
    if found is not None and not update:
        return Settled.FOUND
    return Settled.FAILED if last_round else Settled.RESEND


def fingerprint(pair: Pair) -> str:
    """A digest of what decides which source items a pair selects and where they go: stored
    links are valid only under the rules that made them (a link made under a narrower rule
    never brings back what that rule excluded)."""
    f, i = pair.folders, pair.items
    rules = {
        "include": [r.pattern for r in f.include],
        "exclude": [r.pattern for r in f.exclude],
        "rename": [[r.pattern.pattern, r.to] for r in f.rename],
        "target_root": f.target_root,
        "map_well_known": f.map_well_known,
        "classes": list(f.classes),
        "skip_hidden": f.skip_hidden,
        "created_after": i.created_after.isoformat() if i.created_after else None,
        "created_before": i.created_before.isoformat() if i.created_before else None,
        "types": list(i.types),
        "max_size": i.max_size,
    }
    text = json.dumps(rules, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def parse_target_path(path: str) -> TargetRef:
    """The inverse of ``TargetRef.path``: ``<inbox>/a/b`` -> anchor inbox, parts (a, b)."""
    anchor = None
    rest = path
    if path.startswith("<") and ">" in path:
        anchor, rest = path[1 : path.index(">")], path[path.index(">") + 1 :]
    return TargetRef(anchor, split(rest) if rest else ())
