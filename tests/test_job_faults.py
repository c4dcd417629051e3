"""The job under faults, kills and stops: zero lost, zero duplicated."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from copyengine.config import load_job
from copyengine.exitcodes import ExitCode
from copyengine.wiring import run_job
from tests.emu import base_config, running
from tests.jobs import assert_exact, write_job

pytestmark = pytest.mark.anyio
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
BIANCA, T_BIANCA = "bianca@contoso.example", "bianca@fabrikam.example"
PAIRS = [(ADELE, T_ADELE), (BIANCA, T_BIANCA)]
FAULT_MIX = [
    {"kind": "drop_after", "calls": ["importItem"], "probability": 0.06},
    {"kind": "drop_after", "calls": ["exportItems", "listItems"], "probability": 0.03},
    {"kind": "drop_before", "probability": 0.02},
    {"kind": "http_503", "probability": 0.03, "retry_after": 0.05},
    {"kind": "http_504", "probability": 0.02},
    {"kind": "slow", "probability": 0.03, "delay": 0.2},
    {"kind": "session_expire", "probability": 0.03},
    {"kind": "token_revoke", "probability": 0.01},
]


def _assert_exact(emu_state: Any) -> None:
    assert_exact(emu_state, PAIRS)


async def test_fault_storm_loses_and_duplicates_nothing(emu: Any, tmp_path: Path) -> None:
    r = await emu.src.control("PUT", "/faults", {"rules": FAULT_MIX, "seed": 11})
    assert r.status == 200
    cfg = load_job(write_job(tmp_path, emu.ep, PAIRS))
    stats = await run_job(cfg)
    fired = (await emu.src.control("GET", "/stats")).body["faults"]
    assert fired.get("drop_after", 0) >= 1 and sum(fired.values()) >= 5
    assert stats.exit_code() == ExitCode.OK, json.dumps(stats.as_dict()["totals"])
    _assert_exact(emu.state)


def _job_process(job: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "copyengine",
            "run",
            str(job),
            "--no-progress",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _progress(server: Any, upns: tuple[str, ...], at_least: int, limit_s: float) -> None:
    """Wait until the targets hold ``at_least`` items (the job is copying), bounded."""
    deadline = time.monotonic() + limit_s
    while sum(len(server.emulator.require_mailbox(u).items) for u in upns) < at_least:
        if time.monotonic() > deadline:
            return
        await anyio.sleep(0.05)


async def _wait(proc: subprocess.Popen[bytes], limit_s: float) -> int:
    deadline = time.monotonic() + limit_s
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("job did not finish")
        await anyio.sleep(0.05)
    return proc.returncode


async def test_sigkill_at_random_moments_then_rerun_ends_exact(tmp_path: Path) -> None:
    # The emulator lives in this process and persists across the job's deaths; the job runs
    # as a child process that is killed with SIGKILL at random moments.
    cfg = base_config(profile="exchange", seed=5)
    cfg["tenants"][0]["users"][0]["mailbox"]["items"] = 400
    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    async with running(cfg) as (server, ep, _):
        job = write_job(tmp_path, ep, PAIRS, limits="importers_per_pair = 6")
        kills = 0
        for _ in range(4):
            proc = _job_process(job)
            before = len(server.emulator.require_mailbox(T_ADELE).items)
            await _progress(server, (T_ADELE,), before + 1, 20)
            await anyio.sleep(rng.uniform(0.0, 1.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            await _wait(proc, 30)
        assert kills >= 2
        partial = len(server.emulator.require_mailbox(T_ADELE).items)
        proc = _job_process(job)
        code = await _wait(proc, 120)
        assert code == 0, proc.stderr.read().decode()[-2000:] if proc.stderr else code
        assert partial > 0
        _assert_exact(server.emulator)


async def test_sigterm_drains_then_rerun_completes(tmp_path: Path) -> None:
    cfg = base_config(profile="exchange", seed=5)
    cfg["tenants"][0]["users"][0]["mailbox"]["items"] = 400
    async with running(cfg) as (server, ep, _):
        job = write_job(tmp_path, ep, PAIRS)
        proc = _job_process(job)
        await _progress(server, (T_ADELE, T_BIANCA), 30, 30)
        proc.send_signal(signal.SIGTERM)
        code = await _wait(proc, 60)
        assert code == ExitCode.INTERRUPTED
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["interrupted"] is True
        copied_first = report["totals"]["copied"]
        assert 0 < copied_first < 430
        assert (
            len(server.emulator.require_mailbox(T_ADELE).items)
            + len(server.emulator.require_mailbox(T_BIANCA).items)
            == copied_first
        )
        proc = _job_process(job)
        assert await _wait(proc, 120) == 0
        _assert_exact(server.emulator)
