"""When a pair may run: the operator's controls (suspended pairs, schedule windows,
StartAfter / CompleteAfter) seen by the pipeline as one ``Gate``, and the order pairs take
the job's slots in (``priority``).

The pipeline only asks; what holds a pair is decided outside it (``copyengine.controls``,
handed in by ``wiring``). A pair held before it starts waits without a slot; a pair held
while it runs drains alone (its own ``StopFlag.child``: no new work, in-flight work settled)
and waits to be continued, in this run when its hold lifts by itself (a window opens, a
time comes) or the operator resumes it while other pairs still run."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import anyio

from ..config import Pair
from ..plan import PassKind

# how often the gate's sources are read again (the store's suspensions, the clock)
POLL_S = 1.0


class HoldKind(StrEnum):
    SUSPENDED = "suspended"  # by the operator (``copyengine suspend``); lifts on resume
    SCHEDULE = "schedule"  # outside the job's ``[schedule]`` windows
    START_AFTER = "start_after"  # the pair's or wave's ``start_after`` has not come
    COMPLETE_AFTER = "complete_after"  # a cutover before the pair's ``complete_after``


@dataclass(frozen=True, slots=True)
class Hold:
    kind: HoldKind
    text: str  # what the screen, ``status`` and the report say
    until: datetime | None = None  # when it lifts by itself; None: only the operator lifts it

    @property
    def by_operator(self) -> bool:
        return self.until is None


class Gate(Protocol):
    """What holds a pair now (``None``: it may run). ``hold`` is synchronous and cheap (it
    reads what ``refresh`` last read); ``refresh`` is called every ``POLL_S``."""

    def hold(self, pair: Pair, kind: PassKind) -> Hold | None: ...

    async def refresh(self) -> None: ...


class OpenGate:
    """No controls: every pair may always run."""

    def hold(self, pair: Pair, kind: PassKind) -> Hold | None:
        return None

    async def refresh(self) -> None:
        return None


OPEN = OpenGate()


class Ticker:
    """Wakes every waiter once per refresh of the gate (``tick``); ``run`` refreshes it
    every ``poll`` seconds until cancelled. After each refresh it also calls every check
    registered with ``checking``, in its own task: a running pair's watch registers one and
    sleeps until it says so, where a task per pair woken every tick, each with its own
    timeout timer, cost 2 loop handles per pair per second (issue 26: 0.5 handles per item
    in a 200-pair ``fleet``) to find nothing."""

    def __init__(self, gate: Gate, poll: float = POLL_S) -> None:
        self.gate = gate
        self.poll = poll
        self._tick = anyio.Event()
        self._checks: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()

    async def run(self) -> None:
        while True:
            await anyio.sleep(self.poll)
            await self.gate.refresh()
            tick, self._tick = self._tick, anyio.Event()
            tick.set()
            for check in list(self._checks.values()):
                check()

    @contextmanager
    def checking(self, check: Callable[[], None]) -> Iterator[None]:
        """``check()`` after every refresh while inside (synchronous: it must not raise)."""
        key = next(self._ids)
        self._checks[key] = check
        try:
            yield
        finally:
            del self._checks[key]

    async def next(self) -> None:
        await self._tick.wait()


class PrioritySlots:
    """A capacity limiter that hands a freed slot to the highest ``priority`` waiting (first
    come among equals), as ``anyio.CapacityLimiter`` hands it to the first."""

    def __init__(self, total: int) -> None:
        self.free = total
        self._waiting: list[tuple[int, int, anyio.Event]] = []
        self._order = itertools.count()

    @asynccontextmanager
    async def slot(self, priority: int = 0) -> AsyncIterator[None]:
        if self.free > 0 and not self._waiting:
            self.free -= 1
        else:
            entry = (-priority, next(self._order), anyio.Event())
            heapq.heappush(self._waiting, entry)
            try:
                await entry[2].wait()
            except BaseException:
                if entry in self._waiting:  # never handed the slot: leave the line
                    self._waiting.remove(entry)
                    heapq.heapify(self._waiting)
                else:  # handed it while being cancelled: pass it on
                    self._release()
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        if self._waiting:
            heapq.heappop(self._waiting)[2].set()  # the slot passes on, still taken
        else:
            self.free += 1
