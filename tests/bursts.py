"""A mailbox's first burst, refused: the setup several pacer tests start from."""

from __future__ import annotations

from copyengine.pacing.step import Budgets


def refused_burst(b: Budgets) -> Budgets:
    """``b`` sent 6 x 1000 bytes at once (answered 0.1-0.35 s) and was refused the 7th at
    0.5 s, the service asking 9.5 s: a budget cut to what went through (``b`` returned)."""
    for k in range(6):
        b.take(1000)
        b.release(0.1 + 0.05 * k, 1000)
    b.take(1000)
    b.release(0.5, 1000)
    b.throttled(0.5, "IncomingBytes", 9.5, 1000)
    return b
