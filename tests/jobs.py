"""Job files pointed at a running emulator, and snapshot comparisons."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import anyio

from copyengine.emulator import Endpoints
from tests.emu import DST_APP, DST_SECRET, SRC_APP, SRC_SECRET


def write_job(
    tmp: Path, ep: Endpoints, pairs: list[tuple[str, str]], extra: str = "", limits: str = ""
) -> Path:
    (tmp / "src.secret").write_text(SRC_SECRET)
    (tmp / "dst.secret").write_text(DST_SECRET)
    pair_toml = "".join(f'[[pairs]]\nsource = "{s}"\ntarget = "{t}"\n' for s, t in pairs)
    text = f'''
[job]
state = "state.sqlite"
report = "report.json"
log_format = "json"
log_level = "warning"

[tenants.source]
graph_url = "{ep.graph_url}"
authority = "{ep.origin}"
tenant_id = "contoso.example"
client_id = "{SRC_APP}"
client_secret = "file:src.secret"
ca_bundle = "{ep.ca_cert}"

[tenants.target]
graph_url = "{ep.graph_url}"
authority = "{ep.origin}"
tenant_id = "fabrikam.example"
client_id = "{DST_APP}"
client_secret = "file:dst.secret"
ca_bundle = "{ep.ca_cert}"

{pair_toml}
[limits]
request_window_s = 600
{limits}
{extra}
'''
    path = tmp / "job.toml"
    path.write_text(text, encoding="utf-8")
    return path


def with_archives(cfg: dict[str, Any], items: int) -> dict[str, Any]:
    """An emulator configuration (``tests.emu.base_config``) whose first source and target
    users have an in-place archive: ``items`` items at the source, empty at the target."""
    cfg["tenants"][0]["users"][0]["archive"] = {"items": items, "seed": 9}
    cfg["tenants"][1]["users"][0]["archive"] = {"layout": "empty"}
    return cfg


def archive_pair(job: Path, target: str) -> Path:
    """The job file with ``archive = true`` on the pair whose target is ``target``."""
    job.write_text(
        job.read_text().replace(f'target = "{target}"\n', f'target = "{target}"\narchive = true\n')
    )
    return job


def by_key(snapshot: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in snapshot["items"]:
        out[row["searchKey"]].append(row)
    return out


def duplicates(snapshot: dict[str, Any]) -> int:
    counts = Counter(row["searchKey"] for row in snapshot["items"])
    return sum(n - 1 for n in counts.values() if n > 1)


def check_copy(
    src: dict[str, Any], dst: dict[str, Any], path_map: Any = None, selected: Any = None
) -> tuple[int, int, int]:
    """(lost, duplicated, wrong) comparing selected source items with the target."""
    target = by_key(dst)
    lost = dup = wrong = 0
    for row in src["items"]:
        if selected is not None and not selected(row):
            continue
        copies = target.get(row["searchKey"], [])
        if not copies:
            lost += 1
            continue
        if len(copies) > 1:
            dup += len(copies) - 1
        want = path_map(row["folderPath"]) if path_map else row["folderPath"]
        for c in copies:
            if (c["folderPath"], c["digest"], c["size"], c["type"]) != (
                want,
                row["digest"],
                row["size"],
                row["type"],
            ):
                wrong += 1
    return lost, dup, wrong


def selected_by_default(row: dict[str, Any]) -> bool:
    """What a job copies with default folder rules (hidden and journal folders are not)."""
    return not row["folderPath"].startswith(("/Recoverable Items", "/Journal"))


def assert_exact(emu_state: Any, pairs: list[tuple[str, str]]) -> None:
    """Every selected source item once in the target, in the right folder, nothing else."""
    for s, t in pairs:
        src = emu_state.require_mailbox(s).snapshot()
        dst = emu_state.require_mailbox(t).snapshot()
        assert check_copy(src, dst, selected=selected_by_default) == (0, 0, 0), (s, t)
        assert duplicates(dst) == 0
        assert len(dst["items"]) == sum(map(selected_by_default, src["items"]))


ROOT = Path(__file__).parent.parent


def demo_job(where: Path) -> Path:
    """The shipped example job (embedded emulator) copied into ``where``; its job file."""
    shutil.copy(ROOT / "config.example.toml", where / "config.example.toml")
    shutil.copytree(ROOT / "examples", where / "examples")
    return where / "config.example.toml"


def cli(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``python -m copyengine ARGS`` in ``cwd``: its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "copyengine", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def started_run(*args: str, cwd: Path, within: float = 60.0) -> tuple[subprocess.Popen[str], Path]:
    """``python -m copyengine ARGS`` in ``cwd``, its log in a file (a pipe nobody reads while
    the test waits could fill and block it), once its log says ``job.started``."""
    log = cwd / "run.log"
    fh = log.open("w", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "copyengine", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=fh,
        text=True,
    )
    fh.close()
    deadline = time.monotonic() + within
    while "job.started" not in log.read_text(encoding="utf-8"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError("no job.started: " + log.read_text(encoding="utf-8")[-2000:])
        time.sleep(0.1)
    return proc, log


def cli_process(*args: str) -> subprocess.Popen[bytes]:
    """``python -m copyengine ARGS`` started, its output piped (``finish_process``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "copyengine", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def finish_process(proc: subprocess.Popen[bytes], limit_s: float) -> tuple[int, str]:
    """Exit code and everything the process printed (stdout + stderr), bounded in time."""
    deadline = time.monotonic() + limit_s
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the process did not finish in time")
        await anyio.sleep(0.05)
    out = (proc.stdout.read() if proc.stdout else b"") + (
        proc.stderr.read() if proc.stderr else b""
    )
    return proc.returncode, out.decode("utf-8", "replace")


async def exit_code(proc: subprocess.Popen[bytes], limit_s: float = 120.0) -> int | None:
    """A started process's exit code, waited for ``limit_s`` at most; killed (by its PID,
    ``None``) if it has not exited by then."""
    deadline = time.monotonic() + limit_s
    while proc.poll() is None:
        if time.monotonic() > deadline:
            break
        await anyio.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
        return None
    return proc.returncode


def finished_event(output: str) -> dict[str, Any]:
    """The ``job.finished`` event in a JSON log."""
    for line in output.splitlines():
        if '"job.finished"' in line:
            return json.loads(line)  # type: ignore[no-any-return]
    raise AssertionError(f"no job.finished event in:\n{output[-3000:]}")
