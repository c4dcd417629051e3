"""The job's bandwidth cap (``[limits] bwlimit_mb_s``, ``run --bwlimit``): the bytes uploaded
into target mailboxes per second, for the whole process (a run's pairs, a worker's groups).

A token bucket that may go into debt: an upload goes as soon as the balance is not negative,
and takes its whole size from it, so an item larger than one second's worth passes at once
(never stalls, never split) and the uploads after it wait until the debt is paid at the
rate. Over any span ``T`` the bytes let through are at most ``rate * T + burst + one item``;
the burst is half a second of the rate, so a minute holds the rate within a few percent.

The decisions are pure (``Bucket``); ``BandwidthCap`` is the thin loop around them: its
waiters go first come, first served; ``set_rate`` takes effect at once (a waiter computes its
wait again); a drain ends every wait at once, unadmitted (Ctrl-C never waits for a cap); a
cancellation (an abort) ends it as any await."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import anyio

MIB = 1024 * 1024  # the cap's MB (config.MB)
BURST_S = 0.5  # what an idle cap saves up: half a second of its rate
# One wait is at most this long before the waiter looks again (a bound on each sleep; rate
# changes and drains wake it at once anyway).
LONGEST_SLEEP_S = 1.0
MAX_LOOKS = 10_000_000  # bound on one upload's waits (a 150 MB item at 1 kB/s is 150,000)


class Stopping(Protocol):
    """A drain the cap's waits give way to (``pipeline.stop.StopFlag``)."""

    @property
    def draining(self) -> bool: ...

    async def wait(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Bucket:
    """The cap's balance at ``at``: bytes that may go now (negative: a debt, paid at
    ``rate`` bytes per second); at most ``burst`` saved up."""

    rate: float
    burst: float
    balance: float
    at: float

    @classmethod
    def of(cls, rate: float, now: float) -> Bucket:
        burst = rate * BURST_S
        return cls(rate, burst, burst, now)

    def at_time(self, now: float) -> Bucket:
        """The balance at ``now`` (refilled at the rate since ``at``, up to ``burst``)."""
        if now <= self.at:
            return self
        return replace(
            self, balance=min(self.burst, self.balance + (now - self.at) * self.rate), at=now
        )

    def wait_s(self) -> float:
        """Seconds until an upload may go (0: now)."""
        return 0.0 if self.balance >= 0 else -self.balance / self.rate

    def take(self, nbytes: int) -> Bucket:
        """An upload of ``nbytes`` let through (the balance may go into debt)."""
        return replace(self, balance=self.balance - nbytes)

    def retuned(self, rate: float, now: float) -> Bucket:
        """The rate changed at ``now``: what was saved or owed until now stays, capped by
        the new burst; from now on it fills (or is paid off) at the new rate."""
        b = self.at_time(now)
        burst = rate * BURST_S
        return Bucket(rate, burst, min(b.balance, burst), now)


def bytes_per_s(mb_s: float | None) -> float | None:
    if mb_s is None:
        return None
    if mb_s <= 0:
        raise ValueError("a bandwidth cap must be greater than 0 MB/s (None: no cap)")
    return mb_s * MIB


class BandwidthCap:
    """One per process. ``take(nbytes, stop)`` before an upload: True once it may go,
    False when a drain came first (the upload is not to be sent). ``set_rate(mb_s)``
    changes or lifts (None) the cap while uploads wait; ``uploaded`` counts the bytes let
    through.

    ``clock`` and ``speed`` are for tests: the cap's time runs ``speed`` times faster than
    the real sleeps it takes (``clock`` must then run that fast too)."""

    def __init__(
        self,
        mb_s: float | None,
        clock: Callable[[], float] = time.monotonic,
        speed: float = 1.0,
    ) -> None:
        self._clock = clock
        self._speed = speed
        rate = bytes_per_s(mb_s)
        self._bucket = Bucket.of(rate, clock()) if rate is not None else None
        self._mb_s = mb_s
        self._turn = anyio.Lock()  # the waiter at the head of the queue holds it (FIFO)
        self._changed = anyio.Event()
        self.uploaded = 0
        self.waiting = 0  # uploads waiting for the cap now
        self.waited_s = 0.0  # time the head of the queue waited for the cap, in total

    @property
    def mb_s(self) -> float | None:
        """The cap now (None: none)."""
        return self._mb_s

    def set_rate(self, mb_s: float | None) -> None:
        """Change the cap (None: lift it); a waiting upload sees the new rate at once."""
        rate = bytes_per_s(mb_s)
        now = self._clock()
        if rate is None:
            self._bucket = None
        elif self._bucket is None:
            self._bucket = Bucket.of(rate, now)
        else:
            self._bucket = self._bucket.retuned(rate, now)
        self._mb_s = mb_s
        self._changed.set()
        self._changed = anyio.Event()

    async def take(self, nbytes: int, stop: Stopping) -> bool:
        if self._bucket is None:
            self.uploaded += nbytes
            return True
        if stop.draining:
            return False
        self.waiting += 1
        try:
            async with self._turn:
                return await self._head(nbytes, stop)
        finally:
            self.waiting -= 1

    async def _head(self, nbytes: int, stop: Stopping) -> bool:
        """At the head of the queue: wait until the balance allows, a drain, or no cap."""
        started = self._clock()
        for _ in range(MAX_LOOKS):
            if stop.draining:
                return False
            bucket = self._bucket
            if bucket is None:
                break
            bucket = bucket.at_time(self._clock())
            wait = bucket.wait_s()
            if wait <= 0:
                self._bucket = bucket.take(nbytes)
                break
            self._bucket = bucket
            await self._sleep(min(wait, LONGEST_SLEEP_S) / self._speed, stop)
        self.uploaded += nbytes
        self.waited_s += self._clock() - started
        return True

    async def _sleep(self, seconds: float, stop: Stopping) -> None:
        """``seconds``, or less: until the rate changes or a drain starts."""
        changed = self._changed
        with anyio.move_on_after(seconds):
            async with anyio.create_task_group() as tg:

                async def on_stop() -> None:
                    await stop.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(on_stop)
                await changed.wait()
                tg.cancel_scope.cancel()
