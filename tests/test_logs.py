"""Log lines and human output on separate streams: every line of a JSON log stream parses,
``--log-file`` takes the log and leaves the screen to people, and a log stream whose reader
has gone never stops a job (the exit code, the report and ``status`` agree)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import structlog

from copyengine import logs
from copyengine.exitcodes import ExitCode
from tests.jobs import cli, demo_job

REPORT = ".copyengine/config.example.report.json"


class _ClosedPipe(io.StringIO):
    """A stream whose reader has gone: every write fails as a closed pipe does."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        raise BrokenPipeError(32, "Broken pipe")


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_every_line_of_a_json_stream_is_json_notes_and_foreign_records_too() -> None:
    buf = io.StringIO()
    logs.configure("json", "info", buf)
    structlog.get_logger("t").info("pair.started", pair="a->b")
    logs.note("embedded emulator (pid 1) at https://127.0.0.1:1", "emulator.started", pid=1)
    logging.getLogger("aiohttp.client").warning("Unclosed connection to %s", "127.0.0.1")
    events = _json_lines(buf.getvalue())
    assert [e["event"] for e in events[:2]] == ["pair.started", "emulator.started"]
    assert events[1]["pid"] == 1 and events[1]["message"].startswith("embedded emulator")
    assert events[2]["logger"] == "aiohttp.client" and events[2]["level"] == "warning"
    logs.configure("json", "warning", io.StringIO())


def test_a_note_on_a_console_screen_is_plain_text() -> None:
    buf = io.StringIO()
    logs.configure("console", "info", buf)
    logs.note("embedded emulator (pid 1) at https://127.0.0.1:1", "emulator.started", pid=1)
    assert buf.getvalue() == "embedded emulator (pid 1) at https://127.0.0.1:1\n"
    logs.configure("json", "warning", io.StringIO())


def _refused(token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}  # a local, as in Transport._once
    raise RuntimeError(f"refused: {headers['Authorization']}")


def test_a_console_traceback_at_debug_shows_no_locals_and_no_token() -> None:
    # pair.failed carries exc_info at debug level; with rich installed structlog's default
    # renderer printed every frame's locals, the token among them, unredacted
    buf = io.StringIO()
    logs.configure("console", "debug", buf)
    token = ".".join(("eyJ0eXAi", "SECRET" + "PART", "sig"))  # not in any source line shown
    try:
        _refused(token)
    except RuntimeError:
        structlog.get_logger("t").error("pair.failed", error="refused", exc_info=True)
    logs.configure("json", "warning", io.StringIO())
    shown = buf.getvalue()
    assert "Traceback (most recent call last)" in shown and "in _refused" in shown
    assert "RuntimeError: refused: Bearer <redacted>" in shown
    assert "SECRETPART" not in shown and "headers =" not in shown


