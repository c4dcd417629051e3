"""The durable record of a job: records, the Store protocol, the SQLite store."""

from .base import Store
from .records import SETTLED, FolderRecord, Intent, ItemRecord, Outcome, Status, SyncRecord
from .sqlite import SQLiteStore

__all__ = [
    "SETTLED",
    "FolderRecord",
    "Intent",
    "ItemRecord",
    "Outcome",
    "SQLiteStore",
    "Status",
    "Store",
    "SyncRecord",
]
