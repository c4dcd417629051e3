"""One pacer per (app, mailbox), shared by every task that touches that mailbox.

It keeps the mailbox under all of Exchange's limits at once: at most ``concurrency`` of our
requests in flight, the request and upload-bytes budgets over their sliding windows, any
``Retry-After`` the service gave (up to ``PacerLimits.max_retry_after``), and (through
``aiolimiter``) the app-wide rate. What to do next is decided by the pure ``step.step``; this loop
applies it. What the pacer let through is counted in its account (``accounting.MailboxAccount``),
which the pacer never consults. Time is injected (``clock``/``sleep``): tests do not sleep.

A drain never waits for requests that have not been sent (``unsent``): every wait here
ends at once and the request stays parked, unsent, until the run cuts it short.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import structlog
from aiolimiter import AsyncLimiter

from .. import unsent
from ..wakeup import Turns, Wakeup
from .accounting import Activity, MailboxAccount
from .policy import PacerLimits
from .slot import Slot
from .step import MAILBOX_CONCURRENCY, Budgets, Decision, Kind, Limit, Quiet, step
from .trail import Trail

CONCURRENCY_REASON = MAILBOX_CONCURRENCY
MAX_WAIT_ROUNDS = 100_000
T = TypeVar("T")

log = structlog.get_logger("copyengine.pacer")


def _listen(listeners: list[T], listener: T) -> Callable[[], None]:
    """Add ``listener`` to ``listeners``; the call returned takes it out again (once)."""
    listeners.append(listener)

    def stop() -> None:
        if listener in listeners:
            listeners.remove(listener)

    return stop


class MailboxPacer:
    def __init__(
        self,
        key: str,
        limits: PacerLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        # asyncio's own (the engine runs on asyncio): ``anyio.sleep`` looks up the running
        # async library on every call, and a pacer sleeps each time a request waits
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        app_limiter: AsyncLimiter | None = None,
        job: Quiet | None = None,
    ) -> None:
        self.key = key
        self.limits = lim = limits or PacerLimits()
        self._clock = clock
        self._sleep = sleep
        self._app = app_limiter
        self.budgets = b = Budgets(lim, job)  # job: the uploads of every mailbox here
        self._released = Wakeup()  # one of our calls to this mailbox finished
        # tasks waiting only for a free request slot: a call answered frees one slot, so it
        # wakes one of them (all would wake for one to win)
        self._slot_free = Turns()
        # called whenever a slot may have come free (``on_free``): a pair's ready pool, whose
        # importers take a body only when it can go (``ReadyItems``)
        self._on_free: list[Callable[[], None]] = []
        self._capped = False  # a Retry-After over the cap has been logged
        self._trail = Trail(key)  # the log's lines on the budgets in effect
        self.account = MailboxAccount(
            Activity(b.requests, lim.requests, lim.request_window, lim.concurrency),
            Activity(b.uploads, lim.upload_bytes, lim.upload_window, lim.concurrency),
            clock,
        )
        self.account.learned = b.learned  # read by the stats, never by the pacer
        # what the pairs importing here still have to upload (``follow``), for the shape
        self._backlogs: list[Callable[[], float | None]] = []

    @property
    def inflight(self) -> int:
        return self.budgets.inflight

    def follow(self, backlog: Callable[[], float | None]) -> Callable[[], None]:
        """Read ``backlog`` (the bytes a pair still has to upload here, those in flight
        included; None: not known yet) when the pacer shapes the upload window
        (``shape``); the call returned stops reading it."""
        return _listen(self._backlogs, backlog)

    def slot_open(self) -> bool:
        """Whether a body taken now would not wait for a slot: fewer requests in flight than
        the concurrency in effect, or a budget (or a Retry-After) holds bodies back anyway and
        it would wait on that first, in its turn (``Budgets.queue``: earlier waiters first)."""
        return self.budgets.inflight < self.budgets.slots() or self.account.waiting

    def on_free(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` whenever one of the slots may have come free (a request answered or
        given up, the concurrency in effect raised); the call returned stops it."""
        return _listen(self._on_free, wake)

    def _freed(self) -> None:
        for wake in self._on_free:
            wake()

    def remaining(self) -> float | None:
        """The bytes still to upload here, by every pair that told (None: not known)."""
        left = [backlog() for backlog in self._backlogs]
        return None if not left or None in left else float(sum(x or 0.0 for x in left))

    def _shape(self, now: float, body_bytes: int) -> None:
        """A body about to ask for room: once the last shape has run its window, plan the
        next from what the pairs following this mailbox still have to upload."""
        if body_bytes and self._backlogs and now >= self.budgets.shape.ends:
            self.budgets.plan(now, self.remaining())

    def upload_room(self) -> float:
        """Request-body bytes that could be sent now without waiting on the upload budget."""
        return self.budgets.upload_room(self._clock())

    def in_order(self) -> bool:
        """Whether the ready items' order leaves what is sent the same (``Budgets.in_order``)."""
        return self.budgets.in_order(self._clock())

    def slot(self, body_bytes: int = 0) -> Slot:
        """Hold one of the mailbox's request slots for one request (``async with``)."""
        return Slot(self, body_bytes)

    async def _wait_turn(self, body_bytes: int, first: Decision) -> None:
        """Apply the step until it says go (``first``: its decision just now, with nothing
        reserved and no wait yet, which the first round applies rather than asks again).
        Given up (cancelled), it leaves nothing held."""
        b, acct = self.budgets, self.account
        reserved = 0  # the room kept for this body, once it has waited long enough for it
        since: float | None = None  # when it first waited on a budget
        turn = False  # woken for a slot freed: passed on if this task does not take it
        hold = unsent.current()
        try:
            d: Decision | None = first
            for _ in range(MAX_WAIT_ROUNDS):
                now = self._clock()
                if d is None:
                    self._shape(now, body_bytes)
                    d = step(b, now, body_bytes, reserved, since)
                kind, wait, binds = d
                d = None
                if kind is Kind.GO:
                    b.went(body_bytes, since, reserved)  # the room kept is its own now
                    return
                if kind is Kind.RESERVE:
                    reserved = b.reserve(body_bytes, since)
                elif kind is Kind.SLOT:
                    # a turn woken for a slot another task took at once: that task used it
                    turn = False
                    # a slot frees when one of ours is answered: soon, drain or not
                    await self._slot_free.wait()
                    turn = True
                    acct.slot_wait_s += self._clock() - now
                else:  # a budget or Retry-After: a turn this task cannot use goes on
                    if since is None:
                        since = now
                        b.queue(since, body_bytes)
                    if turn:
                        turn = False
                        self._slot_free.wake_one()
                    if hold.draining:  # parked, never sent: its place and room go to others
                        if b.went(body_bytes, since, reserved):
                            self._released.set()
                        since, reserved = None, 0
                    await hold.park()  # a drain: unsent, it waits on the service no more
                    if kind is Kind.ANSWER:
                        with hold.waiting():
                            await self._released.wait()
                            acct.throttle_wait_s += self._clock() - now
                    else:
                        await self._throttle_sleep(wait, binds is Limit.RETRY_AFTER, hold)
            raise RuntimeError(f"pacer {self.key}: could not obtain a slot")  # pragma: no cover
        except BaseException:
            if turn:
                self._slot_free.wake_one()
            if b.went(body_bytes, since, reserved):  # given up: what it held may fit now
                self._released.set()
            acct.leave(self._clock(), body_bytes)
            raise

    async def _throttle_sleep(self, wait: float, service: bool, hold: unsent.Hold) -> None:
        """Sleep ``wait`` seconds, or until a drain ends it (asyncio's sleep: ``Hold.nap``)."""
        acct = self.account
        acct.wait_began(self._clock(), service)
        try:
            if self._sleep is asyncio.sleep:
                slept = await hold.nap(wait)
            else:
                with hold.waiting() as scope:
                    await self._sleep(wait)
                slept = not scope.cancelled_caught
        finally:
            acct.wait_ended(self._clock(), service)
        if slept:
            acct.throttle_wait_s += wait

    def on_success(self, body_bytes: int = 0) -> None:
        """An answer that was not a 429: the budgets in effect creep back up."""
        b = self.budgets
        requests, uploads, slots = b.learned_requests, b.learned_uploads, b.learned_slots
        now = self._clock()
        self.account.succeeded()
        b.answered(body_bytes, now)
        if (
            requests is not b.learned_requests
            or uploads is not b.learned_uploads
            or slots is not b.learned_slots
        ):
            self._budget_changed(now)
            if slots is not b.learned_slots and self._on_free:
                self._freed()  # more slots in effect: a body waiting for one may go
        self._trail.answered(b.learned)

    def _budget_changed(self, now: float) -> None:
        """Tell the account what the pacer allows itself now (it measures the spells
        against it); the pacer never reads it back."""
        b = self.budgets
        self.account.budget_changed(now, b.learned_requests, b.learned_uploads, b.learned_slots)

    def on_throttled(self, reason: str, retry_after: float | None, body_bytes: int = 0) -> None:
        """Record a 429 (its request already answered): the budget in effect of the limit it
        names is cut (``learn``). Time-based reasons block the whole mailbox until
        Retry-After (at most ``max_retry_after``: a larger one is logged, once per mailbox,
        and cut)."""
        self.account.on_throttled(reason, retry_after, body_bytes)
        before = self.budgets.learned()
        try:
            self._throttled(reason, retry_after, body_bytes)
        finally:
            self._trail.throttled(before, self.budgets.learned(), reason, retry_after)

    def _throttled(self, reason: str, retry_after: float | None, body_bytes: int) -> None:
        b = self.budgets
        now = self._clock()
        if reason == CONCURRENCY_REASON:
            b.throttled(now, reason, retry_after or 0.0, body_bytes)
            self._budget_changed(now)
            return
        asked = wait = retry_after if retry_after is not None else 1.0
        cap = self.limits.max_retry_after
        if wait > cap:
            if not self._capped:
                self._capped = True
                log.warning("pacer.retry_after_capped", mailbox=self.key, asked_s=wait, used_s=cap)
            wait = cap
        b.throttled(now, reason, asked, body_bytes)  # learned (from the service's) first
        self._budget_changed(now)
        if now >= b.blocked_until:
            b.blocked_from = now
        b.blocked_until = max(b.blocked_until, now + wait)

    def refused_alone(self, body_bytes: int) -> tuple[int, float, float] | None:
        """After an ``IncomingBytes`` 429 of ``body_bytes``: ``Budgets.unfit`` now (None
        when our own bytes shared the service's window)."""
        return self.budgets.unfit(self._clock(), body_bytes)

    async def wait_for_release(self, at_least: float = 0.0, at_most: float = 5.0) -> None:
        """After a MailboxConcurrency 429: wait until one of our own calls to this mailbox
        finishes (bounded), and no less than ``at_least``."""
        t0 = self._clock()
        hold = unsent.current()
        with hold.waiting():
            if self.budgets.inflight > 0:
                with anyio.move_on_after(at_most):
                    await self._released.wait()
            rest = at_least - (self._clock() - t0)
            if rest > 0:
                await self._sleep(rest)
        self.account.slot_wait_s += self._clock() - t0
        await hold.park()


class Pacers:
    """The registry: one pacer per (app, mailbox), one app-wide limiter per app."""

    def __init__(
        self,
        limits: PacerLimits | None = None,
        app_rate: tuple[float, float] = (120_000, 10.0),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limits = limits or PacerLimits()
        self._app_rate = app_rate
        self._clock = clock
        self._sleep = sleep
        self._pacers: dict[tuple[str, str], MailboxPacer] = {}
        self._apps: dict[str, AsyncLimiter] = {}
        self._job = Quiet()  # every mailbox's uploads (``step.Quiet``)

    def get(self, app: str, mailbox: str) -> MailboxPacer:
        p = self._pacers.get(key := (app, mailbox))
        if p is None:
            if (lim := self._apps.get(app)) is None:
                lim = self._apps[app] = AsyncLimiter(*self._app_rate)
            p = self._pacers[key] = MailboxPacer(
                f"{app}/{mailbox}",
                self.limits,
                clock=self._clock,
                sleep=self._sleep,
                app_limiter=lim,
                job=self._job,
            )
        return p

    def all(self) -> list[MailboxPacer]:
        return list(self._pacers.values())
