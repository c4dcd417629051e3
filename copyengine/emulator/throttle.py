"""Exchange's throttling rules as the emulator applies them (contract §5). Pure: time is passed in.

Per (app, mailbox): at most ``concurrency`` requests in flight, ``requests`` per sliding
``request_window``; per mailbox, whatever app writes to it (a 2024 correction to Microsoft's
throttling page): ``upload_bytes`` of request bodies per sliding ``upload_window``; per app:
``app_requests`` per ``app_window``. Throttled calls still count against the request windows,
so retrying before ``Retry-After`` makes things worse, as on the real service.

Another writer in the same mailbox (a backup product, a user's client): ``Background``
spends up to a share of a mailbox's upload budget on its own clock, a write every
``WRITER_STEPS``-th of the window; a write the window has no room for at its time is
refused and retried at the writer's next step. Its writes are replayed at their own times
before any request of ours is judged (stamped with those times, so they leave the window
one window later).
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


@dataclass(frozen=True)
class Background:
    """Another writer's share of upload budgets: ``share`` of every mailbox's, or only of
    ``mailboxes`` (ids, or UPNs resolved by the emulator) when given; ``shares`` per mailbox
    id override it."""

    share: float = 0.0
    mailboxes: tuple[str, ...] | None = None
    shares: dict[str, float] | None = None

    @classmethod
    def parse(cls, raw: Any) -> Background:
        """``0.5`` or ``{share = 0.5, mailboxes = [upn, ...]}``."""
        if isinstance(raw, bool) or raw is None:
            raise ValueError("give a share of the upload budget (0 to 1) or a table")
        if isinstance(raw, int | float):
            raw = {"share": raw}
        if not isinstance(raw, dict):
            raise ValueError("give a share of the upload budget (0 to 1) or a table")
        extra = set(raw) - {"share", "mailboxes"}
        if extra:
            raise ValueError(f"unknown keys {sorted(extra)}")
        if "share" not in raw:
            raise ValueError(
                "share is required: a share of the upload budget, from 0 to below 1 "
                "(as { share = 0.5, mailboxes = [...] })"
            )
        share = raw.get("share")
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
            raise ValueError("share: a share of the upload budget, from 0 to below 1")
        boxes = raw.get("mailboxes")
        if boxes is not None and (
            not isinstance(boxes, list) or not all(isinstance(b, str) for b in boxes)
        ):
            raise ValueError("mailboxes: a list of UPNs or mailbox ids")
        return cls(float(share), tuple(boxes) if boxes is not None else None)

    def share_of(self, mailbox: str) -> float:
        if self.shares is not None:
            return self.shares.get(mailbox, 0.0)
        if self.mailboxes is None or mailbox in self.mailboxes:
            return self.share
        return 0.0


WRITER_STEPS = 20  # the other writer writes every window / WRITER_STEPS
WRITER_LOG = 256  # the other writer's last writes kept (``Throttle.background_writes``)


class _Writer:
    """One mailbox's other writer: a write of ``chunk`` bytes every ``step`` seconds from
    ``start`` (its clock); a write refused waits for the next step, and the writes it owes
    are at most a window's (``WRITER_STEPS``): beyond, a client that backs off gives up."""

    __slots__ = ("chunk", "done", "log", "owed", "start", "step", "written")

    def __init__(self, chunk: int, step: float, start: float) -> None:
        self.chunk = chunk
        self.step = step
        self.start = start
        self.done = 0  # steps replayed
        self.owed = 0  # writes not yet accepted
        self.written = 0
        self.log: deque[tuple[float, int]] = deque(maxlen=WRITER_LOG)


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
        self._bytes: dict[str, _Window] = {}  # per mailbox, across apps
        self._app: dict[str, _Window] = {}
        self.background = Background()
        self._writers: dict[str, _Writer] = {}

    def background_bytes(self) -> dict[str, int]:
        """Bytes the other writers took, per mailbox id."""
        return {m: w.written for m, w in self._writers.items() if w.written}

    def background_writes(self, mailbox: str) -> list[tuple[float, int]]:
        """The other writer's last accepted writes in ``mailbox``: (time stamped, bytes)."""
        writer = self._writers.get(mailbox)
        return list(writer.log) if writer else []

    def upload_window_bytes(self, now: float, mailbox: str) -> int:
        """Bytes in ``mailbox``'s upload window at ``now`` (the other writer's until then
        replayed), whatever app wrote them."""
        lim = self.limits
        if lim.upload_bytes is None:
            return 0
        w = self._bytes.setdefault(mailbox, _Window())
        self._other_writer(now, mailbox, w)
        w.expire(now, lim.upload_window)
        return w.total

    def _other_writer(self, now: float, mailbox: str, w: _Window) -> None:
        """The mailbox's other writer's writes up to ``now``, each at its own time: accepted
        if the window has room for it then, else retried at the next step."""
        lim = self.limits
        if lim.upload_bytes is None:
            return
        writer = self._writers.get(mailbox)
        if writer is None:
            share = self.background.share_of(mailbox)
            if share <= 0:
                return
            step = lim.upload_window / WRITER_STEPS
            chunk = int(share * lim.upload_bytes / WRITER_STEPS)
            writer = self._writers[mailbox] = _Writer(chunk, step, now)
            w.expire(now, lim.upload_window)
            if w.total == 0:
                # it was writing before we came: its last window's writes are in the
                # window, each leaving one window after its own time (a writer that comes
                # while ours are in the window starts then, with nothing owed)
                w.events.extend(
                    (now - lim.upload_window + (i + 1) * step, chunk) for i in range(WRITER_STEPS)
                )
                w.total += chunk * WRITER_STEPS
                writer.written += chunk * WRITER_STEPS
            return
        due = int((now - writer.start) / writer.step + 1e-9)
        if due - writer.done > 2 * WRITER_STEPS:
            # a long stretch without a request of ours: its writes more than a window
            # before the last steps replayed would have left the window; counted as written
            skip = due - writer.done - 2 * WRITER_STEPS
            writer.written += skip * writer.chunk
            writer.done += skip
        for n in range(writer.done + 1, due + 1):
            t = writer.start + n * writer.step
            w.expire(t, lim.upload_window)
            writer.owed = min(WRITER_STEPS, writer.owed + 1)
            room = (lim.upload_bytes - w.total) // writer.chunk if writer.chunk else 0
            take = min(writer.owed, max(0, room))
            if take > 0:
                w.add(t, take * writer.chunk)
                writer.log.append((t, take * writer.chunk))
                writer.owed -= take
                writer.written += take * writer.chunk
        writer.done = max(writer.done, due)

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
            w = self._bytes.setdefault(mailbox, _Window())
            self._other_writer(now, mailbox, w)  # its writes until now, at their own times
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
