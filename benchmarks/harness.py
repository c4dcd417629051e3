"""The benchmark harness: one emulator process, one process per contender run.

Each run gets fresh, empty target mailboxes; the emulator's stats are reset before it. The
contender's own CPU time and peak RSS come from ``wait4`` (that child only: user + system
time of the whole process, every thread, from its start-up imports to its exit, the same for
every contender); RSS and the emulator's import count are sampled every 0.25 s for the
charts, the machine's 1-minute load average at each run's start and end. A warm-up run comes
first and is discarded; then ``repeats`` rounds, each running every contender once, in the
order ``repeat_order`` gives (alternated from one round to the next); medians with min and
max, and the contenders' ratios per round (``benchmarks/__main__.verdicts``).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchmarks.common import emulator_process, rss_kib, run_queue_wait, stamp
from copyengine.emulator.throttle import Limits

SRC_APP, DST_APP = "bench-source-app", "bench-target-app"
SRC_SECRET, DST_SECRET = "bench-source-secret", "bench-target-secret"
ROOT = Path(__file__).resolve().parent.parent
BASE_PREFIX = "copyengine@"  # a contender "copyengine@REV": the engine at git revision REV
_base_trees: dict[str, Path] = {}


def base_tree(rev: str) -> Path:
    """A detached git worktree of ``rev`` (made once per process, removed at exit): the
    engine's code at that revision, run the same way in the same run as the current code."""
    tree = _base_trees.get(rev)
    if tree is None:
        import atexit

        tree = Path(tempfile.mkdtemp(prefix="ce-base-")) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--quiet", str(tree), rev],
            cwd=ROOT,
            check=True,
        )
        atexit.register(
            subprocess.run,
            ["git", "worktree", "remove", "--force", str(tree)],
            cwd=ROOT,
            check=False,
        )
        compile_tree(tree)
        _base_trees[rev] = tree
    return tree


def compile_tree(tree: Path) -> None:
    """Byte-compile the engine and the contenders in ``tree`` before anything is timed, as
    ``pip install`` does for an installed package and already did for every dependency.
    Without it, a machine with PYTHONDONTWRITEBYTECODE set (this one) makes every engine run
    compile its ~15,000 lines again (0.13 s of CPU charged to the engine alone)."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "copyengine", "benchmarks"],
        cwd=tree,
        check=True,
        stdout=subprocess.DEVNULL,
    )


# The engine told the time-scaled exchange profile's limits (x60: 10,000 requests per 10 min
# and 150 MB per 5 min become 167 per 10 s and 2.5 MB per 5 s), as an operator would.
TIME_SCALED_LIMITS: dict[str, Any] = {
    "requests_per_window": 167,
    "request_window_s": 10.0,
    "upload_mb_per_window": 2.5,
    "upload_window_s": 5.0,
}
# Item sizes scaled with that window: the largest a quarter of it, as a 35 MB item is of
# Exchange's 150 MB.
WINDOW_SCALED_SIZES: dict[str, Any] = {"distribution": "realistic", "max": 625_000}


@dataclass
class Scenario:
    name: str
    description: str
    pairs: int
    items_per_mailbox: int
    sizes: Any = "realistic"
    layout: str = "flat"
    profile: str = "unlimited"
    time_scale: float = 60.0
    tls: bool = False
    contenders: tuple[str, ...] = ("copyengine",)
    naive_pairs: int = 1
    repeats: int = 3
    warmup: bool = True
    limits: dict[str, Any] = field(default_factory=dict)
    emulator_limits: dict[str, Any] = field(default_factory=dict)
    # contenders that are copyengine with some limits of their own (name -> limits)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    timeout: float = 900.0
    # another writer's share of every mailbox's upload budget (emulator ``background_upload``)
    background_upload: float = 0.0
    # a fresh emulator (and warm-up) for each round: every round's runs then meet the same
    # emulator, not one holding every earlier run's copies (20,000 items each in throughput)
    emulator_per_round: bool = False
    # keep each import's answer time per target mailbox (the emulator's ``/stats/imports``)
    # from each run, for spans without an import measured exactly, not to a sampling period
    answers: bool = False


def emulator_toml(s: Scenario) -> str:
    sizes = (
        json.dumps(s.sizes)
        if isinstance(s.sizes, str)
        else ("{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in s.sizes.items()) + " }")
    )
    lim = "".join(f"{k} = {json.dumps(v)}\n" for k, v in s.emulator_limits.items())
    return f"""
