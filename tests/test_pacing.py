"""Pacer and retry decisions, with a fake clock: no sleeping, no sockets."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import cast

import anyio
import pytest

from copyengine.pacing import AdaptiveRate, Backoff, Cause, MailboxPacer, PacerLimits, RetryPolicy
from copyengine.pacing.accounting import Activity, MailboxAccount
from copyengine.pacing.policy import (
    RetriesExhausted,
    SlidingWindow,
    may_resend,
    parse_retry_after,
)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


# -- Retry-After ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        ("2.128", 2.128),
        ("0", 0.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, 0.0) == expected


def test_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2026, 1, 1, 12, 0, 7, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now) == pytest.approx(7.0)
    earlier = format_datetime(datetime(2026, 1, 1, 11, 0, 0, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(earlier, now) == 0.0


# -- windows ---------------------------------------------------------------------------------
def test_sliding_window_delay_and_expiry() -> None:
    w = SlidingWindow(limit=3, width=10.0)
    for t in (0.0, 1.0, 2.0):
        assert w.delay(t, 1) == 0.0
        w.record(t, 1)
    assert w.delay(3.0, 1) == pytest.approx(7.0)  # the call at 0.0 leaves at 10.0
    assert w.delay(10.0, 1) == 0.0
    assert w.delay(3.0, 1, limit=2) == pytest.approx(8.0)  # a cut budget waits longer


def test_bytes_window_lets_an_oversized_item_through_an_empty_window() -> None:
    w = SlidingWindow(limit=100, width=5.0)
    assert w.delay(0.0, 500) == 0.0
    w.record(0.0, 500)
    assert w.delay(1.0, 10) == pytest.approx(4.0)
    assert w.delay(5.0, 10) == 0.0


# -- adaptive rate ---------------------------------------------------------------------------
def test_adaptive_rate_cuts_and_creeps_back() -> None:
    r = AdaptiveRate()
    r = r.on_throttled()
    assert r.factor == pytest.approx(0.8)
    for _ in range(10):
        r = r.on_throttled()
    assert r.factor == r.floor
    steps = 0
    while r.factor < 1.0 and steps < 10_000:
        r = r.on_success()
        steps += 1
    assert r.factor == 1.0 and 100 < steps < 10_000


# -- retry policy ----------------------------------------------------------------------------
def test_retry_budget_per_cause_is_independent_and_exhausts() -> None:
    p = RetryPolicy(budgets=((Cause.SERVER, 2), (Cause.CONNECTION, 1)))
    p = p.increment(Cause.SERVER).increment(Cause.CONNECTION).increment(Cause.SERVER)
    assert p.history == (Cause.SERVER, Cause.CONNECTION, Cause.SERVER)
    with pytest.raises(RetriesExhausted) as exc:
        p.increment(Cause.SERVER)
    assert exc.value.attempts == 2
    with pytest.raises(RetriesExhausted):
        p.increment(Cause.TIMEOUT)  # no budget at all


def test_retry_wait_prefers_retry_after_then_backoff_with_jitter() -> None:
    p = RetryPolicy(backoff=Backoff(base=1.0, factor=2.0, cap=8.0, floor=0.5))
    p = p.increment(Cause.SERVER)
    assert p.wait(Cause.SERVER, 3.25, 0.9) == 3.25
    assert p.wait(Cause.SERVER, None, 0.0) == pytest.approx(0.5)
    assert p.wait(Cause.SERVER, None, 1.0) == pytest.approx(1.0)
    for _ in range(5):
        p = p.increment(Cause.SERVER)
    assert p.wait(Cause.SERVER, None, 1.0) == pytest.approx(8.0)  # capped
    assert p.increment(Cause.AUTH).wait(Cause.AUTH, None, 0.5) == 0.0


def test_an_extreme_retry_after_on_any_retry_is_cut_to_the_cap() -> None:
    """A 503's Retry-After (or an unpaced 429's) is capped like the pacer's."""
    p = RetryPolicy(max_retry_after=120.0).increment(Cause.SERVER)
    assert p.wait(Cause.SERVER, 3600.0, 0.5) == 120.0
    assert p.wait(Cause.SERVER, 119.0, 0.5) == 119.0
    assert RetryPolicy().wait(Cause.SERVER, 86400.0, 0.5) == 300.0


