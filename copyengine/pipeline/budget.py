"""A job-wide budget of bytes in flight (exported data not yet imported), and the part of it
the job actually needs (``Demand``)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import anyio

from ..config import Limits

# The least the budget follows demand down to (never above the configured budget): this
# much per connection the job may open (an export part of 256 KB on a quarter of them, or
# an import body on each).
PER_CONNECTION = 64 * 1024
FLOOR = 256 * PER_CONNECTION  # at the default 256 connections: 16 MB


class Demand:
    """How many bytes in flight the job needs now: by Little's law, the rate the imports drain
    them times how long they stay. Bytes beyond that only wait, for a connection, the event
    loop or the emulator's core, and they wait in memory: with a thousand unthrottled pairs the
    configured 256 MB filled with exports queued behind 256 connections.

    Each import's time (sent to answered) is observed. Per interval, against the shortest
    import of the last ``history`` intervals (the time an import takes when nothing queues):

    - an import held back by its mailbox's pacer (a throttled mailbox) puts the whole budget
      back at once, and keeps it there until no import has been paced for ``history``
      intervals: a paced mailbox needs its items ready when its window opens, and the
      configured budget is what the operator gave for that (heard when the import is
      answered, or sooner, when another starts while the pacer holds one back: ``pacing``);
    - a mean import over ``shrink_at`` times the shortest is queueing: the budget shrinks by
      ``down`` (to ``FLOOR`` at least);
    - under ``grow_at`` while exports waited for bytes: the budget binds and nothing queues,
      so it grows by ``up`` (to the configured budget at most).

    Between the two an import takes up to about twice its unqueued time: the connections
    stay busy and the memory follows the pairs that have work. (A server answers a little
    more per second with more queued; with 4x instead of 2x ``scale`` peaked at 395 MB
    instead of 270-290 MB, for items/s within this machine's noise.)"""

    def __init__(
        self,
        limit: int,
        *,
        floor: int = FLOOR,
        interval_s: float = 0.5,
        history: int = 20,
        shrink_at: float = 2.0,
        grow_at: float = 1.5,
        down: float = 0.85,
        up: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.floor = min(floor, limit)
        self.interval_s = interval_s
        self.shrink_at, self.grow_at, self.down, self.up = shrink_at, grow_at, down, up
        self._clock = clock
        self._mins: deque[float] = deque(maxlen=history)
        self._start = clock()
        self._n = 0
        self._sum = 0.0
        self._min = float("inf")
        self._paced = False
        self._hold_until = -1.0  # the whole budget is kept until then (a mailbox was paced)
        self.starved = False  # an export waited for bytes during this interval

    def observe(self, seconds: float, paced: bool, effective: int) -> int:
        """One import took ``seconds`` (``paced``: its mailbox's pacer held some request back
        meanwhile); returns the effective budget from now on."""
        if paced:
            self._paced = True
        else:
            self._n += 1
            self._sum += seconds
            self._min = min(self._min, seconds)
        now = self._clock()
        if now - self._start < self.interval_s:
            return effective
        return self._decide(now, effective)

    def pacing(self) -> int:
        """A mailbox's pacer holds an import back right now: the whole budget at once, kept
        as for a paced import (``observe``), without waiting for that import's answer. Told
        only at the answer, a job whose first mailboxes filled their upload windows at once
        heard nothing until those windows gave their room back: the other pairs' exports
        waited on the floor for a whole window (issue 26, ``stricter`` at 1/1: 4 of 8 pairs
        began uploading 5.2 s after the others, a window of the x60 profile, and were the
        job's tail, one mailbox alone for its last window)."""
        self._hold_until = max(
            self._hold_until, self._clock() + self.interval_s * (self._mins.maxlen or 1)
        )
        return self.limit

    def _decide(self, now: float, effective: int) -> int:
        paced, n, total, low, starved = self._paced, self._n, self._sum, self._min, self.starved
        self._start, self._n, self._sum, self._min = now, 0, 0.0, float("inf")
        self._paced = self.starved = False
        if paced:
            self._hold_until = now + self.interval_s * (self._mins.maxlen or 1)
            return self.limit
        if not n or now < self._hold_until:
            return effective
        self._mins.append(low)
        base = min(self._mins)
        mean = total / n
        if mean > self.shrink_at * base:
            return max(self.floor, int(effective * self.down))
        if starved and mean < self.grow_at * base:
            return min(self.limit, int(effective * self.up) + 1)
        return effective


class ByteBudget:
    """``acquire(n)`` waits until ``n`` more bytes fit; one item larger than the whole budget
    is let through alone, so a huge item slows the job down instead of stopping it.

    Bytes are counted against ``effective``, the part of the configured ``limit`` the job
    needs now (``Demand``, fed by ``observe``); a part larger than half of it is counted
    against the configured limit, so a large item does not wait for the job to drain when
    the budget has followed many small ones down.

    Waiters are served first come, first served, and a release wakes only those that now
    fit: with thousands of pairs waiting, waking them all to re-check (a condition's
    ``notify_all``) costs more CPU than the copy itself."""

    @classmethod
    def for_limits(cls, limits: Limits) -> ByteBudget:
        """The budget of ``[limits]``: ``bytes_in_flight``, followed down to what the job
        needs and never below what keeps its ``connections`` busy."""
        floor = limits.connections * PER_CONNECTION
        return cls(limits.bytes_in_flight, Demand(limits.bytes_in_flight, floor=floor))

    def __init__(self, limit: int, demand: Demand | None = None) -> None:
        self.limit = limit
        self.demand = demand if demand is not None else Demand(limit)
        # A job starts on the floor and grows as its exports starve (or all at once, when a
        # mailbox is paced): a thousand pairs starting together would otherwise each fill a
        # part of the whole budget before the first import told how much the job needs.
        self.effective = self.demand.floor
        self.in_use = 0
        self.peak = 0
        self.holders = 0  # pairs holding (or about to hold) part of the budget: fair shares
        # pairs the job runs at once (``pairs_in_parallel``, at most its pairs): the parts an
        # export is cut in are sized for them from the start (``ByteShares.split``)
        self.expected = 0
        self._waiters: deque[tuple[int, anyio.Event]] = deque()

    def _fits(self, n: int) -> bool:
        if self.in_use == 0:
            return True
        bound = self.effective if 2 * n <= self.effective else self.limit
        return self.in_use + n <= bound

    def observe(self, seconds: float, paced: bool) -> None:
        """An import took ``seconds`` (see ``Demand``)."""
        before = self.effective
        self.effective = self.demand.observe(seconds, paced, before)
        if self.effective > before:
            self._wake()

    def pacing(self) -> None:
        """A mailbox's pacer holds an import back now (``Demand.pacing``)."""
        if self.effective < self.limit:
            self.effective = self.demand.pacing()
            self._wake()

    async def acquire(self, n: int) -> None:
        if not self._waiters and self._fits(n):
            self._take(n)
            return
        self.demand.starved = True
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