[emulator]
profile = "{s.profile}"
time_scale = {s.time_scale}
tls = {"true" if s.tls else "false"}
seed = 1
max_body_bytes = 209715200
background_upload = {s.background_upload}
{("[emulator.limits]" + chr(10) + lim) if lim else ""}
[[tenants]]
name = "source"
domain = "source.example"
[[tenants.apps]]
client_id = "{SRC_APP}"
secret = "{SRC_SECRET}"
[[tenants.user_sets]]
prefix = "src"
count = {s.pairs}
mailbox = {{ seed = 7, items = {s.items_per_mailbox}, sizes = {sizes}, layout = "{s.layout}" }}

[[tenants]]
name = "target"
domain = "target.example"
[[tenants.apps]]
client_id = "{DST_APP}"
secret = "{DST_SECRET}"
"""


class Control:
    """Synchronous access to the emulator's control surface."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.base = info["control_url"]
        self.ctx = ssl.create_default_context(cafile=info["ca_cert"]) if info["ca_cert"] else None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, context=self.ctx, timeout=600) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def snapshot(self, upn: str) -> dict[str, Any]:
        return self.call("GET", f"/mailboxes/{quote(upn, safe='')}/snapshot")  # type: ignore[no-any-return]


def job_toml(
    info: dict[str, Any],
    pairs: list[tuple[str, str]],
    tmp: Path,
    limits: dict[str, Any],
    profile: str,
    state: str = "state.sqlite",
    extra: str = "",
) -> Path:
    (tmp / "src.secret").write_text(SRC_SECRET)
    (tmp / "dst.secret").write_text(DST_SECRET)
    ca = f'ca_bundle = "{info["ca_cert"]}"' if info["ca_cert"] else ""
    lim: dict[str, Any] = {"pairs_in_parallel": len(pairs)}
    if profile == "unlimited" or "exchange" not in profile:
        # The engine is told the service's limits, as an operator would: none here.
        lim.update(requests_per_window=10**9, upload_mb_per_window=10**7)
    lim.update(limits)
    text = (
        f"""
[job]
state = "{state}"
report = "report.json"
log_format = "json"
log_level = "warning"
[tenants.source]
graph_url = "{info["graph_url"]}"
authority = "{info["authority_url"]}"
tenant_id = "source.example"
client_id = "{SRC_APP}"
client_secret = "file:src.secret"
{ca}
[tenants.target]
graph_url = "{info["graph_url"]}"
authority = "{info["authority_url"]}"
tenant_id = "target.example"
client_id = "{DST_APP}"
client_secret = "file:dst.secret"
{ca}
[folders]
classes = ["mail", "calendar", "contacts", "tasks", "notes", "journal"]
[limits]
"""
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in lim.items())
        + "".join(f'[[pairs]]\nsource = "{s}"\ntarget = "{t}"\n' for s, t in pairs)
        + extra
    )
    path = tmp / "job.toml"
    path.write_text(text)
    return path


