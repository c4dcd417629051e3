"""Diagnostics: where the engine's delay from a freed request slot (or a ready item) to the
woken task's send goes (``fleet``, issue 26).

``CE_BENCH_WRAP="python -m benchmarks.hoptrace -m" CE_HOPTRACE=DIR python -m benchmarks run
fleet`` writes, per engine run, ``DIR/<pid>.json``: per wake-up through a ``wakeup.Turns``
of a target mailbox's pacer (a freed slot) or of a pair's ready pool (an item put for an
idle importer), the seconds from the wake to the woken task running, the loop iterations
in between and the callbacks the loop had queued at the wake; per slot released, whether
the task that released it took a slot of the same mailbox again before it yielded to the
loop (no hop), and the loop's iteration times. The engine's code is not changed: its classes
are wrapped in this process before ``copyengine`` runs as ``__main__``. ``python -m
benchmarks.hoptrace report DIR`` reads them back.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

try:
    from benchmarks.pacetrace import run_traced
except ImportError:  # run as a script from another worktree: its neighbour
    from pacetrace import run_traced  # type: ignore[no-redef]

TARGET = os.environ.get("CE_PT_TARGET", "bench-target-app")


def install(out: Path) -> None:
    from copyengine import wakeup
    from copyengine.pacing import pacer, slot
    from copyengine.pipeline import ready as ready_mod

    clock = time.perf_counter
    it = [0]  # loop iterations so far
    iters: list[float] = []  # each iteration's seconds (sampled: every 16th)
    hops: dict[str, list[list[float]]] = defaultdict(list)  # kind -> [secs, iterations, queued]
    kinds: dict[int, str] = {}  # id(Turns) -> kind
    released: dict[str, int] = defaultdict(int)  # what the releasing task did next

    orig_run_once = asyncio.BaseEventLoop._run_once  # type: ignore[attr-defined]

    def run_once(self: Any) -> None:
        it[0] += 1
        if it[0] & 15:
            orig_run_once(self)
            return
        a = clock()
        orig_run_once(self)
        iters.append(clock() - a)

    asyncio.BaseEventLoop._run_once = run_once  # type: ignore[attr-defined]

    orig_pinit = pacer.MailboxPacer.__init__

    def pinit(self: Any, key: str, *a: Any, **kw: Any) -> None:
        orig_pinit(self, key, *a, **kw)
        if TARGET in key:
            kinds[id(self._slot_free)] = "slot"

    pacer.MailboxPacer.__init__ = pinit  # type: ignore[method-assign]

    orig_rinit = ready_mod.ReadyItems.__init__

    def rinit(self: Any, *a: Any, **kw: Any) -> None:
        orig_rinit(self, *a, **kw)
        kinds[id(self._takers)] = "item"

    ready_mod.ReadyItems.__init__ = rinit  # type: ignore[method-assign]

    woken: dict[int, tuple[float, int, int]] = {}  # id(future) -> (at, iteration, queued)
    # what the loop had queued ahead of a woken task (sampled: every 16th wake), by callback
    ahead: dict[str, int] = defaultdict(int)
    nwake = [0]

    def _name(h: Any) -> str:
        cb = getattr(h, "_callback", None)
        owner = getattr(cb, "__self__", None)
        if isinstance(owner, asyncio.Task):
            coro: Any = owner.get_coro()
            frame = getattr(coro, "cr_frame", None)
            where = coro
            # the innermost coroutine awaited: what the task was waiting in
            while getattr(where, "cr_await", None) is not None:
                nxt = where.cr_await
                if not hasattr(nxt, "cr_frame"):
                    break
                where = nxt
            fr = getattr(where, "cr_frame", None) or frame
            return f"task:{getattr(where, '__qualname__', '?')}" + (
                f"@{fr.f_lineno}" if fr is not None else ""
            )
        return f"cb:{getattr(cb, '__qualname__', type(cb).__name__)}"

    orig_wake_one = wakeup.Turns.wake_one

    def wake_one(self: Any) -> None:
        kind = kinds.get(id(self))
        if kind is not None and self._queue:
            f = next((f for f in self._queue if not f.done()), None)
            if f is not None:
                loop = asyncio.get_running_loop()
                queue = loop._ready  # type: ignore[attr-defined]
                woken[id(f)] = (clock(), it[0], len(queue))
                nwake[0] += 1
                if not nwake[0] & 15:
                    for h in queue:
                        ahead[_name(h)] += 1
        orig_wake_one(self)

    wakeup.Turns.wake_one = wake_one  # type: ignore[method-assign]

    async def wait(self: Any) -> None:
        kind = kinds.get(id(self))
        f: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(f)
        try:
            await f
        except BaseException:
            woken.pop(id(f), None)
            if f.done() and not f.cancelled():
                if self._pass_on:
                    self.wake_one()
            else:
                try:
                    self._queue.remove(f)
                except ValueError:
                    pass
            raise
        w = woken.pop(id(f), None)
        if kind is not None and w is not None:
            hops[kind].append([clock() - w[0], it[0] - w[1], w[2]])

    wakeup.Turns.wait = wait  # type: ignore[method-assign]

    # the releasing task: does it enter a slot of the same pacer again in the same step?
    # id(pacer) -> (iteration, task, whether a task waited in the pacer for a slot)
    last_release: dict[int, tuple[int, Any, bool]] = {}
    orig_release = slot.Slot._release
    orig_aenter = slot.Slot.__aenter__

    def release(self: Any) -> None:
        p = self._pacer
        if TARGET in p.key and self._body:
            waiters = len(p._slot_free)
            released["with_waiters" if waiters else "no_waiters"] += 1
            last_release[id(p)] = (it[0], asyncio.current_task(), bool(waiters))
        orig_release(self)

    async def aenter(self: Any) -> None:
        p = self._pacer
        lr = last_release.pop(id(p), None) if self._body else None
        if lr is not None:
            same = lr[1] is asyncio.current_task() and lr[0] == it[0]
            key = ("same_task_same_step" if same else "other") + ("_waiters" if lr[2] else "")
            released[key] += 1
        await orig_aenter(self)

    slot.Slot._release = release  # type: ignore[method-assign]
    slot.Slot.__aenter__ = aenter  # type: ignore[method-assign]

    def dump() -> None:
        out.mkdir(parents=True, exist_ok=True)
        data = {
            "hops": hops,
            "iters": iters,
            "released": released,
            "iterations": it[0],
            "ahead": ahead,
        }
        (out / f"{os.getpid()}.json").write_text(json.dumps(data))

    atexit.register(dump)


def _q(v: list[float], p: float) -> float:
    return v[min(len(v) - 1, int(p * len(v)))] if v else 0.0


def report(folder: Path) -> None:
    for f in sorted(folder.glob("*.json")):
        d = json.loads(f.read_text())
        print(f"{f.name}: {d['iterations']} loop iterations")
        it = sorted(d["iters"])
        print(
            f"  iteration ms (1 in 16): median {_q(it, 0.5) * 1e3:.2f} p90 {_q(it, 0.9) * 1e3:.2f}"
            f" p99 {_q(it, 0.99) * 1e3:.2f}; mean {sum(it) / max(1, len(it)) * 1e3:.2f}"
        )
        for kind, rows in sorted(d["hops"].items()):
            s = sorted(r[0] for r in rows)
            n = sorted(r[1] for r in rows)
            qd = sorted(r[2] for r in rows)
            print(
                f"  {kind}: {len(rows)} wakes; wake to run ms median {_q(s, 0.5) * 1e3:.2f} p90 "
                f"{_q(s, 0.9) * 1e3:.2f} p99 {_q(s, 0.99) * 1e3:.2f}; iterations median "
                f"{_q(n, 0.5):.0f} p90 {_q(n, 0.9):.0f}; callbacks queued at the wake median "
                f"{_q(qd, 0.5):.0f} p90 {_q(qd, 0.9):.0f}"
            )
        print(f"  slots released, and the next slot of that mailbox taken by: {d['released']}")
        ahead = sorted(d.get("ahead", {}).items(), key=lambda kv: -kv[1])
        total = sum(n for _, n in ahead) or 1
        print(
            "  queued ahead of a woken task (sampled): "
            + ", ".join(f"{k} {n / total:.0%}" for k, n in ahead[:12])
        )


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["report"]:
        report(Path(args[1]))
        return
    if args[:1] != ["-m"]:
        raise SystemExit("usage: python -m benchmarks.hoptrace -m copyengine run JOB | report DIR")
    run_traced(args, lambda: install(Path(os.environ.get("CE_HOPTRACE", "hoptrace"))))


if __name__ == "__main__":
    main()
