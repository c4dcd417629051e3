"""The durable record of a job: records, the Store protocol, the SQLite store."""

from .base import Store
from .records import (
    SETTLED,
    FolderRecord,
    Intent,
    ItemRecord,
    LostCopy,
    Outcome,
    Status,
    SyncRecord,
)
from .sqlite import SQLiteStore

__all__ = [
    "SETTLED",
    "FolderRecord",
    "Intent",
    "ItemRecord",
    "LostCopy",
    "Outcome",
    "SQLiteStore",
    "Status",
    "Store",
    "SyncRecord",
]
