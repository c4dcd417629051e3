"""Suspend and resume (issue 25): ``copyengine suspend|resume`` from another process while
``copyengine run`` copies (the pair stops taking work within seconds, nothing is reported
failed, resumed: the same run continues it, exact); ``--wave`` and ``--all``; a run whose
pairs are all suspended ends paused (exit 8: the report, ``job.finished`` and the screen
agree), the next run after ``resume`` finishes exactly; which command decides; the state
written without the run's lock, an older state migrated; unknown pairs and waves refused."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from copyengine.config import FolderRules, ItemFilters, Pair, load_job
from copyengine.controls.suspend import SUSPENDED, SuspendSource, suspension
from copyengine.emulator.faults import FaultRule
from copyengine.exitcodes import ExitCode
from copyengine.pipeline.gate import HoldKind
from copyengine.plan import PassKind
from copyengine.state import SQLiteStore
from copyengine.state.records import Control
from copyengine.state.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA
from tests.emu import base_config, running
from tests.jobs import assert_exact, write_job

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]

ADELE = ("adele@contoso.example", "adele@fabrikam.example")
BIANCA = ("bianca@contoso.example", "bianca@fabrikam.example")
PAIRS = [ADELE, BIANCA]
JOB = {"job": "suspend-test"}


def _emulator(adele: int = 400, bianca: int = 300) -> dict[str, Any]:
    cfg = base_config(profile="exchange", seed=11)
    users = cfg["tenants"][0]["users"]
    users[0]["mailbox"]["items"] = adele
    users[1]["mailbox"]["items"] = bianca
    return cfg


def _job(tmp: Path, ep: Any, waves: bool = False) -> Path:
    job = write_job(tmp, ep, PAIRS)
    if waves:  # adele in wave 1, bianca in wave 2
        text = job.read_text()
        for n, (_, target) in enumerate(PAIRS, 1):
            text = text.replace(f'target = "{target}"\n', f'target = "{target}"\nwave = {n}\n')
        job.write_text(text)
    return job


async def _cli(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process(
        [sys.executable, "-m", "copyengine", *map(str, args)], check=False
    )


def _out(done: subprocess.CompletedProcess[bytes]) -> str:
    return done.stdout.decode() + done.stderr.decode()


async def _until(cond: Any, limit_s: float, what: str) -> None:
    with anyio.fail_after(limit_s + 5):
        for _ in range(int(limit_s / 0.05) + 1):
            if cond():
                return
            await anyio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _finished(stderr: str) -> dict[str, Any]:
    lines = [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]
    (fin,) = [x for x in lines if x.get("event") == "job.finished"]
    return dict(fin)


async def test_a_pair_suspended_from_another_shell_stops_and_the_same_run_continues_it(
    tmp_path: Path,
) -> None:
    """``copyengine run`` in a process of its own; ``suspend --pair`` from another: the pair
    stops taking work within seconds while bianca goes on; ``resume``: the same run
    continues it and ends done, exit 0, nothing failed, the target exact."""
    async with running(_emulator()) as (server, ep, _):
        job = _job(tmp_path, ep)
        # bianca's imports slowed (until adele continues): the run still has her to copy while
        # adele is suspended; adele's a little, so that her copy is still under way when the
        # suspend command, a process of its own, has started on a loaded machine
        slow = {"kind": "slow", "calls": ["importItem"], "mailbox": BIANCA[1], "delay": 1.0}
        slower = {**slow, "mailbox": ADELE[1], "delay": 0.1}
        server.emulator.faults.replace([FaultRule.parse(slow), FaultRule.parse(slower)])
        adele = server.emulator.require_mailbox(ADELE[1])
        run = await anyio.open_process(
            [sys.executable, "-m", "copyengine", "run", str(job), "--no-progress"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        try:
            await _watch_run(run, out, job, adele, server)
        finally:
            if run.returncode is None:  # a failed check: the run stopped, by its PID
                run.kill()
            await run.aclose()
        stderr = out["stderr"].decode()
        assert run.returncode == 0, stderr[-3000:]
        assert "pair.holding" in stderr  # the run drained the pair alone
        report = json.loads((tmp_path / "report.json").read_text())
        for p in report["pairs"]:
            assert p["status"] == "done" and p["failed"] == p["unknown"] == 0, p
        assert_exact(server.emulator, PAIRS)


async def _watch_run(run: Any, out: dict[str, bytes], job: Path, adele: Any, server: Any) -> None:
    """Suspend adele while the run copies, check it stopped, resume it; the run's end."""
    async with anyio.create_task_group() as tg:

        async def drain(name: str, stream: Any) -> None:
            async for chunk in stream:
                out[name] += chunk

        assert run.stdout is not None and run.stderr is not None
        tg.start_soon(drain, "stdout", run.stdout)
        tg.start_soon(drain, "stderr", run.stderr)
        await _until(lambda: len(adele.items) >= 20, 60, "adele's copy under way")
        said = await _cli("suspend", job, "--pair", ADELE[0], "--reason", "VIP on leave")
        assert said.returncode == 0, _out(said)
        assert said.stdout.decode().startswith(f"suspended 1 pair: {ADELE[0]} -> {ADELE[1]}")
        # it stops taking work within seconds (in-flight imports settle)
        seen = [len(adele.items)]
        for _ in range(60):
            await anyio.sleep(0.5)
            seen.append(len(adele.items))
            if len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]:
                break
        frozen = seen[-1]
        assert len(seen) <= 20, seen  # settled within ~10 s of the command
        assert frozen < 400
        status = await _cli("status", job)
        assert status.returncode == 0, _out(status)
        text = status.stdout.decode()
        assert f"{ADELE[0]} -> {ADELE[1]}: suspended" in text
        assert f"suspended: {ADELE[0]} -> {ADELE[1]} (pair) by " in text
        assert "VIP on leave; copyengine resume job.toml --pair adele@contoso.example" in text
        await anyio.sleep(2)
        assert len(adele.items) == frozen  # suspended: nothing more copied into it
        assert run.returncode is None  # bianca still copies: the run goes on
        again = await _cli("resume", job, "--pair", ADELE[0])
        assert again.returncode == 0, _out(again)
        assert again.stdout.decode().startswith("resumed 1 pair:")
        await _until(lambda: len(adele.items) > frozen, 30, "adele continued")
        server.emulator.faults.replace([])
        await run.wait()


