"""Pure: what becomes of a group after one of its segments. A segment ends when its pairs are
done, when its time box is up or its worker drains (the group continues in another segment,
under the same lock), when it fails, when it crashes, or when the database stayed away past
the limit (the worker leaves; a reaper queues the group again once the database is back)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ..state.groups import COUNTED_FROM_RECORDS


class Next(StrEnum):
    """The group's state after the segment (LEAVE: nothing recorded, the worker leaves)."""

    DONE = "done"
    QUEUED = "queued"
    FAILED = "failed"
    LEAVE = "leave"
    # a pair of the group ended suspended (``copyengine suspend``), none failed: the group
    # is released, not queued again; ``copyengine resume`` queues it
    SUSPENDED = "suspended"
    # held by the schedule, start_after or complete_after: queued again for ``Outcome.at``
    WAITING = "waiting"


@dataclass(frozen=True)
class PairEnd:
    source: str
    failed: bool
    error: str | None = None
    suspended: bool = False
    # held by a control that lifts by itself (``Hold.until``): why, and when it lifts
    hold: str | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class SegmentEnd:
    """How a segment ended. ``crashed``: the exception that ended it (``store_fault``: the
    store's or the job queue's, worth another segment); ``fatal``: the job's fatal error."""

    number: int
    store_gone: bool = False
    crashed: str | None = None
    store_fault: bool = False
    fatal: str | None = None
    draining: bool = False
    pairs: tuple[PairEnd, ...] = ()


@dataclass(frozen=True)
class Outcome:
    next: Next
    error: str | None = None
    at: datetime | None = None  # WAITING: when its next segment may start

    @property
    def continues(self) -> bool:
        """Its continuation is queued under the group's lock."""
        return self.next is Next.QUEUED

    @property
    def ends(self) -> bool:
        """The group is finished for this pass (the pass may be over)."""
        return self.next in (Next.DONE, Next.FAILED)


def segment_outcome(end: SegmentEnd) -> Outcome:
    if end.store_gone:
        return Outcome(Next.LEAVE)
    if end.crashed is not None:
        why = f"segment {end.number} crashed: {end.crashed}"
        return Outcome(Next.QUEUED if end.store_fault else Next.FAILED, why)
    error = end.fatal or "; ".join(f"{p.source}: {p.error}" for p in end.pairs if p.error)
    if end.fatal is None and end.draining:
        nxt = Next.QUEUED
    elif end.fatal is not None or any(p.failed for p in end.pairs):
        nxt = Next.FAILED
    elif (waits := waiting(end.pairs)) is not None:
        return waits  # a suspended pair beside it is held again in the next segment
    elif any(p.suspended for p in end.pairs):
        nxt = Next.SUSPENDED
    else:
        nxt = Next.DONE
    return Outcome(nxt, error or None)


def said(changes: Mapping[str, int]) -> dict[str, int]:
    """What a segment says for the group's counters: what the item records cannot tell
    (moves, deletions, folders); the rest is counted from the records."""
    return {k: v for k, v in changes.items() if k not in COUNTED_FROM_RECORDS and v}


def waiting(pairs: tuple[PairEnd, ...]) -> Outcome | None:
    """Pairs held by the clock: the group waits for the first of them to lift (it says why
    each waits); None when no pair is held so."""
    held = [(p.until, p.hold or "") for p in pairs if p.until is not None]
    if not held:
        return None
    why = "; ".join(dict.fromkeys(h for _, h in held))
    return Outcome(Next.WAITING, why, min(u for u, _ in held))
