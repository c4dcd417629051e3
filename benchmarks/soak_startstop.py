"""``python -m benchmarks soak startstop --seeds N [--start S] [--budget-s T]``: N real
``copyengine run`` processes on their embedded emulator, each stopped (SIGINT or SIGTERM) at
a random moment of its first 4 s (``tests/startstop.py``): the exit code documented, no
traceback, the report, ``job.finished`` and the screen agreeing, ``status`` reading the
state, and the next run exact (``verify``). Writes ``soak-startstop.{json,md}``
(``results_dir``) and prints one line per seed. A failing seed is reproduced with
``python -m tests.startstop SEED``."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from benchmarks.common import results_dir, stamp, write_result


def run(seeds: int, start: int = 1, budget_s: float | None = None) -> dict[str, Any]:
    from tests.startstop import Case, check

    t0 = time.time()
    rows: list[dict[str, Any]] = []
    for seed in range(start, start + seeds):
        if budget_s is not None and time.time() - t0 > budget_s:
            break
        t1 = time.time()
        case = Case.of(seed)
        try:
            found = check(seed)
            code, sent, problems = found.code, found.sent_ms, found.problems
        except Exception as exc:  # a run that did not end in time, or raised: a failure too
            code, sent, problems = -1, -1.0, [f"{type(exc).__name__}: {exc}"]
        row = {
            "seed": seed,
            "seconds": round(time.time() - t1, 2),
            "signal": case.sig.name,
            "sent_ms": sent,
            "exit_code": code,
            "problems": problems,
        }
        rows.append(row)
        print(f"seed {seed:5} {case.sig.name} {sent:6.0f} ms exit {code:3} {problems or 'ok'}")
    return {
        "scenario": "soak-startstop",
        "description": "a stop at a random moment of a run's first 4 s on its embedded "
        "emulator (tests/startstop.py): said alike everywhere, the next run exact",
        "command": f"python -m benchmarks soak startstop --seeds {seeds} --start {start}",
        **stamp(t0),
        "wall_s": round(time.time() - t0, 1),
        "runs": len(rows),
        "exit_codes": dict(Counter(str(r["exit_code"]) for r in rows)),
        "failed": [r["seed"] for r in rows if r["problems"]],
        "rows": rows,
    }


def table(res: dict[str, Any]) -> str:
    lines = [
        "### soak startstop\n",
        f"{res['description']}. Command: `{res['command']}` ({res['date']} UTC). "
        f"{res['runs']} runs in {res['wall_s']:.0f} s; exit codes {res['exit_codes']}; "
        f"failed: {res['failed'] or 'none'}.\n",
        "| seed | s | signal | sent ms | exit | problems |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        shown = "; ".join(r["problems"])[:300] or "ok"
        lines.append(
            f"| {r['seed']} | {r['seconds']} | {r['signal']} | {r['sent_ms']} "
            f"| {r['exit_code']} | {shown} |"
        )
    lines.append("\nReproduce one: `python -m tests.startstop SEED`.\n")
    return "\n".join(lines) + "\n"


def main(a: Any) -> None:
    res = run(a.seeds, a.start, a.budget_s)
    results = results_dir(a.record)
    write_result("soak-startstop", res, table(res), results)
    print(table(res), flush=True)
    print(f"results: {results}", flush=True)
