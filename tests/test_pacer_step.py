"""The pacer's pure step: from a mailbox's budgets, the time and one request, whether it goes
now, sleeps (how long), waits for an answer or a free slot, or reserves its room, and which
limit binds. No clock, no sleeps: each case is a state and one call."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from copyengine.config import Limits, load_job
from copyengine.pacing import MailboxPacer, PacerLimits
from copyengine.pacing.policy import AdaptiveRate
from copyengine.pacing.step import GO, Budgets, Decision, Kind, Limit, step
from copyengine.wiring import pacer_limits

NOW = 100.0
INF = math.inf


@dataclass
class State:
    """A mailbox's budgets: 10 requests per 5 s, 1,000 bytes per 10 s (a body reserves its
    room after 1 s of waiting), 4 in flight; entries recorded at the times given."""

    requests_at: list[float] = field(default_factory=list)
    uploads_at: list[tuple[float, int]] = field(default_factory=list)
    inflight: int = 0
    held_bytes: int = 0
    reserved: int = 0  # held by another body
    blocked_until: float = 0.0
    factor: float = 1.0

    def budgets(self) -> Budgets:
        lim = PacerLimits(
            concurrency=4,
            requests=10,
            request_window=5.0,
            upload_bytes=1000,
            upload_window=10.0,
            margin=1.0,
            window_slack=0.0,
        )
        b = Budgets(lim)
        for t in self.requests_at:
            b.requests.record(t, 1)
        for t, n in self.uploads_at:
            b.uploads.record(t, n)
        b.inflight, b.held_bytes, b.reserved = self.inflight, self.held_bytes, self.reserved
        b.blocked_until = self.blocked_until
        b.rate = AdaptiveRate(factor=self.factor)
        return b


FULL_REQUESTS = [NOW - 2.0] * 10  # the request window is full; its oldest leaves in 3 s
UPLOADED_700 = [(NOW - 1.0, 700)]  # 300 bytes of room; the 700 leave in 9 s


def _d(kind: Kind, wait: float = 0.0, binds: Limit = Limit.NONE) -> Decision:
    return Decision(kind, wait, binds)


# (state, body bytes, room reserved for this body, waiting since) -> decision
CASES = {
    "nothing held: go": (State(), 0, 0, None, GO),
    "under the request window: go": (State(requests_at=[NOW - 1.0] * 9), 0, 0, None, GO),
    "request window full: sleep until its oldest leaves": (
        State(requests_at=FULL_REQUESTS),
        0,
        0,
        None,
        _d(Kind.SLEEP, 3.0, Limit.REQUESTS),
    ),
    "request budget all in flight: only an answer makes room": (
        State(inflight=10),
        0,
        0,
        None,
        _d(Kind.ANSWER, INF, Limit.REQUESTS),
    ),
    "a cut rate halves the request budget": (
        State(requests_at=[NOW - 1.0] * 5, factor=0.5),
        0,
        0,
        None,
        _d(Kind.SLEEP, 4.0, Limit.REQUESTS),
    ),
    "a body that fits the byte budget: go": (State(uploads_at=UPLOADED_700), 300, 0, None, GO),
    "a request without a body is not held by the byte budget": (
        State(uploads_at=[(NOW - 1.0, 1000)]),
        0,
        0,
        None,
        GO,
    ),
    # a waiting body looks again when it may first be worth reserving by time alone (it has
    # waited reserve_after, 1 s here, and its room is back within it), at most 4 s later:
    # every 1 s was a timer and a step for nothing, 5 per wait in ``fleet``
    "over the byte budget, its room back in 9 s: a body looks again at most 4 s later": (
        State(uploads_at=UPLOADED_700),
        400,
        0,
        None,
        _d(Kind.SLEEP, 4.0, Limit.UPLOAD),
    ),
    "over the byte budget, its room back in 3 s: it looks again once that is within 1 s": (
        State(uploads_at=[(NOW - 7.0, 700)]),
        400,
        0,
        None,
        _d(Kind.SLEEP, 2.0, Limit.UPLOAD),
    ),
    "its room back in 0.5 s: it looks again once it has waited 1 s, or goes": (
        State(uploads_at=[(NOW - 9.5, 700)]),
        400,
        0,
        None,
        _d(Kind.SLEEP, 0.5, Limit.UPLOAD),
    ),
    "over the byte budget, waited long enough, its room back soon: reserve it": (
        State(uploads_at=[(NOW - 9.0, 700)]),  # the 700 leave in 1 s
        400,
        0,
        NOW - 1.0,
        _d(Kind.RESERVE, 0.0, Limit.UPLOAD),
    ),
    "waited long enough, but its room back only in 9 s: no reservation, the 300 stay free": (
        State(uploads_at=UPLOADED_700),
        400,
        0,
        NOW - 1.0,
        _d(Kind.SLEEP, 4.0, Limit.UPLOAD),
    ),
    "waited two windows: its room kept however long it stays idle": (
        State(uploads_at=UPLOADED_700),
        400,
        0,
        NOW - 20.0,
        _d(Kind.RESERVE, 0.0, Limit.UPLOAD),
    ),
    "waited long, room only after an answer: no reservation yet": (
        State(uploads_at=[(NOW - 1.0, 100)], inflight=1, held_bytes=700),
        400,
        0,
        NOW - 1.0,
        _d(Kind.ANSWER, INF, Limit.UPLOAD),
    ),
    "a body over the whole budget keeps it once it has waited (an empty window, ever)": (
        State(uploads_at=UPLOADED_700),
        1500,
        0,
        NOW - 1.0,
        _d(Kind.RESERVE, 0.0, Limit.UPLOAD),
    ),
    "waited long, but another body holds the reservation: sleep": (
        State(uploads_at=UPLOADED_700, reserved=200),
        400,
        0,
        NOW - 5.0,
        _d(Kind.SLEEP, 4.0, Limit.UPLOAD),
    ),
    "room reserved by another: a body that fits beside nothing else waits": (
        State(reserved=900, uploads_at=[(NOW - 1.0, 50)]),
        100,
        0,
        None,
        _d(Kind.SLEEP, 4.0, Limit.UPLOAD),
    ),
    "room reserved by another: a body goes in it when the other still goes as soon": (
        # 450 leave in 5 s: the 500 kept for finds its room then, with 50 to spare
        State(reserved=500, uploads_at=[(NOW - 5.0, 450), (NOW, 450)]),
        50,
        0,
        None,
        GO,
    ),
    "room reserved by another: not a body that would hold the other back a window": (
        State(reserved=500, uploads_at=[(NOW - 5.0, 450), (NOW, 450)]),
        80,
        0,
        None,
        _d(Kind.SLEEP, 4.0, Limit.UPLOAD),  # (10 s: looked at again 4 s later, LOOK_AGAIN)
    ),
    "room reserved by another waiting on an answer: nothing goes in it": (
        State(reserved=500, inflight=1, held_bytes=600, uploads_at=[(NOW - 5.0, 300)]),
        50,
        0,
        None,
        _d(Kind.ANSWER, INF, Limit.UPLOAD),
    ),
    "room reserved for this body: it sleeps the whole wait": (
        State(uploads_at=UPLOADED_700, reserved=400),
        400,
        400,
        NOW - 1.0,
        _d(Kind.SLEEP, 9.0, Limit.UPLOAD),
    ),
    "room reserved for this body and the window empty: go": (
        State(reserved=400),
        400,
        400,
        NOW - 1.0,
        GO,
    ),
    "a body over the whole budget goes alone into an empty window": (State(), 1500, 0, None, GO),
    "a body over the whole budget waits for what is in flight": (
        State(inflight=1, held_bytes=100),
        1500,
        0,
        None,
        _d(Kind.ANSWER, INF, Limit.UPLOAD),
    ),
    "bytes in flight count against the budget: only an answer makes room": (
        State(uploads_at=[(NOW - 1.0, 100)], inflight=1, held_bytes=700),
        400,
        0,
        None,
        _d(Kind.ANSWER, INF, Limit.UPLOAD),
    ),
    "Retry-After in force: sleep it out": (
        State(blocked_until=NOW + 2.5),
        0,
        0,
        None,
        _d(Kind.SLEEP, 2.5, Limit.RETRY_AFTER),
    ),
    "Retry-After past: go": (State(blocked_until=NOW - 0.1), 0, 0, None, GO),
    "Retry-After shorter than the request window's wait: the window binds": (
        State(blocked_until=NOW + 2.0, requests_at=FULL_REQUESTS),
        0,
        0,
        None,
        _d(Kind.SLEEP, 3.0, Limit.REQUESTS),
    ),
    "Retry-After longer than the request window's wait: it binds": (
        State(blocked_until=NOW + 4.0, requests_at=FULL_REQUESTS),
        0,
        0,
        None,
        _d(Kind.SLEEP, 4.0, Limit.RETRY_AFTER),
    ),
    "Retry-After holds a body too; it looks again once it may reserve": (
        State(blocked_until=NOW + 30.0),
        400,
        0,
        None,
        _d(Kind.SLEEP, 4.0, Limit.RETRY_AFTER),
    ),
    "every slot taken: wait for one": (
        State(inflight=4),
        0,
        0,
        None,
        _d(Kind.SLOT, 0.0, Limit.CONCURRENCY),
    ),
    "a budget wait comes before the concurrency cap": (
        State(inflight=4, blocked_until=NOW + 1.0),
        0,
        0,
        None,
        _d(Kind.SLEEP, 1.0, Limit.RETRY_AFTER),
    ),
}


@pytest.mark.parametrize(
    ("state", "body", "reserved", "since", "expected"), list(CASES.values()), ids=list(CASES)
)
def test_step(
    state: State, body: int, reserved: int, since: float | None, expected: Decision
) -> None:
    b = state.budgets()
    got = step(b, NOW, body, reserved, since)
    assert got.kind is expected.kind
    assert got.wait == pytest.approx(expected.wait)
    assert got.binds is expected.binds
    # the step decides only: the state it read is as it was
    assert (b.inflight, b.held_bytes, b.reserved) == (
        state.inflight,
        state.held_bytes,
        state.reserved,
    )


def test_a_reservation_is_kept_at_most_the_whole_budget_and_one_at_a_time() -> None:
    b = State(factor=0.5).budgets()
    assert b.reservable(800) == 500
    assert b.reserve(800) == 500 and b.reserved == 500
    assert b.reservable(100) == 0 and b.reserve(100) == 0 and b.reserved == 500


def test_take_holds_a_request_and_release_moves_it_into_the_windows() -> None:
    b = State().budgets()
    b.take(400)
    assert (b.inflight, b.held_bytes) == (1, 400)
    assert b.upload_room(NOW) == 600
    b.release(NOW, 400)
    assert (b.inflight, b.held_bytes) == (0, 0)
    assert (b.requests.total, b.uploads.total) == (1, 400)
    assert b.upload_room(NOW) == 600
    assert b.upload_room(NOW + 10.0) == INF  # the window empty: anything passes


# -- extreme Retry-After values --------------------------------------------------------------
def test_a_retry_after_over_the_cap_is_cut_to_it_and_logged_once_per_mailbox() -> None:
    now = [1000.0]
    lim = PacerLimits(max_retry_after=300.0)
    pacer = MailboxPacer("app/m", lim, clock=lambda: now[0])
    other = MailboxPacer("app/n", lim, clock=lambda: now[0])
    with capture_logs() as logs:
        pacer.on_throttled("RequestRate", 86_400.0)
        assert pacer.budgets.blocked_until == pytest.approx(1300.0)
        pacer.on_throttled("RequestRate", 3_600.0)  # again: cut, not logged again
        assert pacer.budgets.blocked_until == pytest.approx(1300.0)
        pacer.on_throttled("RequestRate", 300.0)  # at the cap: obeyed as given
        other.on_throttled("IncomingBytes", 1_000.0)  # another mailbox logs its own
    capped = [e for e in logs if e["event"] == "pacer.retry_after_capped"]
    assert capped == [
        {
            "event": "pacer.retry_after_capped",
            "log_level": "warning",
            "mailbox": "app/m",
            "asked_s": 86_400.0,
            "used_s": 300.0,
        },
        {
            "event": "pacer.retry_after_capped",
            "log_level": "warning",
            "mailbox": "app/n",
            "asked_s": 1_000.0,
            "used_s": 300.0,
        },
    ]
    assert pacer.account.throttled_total() == 3  # every 429 is counted, capped or not


def test_a_retry_after_under_the_cap_is_obeyed_as_given() -> None:
    now = [1000.0]
    pacer = MailboxPacer("app/m", PacerLimits(max_retry_after=300.0), clock=lambda: now[0])
    with capture_logs() as logs:
        pacer.on_throttled("RequestRate", 299.5)
    assert pacer.budgets.blocked_until == pytest.approx(1299.5)
    assert not [e for e in logs if e["event"] == "pacer.retry_after_capped"]


def test_the_cap_is_limits_max_retry_after_s(tmp_path: Path) -> None:
    example = Path(__file__).parent.parent / "config.example.toml"
    text = example.read_text(encoding="utf-8")
    assert "max_retry_after_s = 300 " in text
    job = tmp_path / "job.toml"
    job.write_text(text.replace("max_retry_after_s = 300 ", "max_retry_after_s = 42 "))
    limits = load_job(job, resolve_secrets=False).limits
    assert pacer_limits(limits).max_retry_after == 42.0
    assert Limits().max_retry_after_s == PacerLimits().max_retry_after == 300.0
