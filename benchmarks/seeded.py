"""A soak of seeded cases, one row per seed (``soak cutshort``, ``soak startstop``): each
seed's case described, run and checked (an exception a problem too), until the seeds or
the time budget run out; written as ``<name>.{json,md}`` (``results_dir``) with one line
per seed on the way."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.common import results_dir, stamp, write_result


@dataclass(frozen=True)
class Soak:
    name: str  # soak-cutshort: the results' name; its command is the part after "soak-"
    description: str
    reproduce: str  # the module a seed is reproduced with: python -m MODULE SEED
    described: Callable[[int], dict[str, Any]]  # a seed's case, without running it
    checked: Callable[[int], dict[str, Any]]  # what running it found: "problems", and more
    columns: Sequence[tuple[str, str]]  # the table's (heading, row key), between s and problems

    def run(self, seeds: int, start: int = 1, budget_s: float | None = None) -> dict[str, Any]:
        t0 = time.time()
        rows: list[dict[str, Any]] = []
        for seed in range(start, start + seeds):
            if budget_s is not None and time.time() - t0 > budget_s:
                break
            t1 = time.time()
            row = {"seed": seed, **self.described(seed)}
            try:
                row |= self.checked(seed)
            except Exception as exc:  # a run that did not end in time, or raised: a failure
                row["problems"] = [f"{type(exc).__name__}: {exc}"]
            row["seconds"] = round(time.time() - t1, 2)
            rows.append(row)
            said = " ".join(f"{row.get(key)}" for _, key in self.columns)
            print(
                f"seed {seed:5} {row['seconds']:5.1f}s {said} {row['problems'] or 'ok'}", flush=True
            )
        what = self.name.removeprefix("soak-")
        return {
            "scenario": self.name,
            "description": self.description,
            "command": f"python -m benchmarks soak {what} --seeds {seeds} --start {start}",
            **stamp(t0),
            "wall_s": round(time.time() - t0, 1),
            "runs": len(rows),
            "failed": [r["seed"] for r in rows if r["problems"]],
            "rows": rows,
        }

    def table(self, res: dict[str, Any], extra: str = "") -> str:
        heads = ["seed", "s", *(h for h, _ in self.columns), "problems"]
        lines = [
            f"### soak {self.name.removeprefix('soak-')}\n",
            f"{res['description']}. Command: `{res['command']}` ({res['date']} UTC). "
            f"{res['runs']} runs in {res['wall_s']:.0f} s{extra}; "
            f"failed: {res['failed'] or 'none'}.\n",
            "| " + " | ".join(heads) + " |",
            "|" + "---|" * len(heads),
        ]
        for r in res["rows"]:
            cells = [r["seed"], r["seconds"], *(r.get(key) for _, key in self.columns)]
            shown = "; ".join(r["problems"])[:300] or "ok"
            lines.append("| " + " | ".join(map(str, [*cells, shown])) + " |")
        lines.append(f"\nReproduce one: `python -m {self.reproduce} SEED`.\n")
        return "\n".join(lines) + "\n"

    def main(self, a: Any, summary: Callable[[dict[str, Any]], str] = lambda res: "") -> None:
        res = self.run(a.seeds, a.start, a.budget_s)
        results = results_dir(a.record)
        text = self.table(res, summary(res))
        write_result(self.name, res, text, results)
        print(text, flush=True)
        print(f"results: {results}", flush=True)
