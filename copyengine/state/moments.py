"""Moments: the clock of the evidence that tells two items of one search key apart (review
R1b, ``plan.apart``), which compares them only by order (``a.seen < kb``): a moment taken
after an event is later than every moment taken before it began.

This is one host's clock (``Store.moment`` on SQLite): microseconds since the epoch, never
going back within the process (a clock stepped back, or two readings in one microsecond,
give the last moment plus one), nor before the latest moment the state file holds
(``not_before``: a clock set back between two runs, or the file moved to a host behind).
A store several hosts share (PostgreSQL) takes its moments from the database instead (a
sequence: ``postgres.MOMENTS_FROM``), as each host's clock would order the segments of a
pass on several hosts as the clocks say, not as the events happened (a host behind by
minutes made a move two items: tests/test_hosts_clock.py)."""

from __future__ import annotations

import time


class _Clock:
    last = 0


def moment() -> int:
    """Now, in microseconds since the epoch, later than every moment this process gave."""
    now = time.time_ns() // 1000
    _Clock.last = now if now > _Clock.last else _Clock.last + 1
    return _Clock.last


def not_before(latest: int) -> None:
    """Every moment from now on later than ``latest`` (one a state holds)."""
    _Clock.last = max(_Clock.last, latest)
