"""One mailbox's ``step.Budgets`` driven against the emulator's own throttle
(``emulator.throttle``, its other writer on its own clock), one body at a time as the step lets
it, in simulated time: the driver ``tests/test_pacer_trap.py`` and ``tests/test_pacer_learn.py``
share."""

from __future__ import annotations

import random

from copyengine.emulator.throttle import Throttle
from copyengine.pacing.step import Budgets, Kind, step


def drive(
    b: Budgets,
    th: Throttle,
    rnd: random.Random,
    start: float,
    end: float,
    sizes: tuple[int, int] = (20_000, 300_000),
) -> tuple[list[tuple[float, int]], int, int]:
    """Bodies of ``sizes`` bytes (seeded, uniform) one at a time from ``start`` to ``end``
    as the step lets them, admitted or refused by ``th`` as they go (answered 10 ms later, a
    refusal held until its Retry-After): (what went through, when), sent, refused."""
    now, body, since, kept, sent, refused = start, 0, None, 0, 0, 0
    through: list[tuple[float, int]] = []
    for _ in range(200_000):
        if now >= end:
            break
        body = body or rnd.randint(*sizes)
        d = step(b, now, body, kept, since)
        if d.kind is Kind.RESERVE:
            kept = b.reserve(body, since)
            continue
        if d.kind is not Kind.GO:
            assert d.kind is Kind.SLEEP, d
            if since is None:
                since = now
                b.queue(since, body)
            now += min(d.wait, end - now + 0.01)
            continue
        b.went(body, since, kept)
        kept = 0
        b.take(body)
        sent += 1
        v = th.admit(now, "app", "m", body)
        now += 0.01
        b.release(now, body)
        if v.reason is None:
            th.release("app", "m")
            b.answered(body, now)
            through.append((now, body))
            body, since = 0, None
            continue
        refused += 1
        since = None  # asked again afresh, as an importer does
        b.throttled(now, v.reason, v.retry_after, body)
        b.blocked_from, b.blocked_until = now, now + v.retry_after
    if since is not None:
        b.went(body, since, kept)  # the body waiting at the end gives up
    return through, sent, refused
