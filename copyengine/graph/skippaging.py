"""A collection paged by ``$skip``, read without losing an item to a shift.

``listItems`` pages by position (contract §2: list calls take ``$top`` and ``$skip``; the
emulator's ``@odata.nextLink`` is the same query with ``$skip`` advanced by the page). An
item that leaves a page already read (deleted, moved out) while the folder is being listed
shifts every later item one place back: the next page, asked from where the last ended,
starts one item late, and the item that was at its edge is never listed (lost at a
cutover if it was new). One that arrives before the next unread item (a listing returned
newest-first) shifts the rest forward: the last item read is listed again.

So every page after the first is asked from **one item before** where the last one ended
(``$skip`` one less, ``$top`` one more: the same number of requests, one row more each).
A page that holds an item already read joins the one before it: whatever came before the
next unread item is read (in an order that is stable but for arrivals and departures, the
items read are a prefix of the listing, so one of them in the page means the page starts
no later than right after the last of them still there). One that holds none (the first
item is not the last one read: the listing shifted back, or the item read last left) is
asked again from further back (a page, then twice as far, ...; from the start at worst),
so a departure costs one request or a few, never an item. Rows are handed on once per id
(an item listed twice: a shift forward, a window read again).

A next link that does not page by ``$skip`` (a ``$skiptoken``: a cursor kept by the
service, not a position) is followed verbatim, rows still handed on once per id; so is the
rest of a listing whose page held one row or none where ``$top`` asked more (a page size
the service keeps to itself): asked from one item back, the next page would be that row
again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import Fatal

MAX_TOP = 999  # contract §2: ``$top`` up to 999


def pages_by_skip(next_link: str) -> bool:
    """Whether a next link pages by position (``$skip``), not by a service cursor."""
    q = parse_qs(urlsplit(next_link).query)
    return "$skip" in q and "$skiptoken" not in q


async def overlapping(
    name: str,
    url_for: Callable[[int, int], str],
    get: Callable[[str], Awaitable[Any]],
    page_size: int,
    max_pages: int,
) -> AsyncIterator[list[Any]]:
    """The rows of a listing, page by page, each id once. ``url_for(skip, top)`` is the
    listing's URL for that window (``skip`` 0: none); ``get`` reads a page's body."""
    seen: set[int] = set()
    skip, back = 0, page_size
    url, asked = url_for(0, page_size), page_size
    by_skip = True
    for _ in range(max_pages):
        body = await get(url)
        rows = body.get("value", []) or []
        ids = [hash(r.get("id")) for r in rows]
        joined = not by_skip or skip == 0 or any(h in seen for h in ids)
        if not joined:  # shifted back under us: ask again from further back
            start = max(0, skip - back)
            top = min(MAX_TOP, skip - start + page_size + 1)
            back *= 2
            skip = start
            url, asked = url_for(start, top), top
            continue
        fresh = []
        for r, h in zip(rows, ids, strict=True):
            if h not in seen:
                seen.add(h)
                fresh.append(r)
        if fresh:
            yield fresh
        link = body.get("@odata.nextLink")
        if link is None:
            return
        if not by_skip or not pages_by_skip(link) or len(rows) < min(2, asked):
            # (a page of one row or none where more were asked: asked from one item back,
            # the next would be this one again, for ever: the service's own link, verbatim,
            # from here on; review5)
            by_skip = False
            url = link
            continue
        end = skip + len(rows)
        skip, back = max(0, end - 1), page_size
        asked = min(MAX_TOP, page_size + 1)
        url = url_for(skip, asked)
    raise Fatal(f"{name}: paging did not end after {max_pages} pages", call=name)
