"""A stop while ``copyengine run`` starts: one SIGINT or SIGTERM at a random moment of a real
run's first seconds on its embedded emulator (Python loading the engine, the job file read,
the state opened, the emulator started, the first listings), then checked: the exit code is
one the operator guide documents for a stop (130; 0 when the run was over first), nothing
printed a traceback, the report, ``job.finished`` and the screen's last line say that code,
``status`` reads the state, and a second run, left alone, ends 0 with every item copied once
(``verify``: nothing missing, duplicated or misplaced). One seed decides the signal and the
moment; a failing case is reproduced with ``python -m tests.startstop SEED``.

The moment is drawn from spawn (0-4 s: on a busy box, the engine loading), or 0-400 ms after
the run first logs ``emulator.started``, ``job.started`` (the state open) or
``pair.started`` (its listings); a stop is sent no earlier than the launcher's handlers
are in place (``launch.main``'s first lines): before, the interpreter itself is starting
(SIGTERM's default ends the process, SIGINT is Python's own KeyboardInterrupt), which no
code of the engine can change; ``tests/test_startup_stop.py`` checks that nothing of the
engine's loads before then, so that window stays the interpreter's own few tens of ms.

Used by ``tests/test_startup_stop.py`` (a few seeds, and every seed that once failed) and by
``python -m benchmarks soak startstop`` (many)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from copyengine.exitcodes import ExitCode
from tests.jobs import cli, demo_job

WITHIN_MS = 4000  # the stop comes this long after spawn at most (the start-up, on a busy box)
# or this long after the run first logs one of these: the emulator up, the state open and
# the job started, a pair started (its listings); from spawn alone, a busy box's stops all
# landed before the emulator was up (16 of 16 at load 9-10)
AFTER_EVENT_MS = 400
FROM = (None, None, "emulator.started", "job.started", "pair.started")
ITEMS = 40  # per source mailbox: the run itself lasts a few seconds, the start-up most of it
RUN_WITHIN_S = 180.0
REPORT = ".copyengine/config.example.report.json"


@dataclass(frozen=True)
class Case:
    seed: int
    sig: signal.Signals
    after: str | None  # the log event the moment is counted from (None: spawn)
    after_ms: int

    @classmethod
    def of(cls, seed: int) -> Case:
        r = random.Random(seed)
        sig = r.choice([signal.SIGINT, signal.SIGTERM])
        after = r.choice(FROM)
        return cls(seed, sig, after, r.randrange((AFTER_EVENT_MS if after else WITHIN_MS) + 1))


def small_demo_job(where: Path, emulator: str, items: int) -> Path:
    """The demo job (embedded emulator) with ``items`` per source mailbox and the emulator's
    ``profile`` / ``limits`` lines given."""
    job = where / "config.example.toml"
    if not job.exists():
        demo_job(where)
    head, _, tail = job.read_text(encoding="utf-8").partition("[emulator]\n")
    lines = [
        ln for ln in tail.splitlines(keepends=True) if not ln.startswith(("profile =", "limits ="))
    ]
    tail = "".join(lines)
    for n in ("900", "800", "700", "600"):
        tail = tail.replace(f"items = {n},", f"items = {items},")
    job.write_text(head + "[emulator]\n" + emulator + tail, encoding="utf-8")
    return job


def catches(pid: int, sig: int) -> bool:
    """Whether the process has its own handler for ``sig`` (Linux: /proc's SigCgt); an
    ended process: True (whatever a signal meets now is its own doing)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (sig - 1) & 1)


def _cli(where: Path, *args: str) -> tuple[int, str, str]:
    done = cli(*args, cwd=where, timeout=RUN_WITHIN_S)
    return done.returncode, done.stdout, done.stderr


