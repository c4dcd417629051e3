"""A pair's pass decisions, as tables (no I/O): the kind of pass, how each folder starts and
is listed, one change per item of a delta round, and what the unsettled items become when a
pair stops."""

from __future__ import annotations

from typing import Any, cast

import pytest

from copyengine.graph.models import Item, Removed
from copyengine.pipeline.ledger import Ledger
from copyengine.pipeline.unsettled import Unsettled
from copyengine.pipeline.work import Exportable, FolderJob
from copyengine.plan import (
    DeltaRound,
    FolderStart,
    Listing,
    PassKind,
    folder_listing,
    folder_start,
)
from copyengine.state import FolderRecord


@pytest.mark.parametrize(
    ("cutover", "full", "retry", "earlier", "want"),
    [
        (False, False, False, False, PassKind.FIRST),  # the job's first pass
        (False, False, False, True, PassKind.DELTA),  # any later one, by default
        (False, True, False, True, PassKind.FULL),
        (False, True, False, False, PassKind.FULL),  # --full names the pass, first or not
        (False, False, True, True, PassKind.RETRY),
        (True, False, False, True, PassKind.CUTOVER),
        (True, True, True, True, PassKind.CUTOVER),  # (refused by the CLI) cutover wins
        (False, True, True, True, PassKind.FULL),  # (refused by the CLI) full before retry
    ],
)
def test_pass_kind(cutover: bool, full: bool, retry: bool, earlier: bool, want: PassKind) -> None:
    assert PassKind.of(cutover=cutover, full=full, retry=retry, earlier=earlier) is want


def test_what_a_kind_asks_of_its_pairs() -> None:
    # only --full lists every folder in full; only --retry-failed takes failed items only (a
    # first pass and a cutover copy as a delta pass)
    assert [k for k in PassKind if k.lists_in_full] == [PassKind.FULL]
    assert [k for k in PassKind if k.retry_only] == [PassKind.RETRY]


def test_a_kind_is_recorded_by_its_value() -> None:
    assert [k.value for k in PassKind] == ["first", "delta", "full", "retry", "cutover"]


LINKED = FolderRecord("S", "/Inbox", "T", "<inbox>", delta_link="L1")
UNLINKED = FolderRecord("S", "/Inbox", "T", "<inbox>")


@pytest.mark.parametrize(
    ("placed", "record", "incremental", "mapped_before", "want"),
    [
        # its copy kept: read through its link on an incremental pass
        ("same", LINKED, True, True, FolderStart("delta", "L1", kept=True)),
        ("renamed", LINKED, True, True, FolderStart("delta", "L1", "renamed", kept=True)),
        # not incremental (--full, rules changed, delta off): listed in full, link unused
        ("same", LINKED, False, True, FolderStart("full", kept=True)),
        ("renamed", LINKED, False, True, FolderStart("full", None, "renamed", kept=True)),
        # no link stored yet (its last round was not settled): listed in full
        ("same", UNLINKED, True, True, FolderStart("full", kept=True)),
        # placed elsewhere: its items are not all in its copy, listed in full
        ("moved", LINKED, True, True, FolderStart("full", change="moved")),
        ("remade", LINKED, True, True, FolderStart("full", remade=True)),
        ("new", None, True, True, FolderStart("full", change="created")),
        ("adopted", None, True, True, FolderStart("full", change="created")),
        # a first pass makes every folder: none is reported as a change
        ("new", None, False, False, FolderStart("full")),
        ("adopted", None, False, False, FolderStart("full")),
        # a kept placement without a record (not expected) is a folder like a new one
        ("same", None, True, True, FolderStart("full", change="created")),
    ],
)
def test_folder_start(
    placed: str,
    record: FolderRecord | None,
    incremental: bool,
    mapped_before: bool,
    want: FolderStart,
) -> None:
    assert folder_start(placed, record, incremental, mapped_before) == want


@pytest.mark.parametrize(
    ("retry_only", "mode", "retriable", "want"),
    [
        (False, "delta", False, Listing.DELTA),
        (False, "delta", True, Listing.DELTA),
        (False, "full", False, Listing.FULL),
        (False, "full", True, Listing.FULL),
        (True, "full", True, Listing.RETRY),  # only what is retriable is taken
        (True, "delta", True, Listing.RETRY),  # never through a link: failed items are listed
        (True, "full", False, Listing.SKIP),  # nothing to take again: the folder is not listed
        (True, "delta", False, Listing.SKIP),
    ],
)
def test_folder_listing(retry_only: bool, mode: str, retriable: bool, want: Listing) -> None:
    assert folder_listing(retry_only, mode, retriable) is want


