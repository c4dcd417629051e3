"""A shared job survives its store going away (issue 22, defect 8), and its counters come
from the durable item records (defect 9).

The stop/start test runs a PostgreSQL server of its own (the shared one of the other tests is
left alone): real worker processes copy a shared pass, the server is stopped by its PID in the
middle (fast shutdown: every connection cut) and started again on the same port some seconds
later. The pass must finish with no manual step, every ``worker --until-done`` exit 0, the
target be exact, and the pass's and groups' counters equal what the item records and the
target's snapshot say."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from copyengine.cluster.app import read_groups, submit
from copyengine.config import load_job
from copyengine.wiring import read_overview
from tests import pg
from tests.emu import running
from tests.jobs import assert_exact, selected_by_default
from tests.pg import OwnServer
from tests.test_hosts import _config, _job, _logs, _pairs, _stop, _until

# real-time waits (heartbeats, stalls, windows): alone among the run's processes
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120), pytest.mark.serial]


@pytest.fixture
def own_pg() -> Iterator[OwnServer]:
    try:
        srv = OwnServer()
    except RuntimeError as exc:  # not installed (CI installs it: never skipped there)
        pytest.skip(str(exc))
    try:
        srv.start()
        pg.make_template(srv.url)
        yield srv
    finally:
        srv.close()


async def _item_counts(url: str, pass_number: int) -> dict[str, int]:
    """What the item records say this pass did, read with SQL (independent of the engine)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT status, count(*) FROM ce_items GROUP BY status ORDER BY status"
        )
        by_status = {int(s): int(n) for s, n in await cur.fetchall()}
    return {
        "done": by_status.get(2, 0),
        "all": sum(by_status.values()),
        **{f"s{k}": v for k, v in by_status.items()},
    }


def _target_items(emulator: Any, pairs: list[tuple[str, str]]) -> int:
    return sum(len(emulator.require_mailbox(t).snapshot()["items"]) for _, t in pairs)


def _source_items(emulator: Any, pairs: list[tuple[str, str]]) -> int:
    return sum(
        sum(map(selected_by_default, emulator.require_mailbox(s).snapshot()["items"]))
        for s, _ in pairs
    )


