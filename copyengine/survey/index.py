"""A folder's items as read for a decision: a source folder's selected items (the pair's item
filter applied, what it leaves out counted by reason), and a target folder's items by search
key (the folder tree itself is mirrored by ``passes.MailboxPass``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ..config import Pair
from ..errors import Fatal, NotFound, ServiceError
from ..graph import Item, MailboxApi, gone
from ..plan import TargetIndex, filter_item
from ..state.records import MAKING, RETIRED, ItemRecord

T = TypeVar("T")
# listings of a folder that answers 404 while the folder itself is found (a transient 404)
LISTING_TRIES = gone.TRIES
# kept copies whose own source item one call asks for (``still_at_source``), at most: a
# pass's second copies (``spares.remove_second_copies``), each sweep of an old target folder
# (``passes._sweep_old``: a pass may sweep several). A candidate beyond them is unsure, as a
# failed read: the pass keeps the copy. Not bounded: ``passes._drop_kept_moves``, which asks
# for every kept copy beside a live one's, every pass (``Store.kept_beside_live``), after the
# second copies (their "there" not asked again); nor the sign-off, which asks about every
# one for a time (``verify.check.KEPT_ASK_S``), saying those it could not "not checked"
MAX_ASKED = 500


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


async def still_at_source(src: MailboxApi, mailbox_id: str, r: ItemRecord, log: Any) -> bool | None:
    """Whether the source item a kept copy was recorded for (``r``) is there still, under its
    id (one ``getItem``; ids change on a move, so a moved, deleted or restored item is not):
    then another item of its search key is a user's copy of it (review R1), and the kept copy
    is its own item's, no second copy of that one. None when the read failed (logged
    ``item.kept_copy_unsure``): each caller says what that means (a pass keeps the copy, the
    sign-off says it not checked: ``verify.check._kept_own``). A record of no source
    folder's (an old folder's) has no item to ask for: gone, and no request."""
    if r.folder_id.startswith((RETIRED, MAKING)):
        return False
    try:
        await src.get_item(mailbox_id, r.folder_id, r.source_id)
    except NotFound:
        return False
    except Fatal:
        raise
    except ServiceError as exc:
        log.info("item.kept_copy_unsure", item=r.source_id, error=exc.message)
        return None
    return True


def moved_left_out(
    r: ItemRecord, left_out: Mapping[bytes, list[tuple[str, str]]]
) -> tuple[str, str] | None:
    """Where the item a kept copy was recorded for (``r``) may live on when its id is gone
    (``still_at_source`` said so): an item of its search key the item filters leave out,
    met by this pass's listings of the selected folders under an id no record of its folder
    names (``Ledger.left_out``: source id, source folder id). A move at the source gives the
    item a new id; still left out, it is listed but never copied, so no arrival tells it:
    its kept copy would be taken for a move's first half beside the copy of a user's copy of
    it and removed (review R1). No request: the listings were read anyway."""
    if r.search_key is None:
        return None
    found = [one for one in left_out.get(r.search_key, ()) if one[0] != r.source_id]
    return found[0] if found else None
