"""Target folders indexed by search key (the folder tree itself is mirrored by
``passes.MailboxPass``)."""

from __future__ import annotations

from ..graph import Item, MailboxApi
from ..plan import TargetIndex


async def target_index(
    dst: MailboxApi, dst_id: str, folder_id: str, exclude: frozenset[str] = frozenset()
) -> TargetIndex:
    """The target folder's items by search key (``exclude``: ids already accounted for)."""
    items: list[Item] = []
    select = ("id", "size", "changeKey")
    async for page in dst.list_items(dst_id, folder_id, with_keys=True, select=select):
        items.extend(page)
    return TargetIndex.of(items, exclude)
