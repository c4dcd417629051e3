"""The Graph mailbox client (the engine's one seam to the service).

The records (``models``) and the protocol (``api``) load light; the client, its transport
(aiohttp) and the session pool load when first named, so that what needs only the records
(``plan``, ``state``, the report) does not load the HTTP stack."""

from typing import TYPE_CHECKING, Any

from .api import Clients, MailboxApi
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

if TYPE_CHECKING:
    from .client import GraphClient
    from .sessions import ImportSessionPool
    from .transport import Health, Timeouts, Transport

_LAZY = {
    "GraphClient": "client",
    "ImportSessionPool": "sessions",
    "Health": "transport",
    "Timeouts": "transport",
    "Transport": "transport",
}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{where}", __name__), name)
    globals()[name] = value
    return value


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
