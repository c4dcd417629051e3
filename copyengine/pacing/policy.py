"""Pacing and retry decisions: pure functions and values over an explicit ``now``.

Nothing here sleeps or does I/O; ``pacer.py`` applies these decisions. Unit tests drive them
with a fake clock.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from itertools import islice
from operator import itemgetter

from ..errors import Cause as Cause  # re-exported: the policy budgets per cause

MB = 1024 * 1024


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds (possibly fractional, as
    Graph sends ``2.128``) or an HTTP date. None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - now_wall)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class PacerLimits:
    """What one (app, mailbox) may do; defaults are Exchange Online's documented limits with a
    safety margin applied by the pacer (``margin``)."""

    concurrency: int = 4
    requests: int = 10_000
    request_window: float = 600.0
    upload_bytes: int = 150 * MB
    upload_window: float = 300.0
    # Fraction of each budget we allow ourselves: all of it. The timing is what keeps the
    # service from seeing more than the pacer: a request is held against the budgets from
    # the moment it takes its slot, before it is sent, and leaves the windows
    # ``window_slack`` after its answer, so after the service (which counts it on arrival)
    # has let it go, whatever the latency. A 1% margin on top cost a mailbox a whole window
    # whenever its data fell within 1% below a whole number of windows, against a risk no
    # run showed (an operator facing a stricter service lowers the budget itself:
    # ``[limits] upload_mb_per_window``, ``requests_per_window``). A 429 still cuts the
    # factor (``AdaptiveRate``).
    margin: float = 1.0
    window_slack: float = 0.5
    # A body that has waited this share of the upload window for room gets the room it needs
    # reserved once that room comes back within this share too (or it has waited two
    # windows, or it needs the whole budget: ``step.Budgets.worth_reserving``): later bodies
    # then go only in what is left beside it, or in the room kept when the body still goes
    # as soon. Otherwise every bit of room the window gives back is taken at once by smaller
    # bodies, a large one waits until the small ones run out, and a mailbox's largest items
    # all go last, in windows they cannot fill; kept whatever it cost, the room free while
    # the rest only came back a window later sat idle (``benchmarks.window_model``: 95.6% of
    # its mailboxes at >= 95% of their ceiling so, 98.2% now).
    reserve_after_share: float = 0.1
    # The longest Retry-After obeyed: a larger one (a service in trouble, a misread date)
    # would hold the mailbox for hours; it is cut to this and logged (``[limits]
    # max_retry_after_s``).
    max_retry_after: float = 300.0


_sent_at = itemgetter(0)


class SlidingWindow:
    """Amounts sent over a sliding window: how long until ``amount`` more fits.

    Sends close together are kept as one bucket (at most ``width / BUCKETS`` apart), counted
    as sent at the latest of them: the window then holds at most ``BUCKETS`` entries however
    many requests a busy mailbox makes (Exchange's request window is 10 minutes and 10,000
    requests long: thousands of mailboxes would otherwise keep millions of entries), and an
    amount is never treated as expired before the service would expire it. A finer grain
    (``record``'s, a quarter of a spread part, while a cut request budget is spent in parts
    of a short window) keeps more: one entry per burst of sends a part apart (about 1,200
    over 600 s at two parts a second), at most one per finer grain."""

    BUCKETS = 1000
    __slots__ = ("_events", "_grain", "limit", "total", "width")

    def __init__(self, limit: int, width: float) -> None:
        self.limit = limit
        self.width = width
        self._grain = width / self.BUCKETS
        # (counted as sent at, amount, bucket opened at)
        self._events: deque[tuple[float, int, float]] = deque()
        self.total = 0

    def __len__(self) -> int:
        return len(self._events)

    def events(self) -> deque[tuple[float, int, float]]:
        """(counted as sent at, amount, bucket opened at), oldest first (do not modify)."""
        return self._events

    def expire(self, now: float) -> None:
        ev = self._events
        while ev and ev[0][0] <= now - self.width:
            self.total -= ev.popleft()[1]

    def delay(self, now: float, amount: int, limit: float | None = None) -> float:
        """Seconds from ``now`` until ``amount`` fits under ``limit`` (default: own limit).
        An amount larger than the whole limit fits once the window is empty."""
        self.expire(now)
        cap = self.limit if limit is None else limit
        excess = self.total + amount - cap
        if excess <= 0:
            return 0.0
        if amount >= cap:
            excess = self.total  # wait for an empty window
        for t, a, _ in self._events:
            excess -= a
            if excess <= 0:
                return max(0.0, t + self.width - now)
        return 0.0

    def last(self) -> float | None:
        """When the latest amount was counted as sent (None: nothing in the window)."""
        return self._events[-1][0] if self._events else None

    def since(self, start: float) -> int:
        """The amount counted as sent after ``start``.

        The times never decrease (``record`` counts at ``now``, ``expire`` drops the oldest),
        so the amounts after ``start`` are the window's last entries: found by bisection and
        summed from the nearer end (the pacer asks this per request, mostly for the whole
        window, where it walked up to ``BUCKETS`` entries each time)."""
        ev = self._events
        if not ev or ev[0][0] > start:
            return self.total
        n = len(ev)
        i = bisect_right(ev, start, key=_sent_at)
        if i == n:
            return 0
        if i <= n - i:
            return self.total - sum(a for _, a, _ in islice(ev, i))
        return sum(a for _, a, _ in islice(reversed(ev), n - i))

    def recent_delay(self, now: float, width: float, amount: int, held: int, cap: float) -> float:
        """``window_wait`` over the last ``width`` seconds only (shorter than the window):
        seconds until ``amount`` more fits under ``cap`` there with ``held`` in flight;
        ``inf`` when only an answer can make room."""
        start = now - width
        recent = [(t, a) for t, a, _ in self._events if t > start]
        total = sum(a for _, a in recent)
        if amount >= cap:
            if held:
                return math.inf
            return recent[-1][0] + width - now if recent else 0.0
        need = total + held + amount - cap
        if need <= 0:
            return 0.0
        if held + amount > cap:
            return math.inf
        for t, a in recent:
            need -= a
            if need <= 0:
                return max(0.0, t + width - now)
        return 0.0  # pragma: no cover (the amounts above cover the need)

    def forget(self, now: float, amount: int) -> None:
        """Take back ``amount`` recorded last (a request the service refused without taking
        it in), from the newest entries."""
        self.expire(now)
        ev = self._events
        while amount > 0 and ev:
            t, a, opened = ev[-1]
            if a > amount:
                ev[-1] = (t, a - amount, opened)
                self.total -= amount
                return
            ev.pop()
            self.total -= a
            amount -= a

    def record(self, now: float, amount: int, grain: float | None = None) -> None:
        """``amount`` sent at ``now``, in the latest bucket when it opened less than the
        window's grain ago (``grain``: a finer one, for a budget spent in parts of its window
        shorter than the window's own grain, ``step.Budgets.release``)."""
        self.expire(now)
        ev = self._events
        fine = self._grain if grain is None else min(grain, self._grain)
        if ev and now - ev[-1][2] < fine:
            _, a, opened = ev[-1]
            ev[-1] = (now, a + amount, opened)
        else:
            ev.append((now, amount, now))
        self.total += amount


