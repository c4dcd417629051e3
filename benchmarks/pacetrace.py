"""Diagnostics: the engine run with a trace of every target mailbox's uploads, for the
``fleet`` question "when did a mailbox under 95% of its ceiling lose its time".

``CE_BENCH_WRAP="python -m benchmarks.pacetrace -m" CE_PACETRACE=DIR python -m benchmarks
run fleet`` writes, per engine run, ``DIR/<pid>.json``: per target mailbox pacer, each upload
(asked for its slot, sent, answered, bytes, what first held it back), each spell of upload
activity as the account measured it (start, last send, bytes, shortest, taken), and each
sleep on a budget (asked, slept). The engine's code is not changed: its classes are wrapped
in this process before ``copyengine`` runs as ``__main__``. ``python -m benchmarks.pacetrace
report DIR`` reads them back.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the target app's id in each pacer's key (``CE_PT_TARGET``: another job's, such as the
# demo job's target app)
TARGET = os.environ.get("CE_PT_TARGET", "bench-target-app")


class _entered:
    """An async context manager already entered: only its exit is left."""

    def __init__(self, cm: Any) -> None:
        self.cm = cm

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.cm.__aexit__(*exc)


# each step also says what its wait is made of (``_parts``)
PARTS = bool(os.environ.get("CE_PT_PARTS"))


def _parts(b: Any, now: float, body: int, reserved: int, since: float | None) -> list[Any]:
    """What a step's wait is made of: the room kept, the bytes in flight, the bytes of the
    bodies waiting ahead, the upload budget in effect, the window's wait, the bucket's
    wait, the shape's wait, the bodies held as refused alone and as told, and the
    Retry-After block left (seconds)."""
    held = b.held_bytes + (0 if reserved else b.reserved)
    ahead = b._ahead(since)
    window = b._wait_on(b.learned_uploads, b.uploads, now, body, held, b.held_bytes)
    return [
        b.reserved,
        b.held_bytes,
        ahead,
        round(b.learned_uploads.cap),
        round(min(window, 1e6), 4),
        round(b._even_wait(now, body, held + ahead), 4),
        round(b._shaped_wait(now, body, b.held_bytes), 4),
        len(b.alone),
        len(b.told),
        round(b.blocked_until - now, 4),
    ]


def install(out: Path) -> None:
    from copyengine.pacing import accounting, pacer
    from copyengine.pacing.step import step as real_step

    try:  # when each body entered the ready pool (an engine that tells it)
        from copyengine.readiness import READY as ready_at
    except ImportError:
        ready_at = None  # type: ignore[assignment]
    uploads: dict[str, list[list[Any]]] = defaultdict(list)
    spells: dict[str, list[list[float]]] = defaultdict(list)
    sleeps: dict[str, list[list[float]]] = defaultdict(list)
    act_key: dict[int, str] = {}
    budget_key: dict[int, str] = {}
    caps: dict[str, list[list[Any]]] = defaultdict(list)
    clock = time.monotonic
    t0 = clock()

    import contextvars

    current: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
        "pacetrace", default=None
    )

    def traced_step(b: Any, now: float, body: int, reserved: int, since: Any) -> Any:
        d = real_step(b, now, body, reserved, since)
        rec = current.get()
        if rec is not None:
            # the wait the budgets alone say (before the look-again cap), and whether a cut
            # budget is spent through its bucket then
            full, _ = b.binding(now, body, reserved > 0, since)
            rec[6].append(
                [
                    round(now - t0, 4),
                    d.kind.value,
                    str(d.binds),
                    round(d.wait, 4),
                    round(min(full, 1e6), 4),
                    b.evens(now),
                    _parts(b, now, body, reserved, since) if PARTS else None,
                ]
            )
        return d

    pacer.step = traced_step  # type: ignore[attr-defined,assignment]

    orig_init = pacer.MailboxPacer.__init__

    def init(self: Any, key: str, *a: Any, **kw: Any) -> None:
        orig_init(self, key, *a, **kw)
        if TARGET in key:
            act_key[id(self.account.upload_activity)] = key
            budget_key[id(self.budgets)] = key

    pacer.MailboxPacer.__init__ = init  # type: ignore[method-assign]

    # the upload budget in effect as it moves: per mailbox, (time, what moved it: a 429's
    # reason or "answered", its Retry-After, body bytes, the cap after, the window it is kept
    # over, the window tried in place of the configured one or 0); answers only when the cap
    # moved by a hundredth or more
    from copyengine.pacing import step as step_mod

    orig_throttled = step_mod.Budgets.throttled
    orig_answered = step_mod.Budgets.answered

    def throttled(self: Any, now: float, reason: str, retry_after: float, body: int) -> None:
        orig_throttled(self, now, reason, retry_after, body)
        key = budget_key.get(id(self))
        if key is not None:
            lim = self.learned_uploads
            caps[key].append(
                [
                    now - t0,
                    reason,
                    retry_after,
                    body,
                    lim.cap,
                    lim.window,
                    self.blocked_until - t0,
                    getattr(self, "tried", 0.0),
                ]
            )

    def answered(self: Any, body: int, now: float | None = None) -> None:
        before = self.learned_uploads.cap
        orig_answered(self, body, now)
        key = budget_key.get(id(self))
        cap = self.learned_uploads.cap
        if key is not None and abs(cap - before) >= 0.01 * before:
            caps[key].append(
                [
                    clock() - t0,
                    "answered",
                    0.0,
                    body,
                    cap,
                    self.learned_uploads.window,
                    0.0,
                    getattr(self, "tried", 0.0),
                ]
            )

    step_mod.Budgets.throttled = throttled  # type: ignore[method-assign,assignment]

    # each shape planned (issue 26, the job's tail): per mailbox, (time, the bytes left as
    # the pairs told, the window's budget, what it holds, the spread held back, over how long,
    # the room free then as the plan counts it, the room reserved, whether the shape moved);
    # with CE_PT_ALLPLANS=1 every call of the plan, not only those that moved the shape
    plans: dict[str, list[list[Any]]] = defaultdict(list)
    orig_plan = step_mod.Budgets.plan

    def plan(self: Any, now: float, remaining: float | None) -> None:
        before = self.shape
        orig_plan(self, now, remaining)
        key = budget_key.get(id(self))
        if key is not None and (self.shape is not before or os.environ.get("CE_PT_ALLPLANS")):
            cap, _, sent = self._upload_window(now)
            s = self.shape
            _, _, soon = self._upload_window(now, self.smooth.soon)
            free = cap - soon - self.held_bytes - self.reserved
            plans[key].append(
                [
                    now - t0,
                    remaining,
                    cap,
                    sent + self.held_bytes,
                    s.spread,
                    s.window,
                    free,
                    self.reserved,
                    self.shape is not before,
                ]
            )

    step_mod.Budgets.plan = plan  # type: ignore[method-assign]
    step_mod.Budgets.answered = answered  # type: ignore[method-assign,assignment]

    orig_slot = pacer.MailboxPacer.slot  # returns an async context manager (``Slot``)
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def slot(self: Any, body_bytes: int = 0) -> Any:
        if not body_bytes or TARGET not in self.key:
            async with orig_slot(self, body_bytes):
                yield
            return
        t_in = clock() - t0
        first = real_step(self.budgets, clock(), body_bytes, 0, None)
        pooled = ready_at.get() if ready_at is not None else None
        rec: list[Any] = [
            t_in,
            None,
            None,
            body_bytes,
            first.kind.value,
            str(first.binds),
            [],
            None if pooled is None else pooled - t0,
            # the first decision's wait before the look-again cap
            round(min(self.budgets.binding(clock(), body_bytes, False, None)[0], 1e6), 4),
        ]
        uploads[self.key].append(rec)
        token = current.set(rec)
        try:
            cm = orig_slot(self, body_bytes)
            await cm.__aenter__()
        finally:
            current.reset(token)
        rec[1] = clock() - t0
        async with _entered(cm):
            try:
                yield
            finally:
                rec[2] = clock() - t0

    pacer.MailboxPacer.slot = slot  # type: ignore[method-assign,assignment]

    orig_sleep = pacer.MailboxPacer._throttle_sleep

    async def tsleep(self: Any, wait: float, service: bool, hold: Any) -> None:
        a = clock()
        try:
            await orig_sleep(self, wait, service, hold)
        finally:
            if TARGET in self.key:
                sleeps[self.key].append([a - t0, wait, clock() - a])

    pacer.MailboxPacer._throttle_sleep = tsleep  # type: ignore[method-assign]

    orig_leave = accounting.Activity.leave

    def leave(self: Any, now: float) -> None:
        key = act_key.get(id(self))
        if key is not None and self.demand == 1 and self._sent:
            best, taken, _ = self._spell()
            row = [self.since - t0, self.last - t0, self._sent, best, taken]
            if hasattr(self, "_ready"):  # the same spell without the readiness bound
                ready, self._ready = self._ready, self.since
                row.append(self._spell()[0])
                self._ready = ready
                # what bound the spell: the budget's (with the last window's slots), the
                # slots' (durations over the concurrency), the readiness; requests answered
                # by the last send and their mean duration
                if hasattr(self, "last_window"):
                    sent, n = self._sent, self._answered_at_last
                    row.append(
                        [
                            self.shortest(sent) + self.last_window(sent, self.limit, self.slots),
                            self._busy_at_last / self.slots,
                            self._ready - self.since,
                            n,
                            self._busy_at_last / n if n else 0.0,
                            # the fastest client's schedule through the slots (an engine
                            # that keeps one), and whether every send of it was placed
                            getattr(self, "_sched", self.since) - self.since,
                            bool(getattr(self, "_lanes", None)) and not self._pending
                            if hasattr(self, "_pending")
                            else False,
                        ]
                    )
            spells[key].append(row)
        orig_leave(self, now)

    accounting.Activity.leave = leave  # type: ignore[method-assign]

    # each export's wait for the pair's share of the job's byte budget: (asked, got, bytes)
    shares: dict[int, list[list[float]]] = defaultdict(list)
    effective: list[list[float]] = []  # (time, the budget's effective bytes) as it moves
    try:
        from copyengine.pipeline import work

        orig_take = work.ByteShares.take

        async def take(self: Any, items: int, nbytes: int) -> Any:
            a = clock()
            try:
                return await orig_take(self, items, nbytes)
            finally:
                shares[id(self)].append([a - t0, clock() - t0, nbytes])
                eff = self.budget.effective
                if not effective or effective[-1][1] != eff:
                    effective.append([clock() - t0, eff])

        work.ByteShares.take = take  # type: ignore[method-assign]
    except (ImportError, AttributeError):
        pass

    # every request's call name, start and end (the job's first seconds: where setup goes)
    calls: list[list[Any]] = []
    try:
        from copyengine.graph import transport

        orig_once = transport.Transport._once

        async def once(self: Any, call: Any, body: Any, size: int) -> Any:
            a = clock() - t0
            try:
                return await orig_once(self, call, body, size)
            finally:
                if a < 15.0:
                    calls.append([call.name, a, clock() - t0])

        transport.Transport._once = once  # type: ignore[method-assign]
    except (ImportError, AttributeError):
        pass

    def dump() -> None:
        out.mkdir(parents=True, exist_ok=True)
        data = {
            "uploads": uploads,
            "spells": spells,
            "sleeps": sleeps,
            "shares": list(shares.values()),
            "effective": effective,
            "calls": calls,
            "caps": caps,
            "plans": plans,
        }
        (out / f"{os.getpid()}.json").write_text(json.dumps(data))

    atexit.register(dump)


def _union(spans: list[list[float]]) -> list[list[float]]:
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def _overlap(spans: list[list[float]], a: float, b: float) -> float:
    return sum(max(0.0, min(y, b) - max(x, a)) for x, y in spans)


def _reasons(ups: list[list[Any]]) -> dict[str, float]:
    """Item-seconds waited, by what held each body back (from each decision of the step to
    the next, or to the send)."""
    out: dict[str, float] = defaultdict(float)
    for u in ups:
        steps = u[6]
        for i, (at, kind, binds, *_) in enumerate(steps):
            end = steps[i + 1][0] if i + 1 < len(steps) else u[1]
            if kind != "go":
                out[f"{kind}:{binds}" if binds else kind] += max(0.0, end - at)
    return out


def mailboxes(d: dict[str, Any]) -> list[dict[str, Any]]:
    """Per target mailbox of one trace: the account's share (shortest over taken, summed
    over its spells), and of the time taken, how much some upload waited (asked for its
    slot, not yet sent: on the budget, a slot or the loop) and how much nothing waited (the
    spell went on only because an import was in flight: the next item not exported yet)."""
    rows = []
    for key, sp in d["spells"].items():
        ups = [u for u in d["uploads"][key] if u[1] is not None]
        waits = _union([[u[0], u[1]] for u in ups if u[1] > u[0]])
        best = sum(s[3] for s in sp)
        taken = sum(s[4] for s in sp)
        unready = sum(s[5] if len(s) > 5 else s[3] for s in sp)  # without the readiness bound
        waited = sum(_overlap(waits, s[0], s[1]) for s in sp)
        rows.append(
            {
                "key": key.split("/")[-1][:12],
                "share": best / taken if taken else 1.0,
                "share_unready": unready / taken if taken else 1.0,
                "best": best,
                "taken": taken,
                "waited": waited,
                "idle": max(0.0, taken - waited),
                "share_waiting": min(1.0, best / waited) if waited > 0 else 1.0,
                "budget_waits": sum(1 for u in ups if any(x[2] == "upload" for x in u[6])),
                "first": min(u[0] for u in ups),
                "last": max(u[1] for u in ups),
                "bytes": sum(u[3] for u in ups),
                "lag": [s[2] - s[1] for s in d["sleeps"].get(key, []) if s[2] >= s[1]],
                "why": _reasons(ups),
                # bodies an importer took two windows or more after they entered the pool
                "overdue": sum(
                    1 for u in ups if len(u) > 7 and u[7] is not None and u[0] - u[7] >= 10
                ),
            }
        )
    rows.sort(key=lambda r: r["share"])
    return rows


def report(folder: Path) -> None:
    """Per trace file (one engine run): how many target mailboxes are under 95%, and where
    their lost time (taken less shortest) went."""
    for f in sorted(folder.glob("*.json")):
        rows = mailboxes(json.loads(f.read_text()))
        n = len(rows)
        low = [r for r in rows if r["share"] < 0.95]
        lost = sum(r["taken"] - r["best"] for r in low)
        idle = sum(min(r["idle"], r["taken"] - r["best"]) for r in low)
        lag = [x for r in rows for x in r["lag"]]
        print(f"{f.name}: {n} target mailboxes, {n - len(low)} ({(n - len(low)) / n:.1%}) >= 95%")
        old = sum(1 for r in rows if r["share_unready"] >= 0.95)
        print(
            f"  without the readiness bound (a body cannot go before it entered the ready pool): "
            f"{old} ({old / n:.1%}) >= 95%"
        )
        print(
            f"  under 95%: {len(low)}, {sum(1 for r in low if r['budget_waits'])} with a body "
            f"that waited on the upload budget; {sum(1 for r in low if r['taken'] - r['best'] >= 4)}"
            f" lost >= 4 s (most of a window)"
        )
        print(
            f"  their time lost (taken - shortest): {lost:.1f} s, of it {idle:.1f} s with nothing "
            "waiting to be sent (an import in flight, the next item not yet exported)"
        )
        print(
            f"  >= 95% if that time were left out: "
            f"{sum(1 for r in rows if r['share_waiting'] >= 0.95) / n:.1%}"
        )
        print(
            f"  first upload median {statistics.median(r['first'] for r in rows):.1f} s, last "
            f"median {statistics.median(r['last'] for r in rows):.1f} s, max "
            f"{max(r['last'] for r in rows):.1f} s; budget sleeps overslept "
            f"{statistics.fmean(lag) if lag else 0:.4f} s mean, {max(lag, default=0):.3f} max"
        )
        why: dict[str, float] = defaultdict(float)
        for r in low:
            for k, v in r["why"].items():
                why[k] += v
        print(
            "  under 95%, item-seconds waited by what held a body back: "
            + ", ".join(f"{k} {v:.0f}" for k, v in sorted(why.items(), key=lambda kv: -kv[1]))
        )
        print(
            f"  bodies taken from the pool two windows or more after they entered it: under 95% "
            f"{sum(r['overdue'] for r in low)} in {sum(1 for r in low if r['overdue'])} mailboxes;"
            f" the others {sum(r['overdue'] for r in rows if r['share'] >= 0.95)} in "
            f"{sum(1 for r in rows if r['share'] >= 0.95 and r['overdue'])}"
        )
        exports = json.loads(f.read_text()).get("shares", [])
        if exports:
            waits = [sum(b - a for a, b, _ in pair) for pair in exports]
            first = [pair[0][1] - pair[0][0] for pair in exports if pair]
            before5 = [sum(b - a for a, b, _ in pair if a < 5) for pair in exports]
            print(
                f"  exports' waits for the pair's share of the byte budget: per pair median "
                f"{statistics.median(waits):.2f} s, max {max(waits):.1f} s; the first export's "
                f"median {statistics.median(first):.2f} s, max {max(first):.1f} s; asked in the "
                f"first 5 s: {sum(before5):.0f} pair-s over {sum(1 for w in before5 if w > 1)} "
                "pairs waiting > 1 s"
            )
        for r in low[:10]:
            print(
                "  {key} share {share:.3f} best {best:.1f} taken {taken:.1f} waited "
                "{waited:.1f} MB {mb:.2f} first {first:.1f} last {last:.1f}".format(
                    mb=r["bytes"] / 1e6, **r
                )
            )


def refusals(folder: Path, after: float = 6.0, scale: float = 60.0) -> None:
    """Per trace file: each upload refused (``IncomingBytes`` and the like) ``after`` seconds
    or more into the run, against its Retry-After: how long until the mailbox sent its next
    body, and until the refused body itself went again (retried afresh, it waits behind the
    bodies waiting before it; known by its size, as the trace has no item id: another body
    of that size sent first is taken for it); in service seconds (``scale``: the emulator's
    time scale). A 429 with no body (a listing's, a GET's) is no upload refused.
    Issue 26, ``stricter`` beside the other writer: a Retry-After of 7 service s (median),
    the next body 26 s after it, the refused body 122 s."""
    for f in sorted(folder.glob("*.json")):
        d = json.loads(f.read_text())
        asked: list[float] = []
        nxt: list[float] = []
        own: list[float] = []
        for key, caps in d["caps"].items():
            mine = sorted((u[1], u[3]) for u in d["uploads"].get(key, []) if u[1] is not None)
            sent = [s for s, _ in mine]
            for c in caps:
                t = c[0]
                if c[1] == "answered" or not c[3] or t < after:
                    continue  # (no body: a request of the mailbox's other than an upload)
                asked.append(c[2] * scale)
                later = [s for s in sent if s > t + 1e-4]
                if later:
                    nxt.append((later[0] - t) * scale)
                again = [s for s, n in mine if s > t + 1e-4 and n == c[3]]
                if again:
                    own.append((again[0] - t) * scale)
        if not asked:
            print(f"{f.name}: no upload refused after {after:g} s")
            continue
        med = statistics.median
        print(
            f"{f.name}: {len(asked)} refused after {after:g} s; Retry-After median "
            f"{med(asked):.1f} s (max {max(asked):.1f}); the mailbox's next body median "
            f"{med(nxt) if nxt else 0:.0f} s ({min(nxt, default=0):.0f}-{max(nxt, default=0):.0f}); "
            f"the refused body again median {med(own) if own else 0:.0f} s (service s)"
        )


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["report"]:
        report(Path(args[1]))
        return
    if args[:1] == ["refusals"]:
        refusals(Path(args[1]))
        return
    if args[:1] != ["-m"]:
        raise SystemExit(
            "usage: python -m benchmarks.pacetrace -m copyengine run JOB | report DIR"
            " | refusals DIR"
        )
    run_traced(args, lambda: install(Path(os.environ.get("CE_PACETRACE", "pacetrace"))))


def run_traced(args: list[str], install_tracer: Callable[[], None]) -> None:
    """``args`` (``-m MODULE ...``) run as ``__main__`` with a tracer installed first. Run as a
    script (``python /path/to/pacetrace.py -m``, for a ``--base`` engine run from its own
    worktree): that worktree's engine, not this one's."""
    sys.path.insert(0, os.getcwd())
    install_tracer()
    sys.argv = args[1:]
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
