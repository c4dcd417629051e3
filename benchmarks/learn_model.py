"""An offline model of one target mailbox's learning (a diagnostic for issue 26, not a
scenario): the pacer's own decisions (``pacing.step``) against the emulator's own throttle
(``emulator.throttle.Throttle``, its other writer included), in simulated time, with no
sockets and no engine.

Four slots each take the item ``ReadyItems`` chooses from 16 ready, 4 per slot (as the
importers do: ``stages.READY_PER_IMPORTER``; more while it holds them, ``ReadyItems.full``)
and ask the step; the pacer is told the bytes not yet answered (``--unknown``: not told, so
it bursts each window as before the upload window's shape, ``pacing.shape``); a request that may go is admitted or
refused by the throttle the moment it goes and answered after the emulator's latency; a
429 is applied as the pacer applies it (the budget in effect cut, the mailbox held until
Retry-After). The service is the time-scaled profile (x60: 2.5 MB per 5 s); the job is
configured ``--ratio`` times above it, over the service's window or (``--window``) over
another one (``--window 300``: Exchange's documented limits, the issue's own case).

Per run: the share of what the real budget allows (the shortest time any client could take
for the bytes with the upload budget the other writer leaves, whole windows, against the
time taken), the 429 share, the longest span without an import (service seconds), the same
for the spans that begin after the first window, and with ``--trace`` the budget in effect
at each 429.

    python -m benchmarks.learn_model --ratio 60 --window 300 --seeds 4
    python -m benchmarks.learn_model --ratio 1 --background 0.5 --trace
    python -m benchmarks.learn_model --ratio 1 --seeds 8 [--unknown]   # the shape, 1/1
    python -m benchmarks.learn_model --ratio 2 --items 250 --seeds 24 --pairs 8  # as stricter
"""

from __future__ import annotations

import argparse
import functools
import heapq
import itertools
import math
import random
import statistics
from dataclasses import dataclass, field

from benchmarks import stricter
from copyengine.emulator.store import SizeSpec
from copyengine.emulator.throttle import Background, Limits, Throttle
from copyengine.pacing import learn, remember
from copyengine.pacing.policy import MB, PacerLimits
from copyengine.pacing.step import Budgets, Kind, step
from copyengine.pipeline.ready import Ready, ReadyItems
from copyengine.pipeline.stages import READY_PER_IMPORTER

MAX_EVENTS = 2_000_000
TIME_SCALE = 60.0
READY_PER_SLOT = READY_PER_IMPORTER  # items ready to import per slot, as ``stages`` has them


@dataclass
class Run:
    share: float
    share_429: float
    idle_s: float
    idle_after_s: float
    trace: list[str] = field(default_factory=list)
    done: list[float] = field(default_factory=list)  # when each import was answered
    bodies: list[int] = field(default_factory=list)  # ... and its body's bytes
    rate: float = 0.0  # bytes per second the service leaves the mailbox (the writer's out)
    engine_s: float = 0.0  # the longest span after the first window not physical (a job's)
    engine_left: int = 0  # ... the mailboxes with imports still to come then
    mid_s: float = 0.0  # the longest after the first window while every mailbox has some
    # the share of what the real budget and the configured rate together allow (``share``
    # counts the service's alone: under ``--window 300`` below ``--ratio 60`` the
    # configured rate is the lower, ``ratio / 60`` of the service's, and a budget learned
    # over a shorter window than configured is kept at most at that rate, ``learn``)
    allowed: float = 0.0
    # uploads sent and refused (a job's: its mailboxes' together, pooled as ``stricter``
    # pools the job's 429 share; its ``share_429`` is the largest of a mailbox's). The model
    # has only the uploads: ``stricter`` counts every request of the job (exports, listings,
    # sessions, both tenants), so the same refusals read as a lower share there
    sent: int = 0
    refused: int = 0

    @property
    def pooled_429(self) -> float:
        return self.refused / self.sent if self.sent else 0.0


