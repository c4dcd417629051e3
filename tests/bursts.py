"""A mailbox's first burst, refused: the setup several pacer tests start from."""

from __future__ import annotations

from copyengine.pacing.step import Budgets


def refused_burst(
    b: Budgets,
    n: int = 6,
    size: int = 1000,
    refused: int = 1000,
    at: float = 0.5,
    retry_after: float = 9.5,
    start: float = 0.1,
    every: float = 0.05,
) -> Budgets:
    """``b`` sent ``n`` x ``size`` bytes at once (answered from ``start``, one each
    ``every`` s) and was refused a body of ``refused`` bytes at ``at``, the service asking
    ``retry_after``: a budget cut to what went through (``b`` returned). By default 6 x
    1000 bytes answered 0.1-0.35 s, the 7th refused at 0.5 s, 9.5 s asked."""
    for k in range(n):
        b.take(size)
        b.release(start + every * k, size)
    b.take(refused)
    b.release(at, refused)
    b.throttled(at, "IncomingBytes", retry_after, refused)
    return b
