"""An offline model of one target mailbox's upload window (a diagnostic for issue 14, not a
scenario): how well an import order and the ready pool's choice pack the sliding window,
with no sockets, no emulator and no pacer.

Time advances in ``DT`` ticks. Two exporters hand on batches of 20 items after
``EXPORT_S``; the ready pool holds 24; four slots each take an item (the engine's own
``ReadyItems.choose`` picks it) and send it once it fits the room: the budget less what is
in the window and in flight (counted in the window from its answer on, as the pacer does),
less the room the pacer keeps for a body that has waited a tenth of a window for it (the
others go only beside it; ``PacerLimits.reserve_after_share``). Item sizes are the ceiling scenario's (realistic, capped at
625 KB); a body is the size with the data's 10% of properties, in base64, plus 400 bytes.

Three figures per mailbox: the engine's "% of ceiling while active" (the shortest time any
client could take for its bytes at the service's full budget, against the time it took),
the same against the pacer's share of the budget ("bound": the same figure since the pacer
uses the whole budget), and the measure the engine used before (room at
the start, plus the budget's rate over the spell, minus the room left at the end), which
scored a mailbox higher for holding its last item back.

    python -m benchmarks.packing_model --items 100 --seeds 24 --order listed,largest,bins
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
from collections.abc import Callable

from copyengine.pipeline.ready import Ready, ReadyItems

MiB = 1024 * 1024
LIMIT = 2.5 * MiB  # the time-scaled upload window: 150 MB per 5 min, x60
WINDOW_S = 5.0
MARGIN, SLACK = 1.0, 1.002  # the pacer's share of the budget (all of it), and its window slack
CAP = 625_000
DT = 0.002
EXPORT_S = 0.15
BATCH, POOL, SLOTS, EXPORTERS = 20, 24, 4, 2
PAGE = 250
RESERVE_AFTER_S = 0.1 * WINDOW_S
MAX_TICKS = 2_000_000


def bodies(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    sizes = [max(300, min(int(24_000 * math.exp(rng.gauss(0, 1.6))), CAP)) for _ in range(n)]
    return [int(s * 1.1 * 4 / 3) + 400 for s in sizes]


def _pages(xs: list[int], order: Callable[[list[int]], list[int]]) -> list[int]:
    out: list[int] = []
    for i in range(0, len(xs), PAGE):
        out += order(xs[i : i + PAGE])
    return out


def _bins(page: list[int]) -> list[int]:
    """First-fit decreasing into bins of one window's budget."""
    bins: list[tuple[list[float], list[int]]] = []
    for n in sorted(page, reverse=True):
        for room, items in bins:
            if room[0] >= n:
                room[0] -= n
                items.append(n)
                break
        else:
            bins.append(([LIMIT * MARGIN - n], [n]))
    return [n for _, items in bins for n in items]


def _smallest_last(xs: list[int], keep: int = 30) -> list[int]:
    """The ``keep`` smallest items held back to the end (largest of them first)."""
    out: list[int] = []
    heap: list[int] = []
    for n in xs:
        heapq.heappush(heap, -n)
        if len(heap) > keep:
            out.append(-heapq.heappop(heap))
    return out + sorted((-x for x in heap), reverse=True)


ORDERS: dict[str, Callable[[list[int]], list[int]]] = {
    "listed": lambda xs: xs,
    "largest": lambda xs: _pages(xs, lambda p: sorted(p, reverse=True)),
    "bins": lambda xs: _pages(xs, _bins),
    "smallest-last": _smallest_last,
}


def export(
    t: float,
    xs: list[int],
    nxt: int,
    ready: ReadyItems,
    exports: list[tuple[float, list[int]]],
    free_at: list[float],
    part: int,
    most: int,
    after: float = EXPORT_S,
) -> int:
    """One tick of the exporters: each free one takes the next ``part`` bodies of ``xs``
    (from ``nxt``) while fewer than ``most`` are ready or on their way, and hands them to
    ``ready`` ``after`` seconds later; the next body's index."""
    for k in range(len(free_at)):
        queued = len(ready.pool) + sum(len(b) for _, b in exports)
        if free_at[k] <= t and nxt < len(xs) and queued < most:
            batch = xs[nxt : nxt + part]
            nxt += len(batch)
            free_at[k] = t + after
            exports.append((t + after, batch))
    for _, batch in [x for x in exports if x[0] <= t]:
        for size in batch:
            ready.add(Ready(None, size, t))  # type: ignore[arg-type]
    exports[:] = [x for x in exports if x[0] > t]
    return nxt


