"""A shared pass's end is two writes: the last group's ``done`` (``GroupStore.segment_ended``),
then the pass's own end (``finish_pass_if_done``). A worker that dies between them (SIGKILL,
or a drain past ``drain_timeout_s``: procrastinate then cancels the segment wherever it is)
left every group done and the pass "running" for good: the other workers' ``--until-done``
saw every group finished and left, no reaper looked at a pass that is not a cutover, and the
next ``submit --full`` or ``--cutover`` was refused ("pass N is under way"): host soak seed
107 (a pass "running (unfinished)" after a SIGTERM to one of three workers, then
``submit_nonzero`` and the targets stale). Here that state is made directly (the pass's end
taken back in the database after it ended) and must heal: by the next worker, and by the
next ``submit`` with no worker at all."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from structlog.testing import capture_logs

from copyengine.cluster.app import submit
from copyengine.cluster.connect import group_store
from copyengine.cluster.submit import Asked
from copyengine.config import load_job, select_pairs
from copyengine.wiring import read_overview
from tests import pg
from tests.emu import running
from tests.jobs import assert_exact
from tests.test_hosts_parity import PAIRS, _config, _job, _until_done

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]


async def _unfinish(url: str, number: int) -> None:
    """Pass ``number``'s end taken back, its groups left done: what a worker killed between
    its last group's end and the pass's leaves."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE ce_passes SET finished = NULL, status = 'running', changes = NULL "
            "WHERE pass = %s",
            (number,),
        )


async def test_a_pass_whose_groups_all_ended_unrecorded_is_ended_by_the_next_worker_or_submit(
    tmp_path: Path, pg_url: str
) -> None:
    async with running(_config()) as (server, ep, _):
        job = _job(tmp_path, ep, pg_url)
        cfg = load_job(job)
        await submit(cfg)
        await _until_done(job, tmp_path, "w1")
        assert_exact(server.emulator, PAIRS)
        first = (await read_overview(cfg)).passes[-1]
        assert first["finished"] and first["status"] == "ok", first

        # the next worker finds every group done and the pass open: it ends it
        await _unfinish(pg_url, 1)
        assert not (await read_overview(cfg)).passes[-1]["finished"]
        # what a reaper ends: a pass whose last group ended stalled_after_s ago, not sooner
        # (the worker that ended it may still be writing the pass's end)
        table = group_store(cfg)
        assert await table.passes_due() == [1]
        assert await table.passes_due(3600) == []
        await _until_done(job, tmp_path, "w2")
        again = (await read_overview(cfg)).passes[-1]
        assert (again["pass"], again["status"]) == (1, "ok") and again["finished"], again
        assert again["changes"]["created"] == first["changes"]["created"], again

        # no worker left: the next submit ends it, then starts the pass asked for
        await _unfinish(pg_url, 1)
        with capture_logs() as logs:
            out = await submit(cfg, Asked(select_pairs(cfg, ()), full=True))
        # said as any late end is (``cluster.tasks.end_late``: worker, reaper, submit)
        late = [(e["pass_number"], e["status"]) for e in logs if e["event"] == "pass.ended_late"]
        assert late == [(1, "ok")], logs
        assert (out["pass"], out["kind"]) == (2, "full"), out
        ended = (await read_overview(cfg)).passes[0]
        assert ended["finished"] and ended["status"] == "ok", ended
        await _until_done(job, tmp_path, "w3")
        assert_exact(server.emulator, PAIRS)
        last = (await read_overview(cfg)).passes[-1]
        assert (last["pass"], last["status"]) == (2, "ok") and last["finished"], last


async def test_the_first_submit_on_an_empty_database_starts_the_first_pass(
    tmp_path: Path, pg_server: str
) -> None:
    """``submit`` looks for a pass to end once the state's tables exist: on a database with
    none yet (not the tests' template, which has them all) the look before them failed
    with 'relation "ce_passes" does not exist'."""
    name = f"empty_{tmp_path.name[-20:].replace('-', '_').lower()}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = pg.with_db(pg_server, name)
    async with running(_config()) as (_, ep, _):
        out = await submit(load_job(_job(tmp_path, ep, url)))
        assert (out["pass"], out["kind"], out["queued"]) == (1, "first", 2), out
