"""The pairs of one run through the gate (``pipeline.gate``): a pair runs when nothing holds
it, in the order of its ``priority``; a pair held while it runs drains alone and continues
when its hold lifts. A run ends when every pair is finished, when the job drains, or when
the only pairs left are suspended (nothing but the operator can move them on: they are
reported ``suspended``, exit 8, and ``copyengine resume`` + a new run continues them)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import structlog

from .. import unsent
from ..config import Pair
from ..plan import PassKind
from ..report import JobStats, PairStatus
from .gate import Gate, Hold, PrioritySlots, Ticker
from .parked import Cut, drained
from .stop import StopFlag

# a held pair whose requests left are all parked (waiting on a budget) for this long is cut
# short at once: they are not sent, nothing else of it is on the wire any more
PARKED_S = 2.0


log = structlog.get_logger("copyengine.job")


@dataclass
class Admission:
    gate: Gate
    kind: PassKind
    stop: StopFlag
    stats: JobStats
    slots: PrioritySlots
    ticker: Ticker
    drain_timeout_s: float
    # False (a worker): a held pair is not waited for here; its segment ends with it held
    # and the cluster requeues its group when the hold lifts
    waits: bool = True
    unfinished: set[str] = field(default_factory=set)
    suspended: set[str] = field(default_factory=set)

    async def run(self, p: Pair, copy: Callable[[StopFlag], Awaitable[None]]) -> None:
        """Copy ``p`` (``copy`` with the pair's own stop flag) once nothing holds it, and
        again each time it was held while running and its hold lifted."""
        self.unfinished.add(p.key)
        try:
            while await self._open(p):
                async with self.slots.slot(p.priority):
                    if self.stop.draining or self.gate.hold(p, self.kind) is not None:
                        continue  # the slot came late: look again
                    if not await self._copy(p, copy):
                        return
                self.stats.pairs[p.key].continued()
                log.info("pair.continuing", pair=p.key)
        finally:
            self.unfinished.discard(p.key)
            self.suspended.discard(p.key)

    async def _copy(self, p: Pair, copy: Callable[[StopFlag], Awaitable[None]]) -> bool:
        """One go at the pair; True when it was held and is to continue."""
        own = self.stop.child()
        try:
            # the pair's own drain, as its requests' waits see it: held, nothing more is sent
            with unsent.opened() as waits:
                async with anyio.create_task_group() as tg:
                    with anyio.CancelScope() as scope:
                        tg.start_soon(self._watch, p, own, waits, scope)
                        await copy(own)
                    tg.cancel_scope.cancel()
        finally:
            own.close()
        return own.held

    async def _open(self, p: Pair) -> bool:
        """Until nothing holds ``p`` (True), or the run ends for it (False): the job drains,
        this run does not wait for holds, or every pair left is suspended."""
        shown: Hold | None = None
        while not self.stop.draining:
            hold = self.gate.hold(p, self.kind)
            if hold is None:
                self.suspended.discard(p.key)
                return True
            if hold != shown:
                self._held(p, hold)
                shown = hold
            if hold.by_operator:
                self.suspended.add(p.key)
            else:
                self.suspended.discard(p.key)
            if not self.waits or self.unfinished <= self.suspended:
                return False
            with anyio.move_on_after(2 * self.ticker.poll):
                await self.ticker.next()
        return False

    def _held(self, p: Pair, hold: Hold) -> None:
        st = self.stats.pairs[p.key]
        st.status = PairStatus.SUSPENDED if hold.by_operator else PairStatus.WAITING
        st.hold = hold.text
        log.info("pair.held", pair=p.key, hold=hold.kind.value, why=hold.text)

    async def _watch(
        self, p: Pair, own: StopFlag, waits: unsent.Hold, scope: anyio.CancelScope
    ) -> None:
        """While ``p`` runs: at the first hold, drain it alone (what waits on a budget is
        not sent); once only parked requests are left (``PARKED_S``), or past the drain's
        deadline, cut it short (what was in flight is settled by its continuation or the
        next run)."""
        # the ticker looks after each refresh (``Ticker.checking``) and wakes this task only
        # for a hold or a drain: a task per pair woken every tick cost more than it found
        loop = asyncio.get_running_loop()
        due: asyncio.Future[None] = loop.create_future()

        def check() -> None:
            if due.done():
                return
            try:
                found = own.draining or self.gate.hold(p, self.kind) is not None
            except Exception:  # raised again below, in this pair's own task
                found = True
            if found:
                due.set_result(None)

        with self.ticker.checking(check):
            while not own.draining:
                await due
                due = loop.create_future()
                hold = self.gate.hold(p, self.kind)
                if hold is not None and not own.draining:
                    log.warning("pair.holding", pair=p.key, hold=hold.kind.value, why=hold.text)
                    own.drain(hold)
                    waits.drain()
        if not own.held:
            return  # the job's drain: the job's own watch cuts it short
        if await drained(waits, self.drain_timeout_s, PARKED_S) is Cut.PARKED:
            own.reason = "not sent: held, what was left waited on a budget"
        else:
            own.reason = (
                f"not finished: the hold's {self.drain_timeout_s:.0f} s drain deadline passed"
            )
        log.warning("pair.drain_cut_short", pair=p.key, reason=own.reason)
        scope.cancel()