def stopped_run(case: Case, where: Path) -> tuple[int, str, str, float, float]:
    """``copyengine run`` stopped by ``case``: exit code, stdout, stderr, and when the signal
    went: ms after spawn, and the time of day (``time.time``)."""
    out, err = where / "run.out", where / "run.err"
    args = ["run", "config.example.toml", "--no-progress", "--log-format", "json"]
    with out.open("w") as fo, err.open("w") as fe:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "copyengine", *args], cwd=where, stdout=fo, stderr=fe
        )
        try:
            # SIGTERM caught: the launcher's handlers are in place (SIGINT's with it)
            while not catches(proc.pid, signal.SIGTERM) and time.monotonic() - t0 < 60:
                time.sleep(0.002)
            since = t0 if case.after is None else _logged(proc, err, case.after)
            time.sleep(max(0.0, since + case.after_ms / 1000 - time.monotonic()))
            sent, sent_at = (time.monotonic() - t0) * 1000, time.time()
            proc.send_signal(case.sig)
            code = proc.wait(RUN_WITHIN_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return code, out.read_text(), err.read_text(), sent, sent_at


def _logged(proc: subprocess.Popen[bytes], log: Path, event: str) -> float:
    """When (``time.monotonic``) ``event`` was first seen in the run's log (or it ended)."""
    deadline = time.monotonic() + 60
    while f'"{event}"' not in log.read_text() and proc.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    return time.monotonic()


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def stage(stderr: str, sent_at: float) -> str:
    """Where the run was when the stop went: its last event logged before then
    (``emulator.started``, ``job.started``, ``pair.started``, ...); ``loading`` before any
    (the engine imported, the job file read, the emulator starting)."""
    said = "loading"
    for line in stderr.splitlines():
        if line.startswith("{") and '"timestamp"' in line:
            event = json.loads(line)
            if _at(event) > sent_at:
                break
            said = str(event["event"])
    return said


def _finished(stderr: str) -> dict[str, Any] | None:
    for line in stderr.splitlines():
        if '"job.finished"' in line:
            return json.loads(line)  # type: ignore[no-any-return]
    return None


def said_alike(code: int, stdout: str, stderr: str, where: Path) -> list[str]:
    """What is wrong with what a stopped run said: its exit code, traceback, the report,
    ``job.finished`` and the screen's last line."""
    problems = []
    if code not in (ExitCode.INTERRUPTED, ExitCode.OK):
        problems.append(f"exit {code}, not 130 (or 0: over before the stop)")
    if "Traceback" in stdout + stderr:
        problems.append("a traceback: " + (stdout + stderr)[-1500:])
    finished = _finished(stderr)
    if finished is None or finished.get("exit_code") != code:
        problems.append(f"job.finished {finished and finished.get('exit_code')} for exit {code}")
    if f"exit {code}:" not in stdout:
        problems.append(f"no 'exit {code}:' line on the screen: {stdout[-500:]!r}")
    report = where / REPORT
    said = json.loads(report.read_text())["exit_code"] if report.exists() else None
    if said != code:
        problems.append(f"report's exit_code {said} for exit {code}")
    return problems


@dataclass
class Outcome:
    """What one case did: the stopped run's exit code, when the stop went (ms after spawn),
    the stage it landed in, and the problems found (none: all as documented)."""

    code: int
    sent_ms: float
    stage: str
    problems: list[str]


def stop_heard(code: int, stderr: str, sent_at: float) -> list[str]:
    """A run that exits 0 after a stop had nothing left to stop: the stop came once its work
    was over (the log's ``job.stop_after_work``) or once it had said how it ended (its
    ``job.finished`` no later than the stop). Else the stop was lost."""
    finished = _finished(stderr)
    if code != ExitCode.OK or '"job.stop_after_work"' in stderr or finished is None:
        return []
    at = _at(finished)
    if at <= sent_at:
        return []
    return [f"exit 0, job.finished {at - sent_at:.3f} s after the stop, no job.stop_after_work"]


def run_case(case: Case, where: Path) -> Outcome:
    """The stopped run, then ``status``, a second run and ``verify``."""
    small_demo_job(where, 'profile = "unlimited"\n', ITEMS)
    code, stdout, stderr, sent, sent_at = stopped_run(case, where)
    landed = stage(stderr, sent_at)
    problems = said_alike(code, stdout, stderr, where)
    problems += stop_heard(code, stderr, sent_at)
    status, shown, _ = _cli(where, "status", "config.example.toml", "--json")
    if status != ExitCode.OK:
        problems.append(f"status after the stop: exit {status}: {shown[-500:]}")
    again, stdout, stderr = _cli(where, "run", "config.example.toml", "--no-progress")
    if again != ExitCode.OK or "Traceback" in stdout + stderr:
        problems.append(f"the next run: exit {again}: {(stdout + stderr)[-1500:]}")
    else:
        totals = json.loads((where / REPORT).read_text())["totals"]
        if totals["failed"] or totals["unknown"] or totals["not_done"]:
            problems.append(f"the next run left work: {totals}")
    checked, stdout, _ = _cli(where, "verify", "config.example.toml")
    if checked != ExitCode.OK:
        problems.append(f"verify after the next run: exit {checked}: {stdout[-1500:]}")
    said = [f"{case.sig.name} at {sent:.0f} ms: {p}" for p in problems]
    return Outcome(code, round(sent), landed, said)


def check(seed: int) -> Outcome:
    """``run_case`` for ``seed`` in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix=f"startstop-{seed}-") as tmp:
        return run_case(Case.of(seed), Path(tmp))


if __name__ == "__main__":  # python -m tests.startstop SEED...
    bad = 0
    for arg in sys.argv[1:]:
        found = check(int(arg))
        bad += bool(found.problems)
        print(arg, Case.of(int(arg)), found, sep="\n  ")
    sys.exit(1 if bad else 0)