@pytest.mark.parametrize(
    ("cause", "idempotent", "sent", "ok"),
    [
        (Cause.CONNECTION, False, True, False),  # an import may have been committed
        (Cause.TIMEOUT, False, True, False),
        (Cause.CONNECTION, True, True, True),  # a GET may be repeated
        (Cause.THROTTLED, False, False, True),  # the server refused: nothing happened
        (Cause.SERVER, False, False, True),
        (Cause.SESSION, False, False, True),
    ],
)
def test_may_resend_knows_what_the_server_may_have_done(
    cause: Cause, idempotent: bool, sent: bool, ok: bool
) -> None:
    assert may_resend(cause, idempotent, sent) is ok


# -- the pacer -------------------------------------------------------------------------------
def _pacer(clock: FakeClock, **kw: object) -> MailboxPacer:
    limits = PacerLimits(margin=1.0, window_slack=0.0, **kw)  # type: ignore[arg-type]
    return MailboxPacer("app/m", limits, clock=clock, sleep=clock.sleep)


@pytest.mark.anyio
async def test_pacer_never_exceeds_the_in_flight_cap() -> None:
    clock = FakeClock()
    pacer = _pacer(clock, concurrency=4)
    peak = 0

    async def work() -> None:
        nonlocal peak
        async with pacer.slot():
            peak = max(peak, pacer.inflight)
            await anyio.lowlevel.checkpoint()
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(work)
    assert peak == 4 and pacer.account.max_inflight == 4 and pacer.account.requests == 50


@pytest.mark.anyio
async def test_default_limits_use_the_whole_budget_and_give_it_back_only_after_the_answer() -> None:
    # No margin on top of the configured budget: the timing alone keeps the service from
    # seeing more (a body is held from its slot on, and leaves the window a slack after its
    # answer, which is after the service counted it on arrival).
    clock = FakeClock()
    lim = PacerLimits(upload_bytes=1000, upload_window=10.0)
    assert lim.margin == 1.0
    pacer = MailboxPacer("app/m", lim, clock=clock, sleep=clock.sleep)
    async with pacer.slot(600):
        assert pacer.upload_room() == 400  # held while in flight
        clock.now += 0.25  # the answer comes a quarter of a second after the send
    answered = clock.now
    assert pacer.budgets.delay(clock.now, 400) == 0.0  # the whole budget, to the byte
    async with pacer.slot(400):
        pass
    assert pacer.budgets.delay(clock.now, 1) == pytest.approx(
        answered + 10.0 + lim.window_slack - clock.now
    )
    clock.now = answered + 10.0 + lim.window_slack
    assert pacer.budgets.delay(clock.now, 600) == 0.0


@pytest.mark.anyio
async def test_a_body_that_waited_for_room_gets_it_reserved_against_later_smaller_ones() -> None:
    clock = FakeClock()
    kept: list[int] = []  # the room reserved at each sleep

    async def sleep(seconds: float) -> None:
        kept.append(pacer.budgets.reserved)
        await clock.sleep(seconds)

    lim = PacerLimits(upload_bytes=1000, upload_window=10.0, window_slack=0.0)  # after 1 s
    pacer = MailboxPacer("app/m", lim, clock=clock, sleep=sleep)
    async with pacer.slot(900):
        pass  # the window holds 900 until t0 + 10
    t0 = clock.now
    assert pacer.budgets.delay(t0, 80) == 0.0 and pacer.upload_room() == 100
    async with pacer.slot(500):
        # it waited on the budget, looking again once its room may come back within a
        # second (``reserve_after``), at most 4 s later (``Budgets.look_again``); its room
        # kept only once it came back within a second (kept from the first second on, the
        # 100 free sat idle 9 s)
        assert clock.now - t0 == pytest.approx(10.0)
        assert clock.sleeps == [pytest.approx(s) for s in (4.0, 4.0, 1.0, 1.0)]
        assert kept == [0, 0, 0, 500]
    assert pacer.budgets.reserved == 0  # its room is now the body's own, then back in the window

    # while a body holds a reservation, smaller ones go beside it, and in its room only when
    # it still goes as soon
    clock.now += 20.0
    async with pacer.slot(450):
        pass
    clock.now += 5.0
    async with pacer.slot(450):
        pass
    now = clock.now
    assert pacer.budgets.reserve(500) == 500
    assert pacer.budgets.reserve(300) == 0  # one reservation at a time
    # the first 450 leave in 5 s: the 500 goes then, with 50 to spare
    assert pacer.budgets.delay(now, 80) == pytest.approx(10.0)  # it would hold the 500 back
    assert pacer.budgets.delay(now, 50) == 0.0  # its room is back by then
    assert pacer.budgets.delay(now, 80, reserving=True) == 0.0
    assert pacer.upload_room() == 1000 - 900 - 500  # what an importer may still choose for


