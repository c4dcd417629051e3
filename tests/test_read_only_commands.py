"""``plan``, ``doctor`` and ``verify`` change nothing (review finding 12): on a job with an
embedded emulator they used to leave the emulator's saved mailboxes, its CA and its keys
beside the job (``.copyengine/X.emulator.pickle`` …) though ``plan`` "writes nothing". They
start the emulator from what an earlier run left there, and write nothing there."""

from __future__ import annotations

import json
import re
from pathlib import Path

from copyengine.exitcodes import ExitCode
from tests.jobs import cli, demo_job


def _small_demo(where: Path) -> Path:
    job = demo_job(where)
    text = job.read_text(encoding="utf-8")
    small = re.sub(r"items = \d+", "items = 15", text)
    assert small != text
    job.write_text(small, encoding="utf-8")
    return job


def _files(d: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``d`` with its modification time and content."""
    if not d.exists():
        return {}
    return {
        str(p.relative_to(d)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def test_plan_and_doctor_on_a_fresh_job_leave_nothing_behind(tmp_path: Path) -> None:
    job = _small_demo(tmp_path)
    done = cli("plan", job.name, "--json", cwd=tmp_path, timeout=120)
    assert done.returncode == ExitCode.OK, done.stderr[-2000:]
    assert json.loads(done.stdout)["summary"]["copy"] > 0
    done = cli("doctor", job.name, cwd=tmp_path, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert _files(tmp_path / ".copyengine") == {}


def test_plan_doctor_and_verify_read_what_a_run_left_and_change_none_of_it(
    tmp_path: Path,
) -> None:
    job = _small_demo(tmp_path)
    done = cli("run", job.name, "--no-progress", cwd=tmp_path, timeout=180)
    assert done.returncode == ExitCode.OK, done.stderr[-2000:]
    before = _files(tmp_path / ".copyengine")
    assert any(name.endswith(".emulator.pickle") for name in before), sorted(before)
    done = cli("plan", job.name, "--json", cwd=tmp_path, timeout=120)
    assert done.returncode == ExitCode.OK, done.stderr[-2000:]
    summary = json.loads(done.stdout)["summary"]
    # the emulator started from the run's mailboxes: nothing changed since the run's pass
    assert summary["copy"] == 0 and summary["pairs_failing"] == 0, summary
    done = cli("verify", job.name, "--content", cwd=tmp_path, timeout=120)
    # and every copy the run made is in its target
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr[-2000:]
    assert done.stdout.count("ok   ") == 4, done.stdout
    cli("doctor", job.name, cwd=tmp_path, timeout=120)
    assert _files(tmp_path / ".copyengine") == before