@dataclass(frozen=True)
class AdaptiveRate:
    """A factor in (floor, 1] applied to the budgets: cut after a 429, crept back on success.

    A 429 means our model of the server's window was wrong (other clients of the same app,
    clock skew, a smaller limit than configured). Cutting the budget makes the next 429 rarer;
    creeping back recovers the ceiling when the cause goes away."""

    factor: float = 1.0
    cut: float = 0.8
    floor: float = 0.25
    creep: float = 0.002  # per successful request: ~350 requests to recover from one cut

    def on_throttled(self) -> AdaptiveRate:
        return replace(self, factor=max(self.floor, self.factor * self.cut))

    def on_success(self) -> AdaptiveRate:
        if self.factor >= 1.0:
            return self
        return replace(self, factor=min(1.0, self.factor * (1.0 + self.creep)))


DEFAULT_BUDGETS: dict[Cause, int] = {
    Cause.THROTTLED: 50,
    Cause.SERVER: 8,
    Cause.GATEWAY: 8,
    Cause.CONNECTION: 6,
    Cause.TIMEOUT: 4,
    # No connection to a host that never answered (DNS, refused, untrusted certificate): two
    # quick retries (under 1.5 s of waiting) for a blip, then the operator is told. A host
    # that has answered before is retried like any server failure (Cause.SERVER).
    Cause.UNREACHABLE: 2,
    Cause.AUTH: 1,
    # An import session refused or expired early: renewed as often as renewals succeed, up
    # to this many times for one item (each renewal is shared by every importer that saw it).
    Cause.SESSION: 12,
}


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: ``uniform(0, min(cap, base * factor**n))``, but
    never less than ``floor`` of it (so a burst of retries does not all land at once)."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    floor: float = 0.5

    def delay(self, attempt: int, rand: float) -> float:
        ceiling = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        return ceiling * (self.floor + (1.0 - self.floor) * rand)


class RetriesExhausted(Exception):
    def __init__(self, cause: Cause, attempts: int) -> None:
        super().__init__(f"gave up after {attempts} {cause.value} retries")
        self.cause = cause
        self.attempts = attempts


@dataclass(frozen=True)
class RetryPolicy:
    """Per-request retry state: a budget per cause and the history of what happened.
    ``increment`` returns the next state or raises RetriesExhausted."""

    budgets: tuple[tuple[Cause, int], ...] = tuple(DEFAULT_BUDGETS.items())
    backoff: Backoff = field(default_factory=Backoff)
    history: tuple[Cause, ...] = ()
    max_retry_after: float = 300.0  # a longer Retry-After (503, unpaced 429) is cut to this

    def attempts(self, cause: Cause) -> int:
        return sum(1 for c in self.history if c is cause)

    def budget(self, cause: Cause) -> int:
        return dict(self.budgets).get(cause, 0)

    def increment(self, cause: Cause) -> RetryPolicy:
        n = self.attempts(cause) + 1
        if n > self.budget(cause):
            raise RetriesExhausted(cause, n - 1)
        return replace(self, history=(*self.history, cause))

    def wait(self, cause: Cause, retry_after: float | None, rand: float) -> float:
        """How long to wait before the retry just counted by ``increment``."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        if cause in (Cause.AUTH, Cause.SESSION):
            return 0.0
        return self.backoff.delay(self.attempts(cause), rand)


def may_resend(cause: Cause, idempotent: bool, sent: bool) -> bool:
    """Whether a request may be sent again after ``cause``: anything the server rejected
    without acting (429, 401, 503 with a response) may; a request that may have been acted
    upon (connection lost or timeout after the body went out) only if resending is harmless."""
    if cause in (Cause.CONNECTION, Cause.TIMEOUT) and sent:
        return idempotent
    return True