@pytest.mark.anyio
async def test_a_reservation_given_up_wakes_the_bodies_it_held_back() -> None:
    clock = FakeClock()
    stall = anyio.Event()

    async def sleep(seconds: float) -> None:
        clock.now += seconds
        if pacer.budgets.reserved:
            await stall.wait()  # the reserving body waits here until it is cancelled
        await anyio.lowlevel.checkpoint()

    lim = PacerLimits(upload_bytes=1000, upload_window=10.0, window_slack=0.0)
    pacer = MailboxPacer("app/m", lim, clock=clock, sleep=sleep)
    async with pacer.slot(900):
        pass
    sent: list[int] = []

    async def send(n: int) -> None:
        async with pacer.slot(n):
            sent.append(n)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, anyio.create_task_group() as big:
            big.start_soon(send, 500)
            for _ in range(1000):
                if pacer.budgets.reserved:
                    break
                await anyio.lowlevel.checkpoint()
            assert pacer.budgets.reserved == 500
            # the window has emptied; 600 fits beside nothing but the reservation: held
            tg.start_soon(send, 600)
            for _ in range(20):
                await anyio.lowlevel.checkpoint()
            assert sent == []
            big.cancel_scope.cancel()  # the reserving body is given up
    assert sent == [600] and pacer.budgets.reserved == 0


@pytest.mark.anyio
async def test_a_freed_slot_wakes_one_waiter_and_a_waiter_that_cannot_use_it_passes_it_on() -> None:
    clock = FakeClock()

    async def sleep(seconds: float) -> None:
        clock.now += seconds
        for _ in range(20):  # a budget wait long enough for the other task to run
            await anyio.lowlevel.checkpoint()

    lim = PacerLimits(upload_bytes=1000, upload_window=10.0, window_slack=0.0, concurrency=1)
    pacer = MailboxPacer("app/m", lim, clock=clock, sleep=sleep)
    async with pacer.slot(500):
        pass
    hold = anyio.Event()
    sent: list[str] = []

    async def send(name: str, n: int, wait: anyio.Event | None = None) -> None:
        async with pacer.slot(n):
            sent.append(name)
            if wait is not None:
                await wait.wait()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(send, "holder", 0, hold)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(send, "upload", 400)  # fits the window now; waits for the slot
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(send, "get", 0)
            await anyio.wait_all_tasks_blocked()
            assert len(pacer._slot_free) == 2
            pacer.budgets.uploads.record(clock.now, 300)  # the window fills while they wait
            hold.set()  # one slot freed: one waiter woken, the upload, which no longer fits
    # ...and passed its turn on instead of keeping the get waiting behind its budget wait
    assert sent == ["holder", "get", "upload"]


@pytest.mark.anyio
async def test_pacer_obeys_retry_after_exactly_for_the_whole_mailbox() -> None:
    clock = FakeClock()
    pacer = _pacer(clock)
    pacer.on_throttled("RequestRate", 2.128)
    assert pacer.budgets.delay(clock.now, 0) == pytest.approx(2.128)
    async with pacer.slot():
        assert clock.now == pytest.approx(1002.128)
    assert pacer.account.throttle_wait_s == pytest.approx(2.128)
    assert pacer.budgets.rate.factor < 1.0  # the next 429 is made rarer
    pacer.on_throttled("IncomingBytes", None)  # no header: a default wait, still obeyed
    assert pacer.budgets.delay(clock.now, 0) == pytest.approx(1.0)


@pytest.mark.anyio
async def test_pacer_request_budget_spreads_calls_over_the_window() -> None:
    clock = FakeClock()
    pacer = _pacer(clock, requests=10, request_window=5.0, concurrency=100)
    for _ in range(25):
        async with pacer.slot():
            pass
    # 10 at once, then each next one when the oldest leaves the 5 s window
    assert clock.now - 1000.0 == pytest.approx(10.0)


