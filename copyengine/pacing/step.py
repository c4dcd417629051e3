"""The pacer's decision as a pure step (as rclone's ``Calculate``): from one mailbox's
budgets, the time and one request, whether it goes now or what it waits for, and which limit
binds. ``pacer.py`` is the thin loop that applies it: it sleeps, waits for an answer or a
free slot, and asks again.

``Budgets`` is the pacer's state: what the windows hold, what is in flight, the room
reserved for a body that has waited long, the Retry-After block and the adaptive cut. The
step reads it and changes nothing (a window dropping what has left it is not a change: it
would be dropped at the next look anyway); the loop applies the transitions (``reserve``,
``take``, ``release``).
"""

from __future__ import annotations

import math
from enum import Enum, StrEnum
from typing import NamedTuple

from .policy import AdaptiveRate, PacerLimits, SlidingWindow


class Kind(Enum):
    GO = "go"  # take a slot now
    SLEEP = "sleep"  # wait ``wait`` seconds on a budget or a Retry-After, then ask again
    ANSWER = "answer"  # only an answer to one of our requests in flight can make room
    SLOT = "slot"  # every slot is taken: wait for one to be freed
    RESERVE = "reserve"  # keep the room this body needs for it, then ask again


class Limit(StrEnum):
    """What holds a request back."""

    NONE = ""
    RETRY_AFTER = "retry_after"  # the service's Retry-After, for the whole mailbox
    REQUESTS = "requests"  # the request budget over its window
    UPLOAD = "upload"  # the upload-bytes budget over its window
    CONCURRENCY = "concurrency"  # the requests in flight per mailbox


class Decision(NamedTuple):
    kind: Kind
    wait: float = 0.0  # seconds (SLEEP; ``inf`` for ANSWER)
    binds: Limit = Limit.NONE


GO = Decision(Kind.GO)
SLOT = Decision(Kind.SLOT, 0.0, Limit.CONCURRENCY)


def window_wait(w: SlidingWindow, now: float, amount: int, held: int, cap: float) -> float:
    """Seconds until ``amount`` more fits in window ``w`` with ``held`` in flight (not yet in
    the window: they enter it when answered); ``inf`` when only an answer can make room. An
    amount larger than the whole budget goes alone, once the window is empty."""
    w.expire(now)
    if amount >= cap:
        if held:
            return math.inf
        return w.delay(now, amount, cap)
    need = w.total + held + amount - cap
    if need <= 0:
        return 0.0
    if held + amount > cap:
        return math.inf
    return w.delay(now, held + amount, cap)


class Budgets:
    """One mailbox's pacing state (see the module's docstring)."""

    __slots__ = (
        "blocked_until",
        "held_bytes",
        "inflight",
        "limits",
        "rate",
        "requests",
        "reserve_after",
        "reserved",
        "uploads",
    )

    def __init__(self, limits: PacerLimits) -> None:
        self.limits = lim = limits
        self.requests = SlidingWindow(lim.requests, lim.request_window + lim.window_slack)
        self.uploads = SlidingWindow(lim.upload_bytes, lim.upload_window + lim.window_slack)
        # in flight: counted against the budgets until answered, then in the windows
        self.inflight = 0
        self.held_bytes = 0
        self.reserved = 0  # upload room kept for the body that has waited longest
        # how long a body waits for room before it gets that room reserved
        self.reserve_after = lim.upload_window * lim.reserve_after_share
        self.blocked_until = 0.0  # Retry-After: nothing goes before
        self.rate = AdaptiveRate()

    def upload_cap(self) -> float:
        """The upload budget we allow ourselves now (cut after a 429)."""
        return self.limits.upload_bytes * self.rate.factor * self.limits.margin

    def binding(self, now: float, body_bytes: int, reserving: bool) -> tuple[float, Limit]:
        """Seconds until a request with ``body_bytes`` of body fits every budget (``inf``:
        not before one of our requests in flight has been answered), and the budget that
        holds it longest. A body goes beside the room reserved for another (``reserving``: it
        holds the reservation)."""
        lim = self.limits
        wait, binds = self.blocked_until - now, Limit.RETRY_AFTER
        cap = max(1.0, lim.requests * self.rate.factor * lim.margin)
        w = window_wait(self.requests, now, 1, self.inflight, cap)
        if w > wait:
            wait, binds = w, Limit.REQUESTS
        if body_bytes:
            held = self.held_bytes + (0 if reserving else self.reserved)
            w = window_wait(self.uploads, now, body_bytes, held, max(1.0, self.upload_cap()))
            if w > wait:
                wait, binds = w, Limit.UPLOAD
        return wait, binds

    def delay(self, now: float, body_bytes: int, reserving: bool = False) -> float:
        """Seconds until a request with ``body_bytes`` of body may be sent (0: now)."""
        return max(0.0, self.binding(now, body_bytes, reserving)[0])

    def upload_room(self, now: float) -> float:
        """Request-body bytes that could be sent now without waiting on the upload budget
        (infinite while the window is empty and nothing is in flight: anything passes)."""
        w = self.uploads
        w.expire(now)
        if w.total == 0 and self.held_bytes == 0:
            return math.inf
        return self.upload_cap() - w.total - self.held_bytes - self.reserved

    def reservable(self, body_bytes: int) -> int:
        """The room ``reserve`` would keep for ``body_bytes`` (at most the whole budget); 0
        when another body holds the reservation."""
        if self.reserved:
            return 0
        return int(min(body_bytes, self.upload_cap()))

    # -- transitions, applied by the loop -------------------------------------------------------
    def reserve(self, body_bytes: int) -> int:
        """Keep the room ``body_bytes`` needs for it; the room kept (0: none)."""
        room = self.reservable(body_bytes)
        if room:
            self.reserved = room
        return room

    def take(self, body_bytes: int) -> None:
        """A request takes its slot: held against the budgets while in flight."""
        self.inflight += 1
        self.held_bytes += body_bytes

    def release(self, done: float, body_bytes: int) -> None:
        """It was answered at ``done``: counted in the windows from then on. The service
        counts a request when it arrives, which is after we send it and before we have its
        answer, so its budget is never given back earlier than the service gives it back."""
        self.inflight -= 1
        self.held_bytes -= body_bytes
        self.requests.record(done, 1)
        if body_bytes:
            self.uploads.record(done, body_bytes)


def step(b: Budgets, now: float, body_bytes: int, reserved: int, since: float | None) -> Decision:
    """What a request with ``body_bytes`` of body does next. ``reserved``: the room kept for
    it so far (0: none); ``since``: when it first waited on a budget (None: it has not)."""
    wait, binds = b.binding(now, body_bytes, reserved > 0)
    if wait > 0:
        if body_bytes and not reserved:
            # a body that has waited long enough gets its room kept; until then it looks
            # again at least that often, so as not to sleep past the moment it may reserve
            if since is not None and now - since >= b.reserve_after and b.reservable(body_bytes):
                return Decision(Kind.RESERVE, 0.0, binds)
            if wait != math.inf:
                wait = min(wait, b.reserve_after)
        if wait == math.inf:
            return Decision(Kind.ANSWER, wait, binds)
        return Decision(Kind.SLEEP, wait, binds)
    if b.inflight >= b.limits.concurrency:
        return SLOT
    return GO
