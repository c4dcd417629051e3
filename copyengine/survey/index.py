"""A folder's items as read for a decision: a source folder's selected items (the pair's item
filter applied, what it leaves out counted by reason), and a target folder's items by search
key (the folder tree itself is mirrored by ``passes.MailboxPass``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..config import Pair
from ..graph import Item, MailboxApi, gone
from ..plan import TargetIndex, filter_item

T = TypeVar("T")
# listings of a folder that answers 404 while the folder itself is found (a transient 404)
LISTING_TRIES = gone.TRIES


async def listed_items(
    client: MailboxApi,
    mailbox_id: str,
    folder_id: str,
    pair: Pair | None = None,
    skipped: Counter[str] | None = None,
) -> list[Item]:
    """A folder's items with their search keys; with ``pair``, only those its item filter
    selects (the others counted in ``skipped`` by reason)."""
    out: list[Item] = []
    async for page in client.list_items(mailbox_id, folder_id, with_keys=True):
        for it in page:
            why = filter_item(it, pair.items) if pair is not None else None
            if why is None:
                out.append(it)
            elif skipped is not None:
                skipped[why.value] += 1
    return out


async def target_index(
    dst: MailboxApi, dst_id: str, folder_id: str, exclude: frozenset[str] = frozenset()
) -> TargetIndex:
    """The target folder's items by search key (``exclude``: ids already accounted for)."""
    items: list[Item] = []
    select = ("id", "size", "changeKey")
    async for page in dst.list_items(dst_id, folder_id, with_keys=True, select=select):
        items.extend(page)
    return TargetIndex.of(items, exclude)


async def unless_gone(
    client: MailboxApi,
    mailbox_id: str,
    folder_id: str,
    read: Callable[[], Awaitable[T]],
    tries: int = LISTING_TRIES,
) -> T | None:
    """``read()``, a listing of folder ``folder_id``; None when the folder is gone: the
    listing answered 404 and so did the folder itself (one ``getFolder``, as a pass confirms
    a source folder gone, ``produce.Producer._round``). A 404 from a folder that is still
    found is a transient one: the listing is read again (``tries`` in all), then a
    ``ServiceError`` is raised, never the 404 itself: every caller reads ``NotFound`` as the
    folder gone (a folder about to be deleted whole, ``MailboxPass._held``, was deleted
    unread with the copies of live items in it). Never one 404 taken for a folder gone: a
    target folder taken for gone has its items copied again (second copies) and its link
    cleared."""
    return await gone.unless_gone(client.get_folder, mailbox_id, folder_id, read, tries)