@pytest.mark.anyio
async def test_pacer_upload_budget_counts_body_bytes() -> None:
    clock = FakeClock()
    pacer = _pacer(clock, upload_bytes=1000, upload_window=10.0, concurrency=100)
    for _ in range(3):
        async with pacer.slot(400):
            pass
    assert clock.now - 1000.0 == pytest.approx(10.0)  # the third waited for the first two
    async with pacer.slot(0):  # a GET carries no body: not held back by the byte budget
        pass
    assert clock.now - 1000.0 == pytest.approx(10.0)


@pytest.mark.anyio
async def test_adaptive_cut_lowers_the_effective_budget() -> None:
    clock = FakeClock()
    pacer = _pacer(clock, requests=10, request_window=5.0, concurrency=100)
    pacer.budgets.rate = AdaptiveRate(factor=0.5)
    for _ in range(5):
        async with pacer.slot():
            pass
    assert clock.now == 1000.0
    assert pacer.budgets.delay(clock.now, 0) == pytest.approx(5.0)


@pytest.mark.anyio
async def test_concurrency_429_waits_for_one_of_our_calls_to_finish() -> None:
    clock = FakeClock()
    pacer = _pacer(clock, concurrency=4)
    pacer.on_throttled("MailboxConcurrency", 0.05)
    assert pacer.budgets.delay(clock.now, 0) == 0.0  # not a time block
    order: list[str] = []

    async def holder() -> None:
        async with pacer.slot():
            order.append("holding")
            await clock.sleep(3.0)
        order.append("released")

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        await anyio.lowlevel.checkpoint()
        await pacer.wait_for_release(at_least=0.05)
        order.append("retry")
    assert order == ["holding", "released", "retry"]


# -- % of ceiling while active -----------------------------------------------------------------
async def _send(p: MailboxPacer, clock: FakeClock, nbytes: int, latency: float = 0.0) -> None:
    async with p.slot(nbytes):
        clock.now += latency


