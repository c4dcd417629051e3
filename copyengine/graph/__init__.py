"""The Graph mailbox client (the engine's one seam to the service)."""

from .client import GraphClient
from .models import (
    DeltaPage,
    Exported,
    Folder,
    FolderNode,
    Imported,
    ImportSession,
    Item,
    MailboxRef,
    Removed,
)
from .sessions import ImportSessionPool
from .transport import Timeouts, Transport

__all__ = [
    "DeltaPage",
    "Exported",
    "Folder",
    "FolderNode",
    "GraphClient",
    "ImportSession",
    "ImportSessionPool",
    "Imported",
    "Item",
    "MailboxRef",
    "Removed",
    "Timeouts",
    "Transport",
]
