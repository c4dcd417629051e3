"""What becomes of a mailbox group after one of its segments (``cluster.outcome``): a table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from copyengine.cluster.outcome import Next, Outcome, PairEnd, SegmentEnd, said, segment_outcome
from copyengine.state.groups import copied, pass_changes

OK = PairEnd("a@contoso.example", failed=False)
FAILED = PairEnd("b@contoso.example", failed=True, error="mailbox not found")
NOTED = PairEnd("c@contoso.example", failed=False, error="3 items failed")
HELD = PairEnd("d@contoso.example", failed=False, error="suspended by op@h", suspended=True)
TEN, NOON = datetime(2026, 12, 7, 10, tzinfo=UTC), datetime(2026, 12, 7, 12, tzinfo=UTC)
AT_NOON = PairEnd("d@contoso.example", failed=False, hold="next window 12:00", until=NOON)
AT_TEN = PairEnd("e@contoso.example", failed=False, hold="start_after 10:00", until=TEN)

CASES = [
    ("every pair done", SegmentEnd(1, pairs=(OK, OK)), Outcome(Next.DONE)),
    (
        "a pair suspended: the group released suspended (not queued, not failed)",
        SegmentEnd(1, pairs=(OK, HELD)),
        Outcome(Next.SUSPENDED, "d@contoso.example: suspended by op@h"),
    ),
    (
        "a pair suspended and one failed: failed",
        SegmentEnd(1, pairs=(HELD, FAILED)),
        Outcome(
            Next.FAILED,
            "d@contoso.example: suspended by op@h; b@contoso.example: mailbox not found",
        ),
    ),
    (
        "a pair suspended while the time box ends: continued (the next segment releases it)",
        SegmentEnd(2, draining=True, pairs=(HELD,)),
        Outcome(Next.QUEUED, "d@contoso.example: suspended by op@h"),
    ),
    ("no pair at all", SegmentEnd(1), Outcome(Next.DONE)),
    (
        "time box up or worker draining: continued",
        SegmentEnd(2, draining=True, pairs=(OK,)),
        Outcome(Next.QUEUED),
    ),
    (
        "draining keeps the pairs' errors",
        SegmentEnd(2, draining=True, pairs=(NOTED,)),
        Outcome(Next.QUEUED, "c@contoso.example: 3 items failed"),
    ),
    (
        "draining with a failed pair: continued (it finishes next segment)",
        SegmentEnd(2, draining=True, pairs=(FAILED,)),
        Outcome(Next.QUEUED, "b@contoso.example: mailbox not found"),
    ),
    (
        "a failed pair fails the group",
        SegmentEnd(1, pairs=(OK, FAILED)),
        Outcome(Next.FAILED, "b@contoso.example: mailbox not found"),
    ),
    (
        "an error on a pair that did not fail: done, with the error",
        SegmentEnd(1, pairs=(NOTED, OK)),
        Outcome(Next.DONE, "c@contoso.example: 3 items failed"),
    ),
    (
        "errors of several pairs joined",
        SegmentEnd(1, pairs=(FAILED, NOTED)),
        Outcome(
            Next.FAILED, "b@contoso.example: mailbox not found; c@contoso.example: 3 items failed"
        ),
    ),
    (
        "a fatal error fails the group, even draining, and is the only error said",
        SegmentEnd(3, fatal="credentials refused", draining=True, pairs=(FAILED,)),
        Outcome(Next.FAILED, "credentials refused"),
    ),
    (
        "the store gone past the limit: the worker leaves",
        SegmentEnd(1, store_gone=True, fatal="x", pairs=(FAILED,)),
        Outcome(Next.LEAVE),
    ),
    (
        "a crash of the store: queued again",
        SegmentEnd(4, crashed="OperationalError: closed", store_fault=True),
        Outcome(Next.QUEUED, "segment 4 crashed: OperationalError: closed"),
    ),
    (
        "pairs held by the clock: the group waits for the first hold to lift, saying each why",
        SegmentEnd(1, pairs=(OK, AT_NOON, AT_TEN)),
        Outcome(Next.WAITING, "next window 12:00; start_after 10:00", TEN),
    ),
    (
        "a held pair beside a failed one: failed, as with a suspended one",
        SegmentEnd(1, pairs=(FAILED, AT_NOON)),
        Outcome(Next.FAILED, "b@contoso.example: mailbox not found"),
    ),
    (
        "waiting beats suspended: queued for the time (the suspended pair is held again)",
        SegmentEnd(1, pairs=(HELD, AT_NOON)),
        Outcome(Next.WAITING, "next window 12:00", NOON),
    ),
    (
        "draining beats waiting: continued at once (the next segment sees the hold again)",
        SegmentEnd(2, draining=True, pairs=(AT_NOON,)),
        Outcome(Next.QUEUED),
    ),
    (
        "a fatal error beats waiting",
        SegmentEnd(2, fatal="credentials refused", pairs=(AT_NOON,)),
        Outcome(Next.FAILED, "credentials refused"),
    ),
    (
        "any other crash: failed",
        SegmentEnd(4, crashed="KeyError: 'x'", draining=True),
        Outcome(Next.FAILED, "segment 4 crashed: KeyError: 'x'"),
    ),
]


@pytest.mark.parametrize(("why", "end", "expected"), CASES, ids=[c[0] for c in CASES])
def test_segment_outcome(why: str, end: SegmentEnd, expected: Outcome) -> None:
    assert segment_outcome(end) == expected, why


@pytest.mark.parametrize(
    ("nxt", "continues", "ends"),
    [
        (Next.DONE, False, True),
        (Next.FAILED, False, True),
        (Next.QUEUED, True, False),
        (Next.LEAVE, False, False),
        (Next.SUSPENDED, False, False),  # released: `copyengine resume` queues it
        (Next.WAITING, False, False),
    ],
)
def test_what_each_outcome_does_next(nxt: Next, continues: bool, ends: bool) -> None:
    assert (Outcome(nxt).continues, Outcome(nxt).ends) == (continues, ends)


def test_a_segment_says_only_what_the_item_records_cannot_tell() -> None:
    changes = {"created": 5, "updated": 1, "failed": 2, "moved": 3, "deleted": 0, "folders": 1}
    assert said(changes) == {"moved": 3, "folders": 1}


def test_a_finished_pass_counts_from_records_and_from_what_segments_said() -> None:
    records = {"created": 10, "updated": 2, "failed": 1, "unknown": 0, "kept": 4}
    extras = [{"moved": 3, "folders": 1}, {}, {"moved": 1}]
    got = pass_changes({"done": 2, "failed": 1}, records, extras)
    assert got == {
        "created": 6,  # moves are created in the target too: not copies
        "updated": 2,
        "failed": 1,
        "unknown": 0,
        "kept": 4,
        "moved": 4,
        "folders": 1,
        "groups_done": 2,
        "groups_failed": 1,
    }
    assert copied({"created": 2}, {"moved": 5}) == 0  # never below zero
