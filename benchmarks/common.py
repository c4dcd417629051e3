"""Shared benchmark plumbing: emulator in its own process, machine description, results."""

from __future__ import annotations

import json
import os
import platform
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"  # the recorded results (committed)
RECORD_HELP = (
    "write the results into benchmarks/results/ (the recorded ones, committed); without it "
    "they go to a fresh folder under benchmarks/results/runs/"
)


def stamp(t_start: float) -> dict[str, Any]:
    """When a result's run started (UTC) and on what machine: every result carries both."""
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t_start)), "machine": machine()}


def python_build() -> str:
    """The optimisations the interpreter's configure arguments name, or that none is named."""
    args = str(sysconfig.get_config_var("CONFIG_ARGS") or "")
    named = [n for f, n in (("--enable-optimizations", "PGO"), ("--with-lto", "LTO")) if f in args]
    return "+".join(named) if named else "no PGO/LTO named in its configure arguments"


def machine() -> dict[str, Any]:
    import aiohttp

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
        # where the interpreter came from and what its build says of its optimisations: the
        # engine is mostly interpreter time, a build without PGO/LTO costs it ~1.4x where it
        # costs `minimal` (memory copies, orjson) little (issue 26, cpu9); Debian's build
        # has them without saying so in its configure arguments
        "python_prefix": sys.base_prefix,
        "python_build": python_build(),
        "aiohttp": aiohttp.__version__,
        "platform": platform.platform(),
    }


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in KiB, from /proc."""
    cur = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    return cur, peak


def run_queue_wait(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of a process's main thread so
    far, from /proc/<pid>/schedstat: the second is how much other work on the machine held
    it back, which moves its CPU per item (cache refills, more wake-ups per request)."""
    run_ns, wait_ns = Path(f"/proc/{pid}/schedstat").read_text().split()[:2]
    return int(run_ns) / 1e9, int(wait_ns) / 1e9


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@contextmanager
def emulator_process(
    config_toml: str, timeout: float = 300.0
) -> Iterator[tuple[dict[str, Any], int]]:
    """Start ``copyengine emulator serve`` in its own process; yield (ready info, pid)."""
    from copyengine.emulator.process import emulator_process as start

    with tempfile.TemporaryDirectory(prefix="ce-bench-") as tmp:
        cfg = Path(tmp) / "emulator.toml"
        cfg.write_text(config_toml, encoding="utf-8")
        log = Path(tmp) / "emulator.log"
        with (
            log.open("wb") as out,
            start(cfg, Path(tmp) / "ready.json", out, timeout, log) as (info, pid),
        ):
            yield info, pid


def results_dir(record: bool, root: Path = RESULTS) -> Path:
    """Where one invocation's results go: the committed folder ``root`` only when asked to
    record them (``--record``); otherwise a fresh folder ``root/runs/<UTC time>/`` (ignored
    by git), so that trying a change never overwrites the recorded results."""
    if record:
        root.mkdir(parents=True, exist_ok=True)
        return root
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1000):
        fresh = root / "runs" / (now if n == 0 else f"{now}-{n}")
        try:
            fresh.mkdir(parents=True)
        except FileExistsError:
            continue
        return fresh
    raise FileExistsError(f"no fresh folder under {root / 'runs'}")


def write_result(name: str, data: dict[str, Any], table: str, results: Path) -> Path:
    """``<name>.json`` and ``<name>.md`` in ``results`` (from ``results_dir``)."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    (results / f"{name}.md").write_text(table, encoding="utf-8")
    return path