async def test_a_wave_suspended_ends_the_run_paused_and_resume_finishes_it(
    tmp_path: Path,
) -> None:
    """``suspend --wave 1`` before the run: the run copies wave 2 and ends paused (exit 8:
    the screen, the report and ``job.finished`` agree, the hold's text with who and why);
    ``resume --pair`` of its pair alone resumes it inside the suspended wave; ``suspend
    --all``, then ``resume --wave`` and ``resume --all``; each next run exact."""
    async with running(_emulator(60, 40)) as (server, ep, _):
        job = _job(tmp_path, ep, waves=True)
        said = await _cli("suspend", job, "--wave", "1", "--reason", "cutover moved")
        assert said.returncode == 0, _out(said)
        assert said.stdout.decode().startswith("suspended 1 pair (wave 1): adele")
        twice = await _cli("suspend", job, "--wave", "1")  # idempotent
        assert twice.returncode == 0, _out(twice)
        assert twice.stdout.decode().startswith("nothing changed: 1 pair already suspended")
        run = await _cli("run", job, "--no-progress", "--log-level", "info")
        assert run.returncode == ExitCode.PAUSED, _out(run)
        screen = run.stdout.decode()
        assert "exit 8: paused" in screen and "1 suspended (copyengine resume)" in screen
        assert _finished(run.stderr.decode())["exit_code"] == 8
        report = json.loads((tmp_path / "report.json").read_text())
        # why it paused, said alike by the report and job.finished: the pair held
        why = "pairs held by the operator's controls: 1 suspended (copyengine resume)"
        assert report["paused"] == _finished(run.stderr.decode())["paused"] == why
        # status: the pair suspended before it ever started has its line too
        said = await _cli("status", job)
        lines = said.stdout.decode().splitlines()
        assert f"{ADELE[0]} -> {ADELE[1]}: suspended, not started" in lines, _out(said)
        assert any(ln.startswith(f"{BIANCA[0]} -> {BIANCA[1]}: done (") for ln in lines)
        by = {p["source"]: p for p in report["pairs"]}
        assert by[ADELE[0]]["status"] == "suspended" and by[BIANCA[0]]["status"] == "done"
        hold = by[ADELE[0]]["hold"]
        assert hold.startswith("suspended by ") and ": cutover moved (copyengine resume" in hold
        assert hold.endswith("resume job.toml --wave 1)")
        assert report["exit_code"] == 8 and all(p["failed"] == 0 for p in report["pairs"])
        page = (tmp_path / "report.html").read_text(encoding="utf-8")
        assert "Suspended by the operator: resume continues it" in page
        assert len(server.emulator.require_mailbox(ADELE[1]).items) == 0
        # a pair resumed inside its suspended wave: that pair alone runs
        one = await _cli("resume", job, "--pair", ADELE[1])  # by its target
        assert one.stdout.decode().startswith("resumed 1 pair: adele"), _out(one)
        run = await _cli("run", job, "--no-progress")
        assert run.returncode == 0, _out(run)
        assert_exact(server.emulator, PAIRS)
        # the whole job suspended: nothing runs, exit 8; a wave resumed: that wave runs
        every = await _cli("suspend", job, "--all")
        assert every.stdout.decode().startswith("suspended 2 pairs: "), _out(every)
        run = await _cli("run", job, "--no-progress")
        assert run.returncode == ExitCode.PAUSED, _out(run)
        assert "2 suspended" in run.stdout.decode()
        back = await _cli("resume", job, "--wave", "2")
        assert back.stdout.decode().startswith("resumed 1 pair (wave 2): bianca"), _out(back)
        run = await _cli("run", job, "--no-progress")
        assert run.returncode == ExitCode.PAUSED, _out(run)
        report = json.loads((tmp_path / "report.json").read_text())
        by = {p["source"]: p for p in report["pairs"]}
        assert by[ADELE[0]]["status"] == "suspended" and by[BIANCA[0]]["status"] == "done"
        assert by[ADELE[0]]["hold"].endswith("resume job.toml --all)")
        done = await _cli("resume", job, "--all")
        assert done.stdout.decode().startswith("resumed 1 pair: adele"), _out(done)
        assert "1 pair not suspended: bianca" in done.stdout.decode()
        status = await _cli("status", job)
        assert "suspended:" not in status.stdout.decode(), _out(status)
        run = await _cli("run", job, "--no-progress")
        assert run.returncode == 0, _out(run)
        assert_exact(server.emulator, PAIRS)