def sizes(n: int, seed: int, largest: int = 200_000, realistic: bool = False) -> list[int]:
    """Bodies: log-normal around 60 KB, capped (the ``stricter`` scenario's largest); or
    (``realistic``) as the emulator draws a message's size (``sizes = "realistic"``, the
    demo job's: a long tail, some bodies larger than the room another writer leaves), its
    export stream a tenth longer (``MailboxSpec.data_ratio``), capped."""
    rnd = random.Random(seed)
    if realistic:
        spec = SizeSpec()
        return [min(largest, int(1.1 * spec.draw(rnd, "IPF.Note"))) for _ in range(n)]
    return [min(largest, int(rnd.lognormvariate(math.log(60_000), 1.0))) + 120 for _ in range(n)]


def run(
    ratio: float,
    background: float,
    window: float | None,
    items: int,
    seed: int,
    slots: int = 4,
    known: bool = True,
    largest: int = 200_000,
    seeded: float | None = None,
    probe: float | None = None,
    realistic: bool = False,
) -> Run:
    """One mailbox (``main``'s options). ``seeded``: the upload budget starts at this share
    of the configured one, as a later pass starts at what its last one ended with over the
    configured window (``remember.seeded``, refused); ``probe``: ``learn.Aimd.probe`` in
    place of its default, for this run; ``realistic``: the bodies' sizes (``sizes``)."""
    if probe is None:
        return _run(
            ratio, background, window, items, seed, slots, known, largest, seeded, realistic
        )
    answered = learn.answered
    learn.answered = functools.partial(answered, p=learn.Aimd(probe=probe))
    try:
        return _run(
            ratio, background, window, items, seed, slots, known, largest, seeded, realistic
        )
    finally:
        learn.answered = answered


