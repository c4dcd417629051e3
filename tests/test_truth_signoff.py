"""A stop and a cutover's sign-off (review5's finding): the exit code, the report, the
pass recorded in the state and ``job.finished`` say the same thing, and what happened.

A stop while the sign-off judges cuts it short at once: the pass is interrupted and nothing
says "complete" (the sign-off ran on to its end and said "complete", then the run said
"interrupted", exit 130). A stop once the sign-off is taken has nothing left to cut short:
the pass is complete, exit 0, the stop said in the log (it said "interrupted", exit 130)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

from copyengine.config import load_job
from copyengine.exitcodes import ExitCode
from copyengine.pipeline import pairpass
from copyengine.pipeline.stop import StopFlag
from copyengine.state import SQLiteStore
from copyengine.wiring import run_job
from tests.jobs import write_job

pytestmark = pytest.mark.anyio
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"


async def _passes(cfg: Any) -> list[dict[str, Any]]:
    async with SQLiteStore(cfg.state_path) as st:
        return await st.passes()


def _said(logs: list[Any]) -> Any:
    (done,) = [e for e in logs if e["event"] == "job.finished"]
    return done


async def test_a_stop_while_the_sign_off_judges_cuts_it_short_and_the_pass_is_interrupted(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)]))
    stop = StopFlag()
    from copyengine.verify import sign_off as real

    async def slow_sign_off(*args: Any) -> dict[str, Any]:
        stop.drain()  # the operator's SIGTERM, as the sign-off lists both sides
        await anyio.sleep(30)  # a sign-off of many mailboxes
        return await real(*args)

    monkeypatch.setattr("copyengine.wiring.sign_off", slow_sign_off)
    began = time.monotonic()
    with structlog.testing.capture_logs() as logs, anyio.fail_after(60):
        stats = await run_job(cfg, stop, cutover=True)
    assert time.monotonic() - began < 20, "the stop did not cut the sign-off short"
    assert stats.sign_off is None and stats.interrupted
    assert stats.exit_code() == ExitCode.INTERRUPTED
    done = _said(logs)
    assert done["exit_code"] == ExitCode.INTERRUPTED and done["sign_off"] is None
    report = json.loads(cfg.report_path.read_text())
    assert report["exit_code"] == ExitCode.INTERRUPTED and report["sign_off"] is None
    assert (await _passes(cfg))[-1]["status"] == "interrupted"

    # the next cutover signs off, complete
    monkeypatch.setattr("copyengine.wiring.sign_off", real)
    stats = await run_job(cfg, cutover=True)
    assert stats.exit_code() == ExitCode.OK and stats.sign_off is not None
    assert stats.sign_off["complete"]


async def test_a_stop_once_the_sign_off_is_taken_leaves_the_pass_complete(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)]))
    stop = StopFlag()
    real = pairpass.record_sign_off

    async def then_stopped(*args: Any) -> None:
        stop.drain()  # the SIGTERM as the sign-off is being recorded
        await real(*args)

    monkeypatch.setattr("copyengine.pipeline.job.record_sign_off", then_stopped)
    with structlog.testing.capture_logs() as logs, anyio.fail_after(60):
        stats = await run_job(cfg, stop, cutover=True)
    assert stats.sign_off is not None and stats.sign_off["complete"]
    assert not stats.interrupted and stats.exit_code() == ExitCode.OK
    assert stop.late == 1  # seen, and nothing to cut short
    done = _said(logs)
    assert done["exit_code"] == ExitCode.OK and done["sign_off"] == "complete"
    report = json.loads(cfg.report_path.read_text())
    assert report["exit_code"] == ExitCode.OK and report["sign_off"]["said"] == "complete"
    assert (await _passes(cfg))[-1]["status"] == "ok"
