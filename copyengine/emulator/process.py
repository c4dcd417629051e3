"""Run the emulator in a process of its own (demo job, benchmarks): start, wait, stop."""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


class EmulatorStartError(RuntimeError):
    pass


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@contextmanager
def emulator_process(
    config: Path,
    ready: Path,
    output: IO[bytes] | int = subprocess.DEVNULL,
    timeout: float = 120.0,
    log_tail: Path | None = None,
) -> Iterator[tuple[dict[str, Any], int]]:
    """``copyengine emulator serve`` in a child process that dies with its parent; yields the
    ready-file contents and the PID once connections are accepted; stops it by PID after."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "copyengine",
            "emulator",
            "serve",
            "--config",
            str(config),
            "--ready-file",
            str(ready),
        ],
        stdout=output,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
        # Its own session and process group: a Ctrl-C at the terminal is the job's to handle
        # (drain, then stop the emulator), not a signal that kills the service mid-drain.
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if proc.poll() is not None:
                tail = log_tail.read_text(errors="replace")[-1500:] if log_tail else ""
                raise EmulatorStartError(f"the emulator exited ({proc.returncode}) {tail}")
            if time.monotonic() > deadline:
                raise EmulatorStartError(f"the emulator was not ready within {timeout:.0f} s")
            time.sleep(0.05)
        yield json.loads(ready.read_text(encoding="utf-8")), proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
