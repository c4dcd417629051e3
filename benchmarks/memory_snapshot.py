"""Where the engine's memory goes with many pairs at once (a diagnostic for issue 14, not a
scenario): the job runs in this process against an in-process emulator, and a tracemalloc
snapshot taken while most pairs are running is compared with one taken before, by file.
The emulator's own allocations are in the figures too (they are listed by file).

    python -m benchmarks.memory_snapshot --pairs 300
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import structlog

from copyengine.config import load_job
from copyengine.report import JobStats
from copyengine.wiring import run_job
from tests.emu import base_config, running
from tests.jobs import write_job


def task_names() -> Counter[str]:
    """The event loop's tasks by the function each one is suspended in (the innermost frame
    of the engine's code or the library's)."""
    out: Counter[str] = Counter()
    for t in asyncio.all_tasks():
        coro: Any = t.get_coro()
        names = []
        while coro is not None:
            code = getattr(coro, "cr_code", None) or getattr(coro, "ag_code", None)
            if code is not None:
                names.append(code.co_qualname)
            coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        out[" > ".join(names[:1] + names[-2:]) if names else repr(t.get_coro())] += 1
    return out


async def snapshot(pairs_n: int, top: int, by: str = "filename") -> None:
    cfg = base_config(profile="unlimited")
    cfg["tenants"][0]["user_sets"] = [
        {"prefix": "s", "count": pairs_n, "mailbox": {"items": 20, "sizes": 2000}}
    ]
    cfg["tenants"][1]["user_sets"] = [
        {"prefix": "t", "count": pairs_n, "mailbox": {"layout": "empty"}}
    ]
    async with running(cfg) as (_, ep, _session):
        with tempfile.TemporaryDirectory(prefix="ce-mem-") as tmp:
            pairs = [
                (f"s{i:04d}@contoso.example", f"t{i:04d}@fabrikam.example")
                for i in range(1, pairs_n + 1)
            ]
            job = load_job(write_job(Path(tmp), ep, pairs, limits=f"pairs_in_parallel = {pairs_n}"))
            stats = JobStats()
            taken: list[tracemalloc.Snapshot] = []
            tasks: Counter[str] = Counter()

            async def watch() -> None:
                for _ in range(4000):
                    running_now = sum(p.status == "running" for p in stats.pairs.values())
                    if running_now >= 0.9 * pairs_n and stats.total("copied") > 5 * pairs_n:
                        taken.append(tracemalloc.take_snapshot())
                        tasks.update(task_names())
                        return
                    await anyio.sleep(0.05)

            tracemalloc.start(8 if by == "traceback" else 1)
            base = tracemalloc.take_snapshot()
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                await run_job(job, None, stats)
                tg.cancel_scope.cancel()
    print(f"copied {stats.total('copied')} items; snapshot taken: {bool(taken)}")
    print(
        f"tasks at the snapshot: {sum(tasks.values())} ({sum(tasks.values()) / pairs_n:.1f} a pair)"
    )
    for name, n in tasks.most_common(top):
        print(f"  {n:6d}  {name}")
    if taken:
        for stat in taken[0].compare_to(base, by)[:top]:
            print(stat)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory_snapshot")
    p.add_argument("--pairs", type=int, default=300)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--by", choices=("filename", "lineno", "traceback"), default="filename")
    a = p.parse_args()
    # the pairs' events would be most of the run's time and of its allocations
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    anyio.run(snapshot, a.pairs, a.top, a.by)


if __name__ == "__main__":
    main()
