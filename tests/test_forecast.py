"""plan reads a delta round as its end state (the last row of an item is its state; the review of issue 23 found the plan had taken the first)."""

from __future__ import annotations

from typing import Any, cast

import anyio

from copyengine import forecast
from copyengine.config import FolderRules, ItemFilters, Pair
from copyengine.graph.models import DeltaPage, Item, Removed
from copyengine.state import ItemRecord
from copyengine.state.records import Status


class _Src:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    async def item_delta(self, *a: Any, **k: Any) -> Any:
        yield DeltaPage(self.rows, None, "link2")


def _plan(rows: list[Any], records: dict[str, ItemRecord]) -> forecast.FolderPlanned:
    pair = Pair("a@x", "b@y", FolderRules(), ItemFilters())
    fp = forecast.FolderPlanned("Inbox", "Inbox", True)
    assert anyio.run(forecast._plan_delta, cast(Any, _Src(rows)), "m", "link1", pair, records, fp)
    return fp


def test_item_changed_then_deleted_in_one_round_is_one_removal() -> None:
    rec = ItemRecord("a", "f", Status.DONE, b"k", "tf", "ta", change_key="v1")
    fp = _plan([Item("a", "v2", "message", 10, "", "", ()), Removed("a", "deleted")], {"a": rec})
    # the round ends with the item removed: one removal, nothing to copy
    assert (fp.removed, fp.copy, fp.items) == (1, 0, 0)


def test_the_last_row_of_an_item_is_its_state() -> None:
    rec = ItemRecord("a", "f", Status.DONE, b"k", "tf", "ta", change_key="v1")
    rows = [Item("a", "v1", "message", 10, "", "", ()), Item("a", "v2", "message", 99, "", "", ())]
    fp = _plan(rows, {"a": rec})
    # the row v2 (changed at the source) is one update of 99 bytes
    assert (fp.copy, fp.copy_bytes, fp.present) == (1, 99, 0)