def run(xs: list[int]) -> tuple[float, float, float]:
    """(engine's measure %, % of the whole-window bound, the earlier fluid measure %) for
    bodies sent in this order."""
    clock = [0.0]
    window: list[tuple[float, int]] = []  # (expires at, bytes)
    inflight: list[tuple[float, int]] = []  # (answered at, bytes)

    reserved = [-1, 0]  # (the slot holding the reservation, its bytes)

    def room(slot: int = -1) -> float:
        used = sum(n for _, n in window) + sum(n for _, n in inflight)
        if used == 0 and reserved[1] == 0:
            return math.inf
        return LIMIT * MARGIN - used - (reserved[1] if reserved[0] != slot else 0)

    ready = ReadyItems(POOL, room, overdue_s=2 * WINDOW_S, clock=lambda: clock[0])
    pool = ready.pool  # the model fills (add) and drains the engine's pool without awaiting
    held: list[int | None] = [None] * SLOTS
    since = [0.0] * SLOTS  # when the slot took its item
    busy = [0.0] * SLOTS
    exports: list[tuple[float, list[int]]] = []
    exporter_free = [0.0] * EXPORTERS
    nxt = sent = 0
    first: float | None = None
    last = 0.0
    for _ in range(MAX_TICKS):
        if sent == len(xs):
            break
        t = clock[0]
        window[:] = [(e, n) for e, n in window if e > t]
        window += [(a + WINDOW_S * SLACK, n) for a, n in inflight if a <= t]
        inflight[:] = [(a, n) for a, n in inflight if a > t]
        nxt = export(t, xs, nxt, ready, exports, exporter_free, BATCH, POOL + BATCH)
        for k in range(SLOTS):
            if busy[k] > t:
                continue
            if held[k] is None and pool:
                held[k] = pool.pop(ready.choose()).nbytes
                since[k] = t
            n = held[k]
            if n is None:
                continue
            if n <= room(k):
                answered = t + 0.030 + n / MiB * 0.010
                inflight.append((answered, n))
                busy[k] = answered
                held[k] = None
                if reserved[0] == k:
                    reserved[:] = [-1, 0]
                sent += 1
                first = t if first is None else first
                last = t
            elif reserved[0] < 0 and t - since[k] >= RESERVE_AFTER_S:
                reserved[:] = [k, n]
        clock[0] = t + DT
    assert first is not None
    t = max(a for a, _ in inflight) if inflight else clock[0]
    window += [(a + WINDOW_S * SLACK, n) for a, n in inflight]
    room_end = max(0.0, LIMIT - sum(n for e, n in window if e > t))
    total = sum(xs)
    fluid = total / (LIMIT + LIMIT / WINDOW_S * (t - first) - room_end)
    bound = (math.ceil(total / (LIMIT * MARGIN)) - 1) * WINDOW_S
    took = last - first
    # the engine's measure (pacing.accounting.Activity): one spell from an empty window, the
    # shortest time any client could take at the service's full budget over the time taken
    shortest = (math.ceil(total / LIMIT) - 1) * WINDOW_S
    measure = min(1.0, shortest / took) if took > 0 else 1.0
    return (
        100 * measure,
        100 * (min(1.0, bound / took) if took > 0 else 1.0),
        100 * min(1.0, fluid),
    )


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.packing_model")
    p.add_argument("--items", type=int, default=100)
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--order", default=",".join(ORDERS))
    a = p.parse_args()
    for name in a.order.split(","):
        res = [run(ORDERS[name](bodies(a.items, seed))) for seed in range(a.seeds)]
        for label, xs in (
            ("engine's measure", [r[0] for r in res]),
            ("bound", [r[1] for r in res]),
            ("earlier measure", [r[2] for r in res]),
        ):
            print(
                f"{name:14s} {a.items} items, {label:16s}: median {statistics.median(xs):5.1f}% "
                f"worst {min(xs):5.1f}% mean {statistics.mean(xs):5.1f}%"
            )


if __name__ == "__main__":
    main()