def _spec(
    info: dict[str, Any], pairs: list[tuple[str, str]], tmp: Path, concurrency: int | None = None
) -> Path:
    spec = {
        "graph_url": info["graph_url"],
        "authority": info["authority_url"],
        "ca_cert": info["ca_cert"],
        "concurrency": concurrency,
        "pairs": pairs,
        "source": {"tenant": "source.example", "client_id": SRC_APP, "secret": SRC_SECRET},
        "target": {"tenant": "target.example", "client_id": DST_APP, "secret": DST_SECRET},
    }
    path = tmp / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def run_once(
    s: Scenario,
    info: dict[str, Any],
    ctl: Control,
    contender: str,
    run_id: str,
    pairs_n: int,
    faults: list[dict[str, Any]] | None = None,
    state: str = "state.sqlite",
) -> dict[str, Any]:
    pairs = [
        (f"src{i:04d}@source.example", f"{run_id}-{i:04d}@target.example")
        for i in range(1, pairs_n + 1)
    ]
    for _, t in pairs:
        ctl.call("POST", "/tenants/target/users", {"upn": t, "mailbox": {"layout": "empty"}})
    ctl.call("POST", "/stats/reset")
    with_faults = contender.endswith("-faults")
    ctl.call("PUT", "/faults", {"rules": faults if with_faults and faults else [], "seed": 3})
    engine = "copyengine" if contender in s.variants else contender.removesuffix("-faults")
    cwd = ROOT
    if engine.startswith(BASE_PREFIX):
        # ``python -m copyengine`` from the worktree imports that revision's code
        cwd, engine = base_tree(engine.removeprefix(BASE_PREFIX)), "copyengine"
    with tempfile.TemporaryDirectory(prefix="ce-run-") as tmp_:
        tmp = Path(tmp_)
        if engine == "copyengine":
            cmd = [
                sys.executable,
                "-m",
                "copyengine",
                "run",
                str(
                    job_toml(
                        info,
                        pairs,
                        tmp,
                        {**s.limits, **s.variants.get(contender, {})},
                        s.profile,
                        state,
                    )
                ),
                "--no-progress",
            ]
            # diagnostics: the engine run under a profiler, e.g. "py-spy record -o p.svg --";
            # a wrapper that ends in "-m" runs the module itself ("memray run -o m.bin -m")
            wrap = shlex.split(os.environ.get("CE_BENCH_WRAP", ""))
            cmd = wrap + (cmd[2:] if wrap[-1:] == ["-m"] else cmd)
        else:
            cmd = [
                sys.executable,
                "-m",
                f"benchmarks.contenders.{contender}",
                str(_spec(info, pairs, tmp, s.emulator_limits.get("concurrency"))),
            ]
        load_before = os.getloadavg()[0]
        t0 = time.monotonic()
        # Files, not pipes: a pipe nobody reads until exit fills up and blocks the child.
        out_f = (tmp / "stdout").open("w+b")
        err_f = (tmp / "stderr").open("w+b")
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out_f, stderr=err_f)
        samples: list[tuple[float, float, int, int]] = []  # t, rss MiB, imports ok, 429s
        deadline = t0 + s.timeout
        rusage = None
        status = 0
        sched = (0.0, 0.0)  # the main thread's time on a CPU and waiting for one, last read
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rusage = ru
                break
            try:
                sched = run_queue_wait(proc.pid)
                rss = rss_kib(proc.pid)[0] / 1024
                c = ctl.call("GET", "/stats/counters")
                samples.append((time.monotonic() - t0, rss, c["imports_ok"], c["throttled"]))
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError(f"{contender} exceeded {s.timeout}s")
            time.sleep(0.25)
        wall = time.monotonic() - t0
        load_after = os.getloadavg()[0]
        out_f.seek(0)
        err_f.seek(0)
        out = out_f.read().decode(errors="replace")
        err = err_f.read().decode(errors="replace")
        out_f.close()
        err_f.close()
        code = os.waitstatus_to_exitcode(status)
        ctl.call("DELETE", "/faults")
        if code != 0:
            raise RuntimeError(f"{contender} exited {code}: {err[-2000:]}")
        keep = os.environ.get("CE_BENCH_KEEP")
        if keep:  # diagnostics: the run's job file, report and log kept under this folder
            shutil.copytree(tmp, Path(keep) / f"{run_id}-{contender}", dirs_exist_ok=True)
        if engine == "copyengine":
            report = json.loads((tmp / "report.json").read_text())
            tot = report["totals"]
            copied, nbytes, duration = tot["copied"], tot["copied_bytes"], report["duration_s"]
            wait = tot["throttle_wait_s"]
            # the engine's own measure: each target mailbox's % of its ceiling while active
            shares = sorted(
                p["ceiling_pct"] for p in report["pairs"] if p.get("ceiling_pct") is not None
            )
        else:
            res = json.loads(out.strip().splitlines()[-1])
            copied, nbytes, duration, wait = res["copied"], res["bytes"], res["duration_s"], 0.0
            shares = []
    if code != 0:
        raise RuntimeError(f"{contender} exited {code}: {err[-2000:]}")
    stats = ctl.call("GET", "/stats")
    answers = ctl.call("GET", "/stats/imports") if s.answers else None
    lat = stats["latency_ms"]
    requests = stats["total_requests"]
    cpu = rusage.ru_utime + rusage.ru_stime
    return {
        "contender": contender,
        "pairs": pairs_n,
        "items": copied,
        "bytes": nbytes,
        "duration_s": round(duration, 3),
        "wall_s": round(wall, 3),
        "items_per_s": round(copied / duration, 1),
        "mb_per_s": round(nbytes / duration / 1e6, 2),
        "gb_per_hour_job": round(nbytes / duration * 3600 / 1e9, 2),
        "gb_per_hour_per_mailbox": round(nbytes / duration * 3600 / 1e9 / pairs_n, 3),
        "requests_per_item": round(requests / max(1, copied), 3),
        "requests_by_call": {c: sum(v.values()) for c, v in stats["requests"].items()},
        "share_429": round(stats["throttled_total"] / max(1, requests), 5),
        "throttled_429": stats["throttled_total"],
        "early_requests": sum(stats["early_requests"].values()),
        "throttle_wait_s": wait,
        "import_p50_ms": lat.get("importItem", {}).get("p50"),
        "import_p99_ms": lat.get("importItem", {}).get("p99"),
        "export_p50_ms": lat.get("exportItems", {}).get("p50"),
        "export_p99_ms": lat.get("exportItems", {}).get("p99"),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1000_items": round(cpu / max(1, copied) * 1000, 3),
        # of it the kernel's (system time), and the page faults that needed no I/O: fresh
        # pages the kernel zeroed, the part of a client's CPU its allocator decides
        "sys_cpu_s": round(rusage.ru_stime, 2),
        "minor_faults": rusage.ru_minflt,
        "peak_rss_mb": round(rusage.ru_maxrss / 1024, 1),
        # the machine's 1-minute load average as the run started and ended: other work on
        # the machine moves CPU per item and items/s, so every number carries it
        "load_1m": [round(load_before, 2), round(load_after, 2)],
        # of the contender's main thread's time runnable, the share it waited for a CPU (as
        # last read, up to 0.25 s before its end): how much other work held it back
        "cpu_wait_share": round(sched[1] / (sched[0] + sched[1]), 3) if sum(sched) else None,
        "ceiling_pct_median": round(statistics.median(shares), 1) if shares else None,
        "ceiling_pct_worst": shares[0] if shares else None,
        # how many target mailboxes reached the target, not only the worst of them
        "ceiling_95_share": (
            round(sum(x >= 95 for x in shares) / len(shares), 3) if shares else None
        ),
        **_bound_shares(s, stats, [t for _, t in pairs]),
        "target_upns": [t for _, t in pairs],
        "samples": samples,
        "answers": answers,
    }