def _worker(
    job: Path, tmp: Path, name: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log = (tmp / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "copyengine", "worker", str(job), "--concurrency", "2", *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )


async def _check_counters(cfg: Any, url: str, emulator: Any, n: int) -> dict[str, Any]:
    """The pass's and the groups' counters against the item records and the snapshots."""
    created = _target_items(emulator, _pairs(n))
    assert created == _source_items(emulator, _pairs(n))
    report = (await read_overview(cfg)).report()
    (ps,) = report["passes"]
    groups = await read_groups(cfg)
    records = await _item_counts(url, ps["pass"])
    got = {
        "target_items": created,
        "pass_created": ps["changes"].get("created"),
        "groups_copied": sum(g["copied"] for g in groups),
        "records_done": records["done"],
        "pass_status": ps["status"],
        "groups": [(g["group"], g["state"], g["copied"], g["failed"]) for g in groups],
    }
    assert ps["status"] == "ok" and ps["finished"], got
    assert ps["changes"]["created"] == created, got
    assert ps["changes"].get("failed", 0) == 0 and ps["changes"].get("unknown", 0) == 0, got
    assert sum(g["copied"] for g in groups) == created, got
    assert all(g["state"] == "done" and g["failed"] == 0 for g in groups), got
    return got


async def test_a_store_restart_mid_pass_needs_no_manual_step(
    tmp_path: Path, own_pg: OwnServer
) -> None:
    n = 4
    url = pg.new_database(own_pg.url)
    async with running(_config(n, 60, big=2500)) as (server, ep, _):
        job = _job(
            tmp_path, ep, url, n, "heartbeat_s = 1\nstalled_after_s = 3\nsegment_minutes = 0.05"
        )
        cfg = load_job(job)
        await submit(cfg)
        workers = [_worker(job, tmp_path, f"w{i}", "--until-done") for i in range(2)]
        target = server.emulator.require_mailbox("t00@fabrikam.example")
        try:

            async def busy() -> bool:
                return len(target.items) > 300

            await _until(busy, 40, "the workers copying", tmp_path)
            before = len(target.items)
            stopped = own_pg.stop()
            await anyio.sleep(6.0)
            during = len(target.items)
            own_pg.start()
            outage = time.monotonic() - stopped
            print(f"store down {outage:.1f} s; target t00 {before} -> {during} items meanwhile")

            async def exited() -> bool:
                return all(p.poll() is not None for p in workers)

            await _until(exited, 60, "every worker leaving by itself (--until-done)", tmp_path)
        finally:
            await _stop(workers)
        codes = [p.returncode for p in workers]
        assert codes == [0, 0], (codes, _logs(tmp_path))
        text = _logs(tmp_path)
        assert "Traceback" not in text, text
        assert_exact(server.emulator, _pairs(n))
        got = await _check_counters(cfg, url, server.emulator, n)
        print("counters:", got)


async def test_a_store_gone_past_the_limit_ends_the_worker_with_a_clear_error(
    tmp_path: Path, own_pg: OwnServer
) -> None:
    """Past ``COPYENGINE_STORE_OUTAGE_S`` the worker leaves: exit 5, one plain error line, no
    traceback. Once the server is back, new workers finish the pass without a manual step
    (the reaper queues the gone worker's groups again), exact, with true counters."""
    n = 2
    url = pg.new_database(own_pg.url)
    async with running(_config(n, 40, big=2500)) as (server, ep, _):
        job = _job(
            tmp_path,
            ep,
            url,
            n,
            "heartbeat_s = 1\nstalled_after_s = 3\ndrain_timeout_s = 5",
        )
        cfg = load_job(job)
        await submit(cfg)
        env = {**os.environ, "COPYENGINE_STORE_OUTAGE_S": "4"}
        gone = _worker(job, tmp_path, "w-gone", "--until-done", env=env)
        target = server.emulator.require_mailbox("t00@fabrikam.example")
        try:

            async def busy() -> bool:
                return len(target.items) > 300

            await _until(busy, 40, "the worker copying", tmp_path)
            stopped = own_pg.stop()

            async def left() -> bool:
                return gone.poll() is not None

            await _until(left, 40, "the worker leaving", tmp_path)
            took = time.monotonic() - stopped
        finally:
            await _stop([gone])
        text = (tmp_path / "w-gone.log").read_text(errors="replace")
        print(f"the worker left {took:.1f} s after the server stopped (limit 4 s)")
        assert gone.returncode == 5, text[-3000:]
        assert "Traceback" not in text, text[-5000:]
        # promptly once past the limit: what is left to say to the database fails at once,
        # never waiting on a pool's connection timeout (10 s a statement: it took 30 s);
        # the limit, its drain (drain_timeout_s = 5) and room for a loaded machine
        assert took < 4.0 + 5.0 + 3.0, (took, text[-3000:])
        assert "Task exception was never retrieved" not in text, text[-3000:]
        assert "unreachable for" in text and "error: " in text, text[-3000:]
        own_pg.start()
        workers = [_worker(job, tmp_path, f"w{i}", "--until-done") for i in range(2)]
        try:

            async def exited() -> bool:
                return all(p.poll() is not None for p in workers)

            await _until(exited, 60, "new workers finishing the pass", tmp_path)
        finally:
            await _stop(workers)
        assert [p.returncode for p in workers] == [0, 0], _logs(tmp_path)
        from tests.jobs import check_copy

        for s, t in _pairs(n):
            print(
                s,
                t,
                check_copy(
                    server.emulator.require_mailbox(s).snapshot(),
                    server.emulator.require_mailbox(t).snapshot(),
                    selected=selected_by_default,
                ),
            )
        assert_exact(server.emulator, _pairs(n))
        got = await _check_counters(cfg, url, server.emulator, n)
        print("counters:", got)
