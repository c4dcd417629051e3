"""``python -m benchmarks soak cutshort --seeds N [--start S] [--budget-s T]``: N runs whose
drain is cut short at a random moment (``tests/cutshort.py``: random drain deadlines, the
quiet cut, a throttled or time-scaled emulator, lost answers, a stop at a random time),
each against a fresh in-process emulator: after each, the report's per-pair counts agree
with the state's (what ``copyengine status`` shows) and the next run finishes the copy
exactly. Writes ``soak-cutshort.{json,md}`` (``results_dir``) and prints one line per seed.
A failing seed is reproduced with ``python -m tests.cutshort SEED``."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import results_dir, stamp, write_result


def run(seeds: int, start: int = 1, budget_s: float | None = None) -> dict[str, Any]:
    from tests.cutshort import Case, check
    from tests.histories import quiet

    quiet()
    t0 = time.time()
    rows: list[dict[str, Any]] = []
    for seed in range(start, start + seeds):
        if budget_s is not None and time.time() - t0 > budget_s:
            break
        t1 = time.time()
        try:
            problems = check(seed)
        except Exception as exc:  # a run that did not end in time, or raised: a failure too
            problems = [f"{type(exc).__name__}: {exc}"]
        case = Case.of(seed)
        row = {
            "seed": seed,
            "seconds": round(time.time() - t1, 2),
            "profile": case.profile,
            "drain_timeout_s": case.drain_timeout_s,
            "problems": problems,
        }
        rows.append(row)
        print(f"seed {seed:5} {row['seconds']:5.1f}s {problems or 'ok'}", flush=True)
    return {
        "scenario": "soak-cutshort",
        "description": "runs cut short at random moments (tests/cutshort.py): report and "
        "state agree, the next run is exact",
        "command": f"python -m benchmarks soak cutshort --seeds {seeds} --start {start}",
        **stamp(t0),
        "wall_s": round(time.time() - t0, 1),
        "runs": len(rows),
        "failed": [r["seed"] for r in rows if r["problems"]],
        "rows": rows,
    }


def table(res: dict[str, Any]) -> str:
    lines = [
        "### soak cutshort\n",
        f"{res['description']}. Command: `{res['command']}` ({res['date']} UTC). "
        f"{res['runs']} runs in {res['wall_s']:.0f} s; failed: {res['failed'] or 'none'}.\n",
        "| seed | s | profile | drain deadline s | problems |",
        "|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        shown = "; ".join(r["problems"])[:300] or "ok"
        lines.append(
            f"| {r['seed']} | {r['seconds']} | {r['profile']} | {r['drain_timeout_s']} | {shown} |"
        )
    lines.append("\nReproduce one: `python -m tests.cutshort SEED`.\n")
    return "\n".join(lines) + "\n"


def main(a: Any) -> None:
    res = run(a.seeds, a.start, a.budget_s)
    results = results_dir(a.record)
    write_result("soak-cutshort", res, table(res), results)
    print(table(res), flush=True)
    print(f"results: {results}", flush=True)
