"""Run the emulator in a process of its own (demo job, benchmarks): start, wait, stop.

The same on every platform: the child serves until its standard input closes, which happens
when the parent closes it (a stop) or dies however it dies (the system closes its end of
the pipe), so an emulator never outlives its job. Ctrl-C at the terminal is the job's to
handle (drain, then stop the emulator), not a signal that kills the service mid-drain: on
POSIX the child gets a session of its own, on Windows a process group of its own, and it
ignores the console's Ctrl-C and Ctrl-Break besides.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

STOP_TIMEOUT = 10.0


class EmulatorStartError(RuntimeError):
    pass


def detach_options() -> dict[str, Any]:
    """Popen options that keep the terminal's Ctrl-C from the child: a new session where
    there is ``setsid`` (POSIX), else a new process group (Windows); never ``preexec_fn``
    (unavailable on Windows, unsafe with threads)."""
    if hasattr(os, "setsid"):
        return {"start_new_session": True}
    return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}


def stop_process(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """Close the child's standard input (it stops cleanly), then terminate it by PID if it
    has not ended within ``timeout`` (SIGTERM on POSIX, TerminateProcess on Windows), then
    kill it."""
    if proc.stdin is not None:
        try:
            proc.stdin.close()
        except OSError:
            pass  # it is already gone
    try:
        proc.wait(timeout)
        return
    except subprocess.TimeoutExpired:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def emulator_process(
    config: Path,
    ready: Path,
    output: IO[bytes] | int = subprocess.DEVNULL,
    timeout: float = 120.0,
    log_tail: Path | None = None,
) -> Iterator[tuple[dict[str, Any], int]]:
    """``copyengine emulator serve`` in a child process that dies with its parent; yields the
    ready-file contents and the PID once connections are accepted; stops it after."""
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
            "--stop-on-eof",
        ],
        stdin=subprocess.PIPE,
        stdout=output,
        stderr=subprocess.STDOUT,
        **detach_options(),
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
        stop_process(proc)
