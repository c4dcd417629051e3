"""How a source folder's items are enumerated.

``DeltaListing`` reads a folder through item delta: from the folder's stored link (only what
changed since the last pass) or, without one, a first round that lists every item and ends
with the link the next pass starts from. ``FullListing`` lists every item and makes no link
(``[sync] delta = false``). Both hand on pages of items with their search keys; removals are
noted on the folder's job; rows are collapsed by id (a round may repeat an item:
``plan.DeltaRound``)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from ..errors import DeltaExpired
from ..graph import Item, MailboxApi
from ..plan import DeltaRound
from .work import FolderJob, Listed

PAGE = 250
FRESH_RESTARTS = 2  # a round from nothing refused midway (410) is read from nothing again
# one order for every round's start and end in the process: which rounds began before a
# departure was seen (``FolderJob.round_started``, ``reread``)
TICKS = itertools.count(1)
# R1b's clock (``Store.moment``): the store's, so that the moments of a pass's segments on
# several hosts compare as the events did, not as the hosts' clocks say
Moments = Callable[[], Awaitable[int]]


async def seen(job: FolderJob, page: list[Item], moment: Moments) -> None:
    """When a listing first returned each item of ``page`` (it was at the source then or
    before): a moment taken after its page was read, kept with the item's record
    (``Intent.seen``)."""
    now = await moment()
    for it in page:
        job.seen_at.setdefault(it.id, now)


class Enumerator(Protocol):
    def items(self, job: FolderJob) -> AsyncIterator[list[Item]]:
        """The folder's items (all, or what changed), page by page, with their search keys.
        Sets ``job.complete`` when it ran to the end."""
        ...


class FullListing:
    def __init__(self, api: MailboxApi, mailbox_id: str, moment: Moments) -> None:
        self.api = api
        self.mailbox_id = mailbox_id
        self.moment = moment

    async def items(self, job: FolderJob) -> AsyncIterator[list[Item]]:
        job.round_started = next(TICKS)
        job.began_at = await self.moment()  # before its first request
        listed: list[int] = []
        async for page in self.api.list_items(
            self.mailbox_id, job.source_id, with_keys=True, page_size=PAGE
        ):
            listed.extend(hash(it.id) for it in page)
            await seen(job, page, self.moment)
            yield page
        job.listed = Listed(listed)  # what a listing again compares with (``reread.Relisting``)
        job.complete = True
        job.round_ended = next(TICKS)


class DeltaListing:
    def __init__(self, api: MailboxApi, mailbox_id: str, moment: Moments) -> None:
        self.api = api
        self.mailbox_id = mailbox_id
        self.moment = moment

    async def items(self, job: FolderJob) -> AsyncIterator[list[Item]]:
        """A stored link the service no longer knows (410) sets ``job.expired`` and ends the
        round: the caller lists the folder in full instead. Rows of one round are applied
        once per id: an item seen again in a later page replaces nothing already handed on
        (its last version is what the export reads anyway)."""
        link = job.link if job.mode == "delta" else None
        rows = DeltaRound(job.removed_ids)
        job.round_started = next(TICKS)
        job.began_at = await self.moment()  # before its first request
        for attempt in range(FRESH_RESTARTS + 1):
            try:
                async for page in self.api.item_delta(
                    self.mailbox_id, job.source_id, link, PAGE, with_keys=True
                ):
                    out = rows.page(page.items)
                    if out:
                        await seen(job, out, self.moment)
                        yield out
                    if page.delta_link:
                        job.next_link = page.delta_link
                break
            except DeltaExpired:
                if link is not None:
                    job.expired = True
                    return
                if attempt == FRESH_RESTARTS:
                    raise
                # a round from nothing whose next page the service refused (410): read
                # from nothing again (what was handed on is not handed on twice); the
                # folder's new link is not stored (``deferred``): an item handed on and gone
                # before the new round began would be told by no later round from it; the
                # next pass reads the folder from the link stored before (a --full pass) or
                # from nothing, its departures told since that link or from the records
                job.deferred = True
                job.next_link = None
        if link is None:  # a round from nothing lists every item: what ``reread`` counts
            job.counted = len(rows.seen)
        job.complete = True
        job.round_ended = next(TICKS)
