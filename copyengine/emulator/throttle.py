"""Exchange's throttling rules as the emulator applies them (contract §5). Pure: time is passed in.

Per (app, mailbox): at most ``concurrency`` requests in flight, ``requests`` per sliding
``request_window``, ``upload_bytes`` of request bodies per sliding ``upload_window``; per app:
``app_requests`` per ``app_window``. Throttled calls still count against the request windows,
so retrying before ``Retry-After`` makes things worse, as on the real service.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

MB = 1024 * 1024

MSG_CONCURRENCY = "Application is over its MailboxConcurrency limit."
MSG_REQUEST_RATE = "Application is over its RequestRate limit."
MSG_INCOMING_BYTES = "Application is over its IncomingBytes limit."
MSG_APP_RATE = "Application is over its ApplicationRequestRate limit."

# Reason tags used in stats and in the 429 message.
CONCURRENCY, REQUEST_RATE, INCOMING_BYTES, APP_RATE = (
    "MailboxConcurrency",
    "RequestRate",
    "IncomingBytes",
    "ApplicationRequestRate",
)
MESSAGES = {
    CONCURRENCY: MSG_CONCURRENCY,
    REQUEST_RATE: MSG_REQUEST_RATE,
    INCOMING_BYTES: MSG_INCOMING_BYTES,
    APP_RATE: MSG_APP_RATE,
}


@dataclass(frozen=True)
class Limits:
    """A throttling and latency profile. ``None`` disables a rule."""

    name: str = "exchange"
    concurrency: int | None = 4
    requests: int | None = 10_000
    request_window: float = 600.0
    upload_bytes: int | None = 150 * MB
    upload_window: float = 300.0
    app_requests: int | None = 130_000
    app_window: float = 10.0
    # Retry-After sent with a MailboxConcurrency 429 (the client should rather wait for one
    # of its own calls to finish).
    concurrency_retry_after: float = 0.05
    latency_base: float = 0.030
    latency_per_mb: float = 0.010
    latency_jitter: float = 0.010

    @classmethod
    def profile(cls, name: str, time_scale: float = 60.0, **overrides: Any) -> Limits:
        """``exchange`` (documented limits), ``unlimited`` (none, no latency), or
        ``exchange-fast``: every window ``time_scale`` times shorter and every budget
        ``time_scale`` times smaller, so the per-second ceilings stay those of Exchange while
        an hour of fill-and-wait cycles happens in a minute."""
        if name == "exchange":
            base = cls()
        elif name == "unlimited":
            base = cls(
                name="unlimited",
                concurrency=None,
                requests=None,
                upload_bytes=None,
                app_requests=None,
                latency_base=0.0,
                latency_per_mb=0.0,
                latency_jitter=0.0,
            )
        elif name == "exchange-fast":
            e = cls()
            assert e.requests and e.upload_bytes
            base = replace(
                e,
                name="exchange-fast",
                requests=max(1, math.ceil(e.requests / time_scale)),
                request_window=e.request_window / time_scale,
                upload_bytes=max(1, math.ceil(e.upload_bytes / time_scale)),
                upload_window=e.upload_window / time_scale,
            )
        else:
            raise ValueError(f"unknown throttling profile {name!r}")
        return replace(base, **overrides) if overrides else base

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: str | None  # None: admitted
    retry_after: float = 0.0


ADMIT = Verdict(None)


class _Window:
    """Sliding window of (time, amount) with a running sum."""

    __slots__ = ("events", "total")

    def __init__(self) -> None:
        self.events: deque[tuple[float, int]] = deque()
        self.total = 0

    def expire(self, now: float, width: float) -> None:
        ev = self.events
        while ev and ev[0][0] <= now - width:
            self.total -= ev.popleft()[1]

    def add(self, now: float, amount: int) -> None:
        self.events.append((now, amount))
        self.total += amount

    def wait_for(self, now: float, width: float, need_free: int, limit: int) -> float:
        """Seconds until the window holds at most ``limit - need_free``."""
        excess = self.total + need_free - limit
        for t, amount in self.events:
            excess -= amount
            if excess <= 0:
                return max(0.0, t + width - now)
        return width


class Throttle:
    """The throttling state of one emulator; one ``Bucket`` per (app, mailbox)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.inflight: dict[tuple[str, str], int] = {}
        self._req: dict[tuple[str, str], _Window] = {}
        self._bytes: dict[tuple[str, str], _Window] = {}
        self._app: dict[str, _Window] = {}

    def admit(self, now: float, app: str, mailbox: str | None, body_bytes: int) -> Verdict:
        """Decide on one request; when admitted the caller must call ``release``."""
        lim = self.limits
        if lim.app_requests is not None:
            w = self._app.setdefault(app, _Window())
            w.expire(now, lim.app_window)
            if w.total >= lim.app_requests:
                w.add(now, 1)
                return Verdict(APP_RATE, w.wait_for(now, lim.app_window, 1, lim.app_requests))
            w.add(now, 1)
        if mailbox is None:
            return ADMIT
        key = (app, mailbox)
        if lim.requests is not None:
            w = self._req.setdefault(key, _Window())
            w.expire(now, lim.request_window)
            over = w.total >= lim.requests
            w.add(now, 1)  # throttled calls count too
            if over:
                return Verdict(REQUEST_RATE, w.wait_for(now, lim.request_window, 1, lim.requests))
        if lim.concurrency is not None and self.inflight.get(key, 0) >= lim.concurrency:
            return Verdict(CONCURRENCY, lim.concurrency_retry_after)
        if lim.upload_bytes is not None and body_bytes:
            w = self._bytes.setdefault(key, _Window())
            w.expire(now, lim.upload_window)
            if w.total + body_bytes > lim.upload_bytes and w.total > 0:
                return Verdict(
                    INCOMING_BYTES,
                    w.wait_for(now, lim.upload_window, body_bytes, lim.upload_bytes),
                )
            w.add(now, body_bytes)
        self.inflight[key] = self.inflight.get(key, 0) + 1
        return ADMIT

    def release(self, app: str, mailbox: str | None) -> None:
        if mailbox is None:
            return
        key = (app, mailbox)
        n = self.inflight.get(key, 0) - 1
        if n <= 0:
            self.inflight.pop(key, None)
        else:
            self.inflight[key] = n

    def latency(self, bytes_moved: int, jitter: float) -> float:
        """Service time for a request moving ``bytes_moved``; ``jitter`` in [0, 1)."""
        lim = self.limits
        return (
            lim.latency_base + lim.latency_per_mb * bytes_moved / MB + lim.latency_jitter * jitter
        )
