"""A job-wide budget of bytes in flight (exported data not yet imported)."""

from __future__ import annotations

from collections import deque

import anyio


class ByteBudget:
    """``acquire(n)`` waits until ``n`` more bytes fit; one item larger than the whole budget
    is let through alone, so a huge item slows the job down instead of stopping it.

    Waiters are served first come, first served, and a release wakes only those that now
    fit: with thousands of pairs waiting, waking them all to re-check (a condition's
    ``notify_all``) costs more CPU than the copy itself."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self.peak = 0
        self.holders = 0  # pairs holding (or about to hold) part of the budget: fair shares
        self._waiters: deque[tuple[int, anyio.Event]] = deque()

    def _fits(self, n: int) -> bool:
        return self.in_use == 0 or self.in_use + n <= self.limit

    async def acquire(self, n: int) -> None:
        if not self._waiters and self._fits(n):
            self._take(n)
            return
        entry = (n, anyio.Event())
        self._waiters.append(entry)
        try:
            await entry[1].wait()
        except BaseException:
            if entry in self._waiters:
                self._waiters.remove(entry)
            elif entry[1].is_set():
                self._give(n)  # granted as we were cancelled: hand it on
            raise

    def _take(self, n: int) -> None:
        self.in_use += n
        self.peak = max(self.peak, self.in_use)

    def _wake(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            n, event = self._waiters.popleft()
            self._take(n)  # taken on the waiter's behalf, in order
            event.set()

    def _give(self, n: int) -> None:
        self.in_use -= n
        self._wake()

    def add(self, n: int) -> None:
        """Account ``n`` more bytes already held, without waiting (data turned out larger
        than estimated: waiting here, holding it, could wait on ourselves)."""
        self._take(n)

    async def release(self, n: int) -> None:
        self._give(n)
