"""Typed values the Graph client returns (contract §3)."""

from __future__ import annotations

import base64
import sys
from dataclasses import dataclass
from typing import Any

from ..folderpath import display

PROP_SEARCH_KEY = "Binary 0x300B"
PROP_MESSAGE_ID = "String 0x1035"
EXPAND_KEYS = (
    f"singleValueExtendedProperties($filter=id eq '{PROP_SEARCH_KEY}' or id eq '{PROP_MESSAGE_ID}')"
)


def _shared(s: Any) -> Any:
    """One string object for a value that a listing repeats on every row (a folder's class,
    an item's type): each row parsed from JSON has its own copy, and a thousand pairs hold
    tens of thousands of them. Anything but a string is returned as it is."""
    return sys.intern(s) if type(s) is str else s


@dataclass(frozen=True, slots=True)
class MailboxRef:
    upn: str
    primary_id: str
    archive_id: str | None = None


@dataclass(frozen=True, slots=True)
class Folder:
    id: str
    name: str
    parent_id: str | None
    type: str
    well_known: str | None
    child_count: int
    # ``totalItemCount``; None: the service did not say (never taken for empty)
    item_count: int | None
    hidden: bool = False

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Folder:
        return cls(
            id=d["id"],
            name=d.get("displayName", ""),
            parent_id=d.get("parentFolderId"),
            type=_shared(d.get("type") or ""),
            well_known=_shared(d.get("wellKnownName")),
            child_count=int(d.get("childFolderCount") or 0),
            item_count=None if d.get("totalItemCount") is None else int(d["totalItemCount"]),
            hidden=bool(d.get("isHidden", False)),
        )


@dataclass(frozen=True, slots=True)
class FolderNode:
    """A folder with its chain of names from the mailbox root (``("Inbox", "a/b")``) and
    that chain's display path (``/Inbox/a\\/b``: ``/`` in a name is escaped; see
    ``copyengine.folderpath``)."""

    folder: Folder
    names: tuple[str, ...]
    depth: int

    @property
    def path(self) -> str:
        return display(self.names)


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    change_key: str
    type: str
    size: int
    created: str
    modified: str
    categories: tuple[str, ...]
    search_key: bytes | None = None
    message_id: str | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Item:
        sk = mid = None
        for p in d.get("singleValueExtendedProperties") or ():
            pid = str(p.get("id", "")).lower()
            if pid == PROP_SEARCH_KEY.lower() and p.get("value"):
                sk = base64.b64decode(p["value"])
            elif pid == PROP_MESSAGE_ID.lower():
                mid = p.get("value")
        return cls(
            id=d["id"],
            change_key=d.get("changeKey", ""),
            type=_shared(d.get("type", "")),
            size=int(d.get("size") or 0),
            created=d.get("createdDateTime", ""),
            modified=d.get("lastModifiedDateTime", ""),
            categories=tuple(d.get("categories") or ()),
            search_key=sk,
            message_id=mid,
        )


@dataclass(frozen=True, slots=True)
class Removed:
    """A delta entry for an item or folder that is gone."""

    id: str
    reason: str


@dataclass(frozen=True, slots=True)
class DeltaPage:
    items: list[Any]  # Item | Folder | Removed
    next_link: str | None
    delta_link: str | None


@dataclass(frozen=True, slots=True)
class Exported:
    """One exportItems result: ``data`` (opaque, passed to import untouched) or an error."""

    item_id: str
    change_key: str | None
    data: Any  # msgspec.Raw: the JSON string token, opaque, passed to import untouched
    error_code: str | None = None
    error_message: str | None = None
    # the mailbox it was exported from when not the one asked: an auto-expanding archive's
    # auxiliary mailbox, after an ErrorArchiveFolderMovedPermanently redirect
    mailbox_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.data is not None


@dataclass(frozen=True, slots=True)
class ImportSession:
    url: str
    expires: float  # epoch seconds
    mailbox_id: str

    def __repr__(self) -> str:  # the URL carries a token
        return f"ImportSession(mailbox={self.mailbox_id!r}, expires={self.expires})"


@dataclass(frozen=True, slots=True)
class Imported:
    item_id: str
    change_key: str
