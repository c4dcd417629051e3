"""A job-wide budget of bytes in flight (exported data not yet imported)."""

from __future__ import annotations

import anyio


class ByteBudget:
    """``acquire(n)`` waits until ``n`` more bytes fit; one item larger than the whole budget
    is let through alone, so a huge item slows the job down instead of stopping it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self.peak = 0
        self._cond = anyio.Condition()

    async def acquire(self, n: int) -> None:
        async with self._cond:
            while self.in_use > 0 and self.in_use + n > self.limit:
                await self._cond.wait()
            self.in_use += n
            self.peak = max(self.peak, self.in_use)

    def add(self, n: int) -> None:
        """Account ``n`` more bytes already held, without waiting (data turned out larger
        than estimated: waiting here, holding it, could wait on ourselves)."""
        self.in_use += n
        self.peak = max(self.peak, self.in_use)

    async def release(self, n: int) -> None:
        async with self._cond:
            self.in_use -= n
            self._cond.notify_all()