@pytest.mark.anyio
async def test_ceiling_share_is_full_for_a_client_that_fills_every_window_and_ends() -> None:
    """Bursts of a whole window every window, then nothing left: 100%, whatever the last
    window held (the mailbox had nothing more to send)."""
    clock = FakeClock()
    lim = PacerLimits(upload_bytes=1000, upload_window=10.0, margin=1.0, window_slack=0.0)
    p = MailboxPacer("m", lim, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        await _send(p, clock, 1000)  # a full window's worth, waiting for room each time
    await _send(p, clock, 300)  # the last, partial window
    assert p.account.upload_bytes == 5300
    assert p.account.ceiling_share() == pytest.approx(1.0, abs=0.01)
    assert p.account.active_s() == pytest.approx(50.0)


def _spell(sends: list[tuple[float, int]], start: float, end: float) -> float:
    """An upload spell from ``start`` to ``end`` (items ready all along) with these sends,
    against a budget of 1,000 per 10 s: the shortest time possible over the time taken."""
    w = SlidingWindow(1000, 10.0)
    act = Activity(w, 1000, 10.0)
    act.enter(start)
    for t, n in sends:
        act.sent(t, n)
        w.record(t, n)
    act.leave(end)
    _, best, taken = act.totals(end)
    return best / taken


def test_ceiling_share_counts_room_left_unused_while_items_were_ready() -> None:
    """Six half-window sends one window apart while the next item was always ready (a slow
    pipeline): a client sending whenever the budget allows had sent the 3,000 bytes by the
    start of the third window (20 s); the last send went out at 50 s."""
    assert _spell([(10.0 * k, 500) for k in range(6)], 0.0, 60.0) == pytest.approx(20 / 50)


def test_a_partial_last_window_sent_at_once_scores_full_and_holding_it_back_does_not() -> None:
    """3.1 windows of bytes need a fourth window whatever the client. Sending the last part
    the moment the budget allows is the best possible (100%); holding it back until the
    window has emptied ends later and scores less. A measure of bytes against the budget's
    average rate scored these the other way round (88% and 98%)."""
    whole = [(0.0, 1000), (10.0, 1000), (20.0, 600), (20.5, 400)]
    at_once = _spell([*whole, (30.0, 100)], 0.0, 30.1)
    held = _spell([*whole, (30.6, 100)], 0.0, 30.7)
    assert at_once == pytest.approx(1.0)
    assert held == pytest.approx(30 / 30.6)


def test_the_shortest_time_starts_from_the_window_the_spell_found() -> None:
    """A spell that begins at 4 s with 800 of the 1,000 budget still in the window (sent at
    0 s) can send 200 at once, 800 more at 10 s, 200 more at 14 s and 800 more at 20 s."""
    w = SlidingWindow(1000, 10.0)
    w.record(0.0, 800)
    act = Activity(w, 1000, 10.0)
    act.enter(4.0)
    assert act.shortest(200) == pytest.approx(0.0)
    assert act.shortest(1000) == pytest.approx(6.0)
    assert act.shortest(1200) == pytest.approx(10.0)
    assert act.shortest(1800) == pytest.approx(16.0)


@pytest.mark.parametrize(("late", "share"), [(0.0, 1.0), (0.5, 1.0 / 1.5)])
def test_a_spell_bound_by_the_concurrency_limit_is_at_its_ceiling(
    late: float, share: float
) -> None:
    """Four small uploads with two slots, each answered after 1 s: the budget never binds,
    but no client sends the last two before the first two are answered (1 s). Sending them
    then is 100%; sending them 0.5 s after the slots came free is not."""
    w = SlidingWindow(1000, 10.0)
    act = Activity(w, 1000, 10.0, slots=2)
    act.enter(0.0)
    act.sent(0.0, 10)
    act.sent(0.0, 10)
    act.answered(1.0)
    act.answered(1.0)
    act.sent(1.0 + late, 10)
    act.sent(1.0 + late, 10)
    act.leave(2.0 + late)
    _, best, taken = act.totals(3.0)
    assert best / taken == pytest.approx(share)


def _last_window_at_the_slots(late: float) -> float:
    """Two slots, 1,000 per 10 s, each request answered after 1 s: two of 500 fill the first
    window at 0 s; the last window's 600 go as six of 100 from 10 s, two at a time, the
    next two when the slots come free (``late``: that long after)."""
    w = SlidingWindow(1000, 10.0)
    act = Activity(w, 1000, 10.0, slots=2)
    act.enter(0.0)
    for _ in range(2):
        act.sent(0.0, 500)
        w.record(0.0, 500)
    act.answered(1.0)
    act.answered(1.0)
    for k in range(3):
        t = 10.0 + k * (1.0 + late)
        for _ in range(2):
            act.sent(t, 100)
            w.record(t, 100)
        act.answered(1.0)
        act.answered(1.0)
    act.leave(12.0 + 2 * late + 1.0)
    _, best, taken = act.totals(20.0)
    return best / taken


def test_the_last_window_sent_through_the_slots_as_they_free_is_at_its_ceiling() -> None:
    """No client sends the last window's six requests at once with two slots: the last
    goes two answers (2 s) after the window opened, so sending each the moment its slot
    comes free is 100% (it scored 10 / 12 while the bound took the budget's and the
    slots' times apart); sending each pair 0.5 s after the slots freed is not."""
    assert _last_window_at_the_slots(0.0) == pytest.approx(1.0)
    assert _last_window_at_the_slots(0.5) == pytest.approx(12 / 13)


def _two_after_four(late: float) -> float:
    """Four slots, a budget far off: six imports of 100 bytes ready at 0 s, four sent at
    once and answered after 0.10, 0.11, 0.12 and 0.13 s; the fifth and sixth sent ``late``
    after the first two answers (as ``fleet`` at 400 pairs makes them: a pair's share of
    the byte budget at a time, one or two answers a spell)."""
    clock = FakeClock(0.0)
    acct = MailboxAccount(
        Activity(SlidingWindow(10**6, 10.0), 10**6, 10.0, slots=4),
        Activity(SlidingWindow(10**9, 5.0), 10**9, 5.0, slots=4),
        clock,
    )
    events: list[tuple[float, int, str, float]] = []  # (at, order, what, duration)
    for k, d in enumerate((0.10, 0.11, 0.12, 0.13)):
        events += [(0.0, k, "send", 0.0), (d, k, "answer", d)]
    for k, at in enumerate((0.10 + late, 0.11 + late)):
        events += [(at, 4 + k, "send", 0.0), (at + 0.1, 4 + k, "answer", 0.1)]
    for _ in range(6):
        acct.enter(0.0, 100)
    for at, _, what, d in sorted(events, key=lambda e: (e[0], e[2] == "send")):
        clock.now = at
        if what == "send":
            acct.sent(at, 100)
        else:
            acct.answered(d, 100)
            acct.succeeded()
            acct.leave(at, 100)
    share = acct.ceiling_share()
    assert share is not None
    return share


def test_sends_through_the_slots_the_moment_they_free_are_at_the_ceiling() -> None:
    """The fastest client sends the fifth and sixth when the first two answers come (0.11 s
    after the spell began): a client that did is at 100% (it scored 48%, the durations
    over the slots taking 0.21 s over four as the shortest time, as if the two answers
    could be cut to fill the four slots evenly); one that sent each 0.02 s after its slot
    came free is not."""
    assert _two_after_four(0.0) == pytest.approx(1.0)
    assert _two_after_four(0.02) == pytest.approx(0.11 / 0.13)


@pytest.mark.anyio
async def test_idle_time_between_spells_is_not_active() -> None:
    clock = FakeClock()
    lim = PacerLimits(upload_bytes=1000, upload_window=10.0, margin=1.0, window_slack=0.0)
    p = MailboxPacer("m", lim, clock=clock, sleep=clock.sleep)
    await _send(p, clock, 1000, latency=1.0)
    clock.now += 3600.0  # nothing ready for an hour
    await _send(p, clock, 1000, latency=1.0)
    assert p.account.active_s() == pytest.approx(2.0)
    # each spell sent its item the moment it had it: nothing was held back, and the idle
    # hour counts neither way
    assert p.account.ceiling_share() == pytest.approx(1.0)


@pytest.mark.anyio
@pytest.mark.parametrize(("pooled_at", "share"), [(1001.7, 1.0), (1000.0, 0.0)])
async def test_a_body_sent_the_moment_it_was_exported_is_at_the_ceiling(
    pooled_at: float, share: float
) -> None:
    """An import in flight for 2 s (a slow service); the next item is exported 1.7 s in
    and goes at once, while the first is still in flight (so one spell). No client sends a
    body before it has it: 100% (it scored 0 when the spell's bytes were taken to be ready
    at its start). The same item in the ready pool from the start and taken only 1.7 s in
    (the engine's own pool or importers held it) is not excused."""
    from copyengine.pipeline.ready import Ready, ReadyItems
    from copyengine.pipeline.work import Exportable

    clock = FakeClock()
    lim = PacerLimits(upload_bytes=10**6, upload_window=10.0, margin=1.0, window_slack=0.0)
    p = MailboxPacer("m", lim, clock=clock, sleep=clock.sleep)
    pool = ReadyItems(4, p.upload_room, overdue_s=20.0, clock=clock)
    first, after = cast(Exportable, object()), cast(Exportable, object())
    pool.add(Ready(first, 500, clock.now))
    assert await pool.get() is first
    async with p.slot(500):
        clock.now += 1.7
        pool.add(Ready(after, 500, pooled_at))
        assert await pool.get() is after
        async with p.slot(500):
            clock.now += 0.1
        clock.now += 0.2
    assert p.account.ceiling_share() == pytest.approx(share, abs=0.01)


@pytest.mark.anyio
async def test_upload_room_tracks_the_window() -> None:
    clock = FakeClock()
    lim = PacerLimits(upload_bytes=1000, upload_window=10.0, margin=1.0, window_slack=0.0)
    p = MailboxPacer("m", lim, clock=clock, sleep=clock.sleep)
    assert p.upload_room() == float("inf")  # an empty window lets anything through
    await _send(p, clock, 400)
    assert p.upload_room() == pytest.approx(600)
    clock.now += 10.0
    assert p.upload_room() == float("inf")


@pytest.mark.anyio
async def test_requests_without_a_body_do_not_count_as_time_with_items_ready() -> None:
    """Setting a mailbox up (folders, an import session: requests without a body) is not
    time the upload budget could have been used: only uploads count for the byte share."""
    clock = FakeClock()
    lim = PacerLimits(upload_bytes=1000, upload_window=10.0, margin=1.0, window_slack=0.0)
    p = MailboxPacer("m", lim, clock=clock, sleep=clock.sleep)
    for _ in range(30):
        await _send(p, clock, 0, latency=1.0)  # 30 s of setup
    for _ in range(3):
        await _send(p, clock, 1000)
    assert p.account.active_s() == pytest.approx(50.0)
    assert p.account.upload_active_s == pytest.approx(20.0)
    assert p.account.ceiling_share() == pytest.approx(1.0, abs=0.01)


def test_sliding_window_keeps_few_entries_and_never_expires_early() -> None:
    """A busy mailbox's 10-minute request window: 20,000 sends are kept as at most ~1,000
    buckets, and the wait computed is never shorter than the exact one (nor longer by more
    than one bucket's span)."""
    import random

    rng = random.Random(5)
    width, limit = 600.0, 10_000
    w = SlidingWindow(limit=limit, width=width)
    exact: list[tuple[float, int]] = []
    t = 0.0
    for _ in range(20_000):
        t += rng.expovariate(30.0)  # ~30 requests a second
        if w.delay(t, 1) == 0.0:
            w.record(t, 1)
            exact.append((t, 1))
        assert len(w) <= SlidingWindow.BUCKETS + 1
        if rng.random() < 0.01:
            live = [(s, a) for s, a in exact if s > t - width]
            excess = sum(a for _, a in live) + 1 - limit
            want = 0.0
            for s, a in live:
                if excess <= 0:
                    break
                excess -= a
                want = s + width - t
            got = w.delay(t, 1)
            assert want - 1e-9 <= got <= want + width / SlidingWindow.BUCKETS + 1e-9


def test_sliding_window_since_sums_what_went_after_the_start() -> None:
    """``since`` (found by bisection, summed from the nearer end) gives what the entries
    after ``start`` hold, for starts before, inside, on and after them, while sends are
    bucketed, expired and taken back."""
    import random

    rng = random.Random(11)
    w = SlidingWindow(limit=10**9, width=60.0)
    t = 0.0
    for step in range(3_000):
        t += rng.expovariate(20.0)
        if rng.random() < 0.05:
            w.forget(t, rng.randint(1, 3_000))
        else:
            w.record(t, rng.randint(1, 2_000), rng.choice((None, 0.01, 1.0)))
        ev = list(w.events())
        assert w.total == sum(a for _, a, _ in ev)
        starts = [t - 61.0, t - rng.uniform(0.0, 60.0), t, t + 1.0]
        if ev:
            starts.append(ev[rng.randrange(len(ev))][0])  # on an entry's own time
        for start in starts:
            assert w.since(start) == sum(a for s, a, _ in ev if s > start), (step, start)


@pytest.mark.anyio
async def test_a_request_in_flight_holds_its_budget_until_answered() -> None:
    """The service counts a request when it arrives, after we send it: its budget is held
    while it is in flight and given back a window after its answer, never a window after
    it was sent (a slow upload would otherwise be counted out before the service does)."""
    clock = FakeClock()
    lim = PacerLimits(upload_bytes=1000, upload_window=10.0, margin=1.0, window_slack=0.0)
    p = MailboxPacer("m", lim, clock=clock, sleep=clock.sleep)
    await _send(p, clock, 600, latency=3.0)  # sent at 1000, answered at 1003
    assert p.upload_room() == pytest.approx(400)
    assert p.budgets.delay(clock.now, 600) == pytest.approx(10.0)  # 1003 + 10, not 1000 + 10
    entered = anyio.Event()
    order: list[str] = []

    async def slow() -> None:
        async with p.slot(300):
            entered.set()
            await anyio.lowlevel.checkpoint()
            order.append("slow answered")

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow)
        await entered.wait()
        # 300 bytes in flight + 600 recorded: another 300 does not fit until something
        # is answered and then expires
        assert p.budgets.delay(clock.now, 300) > 0
    assert order == ["slow answered"]


