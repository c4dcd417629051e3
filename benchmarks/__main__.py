"""``python -m benchmarks run <scenario>|all [--repeats N]`` and ``python -m benchmarks list``.

Results go to a fresh folder, ``benchmarks/results/runs/<UTC time>/<scenario>.{json,md,png}``
(printed at the end, ignored by git); with ``--record`` to the committed
``benchmarks/results/`` instead. The folder's ``README.md`` collects every table (below the
hand-written part, which ``collect`` keeps).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.common import RECORD_HELP, RESULTS, results_dir
from benchmarks.harness import (
    BASE_PREFIX,
    ROOT,
    TIME_SCALED_LIMITS,
    WINDOW_SCALED_SIZES,
    Control,
    Scenario,
    compile_tree,
    run_scenario,
    upload_bound_s,
    write,
)
from copyengine.emulator.throttle import Limits

MB = 1024 * 1024
FAULT_MIX = [
    {"kind": "drop_after", "calls": ["importItem"], "probability": 0.01},
    {"kind": "http_503", "probability": 0.01, "retry_after": 0.2},
    {"kind": "http_504", "probability": 0.005},
    {"kind": "slow", "probability": 0.01, "delay": 0.5},
    {"kind": "session_expire", "probability": 0.005},
    {"kind": "token_revoke", "probability": 0.002},
]

# The exchange latency model with no throttling windows (the unlimited profile plus latency).
EXCHANGE_LATENCY = {
    "concurrency": 4,
    "latency_base": 0.030,
    "latency_per_mb": 0.010,
    "latency_jitter": 0.010,
}

SCENARIOS: dict[str, Scenario] = {
    "throughput": Scenario(
        "throughput",
        "unlimited profile, 10 pairs, 20,000 items, realistic size mix",
        pairs=10,
        items_per_mailbox=2000,
        contenders=("copyengine", "minimal", "naive"),
        naive_pairs=1,
        repeats=3,
        emulator_per_round=True,
    ),
    "latency": Scenario(
        "latency",
        "the throughput job under the exchange latency model (30 ms + 10 ms/MB "
        "+ jitter) without throttling windows: what a sequential client pays per request",
        pairs=10,
        items_per_mailbox=500,
        contenders=("copyengine", "minimal", "naive"),
        naive_pairs=1,
        profile="unlimited",
        repeats=2,
        warmup=False,
        emulator_limits=EXCHANGE_LATENCY,
        limits={"requests_per_window": 10**9, "upload_mb_per_window": 10**7},
    ),
    "ceiling": Scenario(
        "ceiling",
        "time-scaled exchange profile (x60): 20 pairs paced against per-mailbox "
        "request and upload windows; share of the theoretical ceiling. Item sizes are scaled "
        "with the window: realistic sizes capped at 625 KB, a quarter of the scaled 2.5 MB "
        "upload window, as a 35 MB item is of Exchange's 150 MB",
        pairs=20,
        items_per_mailbox=300,
        sizes=WINDOW_SCALED_SIZES,
        profile="exchange-fast",
        time_scale=60.0,
        repeats=2,
        warmup=False,
        limits=TIME_SCALED_LIMITS,
    ),
    "scale": Scenario(
        "scale",
        "1,000 pairs of small mailboxes (20 items each) at once, the default configuration "
        "(bytes_in_flight_mb = 256); with --base REV, the engine at REV in the same run",
        pairs=1000,
        items_per_mailbox=20,
        repeats=2,
        warmup=False,
        limits={"pairs_in_parallel": 1000},
        timeout=1800,
    ),
    "large-items": Scenario(
        "large-items",
        "items of 5-50 MB with a 100 MB memory budget",
        pairs=2,
        items_per_mailbox=8,
        sizes={"distribution": "uniform", "min": 5 * MB, "max": 50 * MB},
        repeats=2,
        warmup=False,
        limits={"bytes_in_flight_mb": 100, "batch_mb": 16},
    ),
    "growth": Scenario(
        "growth",
        "the same job at 10,000 and at 100,000 items (10 pairs, 20 KB items)",
        pairs=10,
        items_per_mailbox=1000,
        sizes={"distribution": "fixed", "value": 20_000},
        repeats=2,
        warmup=True,
    ),
    "faults": Scenario(
        "faults",
        "the copy-job fault mix (drops after commit, 503/504, slow responses, "
        "session expiry, token revocation) against the same job without faults; exchange "
        "latency model without throttling limits",
        pairs=10,
        items_per_mailbox=600,
        contenders=("copyengine", "copyengine-faults"),
        profile="unlimited",
        repeats=2,
        warmup=False,
        emulator_limits=EXCHANGE_LATENCY,
        limits={"requests_per_window": 10**9, "upload_mb_per_window": 10**7},
    ),
}

EXTRA = (
    "incremental",
    "hosts",
    "fleet",
    "stricter",
    "bwlimit",
)  # scenarios with a runner of their own (benchmarks/<name>.py)
TARGETS = {
    "bwlimit": "the achieved upload rate over a minute within 10% of the cap",
    "fleet": "the worst mailbox >= 95% of its ceiling at >= 200 pairs at once; engine CPU "
    "<= 6 s per GB copied",
    "hosts": "2 workers >= 1.7x one worker; PostgreSQL store engine CPU per 1,000 items "
    "<= 115% of SQLite's",
    "incremental": "second-pass requests <= 2 x changes + 2 x folders; second-pass time "
    "<= 5% of the first pass",
    "throughput": "copyengine >= 80% of minimal; CPU per item <= 1.2x minimal's in the same "
    "run; with --base, items/s unchanged (the '10x naive' target is latency's: under "
    "`unlimited` the naive ratio measures the emulator, not the client)",
    "latency": "copyengine >= 10x naive (moved here from throughput: a sequential client pays "
    "the service's latency)",
    "ceiling": ">= 95% of the theoretical ceiling, < 1% of requests answered 429",
    "stricter": "the service at 1/2, 1/10, 1/60 of the configured budgets, alone and with "
    "another writer taking half of each upload budget: >= 80% of the real budget's items/s, "
    "< 5% of requests answered 429, no 30 s span (service time) without an import",
    "scale": "peak RSS < 300 MB at 1,000 concurrent pairs with the default configuration, "
    "at >= 95% of the base revision's items/s in the same run (run with --base)",
    "large-items": "peak RSS < memory budget + 150 MB",
    "growth": "items/s at 100,000 items within 10% of items/s at 10,000",
    "faults": "zero lost, zero duplicated; throughput >= 80% of the run without faults",
}


def _med(res: dict[str, Any], contender: str, metric: str) -> float:
    return float(res["summary"][contender][metric]["median"])


def ceiling_seconds(s: Scenario, ctl: Control) -> float:
    """The shortest job time any client could reach under the profile's limits for these
    items (a true lower bound, so copyengine's share of it is at most 100%). Per target
    mailbox: every upload window carries at most the budget (so its bytes need a whole number
    of windows, the last sent at the start of the last window), except that an item larger
    than the whole budget passes alone once the window is empty and then fills it, so it costs
    a window of its own; likewise for the request window; and 4 in flight under the latency
    model. Pairs run in parallel: the job takes as long as its slowest mailbox."""
    lim = Limits.profile(s.profile, s.time_scale)
    worst = 0.0
    for i in range(1, s.pairs + 1):
        snap = ctl.snapshot(f"src{i:04d}@source.example")
        # an import body: the export's data string plus the folder id and the JSON keys
        # (about 120 bytes; the engine's bodies are larger, so the bound stays a lower one)
        bodies = [row["dataLength"] + 120 for row in snap["items"]]
        bounds = []
        if lim.upload_bytes:
            small = sum(b for b in bodies if b <= lim.upload_bytes)
            over = sum(1 for b in bodies if b > lim.upload_bytes)
            bounds.append(upload_bound_s(lim, small, over))
        if lim.requests:
            bounds.append(max(0, math.ceil(len(bodies) / lim.requests) - 1) * lim.request_window)
        lat = [
            lim.latency_base + lim.latency_per_mb * b / MB + lim.latency_jitter / 2 for b in bodies
        ]
        bounds.append(sum(lat) / (lim.concurrency or 4))
        worst = max(worst, *bounds)
    return worst


def table(res: dict[str, Any]) -> str:
    name = res["scenario"]
    rows = []
    head = (
        "| contender | items/s | MB/s | GB/h job | GB/h per mailbox | req/item | 429 share "
        "| throttle wait s | import p50/p99 ms | CPU s/1k items | peak RSS MB |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    for c, sm in res["summary"].items():

        def f(m: str, d: int = 1, sm: dict[str, Any] = sm) -> str:
            v = sm[m]
            if v["median"] is None:
                return "-"
            return f"{v['median']:.{d}f} ({v['min']:.{d}f}-{v['max']:.{d}f})"

        rows.append(
            f"| {c} | {f('items_per_s')} | {f('mb_per_s', 2)} | "
            f"{f('gb_per_hour_job', 2)} | {f('gb_per_hour_per_mailbox', 3)} | "
            f"{f('requests_per_item', 2)} | {f('share_429', 4)} | "
            f"{f('throttle_wait_s')} | {f('import_p50_ms')}/{f('import_p99_ms')} | "
            f"{f('cpu_s_per_1000_items', 2)} | {f('peak_rss_mb')} |"
        )
    verdict = "\n".join(f"- {v}" for v in res.get("verdict", []))
    m = res["machine"]
    return (
        f"### {name}\n\n{res['description']}. Command: `{res['command']}` "
        f"({res['date']} UTC, {m['cores']} cores, {m['cpu']}, Python {m['python']}). "
        "Medians of the repeats with (min-max); latency is the emulator's service time."
        f"\n\n{head}" + "\n".join(rows) + f"\n\nTarget: {TARGETS[name]}.\n\n{verdict}\n"
    )


def cpu_verdict(res: dict[str, Any], limit: float = 1.2) -> str:
    """The engine's CPU per item against ``minimal``'s, judged per round: each round ran the
    two side by side (alternately first, ``harness.repeat_order``), so a round's ratio is the
    one the machine's load moves least, and the median of the rounds' ratios is the verdict.
    The ratio of the two medians is stated beside it (it pairs runs from different rounds),
    and how many rounds were within the target: met in every round is the reliable kind."""
    side = [
        a["cpu_s_per_1000_items"] / b["cpu_s_per_1000_items"]
        for a, b in zip(res["runs"]["copyengine"], res["runs"]["minimal"], strict=True)
    ]
    paired = statistics.median(side)
    by_medians = _med(res, "copyengine", "cpu_s_per_1000_items") / _med(
        res, "minimal", "cpu_s_per_1000_items"
    )
    within = sum(r <= limit for r in side)
    if within == len(side):
        judged = f"met in every round, {within} of {len(side)}"
    elif paired <= limit:
        judged = f"met by the median, not reliably: {within} of {len(side)} rounds within it"
    else:
        judged = f"MISSED: {within} of {len(side)} rounds within it"
    loads = [
        x for r in res["runs"]["copyengine"] + res["runs"]["minimal"] for x in r.get("load_1m", [])
    ]
    load = f"; load average {min(loads):.1f}-{max(loads):.1f}" if loads else ""
    waits = [
        r["cpu_wait_share"]
        for r in res["runs"]["copyengine"] + res["runs"]["minimal"]
        if r.get("cpu_wait_share") is not None
    ]
    if waits:
        load += f", waiting for a CPU {min(waits):.0%}-{max(waits):.0%} of the time runnable"
    return (
        f"CPU per 1,000 items, copyengine / minimal = {paired:.2f}x, the median of the rounds "
        f"run side by side: {', '.join(f'{r:.2f}x' for r in side)} (spread "
        f"{min(side):.2f}-{max(side):.2f}x; {by_medians:.2f}x by the two medians); target "
        f"{limit}x: {judged}{load}"
    )


def against_base(res: dict[str, Any], base: str) -> str:
    """The engine against ``base`` (the engine at another revision, run in the same run):
    items/s and CPU per item, medians and per repeat (a repeat's pair ran minutes apart at
    most, so its ratio is the one the machine's load moves least)."""
    runs = zip(res["runs"]["copyengine"], res["runs"][base], strict=True)
    per = [
        (a["items_per_s"] / b["items_per_s"], a["cpu_s_per_1000_items"] / b["cpu_s_per_1000_items"])
        for a, b in runs
    ]
    speed = _med(res, "copyengine", "items_per_s") / _med(res, base, "items_per_s")
    cpu = _med(res, "copyengine", "cpu_s_per_1000_items") / _med(res, base, "cpu_s_per_1000_items")
    return (
        f"against {base} (medians): items/s {speed:.0%}, CPU per item {cpu:.2f}x; per "
        f"repeat: items/s {', '.join(f'{s:.0%}' for s, _ in per)}, CPU per item "
        f"{', '.join(f'{c:.2f}x' for _, c in per)} (median "
        f"{statistics.median(c for _, c in per):.2f}x)"
    )


def verdicts(s: Scenario, res: dict[str, Any], extra: dict[str, Any]) -> list[str]:
    out = []
    integ = res.get("integrity", {})
    if integ:
        out.append(
            f"integrity (snapshots): {integ['items_checked']} source items checked, "
            f"{integ['lost']} lost, {integ['duplicated']} duplicated"
        )
    if s.name == "throughput":
        ce, mi, na = (_med(res, c, "items_per_s") for c in ("copyengine", "minimal", "naive"))
        out.append(
            f"copyengine / minimal = {ce / mi:.0%} (target 80%: "
            f"{'met' if ce >= 0.8 * mi else 'MISSED'})"
        )
        out.append(
            f"copyengine / naive = {ce / na:.1f}x (no target here: under `unlimited` a "
            "sequential client pays only the emulator's ~1 ms per request and every client "
            "runs into the emulator's one core, so this ratio measures the emulator, not the "
            "client; the 10x naive target is `latency`'s)"
        )
        out.append(cpu_verdict(res))
        base = next((c for c in res["summary"] if c.startswith(BASE_PREFIX)), None)
        if base is not None:
            out.append(against_base(res, base))
    elif s.name == "latency":
        ce, mi, na = (_med(res, c, "items_per_s") for c in ("copyengine", "minimal", "naive"))
        out.append(
            f"copyengine / naive = {ce / na:.1f}x (target 10x: "
            f"{'met' if ce >= 10 * na else 'MISSED'}); copyengine / minimal = "
            f"{ce / mi:.0%} (minimal at the enforced 4 in flight per mailbox)"
        )
    elif s.name == "ceiling":
        share = extra["ceiling_s"] / _med(res, "copyengine", "duration_s")
        s429 = _med(res, "copyengine", "share_429")
        summ = res["summary"]["copyengine"]
        cm = summ["ceiling_pct_median"]["median"]
        cw = summ["ceiling_pct_worst"]["min"]
        c95 = summ.get("ceiling_95_share", {}).get("min")
        if cm is not None and cw is not None:
            out.append(
                f"per target mailbox, % of its ceiling while active (the engine's own measure): "
                f"median {cm:.1f}%, worst {cw:.1f}% (target >= 95%: "
                f"{'met' if cw >= 95 else 'MISSED'})"
                + (f"; {c95:.0%} of the mailboxes at >= 95% (worst run)" if c95 is not None else "")
            )
        bm = summ.get("bound_pct_median", {}).get("median")
        bw = summ.get("bound_pct_worst", {}).get("min")
        if bm is not None and bw is not None:
            out.append(
                f"per target mailbox, the shortest time any client could take for its bytes "
                f"against its first-to-last upload as the service saw them: median {bm:.1f}%, "
                f"worst {bw:.1f}%"
            )
        out.append(
            f"theoretical ceiling {extra['ceiling_s']:.1f} s of job time; copyengine "
            f"took {_med(res, 'copyengine', 'duration_s'):.1f} s = {share:.0%} of the "
            f"ceiling (target 95%: {'met' if share >= 0.95 else 'MISSED'}); 429 share "
            f"{s429:.2%} (target < 1%: {'met' if s429 < 0.01 else 'MISSED'})"
        )
    elif s.name == "scale":
        rss = _med(res, "copyengine", "peak_rss_mb")
        line = (
            f"peak RSS {rss:.0f} MB at {s.pairs} concurrent pairs with the default "
            f"configuration (256 MB budget, followed down to what the job needs)"
        )
        base = next((c for c in res["summary"] if c.startswith(BASE_PREFIX)), None)
        if base is not None:
            speed = _med(res, "copyengine", "items_per_s") / _med(res, base, "items_per_s")
            ok = rss < 300 and speed >= 0.95
            line += (
                f"; {speed:.0%} of {base}'s items/s (peak RSS "
                f"{_med(res, base, 'peak_rss_mb'):.0f} MB; target < 300 MB at >= 95%: "
                f"{'met' if ok else 'MISSED'})"
            )
        out.append(line)
    elif s.name == "large-items":
        rss = res["summary"]["copyengine"]["peak_rss_mb"]["max"]
        budget = s.limits["bytes_in_flight_mb"]
        out.append(
            f"peak RSS (max of runs) {rss:.0f} MB against a budget of {budget} MB "
            f"(target < {budget + 150} MB: {'met' if rss < budget + 150 else 'MISSED'})"
        )
    elif s.name == "faults":
        a, b = _med(res, "copyengine", "items_per_s"), _med(res, "copyengine-faults", "items_per_s")
        out.append(
            f"throughput with faults / without = {b / a:.0%} (target 80%: "
            f"{'met' if b >= 0.8 * a else 'MISSED'})"
        )
    return out


def run_growth(s: Scenario, repeats: int | None) -> dict[str, Any]:
    small = run_scenario(s, repeats)
    big_s = Scenario(
        **{
            **s.__dict__,
            "items_per_mailbox": s.items_per_mailbox * 10,
            "warmup": False,
            "timeout": 3600,
        }
    )
    big = run_scenario(big_s, repeats)
    a = _med(small, "copyengine", "items_per_s")
    b = _med(big, "copyengine", "items_per_s")
    res = {
        **small,
        "summary": {
            "copyengine@10k": small["summary"]["copyengine"],
            "copyengine@100k": big["summary"]["copyengine"],
        },
        "runs": {
            "copyengine@10k": small["runs"]["copyengine"],
            "copyengine@100k": big["runs"]["copyengine"],
        },
        "samples": {
            "copyengine@10k": small["samples"]["copyengine"],
            "copyengine@100k": big["samples"]["copyengine"],
        },
        "integrity": {k: small["integrity"][k] + big["integrity"][k] for k in small["integrity"]},
    }
    res["verdict"] = [
        f"integrity (snapshots): {res['integrity']['items_checked']} source items checked, "
        f"{res['integrity']['lost']} lost, {res['integrity']['duplicated']} duplicated",
        f"items/s at 100k / at 10k = {b / a:.0%} (target within 10%: "
        f"{'met' if b >= 0.9 * a else 'MISSED'})",
    ]
    return res


def run_named(
    name: str,
    repeats: int | None,
    results: Path,
    base: str | None = None,
    limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one scenario and write its result, table (and chart) into ``results``."""
    if name in EXTRA:
        import importlib

        mod: Any = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}", flush=True)
        if name == "fleet":
            res = mod.run(repeats, limits, base)
        elif name in ("incremental", "stricter"):
            res = mod.run(repeats, base)
        else:
            res = mod.run(repeats)
        write(res, mod.table(res), results)
        collect(results)
        print(mod.table(res), flush=True)
        return dict(res)
    s = SCENARIOS[name]
    if limits:
        s = replace(s, limits={**s.limits, **limits})
    if base:
        s = replace(s, contenders=(*s.contenders, f"{BASE_PREFIX}{base}"))
    print(f"== {name}: {s.description}", flush=True)
    if name == "growth":
        res = run_growth(s, repeats)
    else:
        res = run_scenario(
            s,
            repeats,
            ceiling=ceiling_seconds if name == "ceiling" else None,
            faults=FAULT_MIX if name == "faults" else None,
            overrides=limits,
        )
        res["verdict"] = verdicts(s, res, res.get("extra", {}))
    from benchmarks.charts import chart

    chart(res, results)
    write(res, table(res), results)
    collect(results)
    print(table(res), flush=True)
    return res


# benchmarks/results/README.md: the hand-written part (how to run, the summary, what the
# misses mean) above this line is kept; the tables below it are written again on every run.
MARKER = (
    "<!-- Everything below is written by `python -m benchmarks run`; edit only above this line. -->"
)


def collect(results: Path = RESULTS) -> None:
    readme = results / "README.md"
    old = readme.read_text(encoding="utf-8") if readme.exists() else ""
    head, marked, _ = old.partition(MARKER)
    if not marked:
        head = "# Benchmark results\n\n"
    parts = [
        f"{head}{MARKER}\n"
        "Each table: `python -m benchmarks run <scenario>`. "
        "Machine and date are in each scenario's JSON.\n"
    ]
    for name in [*SCENARIOS, *EXTRA]:
        md = results / f"{name}.md"
        if md.exists():
            parts.append(md.read_text(encoding="utf-8"))
            if (results / f"{name}.png").exists():
                parts.append(f"![{name}]({name}.png)\n")
    readme.write_text("\n".join(parts), encoding="utf-8")


def _limits(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in pairs:
        key, _, value = kv.partition("=")
        out[key.strip()] = json.loads(value)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("scenario", choices=[*SCENARIOS, *EXTRA, "all"])
    r.add_argument("--repeats", type=int, default=None)
    r.add_argument(
        "--base",
        metavar="REV",
        help="also run the engine at git revision REV (a worktree) in the same run",
    )
    r.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a [limits] key of the engine's job (e.g. bytes_in_flight_mb=48)",
    )
    r.add_argument("--record", action="store_true", help=RECORD_HELP)
    sub.add_parser("list")
    so = sub.add_parser(
        "soak",
        help="randomized owner histories (tests/histories.py); cutshort: runs cut short "
        "at random moments (tests/cutshort.py); hosts: histories on several hosts, PostgreSQL "
        "and workers (tests/hosthistories.py); startstop: a run stopped while it starts "
        "(tests/startstop.py)",
    )
    so.add_argument("what", choices=["passes", "cutshort", "hosts", "startstop"])
    so.add_argument("--seeds", type=int, default=100)
    so.add_argument("--start", type=int, default=1)
    so.add_argument("--deletions", choices=["mirror", "keep", "both"], default="both")
    so.add_argument("--budget-s", type=float, default=None, help="stop after this long")
    so.add_argument(
        "--history-limit-s",
        type=float,
        default=None,
        help="stop one history after this long, a failure (default: tests.histories' 300)",
    )
    so.add_argument("--name", default="soak-passes", help="results file name")
    so.add_argument(
        "--exclude", default="", help="op kinds / events left out (tests/histories.py Options)"
    )
    so.add_argument(
        "--p-samekey",
        type=float,
        default=None,
        help="passes: per round, the chance of items copied by their owner (a search key two "
        "items share; tests/histories.py Options.p_samekey, off by default)",
    )
    so.add_argument(
        "--p-rules",
        type=float,
        default=None,
        help="passes: per round, the chance the operator rewrites the job's rules "
        "(tests/histories.py Options.p_rules; its default if not given)",
    )
    so.add_argument(
        "--p-rename",
        type=float,
        default=None,
        help="passes: per round, the chance of a rename rule put on or lifted "
        "(tests/histories.py Options.p_rename, off by default)",
    )
    so.add_argument("--record", action="store_true", help=RECORD_HELP)
    a = p.parse_args(argv)
    if a.cmd == "soak" and a.what == "cutshort":
        from benchmarks import soak_cutshort

        soak_cutshort.main(a)
        return
    if a.cmd == "soak" and a.what == "startstop":
        from benchmarks import soak_startstop

        soak_startstop.main(a)
        return
    if a.cmd == "soak" and a.what == "hosts":
        from benchmarks import soak_hosts

        soak_hosts.main(a)
        return
    if a.cmd == "soak":
        from benchmarks import soak

        soak.main(a)
        return
    if a.cmd == "list":
        from benchmarks.bwlimit import SCENARIO as BWLIMIT
        from benchmarks.fleet import FLEET
        from benchmarks.hosts import HOSTS
        from benchmarks.incremental import SCENARIO

        extra = [
            ("incremental", SCENARIO),
            ("hosts", HOSTS),
            ("fleet", FLEET),
            ("bwlimit", BWLIMIT),
        ]
        for n, s in [*SCENARIOS.items(), *extra]:
            print(f"{n:12} {s.description}\n{'':12} target: {TARGETS[n]}")
        return
    names = [*SCENARIOS, *EXTRA] if a.scenario == "all" else [a.scenario]
    compile_tree(ROOT)
    results = results_dir(a.record)
    failed = []
    for n in names:
        try:
            run_named(n, a.repeats, results, a.base, _limits(a.limit))
        except Exception as exc:  # one broken scenario must not hide the others
            print(f"!! {n} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            failed.append(n)
    kept = "" if a.record else f" (not recorded: --record writes them to {RESULTS})"
    print(f"results: {results}{kept}", flush=True)
    if failed:
        print(json.dumps({"failed": failed}), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