def upload_bound_s(lim: Limits, nbytes: int, alone: int = 0) -> float:
    """The shortest time from a mailbox's first upload to its last for ``nbytes`` of bodies
    (plus ``alone`` bodies larger than the whole budget, a window each), from an empty
    window: a window carries at most the budget, so the bytes need whole windows, the last
    sent at the start of the last one."""
    assert lim.upload_bytes
    windows = math.ceil(nbytes / lim.upload_bytes) + alone
    return max(0, windows - 1) * lim.upload_window


def _bound_shares(s: Scenario, stats: dict[str, Any], targets: list[str]) -> dict[str, Any]:
    """The service's view of each target mailbox that needed more than one upload window:
    the shortest time any client could take for the import bodies the mailbox was sent
    (from its first import, with an empty window: ceil(B / L) windows, the last sent at the
    start of the last one) against the time from its first to its last import, as the
    emulator saw them. At most 100%; independent of the engine's own measure, and unlike it
    this counts the time a mailbox waited for items to be exported."""
    lim = Limits.profile(s.profile, s.time_scale)
    uploads = stats.get("uploads_by_mailbox", {})
    if not lim.upload_bytes:
        return {}
    shares = []
    for upn in targets:
        u = uploads.get(upn.lower())
        if u is None or u["bytes"] <= lim.upload_bytes or u["span_s"] <= 0:
            continue
        bound = upload_bound_s(lim, u["bytes"])
        shares.append(round(min(100.0, 100 * bound / u["span_s"]), 1))
    shares.sort()
    return {
        "bound_pct_median": round(statistics.median(shares), 1) if shares else None,
        "bound_pct_worst": shares[0] if shares else None,
    }


