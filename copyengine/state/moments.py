"""Moments: the clock of the evidence that tells two items of one search key apart (review
R1b, ``plan.apart``). Microseconds since the epoch from this host's clock, never going back
within the process (a clock stepped back, or two readings in one microsecond, give the last
moment plus one), so that moments written by the segments of a pass on several hosts
compare as their clocks do (kept in step by NTP: a skew larger than the time between a
folder's round and an item's listing could prove two items apart that are not)."""

from __future__ import annotations

import time


class _Clock:
    last = 0


def moment() -> int:
    """Now, in microseconds since the epoch, later than every moment this process gave."""
    now = time.time_ns() // 1000
    _Clock.last = now if now > _Clock.last else _Clock.last + 1
    return _Clock.last
