"""A folder's items as read for a decision: a source folder's selected items (the pair's item
filter applied, what it leaves out counted by reason), and a target folder's items by search
key (the folder tree itself is mirrored by ``passes.MailboxPass``)."""

from __future__ import annotations

from collections import Counter

from ..config import Pair
from ..graph import Item, MailboxApi
from ..plan import TargetIndex, filter_item


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
