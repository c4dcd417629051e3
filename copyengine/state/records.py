"""What the state store records: per item an intent before its import and an outcome after,
per folder its mapping and delta link. Plain values, shared by every Store implementation."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

RETIRED = "retired:"  # the id prefix of a folder record of an old target folder
# the id prefix of a folder record of a target folder about to be made (``passes``): its
# parent (``target_folder_id``, "" for the root) and name (``target_path``'s last part),
# written before the creation and forgotten once the folder's mapping is recorded
MAKING = "making:"


class Status(IntEnum):
    INTENT = 1  # import about to be sent (or sent, outcome not recorded)
    DONE = 2  # copied by us
    ADOPTED = 3  # found already present in the target (matched by search key)
    FAILED = 4
    # 5 was SKIPPED, never written: filtered items are not recorded
    UNKNOWN = 6  # import outcome unknown at run time: to be settled
    PENDING = 7  # intent recorded, but the run stopped before the import was sent
    REMOVED = 8  # deleted at the source after it was copied; the target's copy kept


SETTLED = (Status.DONE, Status.ADOPTED)


@dataclass(frozen=True, slots=True)
class Intent:
    source_id: str
    folder_id: str
    search_key: bytes | None
    size: int
    target_folder_id: str
    change_key: str | None = None  # the source item's change key when it was exported
    seen: int | None = None  # when a listing first returned the item (``moments``)


@dataclass(frozen=True, slots=True)
class LostCopy:
    """A copy the state no longer names (``Store.note_lost_copies``): its item's search key,
    its target id, the target folder it was recorded in, and its source item."""

    search_key: bytes
    target_id: str
    target_folder_id: str | None
    source_id: str


@dataclass(frozen=True, slots=True)
class Outcome:
    source_id: str
    status: Status
    target_id: str | None = None
    target_change_key: str | None = None
    error: str | None = None
    request_id: str | None = None
    # REMOVED: when its item was last known at the source (``ItemRecord.known``)
    known: int | None = None


@dataclass(frozen=True, slots=True)
class ItemRecord:
    source_id: str
    folder_id: str
    status: Status
    search_key: bytes | None
    target_folder_id: str | None
    target_id: str | None
    change_key: str | None = None  # the source change key of the copy recorded
    target_change_key: str | None = None
    size: int = 0
    error: str | None = None  # the last failure's reason
    # Evidence that two records of one search key are two items, not one moved (review R1b,
    # ``plan.apart``), in moments (``moments.moment``): when a listing first returned the
    # item (an upper bound of a moment it was at the source), and, for a copy kept as
    # deleted at the source (REMOVED), a moment at or before which its item was still
    # there (its folder's ``FolderRecord.link_began`` as it left). None: no evidence (a
    # record written before schema 9 / 8 on PostgreSQL): decided by search key, as before.
    seen: int | None = None
    known: int | None = None


@dataclass(frozen=True, slots=True)
class FolderRecord:
    """A source folder of a pair, where it went, and its item delta link (stored only once
    the round it closes is settled)."""

    source_folder_id: str
    source_path: str
    target_folder_id: str
    target_path: str
    delta_link: str | None = None
    scope: str = "primary"  # the pair's primary mailbox or its archive
    # when the round that closed with ``delta_link`` began, or (``delta = false``) the
    # folder's last full listing, its departures applied (``moments.moment``): every item
    # recorded in the folder and not told gone by that round was at the source at some
    # moment after it; kept when the link is cleared (the folder moved in the target,
    # refused), as that stays true until the next round (None: none stored yet, or only
    # before schema 9 / 8 on PostgreSQL)
    link_began: int | None = None

    @property
    def retired(self) -> bool:
        """A record of an old target folder kept for its copies (``plan.retired_id``), not
        a source folder's."""
        return self.source_folder_id.startswith(RETIRED)

    @property
    def making(self) -> bool:
        """A record of a target folder about to be made (``MAKING``), not a source folder's."""
        return self.source_folder_id.startswith(MAKING)


@dataclass(frozen=True, slots=True)
class SyncRecord:
    """Per pair and mailbox (primary or archive): the folder delta link, and the fingerprint
    of the folder rules and item filters the links were made under (a change of those makes
    a new baseline)."""

    folder_link: str | None
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Control:
    """One operator's command on the job's controls (``copyengine suspend`` / ``resume``):
    ``scope`` "pair" (``target`` a pair key), "wave" (a wave label) or "all" (``target``
    ""); ``state`` "suspended" or "resumed"; who gave it, when (epoch seconds), why, and
    its order among the commands (``seq``: the latest command naming a pair decides)."""

    scope: str
    target: str
    state: str
    who: str
    since: float
    reason: str | None
    seq: int