METRICS = (
    "items_per_s",
    "mb_per_s",
    "gb_per_hour_job",
    "gb_per_hour_per_mailbox",
    "requests_per_item",
    "share_429",
    "throttle_wait_s",
    "import_p50_ms",
    "import_p99_ms",
    "cpu_s_per_1000_items",
    "peak_rss_mb",
    "cpu_wait_share",
    "duration_s",
    "ceiling_pct_median",
    "ceiling_pct_worst",
    "ceiling_95_share",
    "bound_pct_median",
    "bound_pct_worst",
)


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for m in METRICS:
        xs = [r[m] for r in runs if r.get(m) is not None]
        out[m] = (
            {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}
            if xs
            else {"median": None, "min": None, "max": None}
        )
    return out


def repeat_order(contenders: tuple[str, ...], r: int) -> list[str]:
    """The order the contenders run in in round ``r``: the compared ones in the scenario's
    order in even rounds and reversed in odd ones, ``naive`` (compared with nothing run beside
    it) last. With a fixed order ``minimal`` always ran right after the engine: whatever
    moves from one run to the next (other work on the machine starting or ending, the
    emulator holding 20,000 more items after every run) fell on one side of the pair every
    time; alternated, it falls on each side in turn."""
    compared = [c for c in contenders if c != "naive"]
    return [*(compared if r % 2 == 0 else compared[::-1]), *(c for c in contenders if c == "naive")]


def _rounds(
    s: Scenario,
    info: dict[str, Any],
    ctl: Control,
    rounds: range,
    repeats: int,
    faults: list[dict[str, Any]] | None,
) -> dict[str, list[dict[str, Any]]]:
    """Rounds ``rounds`` of ``repeats`` on one emulator: every contender once a round."""
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in s.contenders}
    for r in rounds:
        for c in repeat_order(s.contenders, r):
            n = s.naive_pairs if c == "naive" else s.pairs
            res = run_once(s, info, ctl, c, f"r{r}{c[:2]}{c[-2:]}", n, faults)
            runs[c].append(res)
            print(
                f"  {s.name} {c} run {r + 1}/{repeats}: {res['items']} items "
                f"{res['items_per_s']} items/s, {res['mb_per_s']} MB/s, "
                f"429s {res['throttled_429']}, peak RSS {res['peak_rss_mb']} MB, "
                f"CPU {res['cpu_s_per_1000_items']} s/1k items, "
                f"load {res['load_1m'][0]}-{res['load_1m'][1]}, waited for a CPU "
                f"{res['cpu_wait_share']}",
                flush=True,
            )
    return runs


