"""An operator's round over the product (review 4): what goes wrong on a real site, once each,
against the standard: a clear error, a distinct exit code, nothing lost, every answer true."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from copyengine.console.text import plan_line, status_lines
from tests.emu import DST_APP, DST_SECRET, SRC_SECRET
from tests.jobs import (
    assert_exact,
    cli_process,
    demo_job,
    finish_process,
    finished_event,
    write_job,
)

pytestmark = pytest.mark.anyio
_cli = cli_process
PAIRS = [("bianca@contoso.example", "bianca@fabrikam.example")]

# The disk under the report fills up at the run's end: every write of a report file fails
# as a full tmpfs fails it (ENOSPC at the flush), the state's own writes go on.
_FULL_REPORT_DISK = """
import errno, os, sys
real = os.fsync
def fsync(fd):
    if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(fd)
os.fsync = fsync
from copyengine.cli import main
sys.argv = ["copyengine", *sys.argv[1:]]
main()
"""


def _run(job: Path, *more: str, code: str | None = None) -> subprocess.Popen[bytes]:
    head = ["-c", code] if code else ["-m", "copyengine"]
    args = ["run", str(job), "--no-progress", "--log-format", "json", "--log-level", "info"]
    args += more
    return subprocess.Popen(
        [sys.executable, *head, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd")
async def test_a_full_disk_under_the_report_names_no_report_and_leaves_no_half_file(
    emu: Any, tmp_path: Path
) -> None:
    job = write_job(tmp_path, emu.ep, PAIRS)
    code, out = await finish_process(_run(job, code=_FULL_REPORT_DISK), 300)
    assert code == 5 and "Traceback" not in out, out[-3000:]
    finished = finished_event(out)
    # the screen, the log and the exit code agree: no report was written, none is named
    assert finished["exit_code"] == 5 and finished["report"] is None, finished
    assert not [x for x in out.splitlines() if x.startswith("report:")], out[-3000:]
    assert "No space left on device" in finished["fatal"]
    assert "copyengine report" in finished["fatal"]  # what to do: the state has it all
    assert not list(tmp_path.glob("*.tmp")), sorted(p.name for p in tmp_path.iterdir())
    # nothing lost, as it says: `copyengine report` writes it from the state, which the
    # operator may have moved to a disk with room (`--state`, as `run --state`)
    kept = tmp_path / "roomy"
    kept.mkdir()
    for f in tmp_path.glob("state.sqlite*"):
        f.rename(kept / f.name)
    # the state says what the exit code says: the pass's copy ended, its report was not
    # written (it said `ok` while the run exited 5)
    code, out = await finish_process(
        _cli("status", str(job), "--state", str(kept / "state.sqlite"), "--json"), 300
    )
    assert code == 0, out[-3000:]
    ended = json.JSONDecoder().raw_decode(out, out.index("{"))[0]["passes"]
    assert [p["status"] for p in ended] == ["report_unwritten"], ended
    assert ended[0]["changes"]["created"] > 0 and ended[0]["finished"], ended
    code, out = await finish_process(
        _cli("status", str(job), "--state", str(kept / "state.sqlite")), 300
    )
    assert "its report not written (exit 5" in out and "copyengine report" in out, out[-3000:]
    args = ["report", str(job), "--state", str(kept / "state.sqlite")]
    code, out = await finish_process(_cli(*args), 300)
    assert code == 0 and "report:" in out, out[-3000:]
    assert json.loads((tmp_path / "report.json").read_text())["totals"]["copied"] > 0
    # and the next run has nothing left to copy
    code, out = await finish_process(_run(job, "--state", str(kept / "state.sqlite")), 300)
    assert code == 0, out[-3000:]
    assert json.loads((tmp_path / "report.json").read_text())["exit_code"] == 0
    assert_exact(emu.state, PAIRS)


async def _wait_for(cond: Any, proc: subprocess.Popen[bytes], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        assert proc.poll() is None, "the run ended before the moment the test acts at"
        assert time.monotonic() < deadline, "condition not reached in time"
        await anyio.sleep(0.02)


async def test_a_credential_revoked_mid_run_is_said_everywhere_and_leaks_nowhere(
    emu: Any, tmp_path: Path
) -> None:
    """The admin deletes the target app's secret while the job copies: every pair that needs
    the target fails with an authentication error, the screen, the log, the report and the
    exit code agree, no secret, token or import URL is written anywhere, and once the
    credential is put back the next run ends the job exactly."""
    pairs = [("adele@contoso.example", "adele@fabrikam.example"), *PAIRS]
    job = write_job(tmp_path, emu.ep, pairs, limits="retry_backoff_cap_s = 0.05\n")
    await emu.src.control("PUT", "/faults", {"rules": [SLOW_IMPORTS]})
    target = emu.state.require_mailbox("adele@fabrikam.example")
    proc = _run(job, "--log-level", "debug")
    await _wait_for(lambda: len(target.items) > 5, proc, 300)
    for app in emu.state.tokens.tenant("fabrikam.example").apps.values():
        app.secret = "rotated-by-the-admin"
    await emu.src.control("POST", "/tokens/revoke", {"client_id": DST_APP})
    code, out = await finish_process(proc, 300)
    tokens = list(emu.state.tokens._verified)  # every token the service was shown
    assert code in (4, 1) and "Traceback" not in out, out[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert finished_event(out)["exit_code"] == report["exit_code"] == code
    assert f"\nexit {code}: " in out, out[-1500:]
    failed = [p for p in report["pairs"] if p["status"] == "failed"]
    assert failed and all("AADSTS7000215" in p["error"] for p in failed), report["pairs"]
    assert "running" not in {p["status"] for p in report["pairs"]}
    written = [out, *(f.read_bytes().decode("utf-8", "replace") for f in _files(tmp_path))]
    for text in written:
        for secret in (SRC_SECRET, DST_SECRET, "authtoken=", "Bearer ", *tokens):
            assert secret not in text
    # the admin puts a secret back (the job file's reference reads it): nothing lost, nothing
    # twice
    for app in emu.state.tokens.tenant("fabrikam.example").apps.values():
        app.secret = DST_SECRET
    await emu.src.control("DELETE", "/faults")
    code, out = await finish_process(_run(job), 300)
    assert code == 0, out[-3000:]
    assert_exact(emu.state, pairs)


SLOW_IMPORTS = {"kind": "slow", "calls": ["importItem"], "delay": 0.05}


def _files(root: Path) -> list[Path]:
    """Everything the job wrote: its reports (JSON, HTML, CSV) and its state (SQLite, WAL)."""
    mine = ("src.secret", "dst.secret", "job.toml")
    return [f for f in root.rglob("*") if f.is_file() and f.name not in mine]


async def test_verify_says_a_pair_it_could_not_compare_apart_from_a_difference(
    emu: Any, tmp_path: Path
) -> None:
    """A pair whose target the service keeps failing to list is no difference found (exit 6
    sends the operator to `run --full`): exit 1, said on the last line, as a pair failed."""
    pairs = [("adele@contoso.example", "adele@fabrikam.example"), *PAIRS]
    job = write_job(tmp_path, emu.ep, pairs, limits="retry_backoff_cap_s = 0.05\n")
    code, out = await finish_process(_run(job), 300)
    assert code == 0, out[-3000:]
    failing = {"kind": "http_503", "mailbox": pairs[0][1]}
    await emu.src.control("PUT", "/faults", {"rules": [failing]})
    code, out = await finish_process(_cli("verify", str(job)), 300)
    assert code == 1 and "Traceback" not in out, out[-3000:]
    assert f"FAIL {pairs[0][0]} -> {pairs[0][1]}: " in out and f"ok   {PAIRS[0][0]}" in out
    assert "\nexit 1: 1 of 2 pairs could not be compared" in out, out[-3000:]
    await emu.src.control("DELETE", "/faults")
    code, out = await finish_process(_cli("verify", str(job)), 300)
    assert code == 0 and "\nexit 0: 2 pairs: every selected item once" in out, out[-3000:]


def test_plan_s_last_line_says_the_pairs_it_could_not_size() -> None:
    """`plan` exits 5 when a pair cannot be sized (a mailbox not found): its last line said
    "nothing to copy, no ETA" and nothing of it."""
    summary = {"copy": 0, "copy_bytes": 0, "already_present": 0, "binding_limits": []}
    assert plan_line(summary).endswith("nothing to copy, no ETA")
    line = plan_line({**summary, "pairs_failing": 1})
    assert line.endswith("1 pairs could not be sized: see the table (exit 5)"), line


def test_status_never_says_running_of_a_pass_a_later_one_followed() -> None:
    """A run stopped by a full disk (or killed) leaves its pass without an end; once a later
    pass began (one at a time) it is over: `status` said "running" of it for good."""
    passes = [
        {
            "pass": 1,
            "kind": "first",
            "started": "t0",
            "finished": None,
            "status": "running",
            "changes": {},
        },
        {
            "pass": 2,
            "kind": "delta",
            "started": "t1",
            "finished": None,
            "status": "running",
            "changes": {},
        },
    ]
    known = {"groups": [], "passes": passes, "pairs": [], "controls": {}, "hints": []}
    first, second = [x for x in status_lines(known, 0.0) if x.startswith("pass ")]
    assert "running" not in first and "ended without a word" in first, first
    assert second.endswith("running (its changes are counted when it ends)"), second


def test_a_pairs_file_that_is_a_folder_is_said_so(tmp_path: Path) -> None:
    """`pairs_csv` naming a folder said "file ... does not exist" of a path that is there."""
    from copyengine.config import load_job
    from copyengine.errors import ConfigError

    job = demo_job(tmp_path)
    text = job.read_text(encoding="utf-8")
    (tmp_path / "waves").mkdir()
    job.write_text('pairs_csv = "waves"\n' + text, encoding="utf-8")
    with pytest.raises(ConfigError) as said:
        load_job(job)
    assert "waves is a folder, not a file" in str(said.value), said.value


def test_verify_of_an_emulated_job_with_no_run_says_the_emulator_starts_as_seeded(
    tmp_path: Path,
) -> None:
    """`verify` before any run (or with a mistyped --state) of a job on the embedded
    emulator compared the emulator as seeded and said only "4 of 4 pairs differ" (exit 6),
    as if a copy had gone missing: it now says where it looked for the run's mailboxes."""
    from tests.jobs import cli

    job = demo_job(tmp_path)
    job.write_text(re.sub(r"items = \d+", "items = 5", job.read_text("utf-8")), "utf-8")
    done = cli("verify", job.name, "--state", "typo.sqlite", cwd=tmp_path, timeout=300)
    assert done.returncode == 6 and "Traceback" not in done.stderr, done.stderr[-2000:]
    said = done.stderr
    assert "starts as [emulator] seeds it" in said and "typo.sqlite" in said, said[-2000:]
    assert not (tmp_path / "typo.sqlite").exists()  # and nothing is written