def test_the_engine_loads_no_traceback_renderer_it_does_not_use() -> None:
    # structlog.dev imported rich's traceback and pygments at every start (~0.1-0.2 s CPU)
    code = (
        "import sys, copyengine.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pygments'"
        " or m in ('rich.traceback', 'rich.pretty', 'rich.syntax')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_a_log_file_takes_the_log_and_the_screen_keeps_warnings(tmp_path: Path) -> None:
    screen = io.StringIO()
    path = tmp_path / "job.log"
    logs.configure("auto", "info", screen, file=path)
    log = structlog.get_logger("t")
    log.info("item.imported", folder="/Inbox")
    log.warning("pacer.throttled", retry_after=2.5)
    logs.note("embedded emulator (pid 1) at https://127.0.0.1:1", "emulator.started", pid=1)
    logs.configure("json", "warning", io.StringIO())  # closes the file
    events = _json_lines(path.read_text())  # auto in a file: JSON
    assert [e["event"] for e in events] == ["item.imported", "pacer.throttled", "emulator.started"]
    shown = screen.getvalue()
    assert "pacer.throttled" in shown and "item.imported" not in shown
    assert "embedded emulator (pid 1)" in shown and "{" not in shown  # console, not JSON


def test_a_closed_log_stream_never_raises_and_is_dropped() -> None:
    closed = _ClosedPipe()
    logs.configure("json", "info", closed)
    log = structlog.get_logger("t")
    for i in range(5):
        log.info("item.imported", n=i)
        logging.getLogger("aiohttp").warning("foreign %d", i)
        logs.note("a note", pid=i)
    assert closed.writes == 1  # the first failed write turned the sink off
    logs.configure("json", "warning", io.StringIO())


def test_a_json_run_writes_only_json_lines_on_stderr(tmp_path: Path) -> None:
    demo_job(tmp_path)
    done = cli("run", "config.example.toml", "--no-progress", "--log-format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    events = _json_lines(done.stderr)  # every line: json.loads fails on anything else
    names = {e["event"] for e in events}
    assert {"emulator.started", "job.started", "job.finished", "job.outcome"} <= names
    outcome = next(e for e in events if e["event"] == "job.outcome")
    assert outcome["exit_code"] == 0 and outcome["outcome"].startswith("exit 0: ")
    # the human output, on stdout: the summary table, the report, the outcome line
    assert "summary of pass 1" in done.stdout and "exit 0: every selected item" in done.stdout
    # the screen and job.finished name the same reports: the latest and this run's own copy
    finished = next(e for e in events if e["event"] == "job.finished")
    latest, own = Path(finished["report"]), Path(finished["report_run"])
    assert latest.is_file() and own.is_file() and own != latest
    assert f"report: {latest} (this run's copy: {own.name})" in done.stdout


def test_log_file_leaves_the_screen_human(tmp_path: Path) -> None:
    demo_job(tmp_path)
    done = cli("plan", "config.example.toml", "--log-file", "plan.log", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.startswith("embedded emulator (pid ")  # a line for people
    events = _json_lines((tmp_path / "plan.log").read_text())
    assert events[0]["event"] == "emulator.started" and events[0]["url"].startswith("http")
    assert "plan: nothing was copied" in done.stdout


def test_a_closed_log_pipe_leaves_the_run_whole_and_its_three_answers_agreeing(
    tmp_path: Path,
) -> None:
    """``copyengine run job.toml --log-format json 2>&1 | head -1``."""
    demo_job(tmp_path)
    args = ["run", "config.example.toml", "--no-progress", "--log-format", "json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "copyengine", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # head -1: one line, then the pipe is closed
    proc.stdout.close()
    code = proc.wait(timeout=240)
    assert json.loads(first)["event"] == "emulator.started"
    report = json.loads((tmp_path / REPORT).read_text())
    assert code == report["exit_code"] == ExitCode.OK, report.get("fatal")
    assert report["totals"]["copied"] >= 2000 and report["totals"]["failed"] == 0
    status = cli("status", "config.example.toml", "--json", cwd=tmp_path)
    passes = json.loads(status.stdout)["passes"]
    assert [p["status"] for p in passes] == [ExitCode(code).name.lower()]


def test_a_failed_command_off_a_terminal_says_it_on_stdout_too(tmp_path: Path) -> None:
    """stderr a pipe (cron, a CI job): its lines are JSON for machines, and the failure (a
    damaged state here) is also the plain ``exit N: …`` line on stdout, as a run's outcome
    is; no traceback on either stream."""
    demo_job(tmp_path)
    none = cli("status", "config.example.toml", "--json", cwd=tmp_path)
    state = Path(json.loads(none.stdout)["state"])
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_bytes(b"not a database, " * 400)
    for command in ("status", "report"):
        done = cli(command, "config.example.toml", cwd=tmp_path)
        assert done.returncode == ExitCode.FATAL, (done.stdout, done.stderr)
        last = done.stdout.splitlines()[-1]
        assert last.startswith("exit 5: cannot open state store") and "damaged" in last, last
        events = _json_lines(done.stderr)
        assert events[-1]["event"] == "command.failed" and events[-1]["exit_code"] == 5
        assert "Traceback" not in done.stdout + done.stderr


def test_an_unwritable_log_file_is_a_configuration_error_before_anything_is_done(
    tmp_path: Path,
) -> None:
    demo_job(tmp_path)
    done = cli("run", "config.example.toml", "--log-file", "no-such-folder/run.log", cwd=tmp_path)
    assert done.returncode == ExitCode.CONFIG, (done.stdout, done.stderr)
    assert "error: configuration: --log-file: cannot write no-such-folder/run.log" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / ".copyengine").exists()  # no emulator, no state, no report


def test_job_started_names_a_postgresql_state_by_its_url(tmp_path: Path) -> None:
    """A shared job's state is its database: ``job.started`` named the SQLite path beside
    the job file that only the embedded emulator uses (found following several-hosts.md)."""
    from dataclasses import replace

    from copyengine.config import load_job
    from copyengine.pipeline.job import _started
    from copyengine.report import JobStats

    cfg = load_job(demo_job(tmp_path))
    url = "postgresql://copyengine@127.0.0.1:5432/migration_wave1"
    stats = JobStats()
    stats.pass_info = {"number": 1, "kind": "first"}
    with structlog.testing.capture_logs() as said:
        _started(replace(cfg, state_url=url), cfg.pairs, stats)
        _started(cfg, cfg.pairs, stats)
    assert [e["state"] for e in said] == [url, str(cfg.state_path)]