def run_scenario(
    s: Scenario,
    repeats: int | None = None,
    ceiling: Any = None,
    faults: list[dict[str, Any]] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``overrides``: the ``--limit`` values already applied to ``s.limits`` (named in the
    result's command so that it reproduces the run)."""
    repeats = repeats or s.repeats
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in s.contenders}
    t_start = time.time()
    # one emulator for all rounds, or a fresh one for each (``emulator_per_round``)
    blocks = [range(r, r + 1) for r in range(repeats)] if s.emulator_per_round else [range(repeats)]
    extra: dict[str, Any] = {}
    emu_rss = 0.0
    for rounds in blocks:
        with emulator_process(emulator_toml(s), timeout=600) as (info, emu_pid):
            ctl = Control(info)
            if s.warmup:
                for c in s.contenders:
                    run_once(s, info, ctl, c, f"w{c[:2]}{c[-2:]}", 1)
            these = _rounds(s, info, ctl, rounds, repeats, faults)
            for c, rs in these.items():
                runs[c].extend(rs)
            emu_rss = max(emu_rss, rss_kib(emu_pid)[1] / 1024)
            checked = scenario_checks(s, ctl, these)["integrity"]
            was = extra.get("integrity", {})
            extra["integrity"] = {k: was.get(k, 0) + v for k, v in checked.items()}
            if ceiling is not None:
                extra["extra"] = {"ceiling_s": round(ceiling(s, ctl), 3)}
    return {
        "scenario": s.name,
        "description": s.description,
        "command": f"python -m benchmarks run {s.name}"
        + (f" --repeats {repeats}" if repeats != s.repeats else "")
        + "".join(f" --limit {k}={json.dumps(v)}" for k, v in (overrides or {}).items())
        + "".join(
            f" --base {c.removeprefix(BASE_PREFIX)}"
            for c in s.contenders
            if c.startswith(BASE_PREFIX)
        ),
        **stamp(t_start),
        "parameters": {k: v for k, v in s.__dict__.items()},
        "emulator_peak_rss_mb": round(emu_rss, 1),
        "summary": {c: summarize(rs) for c, rs in runs.items()},
        "runs": {
            c: [{k: v for k, v in r.items() if k not in ("samples", "answers")} for r in rs]
            for c, rs in runs.items()
        },
        "samples": {c: rs[-1]["samples"] for c, rs in runs.items() if rs},
        "answers": {c: rs[-1]["answers"] for c, rs in runs.items() if rs and rs[-1]["answers"]},
        **extra,
    }


def scenario_checks(
    s: Scenario, ctl: Control, runs: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """Ground truth for the copyengine runs: lost and duplicated items from snapshots."""
    lost = dup = 0
    checked = 0
    for r in [r for c, rs in runs.items() if c.startswith("copyengine") for r in rs]:
        for i, t in enumerate(r["target_upns"], start=1):
            src = ctl.snapshot(f"src{i:04d}@source.example")
            dst = ctl.snapshot(t)
            keys: dict[str, int] = {}
            for row in dst["items"]:
                keys[row["searchKey"]] = keys.get(row["searchKey"], 0) + 1
            for row in src["items"]:
                n = keys.get(row["searchKey"], 0)
                lost += n == 0
                dup += max(0, n - 1)
            checked += len(src["items"])
    return {"integrity": {"items_checked": checked, "lost": lost, "duplicated": dup}}


def write(result: dict[str, Any], table: str, results: Path) -> Path:
    """A scenario's ``<scenario>.json`` and ``.md`` in ``results`` (``common.results_dir``:
    a fresh folder, or the committed one with ``--record``)."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{result['scenario']}.json"
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    (results / f"{result['scenario']}.md").write_text(table, encoding="utf-8")
    return path
