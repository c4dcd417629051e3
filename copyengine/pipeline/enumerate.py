"""How a source folder's items are enumerated. ``FullListing`` lists every item (the first
pass, and any folder without a usable delta link); a delta enumerator will sit beside it
behind the same interface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from ..graph import Item, MailboxApi
from .work import FolderJob


class Enumerator(Protocol):
    def items(self, job: FolderJob) -> AsyncIterator[list[Item]]:
        """The folder's items, page by page, with their search keys."""
        ...


class FullListing:
    def __init__(self, api: MailboxApi, mailbox_id: str) -> None:
        self.api = api
        self.mailbox_id = mailbox_id

    def items(self, job: FolderJob) -> AsyncIterator[list[Item]]:
        return self.api.list_items(self.mailbox_id, job.source_id, with_keys=True)
