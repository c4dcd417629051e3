"""The ``hosts`` scenario: one job shared by 1, 2 and 4 worker processes through PostgreSQL.

Part 1: the same job (16 pairs of 240 items of 20 KB) under the time-scaled exchange profile,
whose per-mailbox request window (167 per 10 s) binds, not this machine's CPU; each worker
runs 2 groups at once, so one worker cannot run every group at the same time. Items/s from
``submit`` to the last group done. Target: 2 workers >= 1.7x one worker.

Part 2: the ``throughput`` job (10 pairs, 20,000 items, unlimited profile) run by
``copyengine run`` with its state in SQLite and in PostgreSQL, alternating, in one emulator.
Target: the engine's CPU seconds per 1,000 items with PostgreSQL at most 15% above SQLite's.
The PostgreSQL server's own CPU is reported beside it (it runs in its own processes).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import emulator_process, stamp
from benchmarks.harness import (
    ROOT,
    TIME_SCALED_LIMITS,
    Control,
    Scenario,
    emulator_toml,
    job_toml,
    run_once,
    scenario_checks,
)

HOSTS = Scenario(
    "hosts",
    "one job shared by 1, 2 and 4 worker processes (16 pairs of 240 items of 20 KB, "
    "time-scaled exchange profile x60: the per-mailbox request window binds; 2 groups per "
    "worker at once)",
    pairs=16,
    items_per_mailbox=240,
    sizes={"distribution": "fixed", "value": 20_000},
    layout="flat",
    profile="exchange-fast",
    time_scale=60.0,
    repeats=1,
    warmup=False,
    limits=TIME_SCALED_LIMITS,
    timeout=900,
)
THROUGHPUT = Scenario(
    "hosts-store",
    "the throughput job with its state in SQLite and in PostgreSQL",
    pairs=10,
    items_per_mailbox=2000,
    repeats=2,
    warmup=False,
)
WORKERS = (1, 2, 4)
CONCURRENCY = 2


def _pg_cpu(pids: list[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def _postgres_pids() -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() == "postgres":
                    out.append(int(d.name))
            except OSError:
                pass
    return out


def _hosts_run(info: dict[str, Any], ctl: Control, url: str, n_workers: int) -> dict[str, Any]:
    import anyio

    from copyengine.cluster.app import read_groups, submit
    from copyengine.config import load_job

    s = HOSTS
    run = f"h{n_workers}"
    pairs = [
        (f"src{i:04d}@source.example", f"{run}-{i:04d}@target.example")
        for i in range(1, s.pairs + 1)
    ]
    for _, t in pairs:
        ctl.call("POST", "/tenants/target/users", {"upn": t, "mailbox": {"layout": "empty"}})
    ctl.call("POST", "/stats/reset")
    with tempfile.TemporaryDirectory(prefix="ce-hosts-") as tmp_:
        tmp = Path(tmp_)
        job = job_toml(
            info,
            pairs,
            tmp,
            {**s.limits, "pairs_in_parallel": 1},
            s.profile,
            state=url,
            extra=f"[workers]\nconcurrency = {CONCURRENCY}\nheartbeat_s = 2\nstalled_after_s = 10\n",
        )
        cfg = load_job(job)
        t0 = time.monotonic()
        anyio.run(submit, cfg)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "copyengine", "worker", str(job)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=(tmp / f"w{i}.log").open("wb"),
            )
            for i in range(n_workers)
        ]
        try:
            for _ in range(int(s.timeout / 0.5)):
                groups = anyio.run(read_groups, cfg)
                if groups and all(g["state"] in ("done", "failed") for g in groups):
                    break
                time.sleep(0.5)
            else:
                raise TimeoutError(f"hosts with {n_workers} workers exceeded {s.timeout}s")
            wall = time.monotonic() - t0
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
        failed = [g for g in groups if g["state"] != "done"]
        if failed:
            raise RuntimeError(f"groups failed: {failed[:2]}")
    stats = ctl.call("GET", "/stats")
    copied = sum(int(g["copied"]) for g in groups)
    integ = scenario_checks(s, ctl, {"copyengine": [{"target_upns": [t for _, t in pairs]}]})
    lost, dup = integ["integrity"]["lost"], integ["integrity"]["duplicated"]
    return {
        "workers": n_workers,
        "concurrency": CONCURRENCY,
        "items": copied,
        "wall_s": round(wall, 2),
        "items_per_s": round(copied / wall, 1),
        "max_inflight_per_mailbox": max(stats["max_inflight"].values() or [0]),
        "share_429": round(stats["throttled_total"] / max(1, stats["total_requests"]), 5),
        "lost": lost,
        "duplicated": dup,
    }


def run(repeats: int | None = None) -> dict[str, Any]:
    import psycopg

    from tests import pg

    t_start = time.time()
    out: dict[str, Any] = {}
    with pg.server() as server_url:

        def fresh() -> str:
            name = f"bench_{os.urandom(4).hex()}"
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            return pg.with_db(server_url, name)

        with emulator_process(emulator_toml(HOSTS), timeout=600) as (info, _pid):
            ctl = Control(info)
            hosts = []
            for n in WORKERS:
                res = _hosts_run(info, ctl, fresh(), n)
                print(f"  hosts {n} workers: {res['items_per_s']} items/s", flush=True)
                hosts.append(res)
        out["hosts"] = hosts
        with emulator_process(emulator_toml(THROUGHPUT), timeout=600) as (info, _pid):
            ctl = Control(info)
            runs: dict[str, list[dict[str, Any]]] = {"sqlite": [], "postgresql": []}
            for r in range(repeats or THROUGHPUT.repeats):
                for kind in ("sqlite", "postgresql"):
                    state = "state.sqlite" if kind == "sqlite" else fresh()
                    before = _pg_cpu(_postgres_pids())
                    res = run_once(
                        THROUGHPUT, info, ctl, "copyengine", f"s{r}{kind[:2]}", 10, state=state
                    )
                    pg_cpu = _pg_cpu(_postgres_pids()) - before
                    res["postgres_cpu_s_per_1000_items"] = round(
                        pg_cpu / max(1, res["items"]) * 1000, 3
                    )
                    res.pop("samples", None)
                    res.pop("target_upns", None)
                    runs[kind].append(res)
                    print(
                        f"  store {kind} run {r + 1}: {res['items_per_s']} items/s, engine CPU "
                        f"{res['cpu_s_per_1000_items']} s/1k items",
                        flush=True,
                    )
        out["store"] = runs
    one = next(h for h in hosts if h["workers"] == 1)["items_per_s"]
    two = next(h for h in hosts if h["workers"] == 2)["items_per_s"]
    four = next(h for h in hosts if h["workers"] == 4)["items_per_s"]
    sq = statistics.median(r["cpu_s_per_1000_items"] for r in runs["sqlite"])
    pq = statistics.median(r["cpu_s_per_1000_items"] for r in runs["postgresql"])
    pg_own = statistics.median(r["postgres_cpu_s_per_1000_items"] for r in runs["postgresql"])
    integrity = (sum(h["lost"] for h in hosts), sum(h["duplicated"] for h in hosts))
    verdict = [
        f"snapshots: {integrity[0]} lost, {integrity[1]} duplicated over "
        f"{sum(h['items'] for h in hosts)} items; max requests in flight on any mailbox "
        f"{max(h['max_inflight_per_mailbox'] for h in hosts)}",
        f"2 workers / 1 worker = {two / one:.2f}x (target 1.7x: "
        f"{'met' if two >= 1.7 * one else 'MISSED'}); 4 workers / 1 = {four / one:.2f}x",
        f"engine CPU per 1,000 items, PostgreSQL / SQLite = {pq:.3f} / {sq:.3f} s = "
        f"{pq / sq:.0%} (target <= 115%: {'met' if pq <= 1.15 * sq else 'MISSED'}); the "
        f"PostgreSQL server's own CPU {pg_own:.3f} s per 1,000 items",
    ]
    return {
        "scenario": "hosts",
        "description": HOSTS.description,
        "command": "python -m benchmarks run hosts",
        **stamp(t_start),
        **out,
        "verdict": verdict,
    }


def table(res: dict[str, Any]) -> str:
    m = res["machine"]
    rows = "\n".join(
        f"| {h['workers']} | {h['concurrency']} | {h['items']:,} | {h['wall_s']:.1f} | "
        f"{h['items_per_s']:.1f} | {h['max_inflight_per_mailbox']} | {h['share_429']:.4f} |"
        for h in res["hosts"]
    )
    store = "\n".join(
        f"| {k} | {statistics.median(r['items_per_s'] for r in rs):.0f} | "
        f"{statistics.median(r['cpu_s_per_1000_items'] for r in rs):.3f} | "
        + (
            f"{statistics.median(r['postgres_cpu_s_per_1000_items'] for r in rs):.3f}"
            if k == "postgresql"
            else "-"
        )
        + f" | {statistics.median(r['peak_rss_mb'] for r in rs):.0f} |"
        for k, rs in res["store"].items()
    )
    verdict = "\n".join(f"- {v}" for v in res["verdict"])
    return (
        f"### hosts\n\n{res['description']}. Command: `{res['command']}` ({res['date']} UTC, "
        f"{m['cores']} cores, {m['cpu']}, Python {m['python']}).\n\n"
        "| workers | groups each | items | wall s | items/s | max in flight per mailbox "
        "| 429 share |\n|---|---|---|---|---|---|---|\n"
        f"{rows}\n\nThe throughput job (10 pairs, 20,000 items, unlimited profile) by state "
        "store, medians:\n\n| store | items/s | engine CPU s/1k items | PostgreSQL server CPU "
        f"s/1k items | peak RSS MB |\n|---|---|---|---|---|\n{store}\n\nTarget: 2 workers >= "
        "1.7x one worker; PostgreSQL engine CPU per 1,000 items <= 115% of SQLite's.\n\n"
        f"{verdict}\n"
    )


if __name__ == "__main__":
    r = run()
    print(json.dumps(r["verdict"], indent=1))