def _item(i: str, ck: str = "c1") -> Item:
    return Item(i, ck, "message", 10, "", "", ())


@pytest.mark.parametrize(
    ("pages", "handed_on", "removed"),
    [
        ([["a", "b"], ["c"]], [["a", "b"], ["c"]], set()),
        ([["a", "a"]], [["a"]], set()),  # the same item twice in a page: once
        ([["a"], ["b", "a"]], [["a"], ["b"]], set()),  # again in a later page: nothing
        ([["a", "-b"]], [["a"]], {"b"}),  # a removal is noted, not handed on
        ([["a"], ["-a"]], [["a"], []], {"a"}),  # handed on, then removed: noted as removed
        ([["-a"], ["a"]], [[], ["a"]], set()),  # removed, then back: handed on, not removed
        ([["a", "-a", "a"]], [["a", "a"]], set()),  # back after its removal: handed on again
    ],
)
def test_a_delta_round_hands_each_change_on_once(
    pages: list[list[str]], handed_on: list[list[str]], removed: set[str]
) -> None:
    rnd = DeltaRound()
    got = []
    for page in pages:
        rows = [Removed(r[1:], "deleted") if r.startswith("-") else _item(r) for r in page]
        got.append([i.id for i in rnd.page(rows)])
    assert (got, rnd.removed) == (handed_on, removed)


def test_a_delta_round_notes_removals_in_the_set_it_is_given() -> None:
    job_removed = {"old"}
    rnd = DeltaRound(job_removed)
    rnd.page([Removed("x", "deleted"), _item("old")])
    assert job_removed == {"x"}


def test_the_first_row_of_an_item_is_the_one_handed_on() -> None:
    out = DeltaRound().page([_item("a", "v1"), _item("a", "v2")])
    assert [i.change_key for i in out] == ["v1"]


class _Ledger:
    def __init__(self) -> None:
        self.said: list[tuple[str, str, str | None]] = []

    def unknown(self, job: Any, item: Item, reason: str, request_id: str | None) -> None:
        self.said.append(("unknown " + item.id, reason, request_id))

    def not_sent(self, job: Any, item: Item) -> None:
        self.said.append(("not sent " + item.id, "", None))

    def not_attempted(self, job: Any) -> None:
        self.said.append(("not attempted", "", None))


def _e(i: str) -> Exportable:
    return Exportable(_item(i), cast(FolderJob, None), data=b"x")


def test_what_a_stopped_pair_leaves_unsettled() -> None:
    u = Unsettled()
    queued, flying, answered, failed, never = (_e(i) for i in "qfadn")
    for e in (queued, flying, answered, failed):
        u.queue(e)
    for e in (flying, answered, failed):
        u.send(e)
    u.answered(answered)
    u.answered(failed)
    u.add(failed, "503", "r1")  # sent, then a transient failure: waits for settlement
    u.add(never, "export: 503", None)  # never sent
    assert failed.data is None and u.outstanding() == 2
    ledger = _Ledger()
    u.cut_short(cast(Ledger, ledger), "drained")
    assert ledger.said == [
        ("unknown f", "drained: the import was in flight", None),
        ("not sent q", "", None),
        ("unknown d", "drained; last error: 503", "r1"),
        ("not attempted", "", None),
    ]
    assert u.outstanding() == 0
    ledger.said.clear()
    u.cut_short(cast(Ledger, ledger), "again")  # nothing is said twice
    assert ledger.said == []


def test_settlement_takes_what_waits_and_knows_its_history() -> None:
    u = Unsettled()
    a, b = _e("a"), _e("b")
    u.queue(a)
    u.send(a)
    u.answered(a)
    u.add(a, "timeout", "r9")
    u.missed(b)
    u.add(b, "export: the answer had no row for this item", None)
    assert not u.alone(b)
    u.missed(b)
    assert u.alone(b) and not u.alone(a)  # left out twice: exported alone from now on
    assert (u.was_sent(a), u.was_sent(b)) == (True, False)
    assert u.last_error(a) == ("timeout", "r9")
    assert u.take() == [a, b] and u.take() == [] and u.outstanding() == 0