async def test_unknown_pairs_and_waves_are_refused_naming_them(tmp_path: Path) -> None:
    async with running(_emulator(5, 5)) as (_, ep, _):
        job = _job(tmp_path, ep, waves=True)
        for args, named in (
            (("suspend", job, "--pair", "nobody@contoso.example"), "--pair nobody@contoso"),
            (("resume", job, "--pair", "nobody@contoso.example"), "--pair nobody@contoso"),
            (("suspend", job, "--wave", "7"), "--wave 7: no pair is in this wave"),
            (("resume", job, "--wave", "7"), "--wave 7"),
        ):
            done = await _cli(*args)
            assert done.returncode == ExitCode.CONFIG, _out(done)
            assert named in done.stderr.decode(), _out(done)
        usage: list[tuple[tuple[str | Path, ...], str]] = [
            # no scope, or two: a bad command line (exit 2), as click's own
            (("suspend", job), "--pair, --wave, --all: give one of them"),
            (("resume", job), "--pair, --wave, --all: give one of them"),
            (("suspend", job, "--all", "--wave", "1"), "give one of them"),
            (("suspend", tmp_path / "absent.toml"), "give one of them"),  # before the file
        ]
        for bad, named in usage:
            done = await _cli(*bad)
            assert done.returncode == ExitCode.USAGE, _out(done)
            assert named in done.stderr.decode() and "Usage:" in done.stderr.decode(), _out(done)
        assert not (tmp_path / "state.sqlite").exists()  # refused: nothing written
        not_yet = await _cli("resume", job, "--all")
        assert not_yet.returncode == 0, _out(not_yet)
        assert not_yet.stdout.decode().startswith("nothing changed: 2 pairs not suspended")
        assert not (tmp_path / "state.sqlite").exists()  # nothing to resume: no state made


