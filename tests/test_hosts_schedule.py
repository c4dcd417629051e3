"""The schedule and priorities in a shared job (``submit`` + ``worker``), on a scaled clock
(``COPYENGINE_CLOCK``) shared by the test and the workers: a group submitted outside its
window waits in the queue (``waiting``, not failed, not stalled) and runs at the window; a
window that closes mid-segment drains the group, which is queued again for the next window
and finishes exact; a cutover submitted before its pairs' ``complete_after`` waits in the
queue and is copied and signed off once the time comes; a worker of concurrency 1 takes the
groups in their priority order."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from copyengine.cluster.app import group_runs, read_groups, submit
from copyengine.cluster.groups import mailbox_groups
from copyengine.cluster.submit import Asked
from copyengine.config import load_job
from copyengine.controls.gates import CLOCK_ENV
from copyengine.wiring import read_overview
from tests.emu import base_config, running
from tests.jobs import assert_exact, write_job
from tests.test_hosts import _all_done, _stop, _until, _worker  # the workers' helpers, shared

# real-time waits (heartbeats, stalls, windows): alone among the run's processes
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240), pytest.mark.serial]


def _config(items: list[int], profile: str = "unlimited") -> dict[str, Any]:
    cfg = base_config(profile=profile, seed=9)
    src, dst = cfg["tenants"][0], cfg["tenants"][1]
    src["users"] = [
        {"upn": f"s{i}@contoso.example", "mailbox": {"seed": 100 + i, "items": n}}
        for i, n in enumerate(items)
    ]
    dst["users"] = [
        {"upn": f"t{i}@fabrikam.example", "mailbox": {"layout": "empty"}} for i in range(len(items))
    ]
    return cfg


def _pairs(n: int) -> list[tuple[str, str]]:
    return [(f"s{i}@contoso.example", f"t{i}@fabrikam.example") for i in range(n)]


def _job(tmp: Path, ep: Any, url: str, n: int, extra: str, limits: str = "") -> Path:
    job = write_job(
        tmp,
        ep,
        _pairs(n),
        extra="[workers]\nheartbeat_s = 1\nstalled_after_s = 4\n" + extra,
        limits=limits or "upload_mb_per_window = 100000\nrequests_per_window = 10000000",
    )
    job.write_text(job.read_text().replace('state = "state.sqlite"', f'state = "{url}"'))
    return job


ITEMS = 400


def _clock(monkeypatch: pytest.MonkeyPatch, start: str, factor: float, in_s: float = 0) -> None:
    """One scaled clock for this process and the workers it starts (they inherit it),
    reading ``start`` ``in_s`` seconds from now."""
    since = (datetime.now(UTC) + timedelta(seconds=in_s)).isoformat()
    monkeypatch.setenv(CLOCK_ENV, f"{start}@{factor}@{since}")


async def test_a_group_submitted_outside_its_window_waits_and_runs_at_the_window(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 10 s of the test's time to the window (at 6x: a minute of the clock's)
    _clock(monkeypatch, "2026-12-07T09:59:00+00:00", 6)
    window = '[schedule]\ntimezone = "UTC"\nwindows = ["Mon 10:00-12:00"]\n'
    async with running(_config([30, 30])) as (server, ep, _):
        job = _job(tmp_path, ep, pg_url, 2, window)
        cfg = load_job(job)
        out = await submit(cfg)
        assert out["queued"] == 2 and out["waiting"] == 2
        groups = await read_groups(cfg)
        assert {g["state"] for g in groups} == {"waiting"}
        assert {g["error"] for g in groups} == {
            "waiting for the schedule: next window Mon 2026-12-07 10:00 UTC"
        }
        status = await anyio.run_process(
            [sys.executable, "-m", "copyengine", "status", str(job)], check=False
        )
        text = status.stdout.decode()
        assert status.returncode == 0, status.stderr.decode()
        assert text.count(": waiting") == 2 and "closed: next window Mon 2026-12-07 10:00" in text
        started = datetime.now(UTC)
        worker = _worker(job, tmp_path, "w0")
        try:
            await _until(lambda: _all_done(cfg), 90, "every group done", tmp_path)
        finally:
            await _stop([worker])
        assert worker.returncode == 0
        runs = await group_runs(cfg)
        first = min(r["started"] for r in runs)
        opened = datetime.fromisoformat(os.environ[CLOCK_ENV].split("@")[2]).timestamp() + 10
        assert first >= opened - 0.5, (first, opened, started)  # not before the window
        assert_exact(server.emulator, _pairs(2))
        report = (await read_groups(cfg))[0]
        assert report["failed"] == report["unknown"] == 0 and report["retried"] == 0


async def test_a_window_that_closes_mid_segment_drains_it_and_the_next_window_finishes_it(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the window opens in 8 s of the test's time (the worker is up by then), stays open for
    # 4 s, is closed for 8 s, then open again (at 15x)
    _clock(monkeypatch, "2026-12-07T10:00:00+00:00", 15, in_s=8)
    windows = '[schedule]\ntimezone = "UTC"\nwindows = ["Mon 10:00-10:01", "Mon 10:03-12:00"]\n'
    # 3x the items: at the exchange profile's ~40 ms an import, 4 at once, 400 items took
    # about the 4 s the window is open, and a quick worker finished them all in it
    items = 3 * ITEMS
    async with running(_config([items], profile="exchange")) as (server, ep, _):
        job = _job(tmp_path, ep, pg_url, 1, windows)
        cfg = load_job(job)
        out = await submit(cfg)
        assert out["waiting"] == 1  # until the window opens
        target = server.emulator.require_mailbox("t0@fabrikam.example")
        worker = _worker(job, tmp_path, "w0", concurrency=1)
        try:

            async def waiting() -> bool:
                (g,) = await read_groups(cfg)
                return g["state"] == "waiting" and len(target.items) > 0

            await _until(waiting, 40, "the group waiting for the next window", tmp_path)
            (g,) = await read_groups(cfg)
            assert g["error"] == "waiting for the schedule: next window Mon 2026-12-07 10:03 UTC"
            assert 0 < len(target.items) < items  # drained mid-copy
            await _until(lambda: _all_done(cfg), 120, "the group done in the next window", tmp_path)
        finally:
            await _stop([worker])
        (g,) = await read_groups(cfg)
        assert g["segments"] >= 2 and g["retried"] == 0 and g["failed"] == 0
        assert_exact(server.emulator, _pairs(1))


async def test_a_cutover_submitted_before_its_complete_after_waits_then_completes(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the pairs' complete_after 10 s of the test's time from now (at 6x: a minute of the clock's)
    _clock(monkeypatch, "2026-12-07T10:00:00+00:00", 6)
    async with running(_config([30, 30])) as (server, ep, _):
        job = _job(tmp_path, ep, pg_url, 2, "")
        text = job.read_text()
        for _, t in _pairs(2):
            when = "complete_after = 2026-12-07T10:01:00Z\n"
            text = text.replace(f'target = "{t}"\n', f'target = "{t}"\n{when}')
        job.write_text(text)
        cfg = load_job(job)
        out = await submit(cfg, Asked(cutover=True))  # launched ahead of its time
        assert (out["kind"], out["queued"], out["waiting"]) == ("cutover", 2, 2), out
        groups = await read_groups(cfg)
        assert {g["state"] for g in groups} == {"waiting"}
        assert {g["error"] for g in groups} == {
            "cutover waiting for its complete_after: 2026-12-07 10:01+00:00"
        }
        worker = _worker(job, tmp_path, "w0", 2, "--until-done")
        try:

            async def left() -> bool:
                return worker.poll() is not None

            await _until(left, 90, "the worker ending with the pass signed off", tmp_path)
        finally:
            await _stop([worker])
        assert worker.returncode == 0, (tmp_path / "w0.log").read_text(errors="replace")[-3000:]
        runs = await group_runs(cfg)
        due = datetime.fromisoformat(os.environ[CLOCK_ENV].split("@")[2]).timestamp() + 10
        assert min(r["started"] for r in runs) >= due - 0.5  # not before its complete_after
        assert_exact(server.emulator, _pairs(2))
        ps = (await read_overview(cfg)).passes[-1]
        assert (ps["kind"], ps["status"]) == ("cutover", "ok"), ps
        assert ps["changes"]["pairs_signed_off"] == 2, ps


async def test_one_worker_takes_the_groups_in_priority_order(tmp_path: Path, pg_url: str) -> None:
    priorities = [0, 5, 1, 9]
    async with running(_config([5] * 4)) as (server, ep, _):
        job = _job(tmp_path, ep, pg_url, 4, "")
        text = job.read_text()
        for (_, t), prio in zip(_pairs(4), priorities, strict=True):
            text = text.replace(f'target = "{t}"\n', f'target = "{t}"\npriority = {prio}\n')
        job.write_text(text)
        cfg = load_job(job)
        assert [p.priority for p in cfg.pairs] == priorities
        assert sorted(g.priority for g in mailbox_groups(cfg.pairs)) == sorted(priorities)
        await submit(cfg)
        worker = _worker(job, tmp_path, "w0", concurrency=1)
        try:
            await _until(lambda: _all_done(cfg), 90, "every group done", tmp_path)
        finally:
            await _stop([worker])
        runs = sorted(await group_runs(cfg), key=lambda r: r["started"])
        by_pair = {p.key: p.priority for p in cfg.pairs}
        assert [by_pair[r["pair"]] for r in runs] == [9, 5, 1, 0]
        assert_exact(server.emulator, _pairs(4))
