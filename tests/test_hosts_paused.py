"""A worker paused longer than ``stalled_after_s`` (a starved event loop on a loaded host, a
VM paused, SIGSTOP) is not dead: when it resumes, its group must not be copied by two
workers at once. The reaper of another worker sees its heartbeats stop and queues its
group again; the group's segment must then run only once at a time (never a second copy
of an item)."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from copyengine.cluster.app import submit
from copyengine.config import load_job
from tests.emu import running
from tests.jobs import assert_exact, check_copy, selected_by_default
from tests.test_hosts import _config, _job, _logs, _pairs, _stop, _until
from tests.test_hosts_outage import _worker

# real-time waits (heartbeats, stalls, windows): alone among the run's processes
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120), pytest.mark.serial]


async def test_a_paused_worker_and_the_reaper_never_copy_a_group_twice(
    tmp_path: Path, pg_url: str
) -> None:
    n = 2
    # each answer 10 ms late: the pause lands mid-copy. Without it a quiet fast host copied
    # the paused worker's groups before the SIGSTOP (nothing queued again, no fence to hold:
    # the suite at d42b797 failed on "group.already_running", the copies exact)
    async with running(_config(n, 40, big=2500, latency=0.01)) as (server, ep, _):
        job = _job(tmp_path, ep, pg_url, n, "heartbeat_s = 1\nstalled_after_s = 3")
        cfg = load_job(job)
        await submit(cfg)
        paused = _worker(job, tmp_path, "w-paused", "--until-done")
        target = server.emulator.require_mailbox("t00@fabrikam.example")
        other = None
        try:

            async def busy() -> bool:
                return len(target.items) > 200

            await _until(busy, 40, "the worker copying", tmp_path)
            other = _worker(job, tmp_path, "w-other", "--until-done")
            await anyio.sleep(2.0)  # the other worker up, its reaper running
            os.kill(paused.pid, signal.SIGSTOP)
            await anyio.sleep(5.5)  # past stalled_after_s: the other's reaper acts
            os.kill(paused.pid, signal.SIGCONT)
            workers = [paused, other]

            async def exited() -> bool:
                return all(p.poll() is not None for p in workers)

            await _until(exited, 90, "both workers finishing the pass", tmp_path)
        finally:
            if paused.poll() is None:
                os.kill(paused.pid, signal.SIGCONT)
            await _stop([p for p in (paused, other) if p is not None])
        copies = {
            t: check_copy(
                server.emulator.require_mailbox(s).snapshot(),
                server.emulator.require_mailbox(t).snapshot(),
                selected=selected_by_default,
            )
            for s, t in _pairs(n)
        }
        assert all(c == (0, 0, 0) for c in copies.values()), (copies, _logs(tmp_path)[-4000:])
        text = "".join(f.read_text(errors="replace") for f in tmp_path.glob("w*.log"))
        assert "group.already_running" in text  # the fence did hold a segment back
        # the job ended by both workers: one warning, no traceback, not called an outage
        assert "Traceback" not in text and "could not be recorded" not in text, text[-4000:]
        assert_exact(server.emulator, _pairs(n))


async def test_a_job_ended_twice_is_said_in_one_warning_not_a_traceback(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The paused worker's cause, alone: a job queued again while its worker was silent is
    ended by both workers; the second end is refused by the database (no longer running).
    It was an unretrieved ``ConnectorException`` with procrastinate's traceback; now one
    warning (``job.ended_elsewhere``), and the job stays as the first end left it. Any other
    refusal is still raised."""
    from procrastinate import exceptions, jobs

    from copyengine.cluster.jobqueue import apply_schema, make_app
    from copyengine.cluster.tasks import defer

    await apply_schema(pg_url, None)
    app = make_app(pg_url, None)
    async with app.open_async():
        assert await defer(app, "q-ended-twice", "g-1", 1)
        (job,) = await app.job_manager.list_jobs_async(queue="q-ended-twice")
        assert job.id is not None
        done = jobs.Status.SUCCEEDED
        await app.job_manager.finish_job_by_id_async(job.id, done, delete_job=False)
        await app.job_manager.finish_job_by_id_async(job.id, done, delete_job=False)  # again
        (after,) = await app.job_manager.list_jobs_async(queue="q-ended-twice")
        assert after.status == "succeeded"
        with pytest.raises(exceptions.ConnectorException):  # not "ended elsewhere": raised
            await app.job_manager.retry_job_by_id_async(job.id, retry_at=datetime.now(UTC))
    out = capsys.readouterr()
    said = out.out + out.err
    assert "job.ended_elsewhere" in said and "Traceback" not in said
