"""The ``incremental`` scenario: a first pass, 1% of the source changed, a second pass.

10 pairs of 10,000 items (100,000 in all) are copied; then 1% of the items change through
the emulator's mutation API, mixed as users change mail (40% new, 30% edited, 15% deleted,
15% moved to another folder); then the same job runs again and reads only what changed.
Targets (issue 11): the second pass's requests at most 2 x changes + 2 x folders, and its
time at most 5% of the first pass's. Both passes are checked against the snapshots.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchmarks.common import emulator_process, stamp
from benchmarks.harness import ROOT, Control, Scenario, emulator_toml, job_toml

SCENARIO = Scenario(
    "incremental",
    "a first pass of 100,000 items across 10 pairs (5 KB items, unlimited profile), then 1% "
    "of the items changed (40% new, 30% edited, 15% deleted, 15% moved), then the second "
    "pass ([sync] deletions = mirror)",
    pairs=10,
    items_per_mailbox=10_000,
    sizes={"distribution": "fixed", "value": 5_000},
    layout="standard",
    repeats=1,
    warmup=False,
    timeout=3600,
)
MIX = {"add": 0.40, "modify": 0.30, "delete": 0.15, "move": 0.15}
SELECTED = ("/Recoverable Items", "/Journal")


def _pass(job: Path, cwd: Path, ctl: Control, timeout: float, root: Path = ROOT) -> dict[str, Any]:
    """One pass of the engine whose code is at ``root`` (this tree, or a ``--base`` worktree:
    ``python -m copyengine`` imports the revision of its working directory)."""
    ctl.call("POST", "/stats/reset")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "copyengine", "run", str(job), "--no-progress"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or wall > timeout:
        raise RuntimeError(f"pass exited {code} after {wall:.0f} s: {err[-2000:]}")
    report = json.loads((cwd / "report.json").read_text())
    stats = ctl.call("GET", "/stats")
    return {
        "wall_s": round(wall, 3),
        "duration_s": report["duration_s"],
        "requests": stats["total_requests"],
        "requests_by_call": {k: sum(v.values()) for k, v in sorted(stats["requests"].items())},
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
        "peak_rss_mb": round(ru.ru_maxrss / 1024, 1),
        "copied": report["totals"]["copied"],
        "changes": report["changes"],
        "folders": sum(len(p["folders"]) for p in report["pairs"]),
        "pass": report["pass"],
        "exit_code": report["exit_code"],
    }


def _change(ctl: Control, upn: str, share: float, rng: random.Random) -> int:
    """Change ``share`` of the mailbox's selected items, mixed as in ``MIX``; returns the
    number of changes made."""
    snap = ctl.snapshot(upn)
    items = [r for r in snap["items"] if not r["folderPath"].startswith(SELECTED)]
    mail = {
        f["path"]: f["id"]
        for f in snap["folders"]
        if f["type"] in ("IPF.Note", "") and not f["path"].startswith(SELECTED)
    }
    folders = list(mail.values())
    n = max(1, round(len(items) * share))
    counts = {k: round(n * w) for k, w in MIX.items()}
    picked = rng.sample(items, counts["modify"] + counts["delete"] + counts["move"])
    ops: list[dict[str, Any]] = []
    for _ in range(counts["add"]):
        ops.append({"op": "add", "folder": rng.choice(folders), "count": 1})
    k = 0
    for kind in ("modify", "delete", "move"):
        for row in picked[k : k + counts[kind]]:
            op: dict[str, Any] = {"op": kind, "id": row["id"]}
            if kind == "move":
                op["to"] = rng.choice([f for f in folders if f != mail.get(row["folderPath"])])
            ops.append(op)
        k += counts[kind]
    res = ctl.call("POST", f"/mailboxes/{quote(snap['mailboxId'], safe='')}/changes", {"ops": ops})
    bad = [r for r in res["results"] if "error" in r]
    if bad:
        raise RuntimeError(f"changes refused: {bad[:3]}")
    return len(ops)


def _exact(ctl: Control, pairs: list[tuple[str, str]]) -> dict[str, int]:
    lost = extra = 0
    for s, t in pairs:

        def rows(upn: str) -> dict[tuple[str, str, str], int]:
            out: dict[tuple[str, str, str], int] = {}
            for r in ctl.snapshot(upn)["items"]:
                if not r["folderPath"].startswith(SELECTED):
                    k = (r["folderPath"], r["searchKey"], r["digest"])
                    out[k] = out.get(k, 0) + 1
            return out

        a, b = rows(s), rows(t)
        lost += sum(max(0, n - b.get(k, 0)) for k, n in a.items())
        extra += sum(max(0, n - a.get(k, 0)) for k, n in b.items())
    return {"lost_or_stale": lost, "extra": extra}


def _one(root: Path) -> dict[str, Any]:
    """The scenario once, with the engine at ``root``, on an emulator of its own (same seed,
    same changes: the two engines of an A/B meet the same mailboxes)."""
    s = SCENARIO
    rng = random.Random(11)
    with emulator_process(emulator_toml(s), timeout=600) as (info, _pid):
        ctl = Control(info)
        pairs = [
            (f"src{i:04d}@source.example", f"inc-{i:04d}@target.example")
            for i in range(1, s.pairs + 1)
        ]
        for _, t in pairs:
            ctl.call("POST", "/tenants/target/users", {"upn": t, "mailbox": {"layout": "empty"}})
        with tempfile.TemporaryDirectory(prefix="ce-inc-") as tmp_:
            tmp = Path(tmp_)
            job = job_toml(info, pairs, tmp, s.limits, s.profile)
            job.write_text(job.read_text() + '\n[sync]\ndeletions = "mirror"\n')
            first = _pass(job, tmp, ctl, s.timeout, root)
            print(f"  first pass: {first['copied']} items in {first['duration_s']} s", flush=True)
            first_check = _exact(ctl, pairs)
            changes = sum(_change(ctl, src, 0.01, rng) for src, _ in pairs)
            second = _pass(job, tmp, ctl, s.timeout, root)
            print(
                f"  second pass: {changes} changes, {second['requests']} requests, "
                f"{second['duration_s']} s",
                flush=True,
            )
            second_check = _exact(ctl, pairs)
    return {
        "changes_made": changes,
        "first_pass": first,
        "second_pass": second,
        "checks": [first_check, second_check],
    }


def run(repeats: int | None = None, base: str | None = None) -> dict[str, Any]:
    s = SCENARIO
    t_start = time.time()
    one = _one(ROOT)
    first, second, changes = one["first_pass"], one["second_pass"], one["changes_made"]
    first_check, second_check = one["checks"]
    folders = second["folders"]
    budget = 2 * changes + 2 * folders
    share = second["duration_s"] / first["duration_s"]
    wall_share = second["wall_s"] / first["wall_s"]
    verdict = [
        f"snapshots after the first pass: {first_check}; after the second: {second_check}",
        f"second pass: {second['requests']} requests for {changes} changes in {folders} folders "
        f"(target <= 2 x changes + 2 x folders = {budget}: "
        f"{'met' if second['requests'] <= budget else 'MISSED'})",
        f"second pass took {second['duration_s']:.2f} s of job time = {share:.1%} of the first "
        f"pass's {first['duration_s']:.1f} s (target <= 5%: {'met' if share <= 0.05 else 'MISSED'});"
        f" process wall time incl. interpreter start {second['wall_s']:.2f} s = {wall_share:.1%}",
    ]
    res: dict[str, Any] = {
        "scenario": s.name,
        "description": s.description,
        "command": "python -m benchmarks run incremental" + (f" --base {base}" if base else ""),
        **stamp(t_start),
        "parameters": {k: v for k, v in s.__dict__.items()},
        "changes_made": changes,
        "first_pass": first,
        "second_pass": second,
        "verdict": verdict,
    }
    if base:
        from benchmarks.harness import base_tree

        print(f"  the engine at {base}:", flush=True)
        b = _one(base_tree(base))
        res["base"] = {"revision": base, **b}
        bs, b1 = b["second_pass"], b["first_pass"]
        verdict.append(
            f"against {base} in the same run: second pass {second['duration_s']:.2f} s vs "
            f"{bs['duration_s']:.2f} s ({second['duration_s'] / bs['duration_s']:.2f}x), "
            f"{second['requests']:,} vs {bs['requests']:,} requests, CPU {second['cpu_s']:.1f} "
            f"vs {bs['cpu_s']:.1f} s; first pass {first['duration_s']:.1f} s vs "
            f"{b1['duration_s']:.1f} s ({first['duration_s'] / b1['duration_s']:.2f}x); "
            f"the base's snapshots: {b['checks']}"
        )
    return res


def table(res: dict[str, Any]) -> str:
    m = res["machine"]
    a, b = res["first_pass"], res["second_pass"]
    passes = [("first pass", a), ("second pass", b)]
    if "base" in res:
        rev = res["base"]["revision"]
        passes += [
            (f"first pass ({rev})", res["base"]["first_pass"]),
            (f"second pass ({rev})", res["base"]["second_pass"]),
        ]
    rows = "\n".join(
        f"| {name} | {p['copied']:,} | {p['changes']['updated']:,} | {p['changes']['moved']:,} | "
        f"{p['changes']['deleted']:,} | {p['requests']:,} | {p['duration_s']:.2f} | "
        f"{p['wall_s']:.2f} | {p['cpu_s']:.1f} | {p['peak_rss_mb']:.0f} |"
        for name, p in passes
    )
    verdict = "\n".join(f"- {v}" for v in res["verdict"])
    return (
        f"### incremental\n\n{res['description']}. Command: `{res['command']}` "
        f"({res['date']} UTC, {m['cores']} cores, {m['cpu']}, Python {m['python']}). "
        f"{res['changes_made']:,} changes made between the passes.\n\n"
        "| pass | created | updated | moved | deleted | requests | job s | wall s | CPU s "
        "| peak RSS MB |\n|---|---|---|---|---|---|---|---|---|---|\n"
        f"{rows}\n\nTarget: second-pass requests <= 2 x changes + 2 x folders; second-pass "
        f"time <= 5% of the first pass.\n\n{verdict}\n"
    )
