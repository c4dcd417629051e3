"""A listing paged by ``$skip`` while its folder changes (``graph.skippaging``): every item
there from the listing's start to its end is handed on, none twice, against ground truth,
for seeded histories of departures and arrivals between pages, oldest-first and
newest-first."""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from copyengine.graph.skippaging import overlapping, pages_by_skip

pytestmark = pytest.mark.anyio


class Folder:
    """A folder served like the emulator's ``collection``: ``$skip``/``$top`` over its
    items in order, a next link while more follow; between two requests, ``churn`` runs."""

    def __init__(self, n: int, rng: random.Random, newest_first: bool, churn: float) -> None:
        self.items = [f"i{k}" for k in range(n)]
        self.rng, self.newest_first, self.churn = rng, newest_first, churn
        self.made = n
        self.requests = 0
        self.left: set[str] = set()

    def url(self, skip: int, top: int) -> str:
        return f"https://graph.test/items?$top={top}" + (f"&$skip={skip}" if skip else "")

    async def get(self, url: str) -> dict[str, Any]:
        self.requests += 1
        if self.requests > 1:
            self._change()
        q = parse_qs(urlsplit(url).query)
        skip, top = int(q.get("$skip", ["0"])[0]), int(q["$top"][0])
        page = self.items[skip : skip + top]
        body: dict[str, Any] = {"value": [{"id": i} for i in page]}
        if skip + top < len(self.items):
            body["@odata.nextLink"] = self.url(skip + top, top)
        return body

    def _change(self) -> None:
        for _ in range(self.rng.randint(0, 3)):
            if self.rng.random() >= self.churn:
                continue
            if self.items and self.rng.random() < 0.6:  # a departure, anywhere
                self.left.add(self.items.pop(self.rng.randrange(len(self.items))))
            else:  # an arrival, where the order puts it
                new = f"n{self.made}"
                self.made += 1
                self.items.insert(0 if self.newest_first else len(self.items), new)


@pytest.mark.parametrize("newest_first", [False, True], ids=["oldest-first", "newest-first"])
@pytest.mark.parametrize("seed", range(40))
async def test_no_item_there_throughout_is_skipped_and_none_is_listed_twice(
    seed: int, newest_first: bool
) -> None:
    rng = random.Random(seed)
    size = rng.choice([1, 2, 3, 5, 10])
    f = Folder(rng.randint(0, 60), rng, newest_first, churn=rng.choice([0.0, 0.3, 1.0]))
    before = set(f.items)
    got: list[str] = []
    async for page in overlapping("listItems", f.url, f.get, size, 10_000):
        got.extend(r["id"] for r in page)
    throughout = before & set(f.items)
    assert len(got) == len(set(got)), f"listed twice: {sorted(got)}"
    assert throughout <= set(got), f"skipped: {sorted(throughout - set(got))}"
    assert set(got) <= before | set(f.items) | f.left  # nothing made up


async def test_a_quiet_listing_costs_what_it_did() -> None:
    """No change: as many requests as pages of ``size`` (one row more each)."""
    f = Folder(100, random.Random(0), False, churn=0.0)
    got = [r["id"] async for page in overlapping("listItems", f.url, f.get, 10, 100) for r in page]
    assert got == [f"i{k}" for k in range(100)]
    assert f.requests == 10


async def test_an_item_leaving_a_page_read_costs_a_request_not_an_item() -> None:
    """Pages of 2 over three items; the first leaves as the second page is asked for: that
    page (from one item back) no longer holds the item read last, so the window is asked
    again from the start and the third item is listed (a listing from where the last page
    ended would have returned nothing)."""

    class OneLeaves(Folder):
        def _change(self) -> None:
            if self.requests == 2:
                self.left.add(self.items.pop(0))

    f = OneLeaves(3, random.Random(0), False, churn=0.0)
    got = [r["id"] async for page in overlapping("listItems", f.url, f.get, 2, 100) for r in page]
    assert got == ["i0", "i1", "i2"]
    assert f.requests == 3


def test_a_cursor_is_not_a_position() -> None:
    assert pages_by_skip("https://g/items?$top=10&$skip=20")
    assert not pages_by_skip("https://g/items?$skiptoken=abc")
    assert not pages_by_skip("https://g/items?%24skiptoken=abc&$skip=3")


# review5: a service whose pages hold fewer rows than ``$top`` asks (server-driven paging,
# a page size the service keeps to itself) while its next link pages by ``$skip``. With
# one row a page, each page after the first, asked from one item back, holds only the row
# read last: ``skip`` never moves, and the listing asks the same page until ``max_pages``
# (1,000,000 in the client: a hang, then a ``Fatal`` pass). Now the service's own link is
# followed verbatim from such a page on.
class Capped(Folder):
    """Pages of at most ``cap`` rows, whatever ``$top`` asks (the emulator's ``collection``
    gives ``min($top, 999)``; the contract does not promise ``$top`` rows)."""

    cap = 1

    async def get(self, url: str) -> dict[str, Any]:
        self.requests += 1
        q = parse_qs(urlsplit(url).query)
        skip = int(q.get("$skip", ["0"])[0])
        top = min(int(q["$top"][0]), self.cap)
        page = self.items[skip : skip + top]
        body: dict[str, Any] = {"value": [{"id": i} for i in page]}
        if skip + top < len(self.items):
            body["@odata.nextLink"] = self.url(skip + top, top)
        return body


async def test_pages_shorter_than_asked_still_end() -> None:
    f = Capped(20, random.Random(0), False, churn=0.0)
    got = [r["id"] async for page in overlapping("listItems", f.url, f.get, 5, 1000) for r in page]
    assert got == [f"i{k}" for k in range(20)]
    assert f.requests <= 2 * 20, f.requests


async def test_pages_of_two_rows_end_at_twice_the_requests() -> None:
    """Pages shorter than asked but of two rows or more: each page past the first moves on
    by one row less than it holds (the cost: twice the requests at two rows a page)."""
    f = Capped(20, random.Random(0), False, churn=0.0)
    f.cap = 2
    got = [r["id"] async for page in overlapping("listItems", f.url, f.get, 5, 1000) for r in page]
    assert got == [f"i{k}" for k in range(20)]
    assert f.requests == 19, f.requests
