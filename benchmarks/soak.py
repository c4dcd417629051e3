"""``python -m benchmarks soak passes --seeds N [--start S] [--deletions mirror|keep|both]``:
N randomized owner histories per mode (``tests/histories.py``), each against a fresh
in-process emulator, checked by the oracle after every pass. Writes
``soak-passes.{json,md}`` to a fresh folder under ``benchmarks/results/runs/`` (to
``benchmarks/results/`` itself with ``--record``) (every history's seed, failures and first failing
pass; the full op log of failing ones) and prints one line per history. A failing seed is
reproduced with ``python -m tests.histories SEED --deletions MODE``."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common import results_dir, stamp, write_result


def rev() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "copyengine"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=10,
        )
        return out.stdout.strip() + ("+dirty(copyengine)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _fired(op: str, said: str = " N404 fired ") -> int:
    """The 404s an op-log line ``N404 fired N of ...`` says a rule answered (the faults a
    ``QUIRK fired N of ...`` says, with that ``said``)."""
    _, _, rest = op.partition(said)
    return int(rest.split(" ", 1)[0]) if rest[:1].isdigit() else 0


def _stacked(op: str) -> list[str]:
    """The kinds an op-log line ``STACK a + b + ...`` (the thirteenth stream's) says stacked
    in its round; none for any other line."""
    _, said, rest = op.partition(" STACK ")
    if not said or rest.startswith("trigger "):
        return []
    return rest.split(" + ")


def run(
    seeds: int,
    start: int = 1,
    deletions: str = "both",
    budget_s: float | None = None,
    name: str = "soak-passes",
    exclude: str = "",
    history_limit_s: float | None = None,
    p_samekey: float | None = None,
    p_rules: float | None = None,
    p_rename: float | None = None,
) -> dict[str, Any]:
    from tests.histories import Options, quiet, run_one

    opts = Options(exclude=frozenset(x for x in exclude.split(",") if x))
    if history_limit_s is not None:
        opts.limit_s = history_limit_s
    if p_samekey is not None:
        opts.p_samekey = p_samekey
    if p_rules is not None:
        opts.p_rules = p_rules
    if p_rename is not None:
        opts.p_rename = p_rename

    quiet()
    modes = ["mirror", "keep"] if deletions == "both" else [deletions]
    t0 = time.time()
    command = (
        f"python -m benchmarks soak passes --seeds {seeds} --start {start} --deletions {deletions}"
    )
    if exclude:
        command += f" --exclude {exclude}"
    if history_limit_s is not None:
        command += f" --history-limit-s {history_limit_s:g}"
    if p_samekey is not None:
        command += f" --p-samekey {p_samekey:g}"
    if p_rules is not None:
        command += f" --p-rules {p_rules:g}"
    if p_rename is not None:
        command += f" --p-rename {p_rename:g}"
    histories: list[dict[str, Any]] = []
    stopped_early = False
    for seed in range(start, start + seeds):
        for mode in modes:
            if budget_s is not None and time.time() - t0 > budget_s:
                stopped_early = True
                break
            with tempfile.TemporaryDirectory(prefix=f"soak-{seed}-") as tmp:
                h = run_one(seed, mode, Path(tmp), opts)
            fails = h.failures()
            first = h.first_failure()
            row: dict[str, Any] = {
                "seed": seed,
                "deletions": mode,
                "seconds": round(h.seconds, 2),
                "passes": len(h.passes),
                "failures": fails,
                "first_failure": first.line() if first else None,
                "error": h.error,
                "timed_out": h.timed_out,
                "kill": next((p.note for p in h.passes if p.kind == "killed"), None),
                "kinds": [p.kind for p in h.passes],
                "archive": h.archive,
                "redirects": h.redirects,
                "target_moves": sum(" TMOVE " in o for o in h.ops),
                "moves_during_a_pass": sum(" MIDMOVE move " in o for o in h.ops),
                # the ninth stream's transient 404s: armed, and the 404s they answered
                "transient_404s": sum(" answers 404 " in o for o in h.ops),
                "transient_404s_fired": sum(_fired(o) for o in h.ops),
                # the twelfth stream's service quirks: armed, and the times they fired
                "quirks": sum(" QUIRK source " in o or " QUIRK target " in o for o in h.ops),
                "quirks_fired": sum(_fired(o, " QUIRK fired ") for o in h.ops),
                # the thirteenth stream's rounds of stacked events (with the round's kill)
                "stacks": [_stacked(o) for o in h.ops if _stacked(o)],
                # the fourteenth stream's copies (a search key two items share), and what
                # then moved or deleted one of them
                "samekey_ops": sum(" SAMEKEY " in o for o in h.ops),
            }
            if fails:
                row["log"] = h.text()
            histories.append(row)
            print(
                f"seed {seed:5} {mode:6} {h.seconds:5.1f}s passes={len(h.passes):2} "
                f"{fails or 'ok'}",
                flush=True,
            )
        if stopped_early:
            break
    wall = time.time() - t0
    by_kind: dict[str, list[str]] = defaultdict(list)
    for r in histories:
        for k in r["failures"]:
            by_kind[k].append(f"{r['seed']}/{r['deletions']}")
    kills = [r["kill"] for r in histories if r.get("kill")]
    per_mode = Counter(r["deletions"] for r in histories)
    failed_mode = Counter(r["deletions"] for r in histories if r["failures"])
    res: dict[str, Any] = {
        "scenario": name,
        "description": "randomized owner histories (tests/histories.py) checked against "
        "emulator snapshots after every pass",
        "command": command,
        **stamp(t0),
        "git_revision": rev(),
        "wall_s": round(wall, 1),
        "stopped_early_at_budget": stopped_early,
        # each history stopped at this many seconds, a failure (``timeout``)
        "history_limit_s": opts.limit_s,
        "timed_out": [f"{r['seed']}/{r['deletions']}" for r in histories if r.get("timed_out")],
        "histories": len(histories),
        "per_mode": {m: {"histories": per_mode[m], "failed": failed_mode[m]} for m in modes},
        "failures_by_kind": {k: v for k, v in sorted(by_kind.items())},
        "passes": dict(Counter(k for r in histories for k in r["kinds"])),
        "archive_pairs": {
            "histories": sum(1 for r in histories if r["archive"]),
            "with_redirects": sum(1 for r in histories if r["redirects"].get("redirected")),
            "with_sessions_renewed": sum(
                1 for r in histories if r["redirects"].get("sessions_renewed")
            ),
        },
        "with_target_moves": sum(1 for r in histories if r["target_moves"]),
        "moves_during_a_pass": sum(r["moves_during_a_pass"] for r in histories),
        "transient_404s": {
            "armed": sum(r["transient_404s"] for r in histories),
            "fired": sum(r["transient_404s_fired"] for r in histories),
        },
        "quirks": {
            "armed": sum(r["quirks"] for r in histories),
            "fired": sum(r["quirks_fired"] for r in histories),
        },
        "stacked_rounds": {
            "rounds": sum(len(r["stacks"]) for r in histories),
            "with_the_kill": sum("kill" in k for r in histories for k in r["stacks"]),
            "kinds": dict(Counter(x for r in histories for k in r["stacks"] for x in k)),
        },
        "kills": {
            "histories": len(kills),
            "killed_mid_pass": sum(k.startswith("SIGKILL") for k in kills),
        },
        "runs": histories,
    }
    return res


def table(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "### soak passes\n",
        f"{res['description']}. Command: `{res['command']}` ({res['date']} UTC, "
        f"{m['cores']} cores, {m['cpu']}, Python {m['python']}, git {res['git_revision']}). "
        f"{res['histories']} histories in {res['wall_s']:.0f} s"
        f"{' (stopped at the time budget)' if res['stopped_early_at_budget'] else ''}"
        f"; each history stopped at {res.get('history_limit_s')} s (a failure, ``timeout``): "
        f"{len(res.get('timed_out', []))} were.\n",
        f"Passes by kind: {res['passes']}. Histories with a SIGKILL: "
        f"{res['kills']['histories']} ({res['kills']['killed_mid_pass']} killed mid-pass, the "
        "others ended first). Archive pairs: "
        f"{res['archive_pairs']['histories']} ({res['archive_pairs']['with_redirects']} with "
        "exports redirected to an auxiliary archive, "
        f"{res['archive_pairs']['with_sessions_renewed']} with import sessions renewed on a "
        f"409); histories with target moves: {res['with_target_moves']}. Items moved during "
        f"a pass: {res['moves_during_a_pass']}. Transient 404s (the ninth stream): "
        f"{res.get('transient_404s', {}).get('armed', 0)} armed, "
        f"{res.get('transient_404s', {}).get('fired', 0)} answered. Service quirks (the "
        f"twelfth stream): {res.get('quirks', {}).get('armed', 0)} armed, "
        f"{res.get('quirks', {}).get('fired', 0)} fired. Rounds of stacked events (the "
        f"thirteenth stream): {res.get('stacked_rounds', {}).get('rounds', 0)} "
        f"({res.get('stacked_rounds', {}).get('with_the_kill', 0)} with the kill; kinds "
        f"{res.get('stacked_rounds', {}).get('kinds', {})}).\n",
        "| mode | histories | failed |",
        "|---|---|---|",
    ]
    for mode, v in res["per_mode"].items():
        lines.append(f"| {mode} | {v['histories']} | {v['failed']} |")
    lines += ["", "| failure kind | histories | seeds (seed/mode) |", "|---|---|---|"]
    for k, seeds in res["failures_by_kind"].items():
        shown = ", ".join(seeds[:25]) + (" …" if len(seeds) > 25 else "")
        lines.append(f"| {k} | {len(seeds)} | {shown} |")
    lines.append(
        "\nReproduce one: `python -m tests.histories SEED --deletions MODE` (add the same "
        "`--exclude`, `--p-samekey`, `--p-rules` and `--p-rename` if any; prints the op log "
        "and the oracle's counts after every pass).\n"
    )
    return "\n".join(lines) + "\n"


def main(a: Any) -> None:
    res = run(
        a.seeds,
        a.start,
        a.deletions,
        a.budget_s,
        a.name,
        a.exclude,
        a.history_limit_s,
        getattr(a, "p_samekey", None),
        getattr(a, "p_rules", None),
        getattr(a, "p_rename", None),
    )
    results = results_dir(a.record)
    write_result(a.name, res, table(res), results)
    print(table(res), flush=True)
    print(f"results: {results}", flush=True)
