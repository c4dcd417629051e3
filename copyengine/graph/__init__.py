"""The Graph mailbox client (the engine's one seam to the service)."""

from .api import Clients, MailboxApi
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
from .transport import Health, Timeouts, Transport

__all__ = [
    "Clients",
    "DeltaPage",
    "Exported",
    "Folder",
    "FolderNode",
    "GraphClient",
    "Health",
    "ImportSession",
    "ImportSessionPool",
    "Imported",
    "Item",
    "MailboxApi",
    "MailboxRef",
    "Removed",
    "Timeouts",
    "Transport",
]