async def test_suspend_writes_beside_a_run_holding_the_lock(tmp_path: Path) -> None:
    """The state held by a run (its lock taken): ``suspend`` from another process writes,
    and the run's gate (``SuspendSource`` on the run's store) sees it."""
    async with running(_emulator(5, 5)) as (_, ep, _):
        job = _job(tmp_path, ep)
        cfg = load_job(job)
        async with SQLiteStore(cfg.state_path, identity=cfg.identity()) as st:
            source = SuspendSource(st, "job.toml")
            await source.refresh()
            assert source.hold(cfg.pairs[0], PassKind.FIRST) is None
            done = await _cli("suspend", job, "--pair", ADELE[0], "--reason", "why not")
            assert done.returncode == 0, _out(done)
            await source.refresh()
            hold = source.hold(cfg.pairs[0], PassKind.FIRST)
            assert hold is not None and hold.kind is HoldKind.SUSPENDED and hold.by_operator
            assert ": why not (copyengine resume job.toml --pair adele@contoso.example)" in (
                hold.text
            )
            assert source.hold(cfg.pairs[1], PassKind.FIRST) is None
            locked = await _cli("run", job, "--no-progress")  # the lock is the run's
            assert locked.returncode == ExitCode.LOCKED, _out(locked)


async def test_an_older_state_is_migrated_by_suspend(tmp_path: Path) -> None:
    """A schema-5 state (before the controls): ``suspend`` with no run holding it migrates
    it in place (its records kept) and records the suspension."""
    async with running(_emulator(5, 5)) as (_, ep, _):
        job = _job(tmp_path, ep)
        cfg = load_job(job)
        async with SQLiteStore(cfg.state_path, identity=cfg.identity()) as st:
            await st.pair_started(cfg.pairs[0].key, ADELE[0], ADELE[1])
        db = sqlite3.connect(cfg.state_path)
        db.execute("DROP TABLE controls")
        db.execute("UPDATE meta SET value='5' WHERE key='schema'")
        db.commit()
        db.close()
        status = await _cli("status", job)  # reading needs no lock: it does not migrate
        assert status.returncode == ExitCode.FATAL and "has schema 5" in _out(status)
        done = await _cli("suspend", job, "--all")
        assert done.returncode == 0, _out(done)
        db = sqlite3.connect(cfg.state_path)
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == (
            SQLITE_SCHEMA,
        )
        assert db.execute("SELECT scope, state FROM controls").fetchall() == [("all", SUSPENDED)]
        assert db.execute("SELECT pair FROM pairs").fetchall() == [(cfg.pairs[0].key,)]
        db.close()
        status = await _cli("status", job)
        assert status.returncode == 0 and status.stdout.decode().count("suspended: ") == 2


def _c(scope: str, target: str, state: str, seq: int) -> Control:
    return Control(scope, target, state, "op@host", 0.0, None, seq)


def test_the_latest_command_naming_a_pair_decides() -> None:
    a = Pair("a@x", "a@y", FolderRules(), ItemFilters(), wave="1")
    b = Pair("b@x", "b@y", FolderRules(), ItemFilters(), wave="1")
    c = Pair("c@x", "c@y", FolderRules(), ItemFilters())
    s, r = SUSPENDED, "resumed"
    wave = [_c("wave", "1", s, 1)]
    assert [suspension(p, wave) is not None for p in (a, b, c)] == [True, True, False]
    # a pair resumed inside its suspended wave: that pair alone
    one = [*wave, _c("pair", a.key, r, 2)]
    assert [suspension(p, one) is not None for p in (a, b, c)] == [False, True, False]
    # the wave suspended again afterwards: the pair with it
    again = [_c("pair", a.key, r, 2), _c("wave", "1", s, 3)]
    assert suspension(a, again) is not None
    # --all, then one wave resumed, then one pair of it suspended
    mixed = [_c("all", "", s, 1), _c("wave", "1", r, 2), _c("pair", b.key, s, 3)]
    assert [suspension(p, mixed) is not None for p in (a, b, c)] == [False, True, True]
    assert suspension(c, mixed) == mixed[0]
