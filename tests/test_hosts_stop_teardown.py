"""A stop at any moment of a worker's end (host history seed 20, round 0: a SIGTERM to a
worker as ``--until-done`` ended it ended the process by SIGINT, exit -2, or once with exit 1
and a traceback). The worker's own stop handlers come off when its task group ends; what is
left (the job queue's pool closed, the clients, the loop's own end) met a stop as a
KeyboardInterrupt raised wherever it landed. Seeded: each round a worker with
``--until-done`` on a job whose pass is done, a SIGINT or a SIGTERM sent at a random moment
around its ``worker.all_done``; the exit code is the one the README gives (0: the pass is
done, whatever the stop met) and no traceback is printed."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from copyengine.cluster.app import submit
from copyengine.config import load_job
from tests.emu import running
from tests.test_hosts import _all_done, _config, _job, _log, _until, _worker

# real-time waits (heartbeats, stalls, windows): alone among the run's processes
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600), pytest.mark.serial]
ROUNDS = 10


def _wait_said(path: Path, what: str, proc: subprocess.Popen[bytes], limit_s: float) -> bool:
    """Until ``what`` is in the log at ``path`` (polled every 5 ms; bounded), False if the
    process ended first."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if path.exists() and what in path.read_text(errors="replace"):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    raise AssertionError(f"no {what} within {limit_s} s")


# seed 7: exit 130 for a pass done before the fix (a SIGINT in the teardown)
@pytest.mark.parametrize("seed", [7, pytest.param(20, marks=pytest.mark.slow)])
async def test_a_stop_in_a_worker_s_teardown_ends_it_with_its_exit_code(
    seed: int, tmp_path: Path, pg_url: str
) -> None:
    rng = random.Random(seed)
    async with running(_config(2, 20)) as (_, ep, _):
        job = _job(tmp_path, ep, pg_url, 2, "heartbeat_s = 0.2\nstalled_after_s = 5\n")
        job.write_text(job.read_text().replace('log_level = "warning"', 'log_level = "info"'))
        cfg = load_job(job)
        await submit(cfg)
        first = _worker(job, tmp_path, "w0", 2, "--until-done")
        await _until(lambda: _all_done(cfg), 120, "the pass done", tmp_path)
        await _until(_ended(first), 60, "the first worker's end", tmp_path)
        assert first.returncode == 0, _log(tmp_path, "w0")
        said: list[str] = []
        for n in range(1, ROUNDS + 1):
            sig = rng.choice([signal.SIGINT, signal.SIGTERM])
            delay = rng.uniform(0.0, 0.25)
            name = f"w{n}"
            proc = _worker(job, tmp_path, name, 2, "--until-done")
            try:
                if await anyio.to_thread.run_sync(
                    _wait_said, tmp_path / f"{name}.log", "worker.all_done", proc, 120
                ):
                    await anyio.sleep(delay)
                    if proc.poll() is None:
                        proc.send_signal(sig)
                await _until(_ended(proc), 60, f"{name}'s end", tmp_path)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
            out = _log(tmp_path, name)
            said.append(f"{name}: {sig.name} {delay:.3f} s after all_done: exit {proc.returncode}")
            assert proc.returncode == 0 and "Traceback" not in out, (said, out[-4000:])


def _ended(proc: subprocess.Popen[bytes]) -> object:
    async def ended() -> bool:
        return proc.poll() is not None

    return ended
