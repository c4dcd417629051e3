"""The stall watch: ``job.stalled`` when nothing moved for ``stalled_after_min`` while work
is unfinished; once per stall (``policy.StallWatch``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

from .policy import StallWatch
from .sender import Notifier

# how often the watch looks: a tenth of the stall time, within these bounds
POLL_MIN_S = 0.05
POLL_MAX_S = 30.0

Progress = Callable[[], tuple[tuple[int, ...], bool]]


async def watch_stalls(
    notifier: Notifier,
    progress: Progress,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Until cancelled: ``progress()`` gives the counters that move when the job does and
    whether work is unfinished."""
    after_s = notifier.cfg.stalled_after_min * 60
    watch = StallWatch(after_s)
    poll = min(POLL_MAX_S, max(POLL_MIN_S, after_s / 10))
    while True:
        counters, unfinished = progress()
        if watch.observe(clock(), counters, unfinished):
            notifier.stalled(
                notifier.cfg.stalled_after_min,
                {"copied": counters[0], "copied_bytes": counters[1], "listed": counters[2]},
            )
        await anyio.sleep(poll)
