"""Ctrl-C while the service throttles: a real ``copyengine run`` against its embedded
emulator, made stricter than the job's ``[limits]`` (the time-scaled profile, whose windows
are 60 times shorter than the documented ones the job paces to, with a fifth of its upload
budget), interrupted while its pairs wait on the service. Requests that have not been sent
are not waited for: it exits within 5 s, its report says what it left, and the next run
finishes the copy exactly (``verify``)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from copyengine.exitcodes import ExitCode
from tests.jobs import cli, demo_job, finished_event, started_run

STRICT = 'profile = "exchange-fast"\nlimits = { upload_bytes = 500000, latency_base = 0.01 }\n'
UNLIMITED = 'profile = "unlimited"\n'
DRAIN_WITHIN_S = 5.0


def _job(where: Path, emulator: str) -> Path:
    """The demo job with smaller mailboxes and the emulator's profile given."""
    job = where / "config.example.toml"
    if not job.exists():
        demo_job(where)
    text = job.read_text(encoding="utf-8")
    head, _, tail = text.partition("[emulator]\n")
    lines = [
        ln for ln in tail.splitlines(keepends=True) if not ln.startswith(("profile =", "limits ="))
    ]
    tail = "".join(lines)
    for n in ("900", "800", "700", "600"):
        tail = tail.replace(f"items = {n},", "items = 150,")
    job.write_text(head + "[emulator]\n" + emulator + tail, encoding="utf-8")
    return job


def _report(where: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(
        (where / ".copyengine/config.example.report.json").read_text(encoding="utf-8")
    )
    return data


@pytest.mark.serial  # a bound in seconds
def test_ctrl_c_while_throttled_exits_within_5_s_and_the_next_run_finishes(
    tmp_path: Path,
) -> None:
    _job(tmp_path, STRICT)
    proc, log = started_run("run", "config.example.toml", "--no-progress", cwd=tmp_path)
    try:
        time.sleep(6.0)  # a 500 KB budget per 5 s: every target mailbox is throttled by now
        assert proc.poll() is None, "the job ended before it could be interrupted"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rest = log.read_text(encoding="utf-8")
    assert code == ExitCode.INTERRUPTED, rest[-3000:]
    assert took < DRAIN_WITHIN_S, f"exited {took:.1f} s after Ctrl-C"
    first = _report(tmp_path)
    totals = first["totals"]
    assert isinstance(totals, dict)
    assert first["exit_code"] == ExitCode.INTERRUPTED and first["interrupted"] is True
    assert totals["throttled_429"] > 0  # it was throttled when interrupted
    assert 0 < totals["copied"] < totals["source_items"]
    assert "waited on the service" in str(first["stop_reason"])
    # the log says what the report says of the budget the service gave (the hint to lower
    # [limits]), as the screen's summary does
    finished = finished_event(rest)
    assert finished["exit_code"] == ExitCode.INTERRUPTED
    assert first["hints"] and finished["hints"] == first["hints"]
    # and the budget in effect of each pair the 429s cut, as the report has it per pair
    pairs = first["pairs"]
    assert isinstance(pairs, list)
    cut = {
        f"{p['source']}->{p['target']}".lower(): p["budget_in_effect"]
        for p in pairs
        if p.get("budget_in_effect")
    }
    assert cut and finished["budget_in_effect"] == cut

    _job(tmp_path, UNLIMITED)  # the same mailboxes (persisted), the service unthrottled
    again = cli("run", "config.example.toml", "--no-progress", cwd=tmp_path, timeout=120)
    assert again.returncode == ExitCode.OK, again.stdout[-2000:] + again.stderr[-2000:]
    second = _report(tmp_path)
    t2 = second["totals"]
    assert isinstance(t2, dict)
    assert t2["failed"] == 0 and t2["unknown"] == 0
    checked = cli("verify", "config.example.toml", cwd=tmp_path, timeout=120)
    assert checked.returncode == ExitCode.OK, checked.stdout[-3000:]
