"""A worker paused longer than ``stalled_after_s`` (a starved event loop on a loaded host, a
VM paused, SIGSTOP) is not dead: when it resumes, its group must not be copied by two
workers at once. The reaper of another worker sees its heartbeats stop and queues its
group again; the group's segment must then run only once at a time (never a second copy
of an item)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from copyengine.cluster.app import submit
from copyengine.config import load_job
from tests.emu import running
from tests.jobs import assert_exact, check_copy, selected_by_default
from tests.test_hosts import _config, _job, _logs, _pairs, _stop, _until
from tests.test_hosts_outage import _worker

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


async def test_a_paused_worker_and_the_reaper_never_copy_a_group_twice(
    tmp_path: Path, pg_url: str
) -> None:
    n = 2
    async with running(_config(n, 40, big=2500)) as (server, ep, _):
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
        assert_exact(server.emulator, _pairs(n))