def _run(
    ratio: float,
    background: float,
    window: float | None,
    items: int,
    seed: int,
    slots: int,
    known: bool,
    largest: int,
    seeded: float | None,
    realistic: bool = False,
) -> Run:
    svc = Limits.profile("exchange-fast", TIME_SCALE, app_requests=None)
    assert svc.upload_bytes and svc.requests
    th = Throttle(svc)
    th.background = Background(background)
    w = svc.upload_window if window is None else window
    b = Budgets(
        PacerLimits(
            requests=int(svc.requests * ratio),
            request_window=2 * w,
            upload_bytes=int(svc.upload_bytes * ratio),
            upload_window=w,
            window_slack=min(0.5, 0.002 * w),
        )
    )
    if seeded is not None:
        up = b.learned_uploads
        lim = remember.seeded(up, seeded, (up.configured, up.period), margin=1.0)
        b.learned_uploads = lim or up
    rnd = random.Random(seed + 1000)
    bodies = sizes(items, seed, largest, realistic)
    queue = list(range(items))
    left = sum(bodies)  # bytes not yet answered (the pipeline's backlog: ``shape``)
    events: list[tuple[float, int, str, int, str | None, float]] = []
    order = 0
    # per slot: [item, room reserved, first waited at]
    work: dict[int, tuple[int, int, float | None]] = {}
    parked: list[int] = []  # slots waiting for an answer or a free slot
    refused = sent = 0
    done: list[float] = []
    answered: list[int] = []
    trace: list[str] = []

    def push(t: float, what: str, slot: int, reason: str | None = None, ra: float = 0.0) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (t, order, what, slot, reason, ra))

    clock = [0.0]
    ready = ReadyItems(
        READY_PER_SLOT * slots,
        lambda: b.upload_room(clock[0]),
        2 * w,
        clock=lambda: clock[0],
        in_order=lambda: b.in_order(clock[0]),
    )

    ready.producer()

    def take() -> int:
        """The next item, as an importer takes it (``ReadyItems.choose``)."""
        while queue and not ready.full():
            i = queue.pop(0)
            ready.add(Ready(i, bodies[i], clock[0]))  # type: ignore[arg-type]
            if not queue:
                ready.done()  # every item is here (the exporters' end)
        return ready.pool.pop(ready.choose()).e  # type: ignore[return-value]

    for k in range(slots):
        push(0.0, "ask", k)
    for _ in range(MAX_EVENTS):
        if not events:
            break
        now, _, what, k, reason, ra = heapq.heappop(events)
        clock[0] = now
        if what == "ask":
            if k not in work:
                if not queue and not ready.pool:
                    continue
                work[k] = (take(), 0, None)
            item, reserved, since = work[k]
            size = bodies[item]
            b.plan(now, left if known else None)
            d = step(b, now, size, reserved, since)
            if d.kind is Kind.GO:
                b.went(size, since, reserved)
                b.take(size)
                sent += 1
                v = th.admit(now, "app", "m", size)
                latency = (
                    svc.latency_base
                    + svc.latency_per_mb * size / MB
                    + svc.latency_jitter * rnd.random()
                )
                push(now + latency, "done", k, v.reason, v.retry_after)
            elif d.kind is Kind.RESERVE:
                work[k] = (item, b.reserve(size, since), since)
                push(now, "ask", k)
            else:
                if since is None:
                    b.queue(now, size)
                work[k] = (item, reserved, now if since is None else since)
                if d.kind is Kind.SLEEP:
                    push(now + d.wait, "ask", k)
                else:
                    parked.append(k)
            continue
        item = work[k][0]
        size = bodies[item]
        b.release(now, size)
        if reason is None:
            th.release("app", "m")
            b.answered(size, now)
            left -= size
            done.append(now)
            answered.append(size)
            del work[k]
        else:
            refused += 1
            work[k] = (item, 0, None)  # retried afresh, as an importer asks again
            b.throttled(now, reason, ra, size)
            if now >= b.blocked_until:
                b.blocked_from = now
            b.blocked_until = max(b.blocked_until, now + ra)
            lim = b.learned_uploads
            budget, over = lim.in_window()
            trace.append(
                f"{now * TIME_SCALE:8.0f} s  429 {reason}, Retry-After "
                f"{ra * TIME_SCALE:.0f} s: {budget / MB:.2f} MB per {over * TIME_SCALE:.0f} s"
            )
        push(now, "ask", k)
        for p in parked:
            push(now, "ask", p)
        parked.clear()
    else:
        raise RuntimeError(f"no end after {MAX_EVENTS} events: the pacer loops at {now:.3f} s")
    if len(done) < items:
        raise RuntimeError(f"{items - len(done)} items never went: the pacer waits for nothing")
    room = svc.upload_bytes * (1 - background)
    bound = max(0, math.ceil(sum(bodies) / room) - 1) * svc.upload_window
    configured = sum(bodies) / (svc.upload_bytes * ratio / w)  # at the configured rate
    took = done[-1] - done[0] if len(done) > 1 else 0.0
    spans = [(a - done[0], c - a) for a, c in itertools.pairwise(done)]
    return Run(
        share=bound / took if took else 0.0,
        share_429=refused / sent if sent else 0.0,
        idle_s=max((s for _, s in spans), default=0.0) * TIME_SCALE,
        idle_after_s=max((s for a, s in spans if a > svc.upload_window), default=0.0) * TIME_SCALE,
        trace=trace,
        done=done,
        bodies=answered,
        rate=room / svc.upload_window,
        sent=sent,
        refused=refused,
        # (the configured rate the lower: a sliding window lets a client beat a rate bound)
        allowed=(max(bound, configured) if ratio / w < 1 / svc.upload_window else bound) / took
        if took
        else 0.0,
    )


