"""The host histories' harness stopped from outside (``python -m tests.hosthistories``, the
same ``interruptible`` as ``python -m benchmarks soak hosts``): a SIGINT (Ctrl-C) or a SIGTERM
sent to the harness alone, once its workers copy, ends it with exit 130, no traceback, and
nothing of it left running: its workers and its PostgreSQL server stopped by PID. Before
(last round's "soak hosts ignored one Ctrl-C"): started as a background job of a
non-interactive shell, the harness came in with SIGINT ignored and went on (only the workers
and the server, which set their own handlers, took a Ctrl-C to the group: the history then
failed and the next began without a server); a SIGTERM ended the harness alone, its workers
and its server left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import pg

# real-time waits (heartbeats, stalls, windows): alone among the run's processes
pytestmark = [pytest.mark.timeout(240), pytest.mark.serial]

ROOT = Path(__file__).resolve().parent.parent


def _session(sid: int) -> list[int]:
    """The PIDs of the processes in session ``sid`` (zombies left out)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == sid:  # state, ppid, pgrp, session
            out.append(int(d.name))
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


def _ignore_sigint() -> None:
    os.setsid()  # its own session: what is left of it is found by the session's id
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job of a shell script


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_the_harness_stopped_stops_its_workers_and_server(sig: signal.Signals) -> None:
    if pg._binaries() is None:
        if os.environ.get("COPYENGINE_REQUIRE_PG"):
            raise RuntimeError("PostgreSQL is not installed")
        pytest.skip("PostgreSQL is not installed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.hosthistories", "101"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=_ignore_sigint,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(b"worker" in _cmdline(p) for p in _session(proc.pid)):  # a worker runs
            assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
            assert time.monotonic() < deadline, "no worker within 120 s"
            time.sleep(0.2)
        time.sleep(1.0)
        os.kill(proc.pid, sig)  # the harness alone, not its group
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{sig.name}: the harness still runs 60 s later")
        text = out.decode(errors="replace")
        assert proc.returncode == 130, (proc.returncode, text[-2000:])
        assert "Traceback" not in text, text[-2000:]
        assert "interrupted" in text, text[-2000:]
        for _ in range(50):  # the postmaster's children end just after it
            left = _session(proc.pid)
            if not left:
                break
            time.sleep(0.2)
        assert not left, [_cmdline(p)[:200] for p in left]
    finally:
        for pid in _session(proc.pid):  # ours, by PID, whatever the outcome
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
