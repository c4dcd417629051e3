"""Suspend and resume in a job shared by several hosts (issue 25): ``submit`` does not queue
a group whose pairs are suspended; a pair suspended while a worker copies it drains within
seconds and its group is released ``suspended`` (not failed, not queued again, untouched by
the reaper; ``worker --until-done`` ends with exit 8); ``resume`` queues the groups it
releases, and a worker finishes them: every item exactly once, nothing failed. A real
PostgreSQL (``tests/pg.py``), the emulator in this process, the commands and the workers as
child processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from copyengine.cluster.app import read_groups, submit
from copyengine.cluster.groups import mailbox_groups
from copyengine.config import load_job
from copyengine.emulator.faults import FaultRule
from copyengine.exitcodes import ExitCode
from copyengine.wiring import read_overview
from tests.emu import base_config, running
from tests.jobs import assert_exact, write_job

# real-time waits (heartbeats, stalls, windows): alone among the run's processes
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300), pytest.mark.serial]

N = 3
PAIRS = [(f"s{i}@contoso.example", f"t{i}@fabrikam.example") for i in range(N)]
BIG, SMALL, HELD = PAIRS  # copied while suspended; copied; suspended before submit


def _emulator() -> dict[str, Any]:
    cfg = base_config(profile="unlimited", seed=9)
    src, dst = cfg["tenants"][0], cfg["tenants"][1]
    src["users"] = [
        {"upn": s, "mailbox": {"seed": 50 + i, "items": 400 if i == 0 else 40}}
        for i, (s, _) in enumerate(PAIRS)
    ]
    dst["users"] = [{"upn": t, "mailbox": {"layout": "empty"}} for _, t in PAIRS]
    return cfg


def _job(tmp: Path, ep: Any, url: str) -> Path:
    workers = "heartbeat_s = 1\nstalled_after_s = 4\nsegment_minutes = 1"
    job = write_job(tmp, ep, PAIRS, extra=f"[workers]\n{workers}\n")
    job.write_text(job.read_text().replace('state = "state.sqlite"', f'state = "{url}"'))
    return job


async def _cli(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process(
        [sys.executable, "-m", "copyengine", *map(str, args)], check=False
    )


def _worker(job: Path, tmp: Path, name: str) -> subprocess.Popen[bytes]:
    log = (tmp / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "copyengine", "worker", str(job), "--until-done"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def _until(cond: Any, limit_s: float, what: str, tmp: Path) -> None:
    for _ in range(int(limit_s / 0.1)):
        if await cond():
            return
        await anyio.sleep(0.1)
    logs = "\n".join(f.read_text(errors="replace")[-3000:] for f in tmp.glob("w*.log"))
    raise AssertionError(f"timed out waiting for {what}: {logs}")


async def _exited(proc: subprocess.Popen[bytes], limit_s: float, tmp: Path) -> int:
    async def gone() -> bool:
        return proc.poll() is not None

    try:
        await _until(gone, limit_s, "the worker's exit", tmp)
    finally:
        if proc.poll() is None:
            proc.kill()  # a failed check: stopped by its PID
            proc.wait(10)
    return int(proc.returncode)


async def _jobs_waiting(url: str, lock: str) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE lock = %s "
            "AND status IN ('todo', 'doing')",
            (lock,),
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def test_a_suspended_pair_releases_its_group_and_resume_queues_it(
    tmp_path: Path, pg_url: str
) -> None:
    async with running(_emulator()) as (server, ep, _):
        job = _job(tmp_path, ep, pg_url)
        cfg = load_job(job)
        keys = {g.pairs[0].source: g.key for g in mailbox_groups(cfg.pairs)}

        async def states() -> dict[str, str]:
            return {g["group"]: g["state"] for g in await read_groups(cfg)}

        held = await _cli("suspend", job, "--pair", HELD[0])
        assert held.returncode == 0, held.stderr.decode()
        out = await submit(cfg)  # a group whose pairs are all suspended is not queued
        assert (out["queued"], out["suspended"]) == (2, 1)
        assert (await states())[keys[HELD[0]]] == "suspended"
        assert await _jobs_waiting(pg_url, keys[HELD[0]]) == 0
        # the big pair's imports slowed: it is still copying when it is suspended
        slow = {"kind": "slow", "calls": ["importItem"], "mailbox": BIG[1], "delay": 0.2}
        server.emulator.faults.replace([FaultRule.parse(slow)])
        big = server.emulator.require_mailbox(BIG[1])
        w1 = _worker(job, tmp_path, "w1")

        async def started() -> bool:
            return len(big.items) >= 20

        await _until(started, 60, "the big pair under way", tmp_path)
        said = await _cli("suspend", job, "--pair", BIG[0], "--reason", "mailbox on hold")
        assert said.returncode == 0, said.stderr.decode()

        async def released() -> bool:
            return (await states())[keys[BIG[0]]] == "suspended"

        await _until(released, 30, "the big pair's group released", tmp_path)
        frozen = len(big.items)
        assert frozen < 400
        # --until-done: every group done or suspended, none failed: exit 8
        assert await _exited(w1, 60, tmp_path) == ExitCode.PAUSED
        assert len(big.items) == frozen
        now = await states()
        assert now[keys[SMALL[0]]] == "done"
        assert now[keys[BIG[0]]] == now[keys[HELD[0]]] == "suspended"
        assert await _jobs_waiting(pg_url, keys[BIG[0]]) == 0  # released, not queued again
        group = next(g for g in await read_groups(cfg) if g["group"] == keys[BIG[0]])
        assert group["failed"] == 0 and "mailbox on hold" in (group["error"] or "")
        status = await _cli("status", job)
        text = status.stdout.decode()
        assert text.count("suspended: ") == 2 and "mailbox on hold" in text, text
        # resumed: both groups queued again, continuing the same pass
        server.emulator.faults.replace([])
        back = await _cli("resume", job, "--all")
        assert back.returncode == 0, back.stderr.decode()
        lines = back.stdout.decode().splitlines()
        assert lines[0].startswith("resumed 2 pairs: ") and lines[-1] == (
            "queued again 2 mailbox groups released suspended"
        )
        assert {s for k, s in (await states()).items() if k != keys[SMALL[0]]} == {"queued"}
        w2 = _worker(job, tmp_path, "w2")
        assert await _exited(w2, 120, tmp_path) == 0
        assert set((await states()).values()) == {"done"}
        assert_exact(server.emulator, PAIRS)
        report = (await read_overview(cfg)).report()
        assert report["totals"]["failed"] == report["totals"]["unknown"] == 0
        (ps,) = report["passes"]  # one pass, continued after the resume
        assert ps["status"] == "ok" and ps["finished"]


class _Table:
    """The group table as ``release_resumed`` sees it: the controls and the release."""

    def __init__(self, controls: list[Any], state: str) -> None:
        self.controls_now = controls
        self.state = state

    async def controls(self) -> list[Any]:
        return self.controls_now

    async def unsuspended(self, key: str) -> tuple[int, int] | None:
        if self.state != "suspended":
            return None
        self.state = "queued"
        return (1, 3)


@pytest.mark.parametrize(
    ("resumed", "state", "deferred"),
    [
        (False, "suspended", []),  # still suspended: the group stays released
        (True, "suspended", [("g", 1, 4)]),  # resumed before the release was seen: queued
        (True, "queued", []),  # `resume` queued it first: not twice
    ],
)
async def test_a_resume_that_raced_the_release_queues_the_group_once(
    monkeypatch: pytest.MonkeyPatch, resumed: bool, state: str, deferred: list[Any]
) -> None:
    from types import SimpleNamespace

    from copyengine.cluster import tasks
    from copyengine.config import FolderRules, ItemFilters, Pair
    from copyengine.state.records import Control

    pair = Pair("a@x", "a@y", FolderRules(), ItemFilters())
    controls = [Control("pair", pair.key, "suspended", "op@h", 0.0, None, 1)]
    if resumed:
        controls.append(Control("all", "", "resumed", "op@h", 1.0, None, 2))
    table = _Table(controls, state)
    calls: list[Any] = []

    async def defer(
        app: Any, queue: str, key: str, number: int, segment: int, priority: int = 0
    ) -> bool:
        calls.append((key, number, segment))
        return True

    monkeypatch.setattr(tasks, "defer", defer)
    rt: Any = SimpleNamespace(table=table, queue="q")
    group: Any = SimpleNamespace(key="g", pairs=(pair,), priority=0)
    await tasks.release_resumed(rt, group, {pair.key}, app=None)  # type: ignore[arg-type]
    assert calls == deferred
