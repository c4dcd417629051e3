"""When a drain may stop waiting: the one rule for "only parked requests are left", read by
the job's drain (``pipeline.job``: every pair cut short) and a held pair's own
(``pipeline.admit``: that pair alone). Parked requests (``unsent.Hold``) wait on a budget
and are never sent, so once nothing else is left there is nothing to wait for."""

from __future__ import annotations

import enum
import time
from typing import Protocol

import anyio

from .. import unsent

# the service has not answered for this long: the drain does not wait on a dead service
UNREACHABLE_AFTER_S = 5.0


class Wire(Protocol):
    """What the job's drain reads of the service (``graph.Health``)."""

    sending: int
    down_since: float | None

    def down_for(self) -> float: ...


class Cut(enum.Enum):
    PARKED = "parked"  # only parked requests were left for ``quiet_s``
    DEADLINE = "deadline"  # the drain's deadline passed first
    UNREACHABLE = "unreachable"  # the service stopped answering (``wire`` given)


async def drained(
    waits: unsent.Hold,
    deadline_s: float,
    quiet_s: float,
    wire: Wire | None = None,
    poll: float = 0.1,
) -> Cut:
    """Until only parked requests of ``waits`` have been left for ``quiet_s`` (nothing on
    ``wire`` either, when given: the job's drain, whose requests are all of the service's),
    the service gone for ``UNREACHABLE_AFTER_S``, or ``deadline_s`` passed."""
    started = time.monotonic()
    since: float | None = None
    for _ in range(int(deadline_s / poll) + 2):
        await anyio.sleep(poll)
        now = time.monotonic()
        if wire is not None and wire.down_for() >= UNREACHABLE_AFTER_S:
            return Cut.UNREACHABLE
        if now - started >= deadline_s:
            break
        busy = wire is not None and (wire.sending > 0 or wire.down_since is not None)
        if busy or not waits.parked:
            since = None  # something on the wire, nothing parked, or the service gone
        elif since is None:
            since = now
        elif now - since >= quiet_s:
            return Cut.PARKED
    return Cut.DEADLINE