def job(runs: list[Run]) -> Run:
    """Mailboxes that start together as one job (the ``stricter`` scenario's 8 pairs: each
    target mailbox has its own budgets, so a job is its mailboxes' runs side by side): the
    slowest mailbox's bound against the job's time, the largest 429 share, and the spans
    without an import in any mailbox."""
    t0 = min(r.done[0] for r in runs)
    took = max(r.done[-1] for r in runs) - t0
    bound = max(r.share * (r.done[-1] - r.done[0]) for r in runs)
    allowed = max(r.allowed * (r.done[-1] - r.done[0]) for r in runs)
    done = sorted(t for r in runs for t in r.done)
    spans = [(a - t0, c - a) for a, c in itertools.pairwise(done)]
    window = Limits.profile("exchange-fast", TIME_SCALE).upload_window
    # as ``stricter`` says them: a span an even client would have waited too is physical
    imports = {
        str(k): [[t, n] for t, n in zip(r.done, r.bodies, strict=True)] for k, r in enumerate(runs)
    }
    after = [s for s in stricter.spans(imports, runs[0].rate) if s.at > window]
    engine = [s for s in after if not s.physical]
    mid = max((s.seconds for s in after if s.left == len(runs)), default=0.0)
    worst = max(engine, key=lambda s: s.seconds, default=None)
    return Run(
        share=bound / took if took else 0.0,
        share_429=max(r.share_429 for r in runs),
        idle_s=max((s for _, s in spans), default=0.0) * TIME_SCALE,
        idle_after_s=max((s for a, s in spans if a > window), default=0.0) * TIME_SCALE,
        done=done,
        engine_s=worst.seconds * TIME_SCALE if worst else 0.0,
        engine_left=worst.left if worst else 0,
        mid_s=mid * TIME_SCALE,
        allowed=allowed / took if took else 0.0,
        sent=sum(r.sent for r in runs),
        refused=sum(r.refused for r in runs),
    )


def _allowed(r: Run) -> str:
    """The share of what the service and the configured rate together allow, when the
    configured rate is the lower."""
    return (
        f" ({r.allowed:.0%} of what it and the [limits] rate allow)" if r.allowed > r.share else ""
    )


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.learn_model")
    ap.add_argument("--ratio", type=float, default=60.0, help="configured / service budget")
    ap.add_argument("--window", type=float, default=None, help="configured window, seconds")
    ap.add_argument("--background", type=float, default=0.0, help="the other writer's share")
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--largest", type=int, default=200_000, help="the largest body, bytes")
    ap.add_argument(
        "--unknown", action="store_true", help="the pacer is not told the bytes left (bursts)"
    )
    ap.add_argument("--trace", action="store_true", help="the budget in effect at each 429")
    ap.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="also each set of this many seeds as one job (the stricter scenario: 8)",
    )
    ap.add_argument(
        "--seeded",
        type=float,
        default=None,
        help="start the upload budget at this share of the configured one, as remembered",
    )
    ap.add_argument("--probe", type=float, default=None, help="learn.Aimd.probe (below 1)")
    ap.add_argument(
        "--realistic", action="store_true", help="bodies as the emulator's realistic sizes"
    )
    a = ap.parse_args()
    runs = [
        run(
            a.ratio,
            a.background,
            a.window,
            a.items,
            s,
            known=not a.unknown,
            largest=a.largest,
            seeded=a.seeded,
            probe=a.probe,
            realistic=a.realistic,
        )
        for s in range(a.seeds)
    ]
    for s, r in enumerate(runs):
        print(
            f"seed {s}: {r.share:.0%} of the real budget{_allowed(r)}, 429 share "
            f"{r.share_429:.1%}, "
            f"longest idle {r.idle_s:.0f} s, after the first window {r.idle_after_s:.0f} s, "
            f"done at {r.done[-1] * TIME_SCALE:.0f} s"
        )
        if a.trace:
            print("\n".join(f"  {line}" for line in r.trace))
    print(
        f"median: {statistics.median(r.share for r in runs):.0%} of the real budget, "
        f"429 share {statistics.median(r.share_429 for r in runs):.1%}"
    )
    for k in range(0, len(runs) - a.pairs + 1, a.pairs) if a.pairs > 0 else ():
        j = job(runs[k : k + a.pairs])
        print(
            f"job of seeds {k}-{k + a.pairs - 1}: {j.share:.0%} of the real budget"
            f"{_allowed(j)}, 429 share "
            f"{j.share_429:.1%}, longest idle {j.idle_s:.0f} s, after the first window "
            f"{j.idle_after_s:.0f} s, the engine's {j.engine_s:.0f} s ({j.engine_left} "
            f"mailboxes left), with all left {j.mid_s:.0f} s"
        )


if __name__ == "__main__":
    main()
