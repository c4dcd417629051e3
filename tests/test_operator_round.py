"""An operator's round over the product (review 4): what goes wrong on a real site, once each,
against the standard: a clear error, a distinct exit code, nothing lost, every answer true."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.jobs import assert_exact, cli_process, finish_process, finished_event, write_job

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
    code, out = await finish_process(_run(job, code=_FULL_REPORT_DISK), 120)
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
    args = ["report", str(job), "--state", str(kept / "state.sqlite")]
    code, out = await finish_process(_cli(*args), 60)
    assert code == 0 and "report:" in out, out[-3000:]
    assert json.loads((tmp_path / "report.json").read_text())["totals"]["copied"] > 0
    # and the next run has nothing left to copy
    code, out = await finish_process(_run(job, "--state", str(kept / "state.sqlite")), 120)
    assert code == 0, out[-3000:]
    assert json.loads((tmp_path / "report.json").read_text())["exit_code"] == 0
    assert_exact(emu.state, PAIRS)
