"""Pure decisions of the notifier: whether and when to try a webhook again, and when a job
counts as stalled."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class Retry:
    """Bounded in count and in time: ``attempts`` tries at most, none started past
    ``within_s`` after the first; each try at most ``timeout_s``. Backoff doubles from
    ``base_s`` up to ``cap_s``, with jitter (half fixed, half random) so that many workers
    do not knock together; a 429's Retry-After is obeyed when it fits the bound."""

    attempts: int = 6
    base_s: float = 1.0
    cap_s: float = 30.0
    within_s: float = 120.0
    timeout_s: float = 10.0


def retryable(status: int | None) -> bool:
    """No answer (connection, timeout), 408, 425, 429 and 5xx are worth another try; any
    other answer (400 a malformed card, 403/404 a webhook revoked or deleted) is final."""
    return status is None or status in (408, 425, 429) or status >= 500


def delivered(status: int) -> bool:
    return 200 <= status < 300


def next_wait(
    policy: Retry,
    attempt: int,
    status: int | None,
    retry_after: float | None,
    elapsed: float,
    rand: Callable[[], float],
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None: give up (not worth it, the
    attempts used up, or the wait would end past ``within_s``)."""
    if not retryable(status) or attempt >= policy.attempts:
        return None
    if status == 429 and retry_after is not None:
        wait = retry_after
    else:
        step = min(policy.cap_s, policy.base_s * 2 ** (attempt - 1))
        wait = step / 2 + rand() * step / 2
    if elapsed + wait > policy.within_s:
        return None
    return wait


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (RFC 9110); None when absent or
    unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


class StallWatch:
    """``job.stalled`` once per stall: the progress (a tuple of counters) unchanged for
    ``after_s`` while work is unfinished; again only after the progress has moved."""

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self.last: tuple[int, ...] | None = None
        self.since = 0.0
        self.announced = False

    def observe(self, now: float, progress: tuple[int, ...], unfinished: bool) -> bool:
        """True when this observation starts a stall (announce it)."""
        if progress != self.last or not unfinished:
            self.last, self.since, self.announced = progress, now, False
            return False
        if self.announced or now - self.since < self.after_s:
            return False
        self.announced = True
        return True
