"""The shipped example job runs as it is (embedded emulator) and passes verify."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "copyengine", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.slow
def test_example_job_runs_reruns_and_verifies(tmp_path: Path) -> None:
    shutil.copy(ROOT / "config.example.toml", tmp_path / "config.example.toml")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    first = _cli(
        "run", "config.example.toml", "--no-progress", "--log-format", "json", cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((tmp_path / ".copyengine/config.example.report.json").read_text())
    totals = report["totals"]
    assert totals["pairs"] >= 3 and totals["copied"] >= 2000 and totals["failed"] == 0
    assert report["duration_s"] < 60
    assert '"event":"pair.finished"' in first.stderr  # structured logs off a terminal
    again = _cli("run", "config.example.toml", "--no-progress", cwd=tmp_path)
    assert again.returncode == 0
    report2 = json.loads((tmp_path / ".copyengine/config.example.report.json").read_text())
    assert report2["pass"]["kind"] == "delta" and report2["totals"]["copied"] == 0
    assert "pass 2 (delta) applied 0 new" in again.stderr
    full = _cli("run", "config.example.toml", "--no-progress", "--full", cwd=tmp_path)
    assert full.returncode == 0
    report3 = json.loads((tmp_path / ".copyengine/config.example.report.json").read_text())
    assert report3["totals"]["copied"] == 0
    assert report3["totals"]["already_present"] == totals["copied"]
    verified = _cli("verify", "config.example.toml", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr[-2000:]
    assert verified.stdout.count("ok ") == totals["pairs"]
    status = _cli("status", "config.example.toml", cwd=tmp_path)
    assert status.returncode == 0 and "done" in status.stdout
    for text in (
        first.stderr,
        again.stderr,
        full.stderr,
        verified.stdout,
        status.stdout,
        (tmp_path / ".copyengine/config.example.report.json").read_text(),
    ):
        assert "demo-source-secret" not in text and "authtoken=" not in text


def test_a_state_whose_folder_cannot_be_made_is_named(tmp_path: Path) -> None:
    """The embedded emulator keeps its data beside the state: a state folder that cannot be
    made is said as the state's (exit 5, its path and key), not as the emulator's exception."""
    shutil.copy(ROOT / "config.example.toml", tmp_path / "config.example.toml")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "blocker").write_text("a file, not a folder")
    state = tmp_path / "blocker" / "s.sqlite"
    done = _cli("run", "config.example.toml", "--no-progress", "--state", str(state), cwd=tmp_path)
    said = done.stdout + done.stderr
    assert done.returncode == 5, said[-2000:]
    assert str(state) in said and "[job] state" in said, said[-2000:]
    assert "Traceback" not in said and "Error:" not in said and "Errno" not in said
    assert not (tmp_path / ".copyengine").exists()  # nothing written elsewhere