def test_the_shortest_time_survives_a_budget_rounded_to_nothing() -> None:
    """A budget configured below a byte (``upload_mb_per_window`` = 1e-9) is one byte a
    window, not a division by zero in the pacer's ``finally``."""
    act = Activity(SlidingWindow(0, 10.0), 0, 10.0)
    act.enter(0.0)
    act.sent(0.0, 3)
    assert act.shortest(3) == pytest.approx(20.0)


@pytest.mark.parametrize(("delay", "share"), [(0.0004, None), (0.2, 0.0)])
def test_a_few_lookups_sent_as_they_came_say_nothing_of_a_ceiling(
    delay: float, share: float | None
) -> None:
    """A delta pass that listed and copied nothing: a target mailbox's five lookups, each
    alone, each sent ``delay`` after it wanted its slot. Sent within the engine's own
    bookkeeping (0.4 ms), no budget or slot bound them: no share of a ceiling ("-" in the
    summary; it read 0%). Held 0.2 s each while nothing bound them, the engine's delay is
    not excused: 0%."""
    clock = FakeClock()
    acct = MailboxAccount(
        Activity(SlidingWindow(10_000, 600.0), 10_000, 600.0),
        Activity(SlidingWindow(10**8, 300.0), 10**8, 300.0),
        clock,
    )
    for k in range(5):
        clock.now = 10.0 * k
        acct.enter(clock.now, 0)
        clock.now += delay
        acct.sent(clock.now, 0)
        clock.now += 0.02
        acct.answered(0.02)
        acct.succeeded()
        acct.leave(clock.now, 0)
    assert acct.requests == 5
    assert acct.ceiling_share() == (None if share is None else pytest.approx(share))
    assert acct.limit_share() == (None if share is None else pytest.approx(share))