def test_verify_refuses_a_json_output_it_cannot_write_before_comparing(tmp_path: Path) -> None:
    """`verify --json-output` into a folder that does not exist compared every pair, then
    ended with exit 5 and `FileNotFoundError: [Errno 2] ...`, its outcome lost: now exit 3
    at once, naming the folder, nothing contacted."""
    from click.testing import CliRunner

    from copyengine.cli import main

    job = demo_job(tmp_path)
    (tmp_path / "afile").write_text("x")
    for out, said in (("nowhere/v.json", "does not exist"), ("afile/v.json", "is not a folder")):
        result = CliRunner().invoke(
            main, ["verify", str(job), "--json-output", str(tmp_path / out)]
        )
        assert result.exit_code == 3, result.output
        assert f"--json-output: cannot write {tmp_path / out}" in result.output, result.output
        assert said in result.output and "Traceback" not in result.output, result.output
        assert "embedded emulator" not in result.output  # refused before anything started
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "afile",
        "config.example.toml",
        "examples",
    ]


async def test_report_refuses_an_output_folder_that_does_not_exist(
    emu: Any, tmp_path: Path
) -> None:
    """`report --output` into a missing folder made it, and every folder above it, silently
    (unlike `init`, `--log-file`, `verify --json-output`): now exit 3, the folder named with
    the `mkdir -p` that makes it, nothing made; into a folder that exists, written."""
    from click.testing import CliRunner

    from copyengine.cli import main
    from copyengine.config import load_job
    from copyengine.wiring import run_job

    job = write_job(tmp_path, emu.ep, PAIRS)
    assert (await run_job(load_job(job))).exit_code() == 0
    out = tmp_path / "typo" / "deeper" / "r.html"
    result = CliRunner().invoke(main, ["report", str(job), "--output", str(out)])
    assert result.exit_code == 3, result.output
    folder = out.parent
    assert f"--output: cannot write {out}" in result.output, result.output
    assert f"does not exist (mkdir -p {folder})" in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "typo").exists()
    folder.mkdir(parents=True)
    args = ["report", str(job), "--output", str(out)]
    result = await anyio.to_thread.run_sync(CliRunner().invoke, main, args)  # its own loop
    assert result.exit_code == 0, result.output
    assert {"r.html", "r.json", "r.pairs.csv"} <= {p.name for p in folder.iterdir()}
