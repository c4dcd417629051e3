"""The one rule for "only parked requests are left" (``pipeline.parked.drained``), read by
the job's drain and by a held pair's own: parked for the quiet time ends it, a request on
the wire or nothing parked keeps it waiting, a service gone ends it unreachable, and the
deadline bounds it. No other pipeline module reads a hold's ``parked`` count."""

from __future__ import annotations

import re
import time
from pathlib import Path

import anyio
import pytest

from copyengine import unsent
from copyengine.pipeline.parked import UNREACHABLE_AFTER_S, Cut, drained

pytestmark = pytest.mark.anyio
PIPELINE = Path(__file__).resolve().parents[1] / "copyengine" / "pipeline"


class Wire:
    def __init__(self) -> None:
        self.sending = 0
        self.down_since: float | None = None

    def down_for(self) -> float:
        return 0.0 if self.down_since is None else time.monotonic() - self.down_since


async def test_only_parked_for_the_quiet_time_ends_it_parked() -> None:
    hold = unsent.Hold()
    hold.parked = 2
    t0 = time.monotonic()
    assert await drained(hold, 30.0, 0.3, poll=0.02) is Cut.PARKED
    assert 0.3 <= time.monotonic() - t0 < 10


async def test_nothing_parked_or_a_request_on_the_wire_waits_for_the_deadline() -> None:
    assert await drained(unsent.Hold(), 0.5, 0.1, poll=0.02) is Cut.DEADLINE
    hold, wire = unsent.Hold(), Wire()
    hold.parked, wire.sending = 1, 1  # parked, but the job's drain has one on the wire
    assert await drained(hold, 0.5, 0.1, wire, poll=0.02) is Cut.DEADLINE
    assert await drained(hold, 5.0, 0.1, poll=0.02) is Cut.PARKED  # a pair's own: no wire


async def test_parked_since_the_last_time_something_moved() -> None:
    hold = unsent.Hold()

    async def flicker() -> None:
        for _ in range(10):  # parked, not parked: the quiet time starts again each time
            hold.parked = 1
            await anyio.sleep(0.1)
            hold.parked = 0
            await anyio.sleep(0.02)
        hold.parked = 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(flicker)
        t0 = time.monotonic()
        assert await drained(hold, 30.0, 0.3, poll=0.01) is Cut.PARKED
        assert time.monotonic() - t0 >= 1.2 + 0.3


async def test_a_service_gone_ends_it_unreachable() -> None:
    hold, wire = unsent.Hold(), Wire()
    hold.parked = 1
    wire.down_since = time.monotonic() - UNREACHABLE_AFTER_S
    assert await drained(hold, 30.0, 0.1, wire, poll=0.02) is Cut.UNREACHABLE


def test_one_rule_in_the_pipeline() -> None:
    readers = sorted(
        f.name
        for f in PIPELINE.glob("*.py")
        if re.search(r"\b(waits|hold)\.parked\b", f.read_text(encoding="utf-8"))
    )
    assert readers == ["parked.py"], readers
