"""``worker --until-done`` stopped by SIGTERM before the pass ended says so: exit 130
(interrupted: run again to finish), as ``run`` does, never 0 ("every selected item is in the
target"); its group is queued again and a later worker ends the pass exactly, exit 0."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytest

from copyengine.cluster.app import submit
from copyengine.cluster.worker import _QuietStop
from copyengine.config import load_job
from copyengine.exitcodes import ExitCode
from copyengine.pipeline.stop import StopFlag
from tests.emu import running
from tests.jobs import check_copy, selected_by_default
from tests.test_hosts import _config, _job, _logs, _pairs, _stop, _until
from tests.test_hosts_outage import _worker

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]


async def test_until_done_stopped_mid_pass_exits_130_and_the_next_worker_ends_it(
    tmp_path: Path, pg_url: str
) -> None:
    async with running(_config(1, 60, big=2500)) as (server, ep, _):
        job = _job(tmp_path, ep, pg_url, 1, "heartbeat_s = 1\nstalled_after_s = 3")
        await submit(load_job(job))
        first = _worker(job, tmp_path, "w-first", "--until-done")
        target = server.emulator.require_mailbox("t00@fabrikam.example")
        second = None
        try:

            async def busy() -> bool:
                return len(target.items) > 20

            await _until(busy, 40, "the worker copying", tmp_path)
            first.send_signal(signal.SIGTERM)

            async def left() -> bool:
                return first.poll() is not None

            await _until(left, 60, "the worker draining", tmp_path)
            assert first.returncode == ExitCode.INTERRUPTED, _logs(tmp_path)[-3000:]
            second = _worker(job, tmp_path, "w-second", "--until-done")

            async def ended() -> bool:
                return second is not None and second.poll() is not None

            await _until(ended, 90, "the next worker ending the pass", tmp_path)
            assert second.returncode == 0, _logs(tmp_path)[-3000:]
        finally:
            await _stop([p for p in (first, second) if p is not None])
        for s, t in _pairs(1):
            copy = check_copy(
                server.emulator.require_mailbox(s).snapshot(),
                server.emulator.require_mailbox(t).snapshot(),
                selected=selected_by_default,
            )
            assert copy == (0, 0, 0), (copy, _logs(tmp_path)[-3000:])


def test_a_stopping_worker_drops_psycopgs_cancellation_warning_only() -> None:
    """At every clean exit psycopg warned "query cancellation interrupted (CancelledError):
    closing connection" for the queue's listening query the stop cancels (seen on the
    operator's screen at 3 of 12 worker exits): dropped once the worker is stopping."""
    stop = StopFlag()
    quiet = _QuietStop(stop)

    def record(name: str, msg: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, ("CancelledError",), None)

    cancelled = record("psycopg", "query cancellation interrupted (%s): closing connection")
    assert quiet.filter(cancelled)  # while working it is said (nobody asked the worker to stop)
    stop.drain()
    assert not quiet.filter(cancelled)
    assert quiet.filter(record("psycopg", "query cancellation failed: %s"))
    assert quiet.filter(record("copyengine", "query cancellation interrupted (%s): x"))
