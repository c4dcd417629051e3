"""``python -m benchmarks soak hosts --seeds N [--start S] [--budget-s T]``: N randomized
owner histories on several hosts (``tests/hosthistories.py``: a job shared through
PostgreSQL by worker processes; workers killed with SIGKILL, drained with SIGTERM/SIGINT,
paused past the heartbeat; the PostgreSQL server restarted during and between rounds;
transient service faults), each against a fresh in-process emulator and a database of its
own on one PostgreSQL server started here (127.0.0.1, a free port, stopped by its PID at the
end); the oracle after every pass, ``verify`` after the cutover. Writes
``soak-hosts.{json,md}`` (``results_dir``: a fresh folder under ``benchmarks/results/runs/``,
or ``benchmarks/results/`` with ``--record``) and prints one line per history. A failing
seed is reproduced with ``python -m tests.hosthistories SEED``."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common import results_dir, stamp, write_result


def run(
    seeds: int, start: int = 1, budget_s: float | None = None, exclude: str = ""
) -> dict[str, Any]:
    from benchmarks.soak import rev
    from tests.histories import quiet
    from tests.hosthistories import HostOptions, interruptible, own_server, run_one

    quiet()
    t0 = time.time()
    command = f"python -m benchmarks soak hosts --seeds {seeds} --start {start}"
    if exclude:
        command += f" --exclude {exclude}"
    rows: list[dict[str, Any]] = []
    stopped_early = False
    interrupted = False
    try:
        with interruptible(), own_server() as srv:
            for seed in range(start, start + seeds):
                if budget_s is not None and time.time() - t0 > budget_s:
                    stopped_early = True
                    break
                opts = HostOptions(exclude=frozenset(x for x in exclude.split(",") if x))
                tmp = Path(tempfile.mkdtemp(prefix=f"soak-hosts-{seed}-"))
                try:
                    h = run_one(seed, tmp, srv, opts)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                fails = h.failures()
                first = h.first_failure()
                row: dict[str, Any] = {
                    "seed": seed,
                    "deletions": h.deletions,
                    "pairs": h.pairs,
                    "seconds": round(h.seconds, 1),
                    "passes": len(h.passes),
                    "events": [p.event for p in h.passes],
                    "kinds": [p.kind for p in h.passes],
                    "pg_restarts_between": sum(" PGRESTART between " in o for o in h.ops),
                    "failures": fails,
                    "first_failure": first.line() if first else None,
                    "error": h.error,
                }
                if fails:
                    row["log"] = h.text()
                rows.append(row)
                print(
                    f"seed {seed:5} {h.deletions:6} pairs={h.pairs} {h.seconds:5.1f}s "
                    f"passes={len(h.passes)} {fails or 'ok'}",
                    flush=True,
                )
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: workers killed, the server stopped
        interrupted = True
        print(f"interrupted: {len(rows)} histories ended before", flush=True)
    by_kind: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        for k in r["failures"]:
            by_kind[k].append(r["seed"])
    return {
        "scenario": "soak-hosts",
        "description": "randomized owner histories on several hosts (tests/hosthistories.py: "
        "PostgreSQL and worker processes, workers killed, drained, paused, the server "
        "restarted, transient faults) checked against emulator snapshots after every pass "
        "and verify after the cutover",
        "command": command,
        **stamp(t0),
        "git_revision": rev(),
        "wall_s": round(time.time() - t0, 1),
        "stopped_early_at_budget": stopped_early,
        "interrupted": interrupted,
        "histories": len(rows),
        "failed": [r["seed"] for r in rows if r["failures"]],
        "failures_by_kind": {k: v for k, v in sorted(by_kind.items())},
        "events": dict(Counter(e for r in rows for e in r["events"])),
        "pg_restarts_between": sum(r["pg_restarts_between"] for r in rows),
        "runs": rows,
    }


def table(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "### soak hosts\n",
        f"{res['description']}. Command: `{res['command']}` ({res['date']} UTC, "
        f"{m['cores']} cores, {m['cpu']}, Python {m['python']}, git {res['git_revision']}). "
        f"{res['histories']} histories in {res['wall_s']:.0f} s"
        f"{' (stopped at the time budget)' if res['stopped_early_at_budget'] else ''}"
        f"{' (interrupted)' if res.get('interrupted') else ''}; "
        f"failed: {res['failed'] or 'none'}.\n",
        f"Events of the passes: {res['events']}; PostgreSQL restarts between rounds: "
        f"{res['pg_restarts_between']}.\n",
        "| failure kind | histories | seeds |",
        "|---|---|---|",
    ]
    for k, seeds in res["failures_by_kind"].items():
        lines.append(f"| {k} | {len(seeds)} | {', '.join(map(str, seeds[:25]))} |")
    lines.append(
        "\nReproduce one: `python -m tests.hosthistories SEED` (prints the op log and every "
        "pass's findings).\n"
    )
    return "\n".join(lines) + "\n"


def main(a: Any) -> None:
    res = run(a.seeds, a.start, a.budget_s, a.exclude)
    results = results_dir(a.record)
    write_result("soak-hosts", res, table(res), results)
    print(table(res), flush=True)
    print(f"results: {results}", flush=True)
    if res["interrupted"]:
        raise SystemExit(130)
