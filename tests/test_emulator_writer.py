"""The emulator's other writer in a mailbox (``emulator.throttle.Background``) writes on its
own clock: a write every window / ``WRITER_STEPS`` of its share, each accepted at its own
time if the sliding window has room then (stamped with that time), refused and retried at
its next step otherwise, never owed more than a window's share."""

from __future__ import annotations

import itertools

import pytest

from copyengine.emulator.throttle import WRITER_STEPS, Background, Limits, Throttle

BUDGET = 1000
WINDOW = 10.0
STEP = WINDOW / WRITER_STEPS
SHARE = 0.5
CHUNK = int(SHARE * BUDGET / WRITER_STEPS)


def _throttle(share: float = SHARE) -> Throttle:
    th = Throttle(
        Limits(
            requests=None,
            app_requests=None,
            concurrency=None,
            upload_bytes=BUDGET,
            upload_window=WINDOW,
        )
    )
    th.background = Background(share)
    return th


def test_over_a_long_idle_stretch_it_takes_its_share_per_window() -> None:
    th = _throttle()
    assert th.admit(0.0, "app", "m", 1).reason is None  # it was writing before we came
    assert th.upload_window_bytes(0.0, "m") == 1 + SHARE * BUDGET
    for k in range(1, 31):  # 30 windows looked at every window, then once after 50 more
        t = k * WINDOW + 0.3 * STEP  # between two of its steps
        assert th.upload_window_bytes(t, "m") == SHARE * BUDGET, k
    assert th.background_bytes()["m"] == SHARE * BUDGET * 31
    # every write on its own clock, a step apart, one step's share each
    writes = th.background_writes("m")
    assert {b for _, b in writes} == {CHUNK}
    assert [round(b - a, 6) for (a, _), (b, _) in itertools.pairwise(writes)] == [STEP] * (
        len(writes) - 1
    )
    # a stretch of 50 windows with nothing asked: bounded work, the same share
    assert th.upload_window_bytes(80 * WINDOW + 0.3 * STEP, "m") == SHARE * BUDGET
    assert th.background_bytes()["m"] == pytest.approx(SHARE * BUDGET * 81, abs=CHUNK)


def test_a_client_taking_all_room_leaves_it_its_share_as_its_old_writes_leave() -> None:
    th = _throttle()
    t = 0.0
    ours = 0
    for k in range(4 * 4 * WRITER_STEPS):  # 4 windows, ours 4 times a step, greedy
        t = k * STEP / 4 + STEP / 8
        room = BUDGET - th.upload_window_bytes(t, "m")
        if room > 0:
            assert th.admit(t, "app", "m", room).reason is None
            th.release("app", "m")
            ours += room
        # each of its old writes leaves at its step, where it writes again: its share
        if t > WINDOW:
            in_window = sum(b for at, b in th.background_writes("m") if at > t - WINDOW)
            assert in_window == SHARE * BUDGET, t
    assert th.upload_window_bytes(t, "m") == BUDGET
    steps = int(t / STEP)
    assert th.background_bytes()["m"] == SHARE * BUDGET + CHUNK * steps  # never refused
    assert ours == pytest.approx(SHARE * BUDGET * 4, abs=SHARE * BUDGET)


def test_held_out_by_ours_it_is_refused_and_pays_at_most_its_share_later() -> None:
    th = _throttle(0.0)
    # ours fills the window before the writer comes (it starts then, nothing in the window
    # of its own), and ours takes every place back the moment it leaves
    assert th.admit(0.0, "app", "m", BUDGET).reason is None
    th.release("app", "m")
    th.background = Background(SHARE)
    start = STEP / 10
    assert th.upload_window_bytes(start, "m") == BUDGET  # the writer starts: refused
    for k in range(1, 3 * WRITER_STEPS + 1):
        t = k * STEP  # ours on its own clock, a tenth of a step before the writer's
        room = BUDGET - th.upload_window_bytes(t, "m")
        if room > 0:  # what of ours left the window: ours again at once
            assert th.admit(t, "app", "m", room).reason is None
            th.release("app", "m")
    assert th.background_bytes().get("m", 0) == 0  # every write refused
    # ours stops: its writes refused are owed, a window's share at most, paid in one piece
    # at its first step with room, then a step's share a step
    quiet = t
    for _ in range(3 * WRITER_STEPS):
        t += STEP
        th.upload_window_bytes(t, "m")
    after = th.background_writes("m")
    assert after[0][1] == SHARE * BUDGET  # its share: not the 3 windows it was refused
    assert all(b == CHUNK for _, b in after[1:])
    assert after[0][0] >= quiet
    assert th.background_bytes()["m"] == SHARE * BUDGET + CHUNK * (len(after) - 1)
    assert th.upload_window_bytes(t, "m") == SHARE * BUDGET


def test_its_bytes_leave_the_window_one_window_after_they_were_stamped() -> None:
    th = _throttle(0.2)  # 200 per window: 10 per step
    assert th.admit(0.0, "app", "m", 600).reason is None  # 200 of its own + 600 of ours
    th.release("app", "m")
    # its writes at 0.5, 1.0, ... 5.0: each 10, each stamped at its step
    assert th.upload_window_bytes(5.0, "m") == 800  # its old writes left as new ones came
    writes = [w for w in th.background_writes("m") if w[0] <= 5.0]
    assert writes == [(STEP * (i + 1), 10) for i in range(10)]
    # ours leaves at 10.0 (stamped 0.0); its write stamped 0.5 is still in at 10.49...
    at = 10.0 + STEP * 0.98
    assert th.upload_window_bytes(at, "m") == 200
    stamped = th.background_writes("m")
    in_window = [(s, b) for s, b in stamped if s > at - WINDOW]
    assert sum(b for _, b in in_window) == 200 and in_window[0][0] == STEP
    # ... and gone at 10.5, replaced by its write stamped 10.5
    assert th.upload_window_bytes(10.5, "m") == 200
    assert next(s for s, _ in th.background_writes("m") if s > 10.5 - WINDOW) == 2 * STEP
    # a request of ours that needs room it does not have is refused until its oldest
    # write leaves (Retry-After: one window after that write's stamp)
    assert th.admit(10.5, "app", "m", 795).reason is None
    th.release("app", "m")
    v = th.admit(10.6, "app", "m", 10)
    assert v.reason == "IncomingBytes"
    assert v.retry_after == pytest.approx(2 * STEP + WINDOW - 10.6)


def test_the_same_writer_is_replayed_the_same_way() -> None:
    def trace() -> list[tuple[float, int]]:
        th = _throttle(0.3)
        t = 0.0
        for i in range(400):
            t += 0.137 * (1 + i % 7)
            if th.admit(t, "app", "m", 40 + 13 * (i % 5)).reason is None:
                th.release("app", "m")
        return th.background_writes("m")

    assert trace() == trace()