def _bodies(sends: list[float], duration: float) -> float:
    """The share of a mailbox with a budget of 1000 bytes in 10 s that sent a body of 600
    (all ready at 0 s) at each of ``sends``, each answered after ``duration``."""
    clock = FakeClock(0.0)
    acct = MailboxAccount(
        Activity(SlidingWindow(10**6, 10.0), 10**6, 10.0, slots=4),
        Activity(SlidingWindow(1000, 10.0), 1000, 10.0, slots=4),
        clock,
    )
    for _ in sends:
        acct.enter(0.0, 600)
    for at in sends:
        clock.now = at
        acct.sent(at, 600)
        clock.now = at + duration
        acct.answered(duration, 600)
        acct.succeeded()
        acct.leave(at + duration, 600)
    share = acct.ceiling_share()
    assert share is not None
    return share


def _three_bodies(late: float) -> float:
    """Three bodies of 600 answered after 0.1 s: no two fit one window, so whatever the
    order the second goes when the first leaves the window (a window after its answer:
    10.1 s) and the third at 20.2 s; each sent ``late`` after that."""
    return _bodies([k * (10.1 + late) for k in range(3)], 0.1)


def test_bodies_sent_the_moment_the_window_has_room_for_them_are_at_the_ceiling() -> None:
    """No client sends part of a body: of three bodies of 0.6 of the budget one goes per
    window, so a client that sent each the moment the window had room for it is at 100%
    (it scored 50%: the budget's bound took the 1,800 bytes as a fluid, done in one window
    and a bit); one a second late each time is not."""
    assert _three_bodies(0.0) == pytest.approx(1.0)
    assert _three_bodies(1.0) == pytest.approx(20.2 / 22.2)


def test_the_fastest_client_gives_a_bodys_room_back_a_window_after_its_answer() -> None:
    """No client knows when between its send and its answer the service counted a body, so
    the fastest one that never goes over the budget, as the pacer, takes its room back a
    window after the answer: two bodies of 0.6 of the budget, the second sent the moment
    the first's answer (after 2 s) has left the window, are at the ceiling (83% when the
    schedule counted each from its send: 10 s against 12 s)."""
    assert _bodies([0.0, 12.0], 2.0) == pytest.approx(1.0)


def test_the_schedules_window_keeps_at_most_a_bucket_per_grain() -> None:
    """A busy mailbox's spell keeps its schedule's window in buckets, as the pacer's own
    (``SlidingWindow.BUCKETS`` a window): 5,000 requests within one window keep no more."""
    act = Activity(SlidingWindow(10**6, 10.0), 10**6, 10.0, slots=4)
    act.enter(0.0)
    for k in range(5000):
        at = k * 0.001
        act.sent(at, 1)
        act.answered(0.0005, at + 0.0005)
    assert 0 < len(act._room) <= SlidingWindow.BUCKETS
    act.leave(5.0)
    assert not act._room
