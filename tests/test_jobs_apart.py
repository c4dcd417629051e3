"""Jobs kept apart (issue 24): each job file its own default state and report, a state made
by another job file refused (and nothing written for the refused run), pairs added and
removed between passes of one job file as usual."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from copyengine.cli import main
from copyengine.config import load_job
from copyengine.errors import ConfigError, ForeignState
from copyengine.exitcodes import ExitCode
from copyengine.state.sqlite import SQLiteStore
from copyengine.wiring import run_job
from tests.jobs import write_job

pytestmark = pytest.mark.anyio
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
BIANCA, T_BIANCA = "bianca@contoso.example", "bianca@fabrikam.example"


def job_file(
    tmp: Path, ep: Any, stem: str, pairs: list[tuple[str, str]], name: str | None = None
) -> Path:
    """``<stem>.toml`` in ``tmp``: the tests' job against the emulator, without [job] state
    and report (the defaults), with ``[job] name`` when given."""
    written = write_job(tmp, ep, pairs)
    text = written.read_text()
    text = text.replace('state = "state.sqlite"\n', "").replace('report = "report.json"\n', "")
    if name is not None:
        text = text.replace("[job]\n", f"[job]\nname = {json.dumps(name)}\n", 1)
    path = tmp / f"{stem}.toml"
    if path != written:
        written.unlink()
    path.write_text(text, encoding="utf-8")
    return path


def status_sources(job: Path, *args: str) -> tuple[int, set[str], str]:
    """``copyengine status JOB --json``: its exit code, the sources of the pairs it lists and
    its output."""
    result = CliRunner().invoke(main, ["status", str(job), "--json", *args])
    if result.exit_code != 0:
        return result.exit_code, set(), result.output
    known = json.loads(result.stdout)  # the answer; logs (if any) go to stderr
    return 0, {p["source"] for p in known["pairs"]}, result.output


async def test_two_job_files_with_the_same_tenants_keep_their_own_state_and_report(
    emu: Any, tmp_path: Path
) -> None:
    wave1 = job_file(tmp_path, emu.ep, "wave1", [(ADELE, T_ADELE)])
    wave2 = job_file(tmp_path, emu.ep, "wave2", [(BIANCA, T_BIANCA)])
    one, two = load_job(wave1), load_job(wave2)
    assert one.state_path == tmp_path / ".copyengine" / "wave1.state.sqlite"
    assert one.report_path == tmp_path / ".copyengine" / "wave1.report.json"
    assert two.state_path == tmp_path / ".copyengine" / "wave2.state.sqlite"
    assert (await run_job(one)).exit_code() == ExitCode.OK
    assert (await run_job(two)).exit_code() == ExitCode.OK
    reports = {
        stem: json.loads((tmp_path / ".copyengine" / f"{stem}.report.json").read_text())
        for stem in ("wave1", "wave2")
    }
    assert [p["source"] for p in reports["wave1"]["pairs"]] == [ADELE]
    assert [p["source"] for p in reports["wave2"]["pairs"]] == [BIANCA]
    assert not (tmp_path / ".copyengine" / "state.sqlite").exists()
    # status of each lists only its own pairs
    assert (await anyio.to_thread.run_sync(status_sources, wave1))[:2] == (0, {ADELE})
    assert (await anyio.to_thread.run_sync(status_sources, wave2))[:2] == (0, {BIANCA})


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and its modification time (ns); a lock file's
    bytes only (a refused run takes the lock before it reads whose state it is, and leaves
    the file as it found it, empty)."""
    return {
        str(p.relative_to(folder)): (
            p.read_bytes(),
            0 if p.name.endswith(".lock") else p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


async def test_a_state_of_another_job_file_is_refused_and_nothing_is_written(
    emu: Any, tmp_path: Path
) -> None:
    wave1 = job_file(tmp_path, emu.ep, "wave1", [(ADELE, T_ADELE)])
    first = load_job(wave1)
    assert (await run_job(first)).exit_code() == ExitCode.OK
    before = _files(tmp_path / ".copyengine")
    assert "wave1.report.json" in before and "wave1.state.sqlite" in before
    wave2 = job_file(tmp_path, emu.ep, "wave2", [(ADELE, T_ADELE), (BIANCA, T_BIANCA)])
    # wave2 handed wave1's state (as `run --state` does)
    refused = await run_job(load_job(wave2, state_path=first.state_path))
    assert refused.exit_code() == ExitCode.CONFIG
    assert refused.refused
    message = refused.fatal or ""
    assert str(first.state_path) in message
    assert "'wave1'" in message and "'wave2'" in message  # both jobs named
    assert "--state PATH" in message and '[job] name = "wave1"' in message  # the ways on
    # nothing written: wave1's report and state as they were, no report of wave2's
    assert _files(tmp_path / ".copyengine") == before
    assert not (tmp_path / ".copyengine" / "wave2.report.json").exists()
    # its report path that of wave1 too (as when job files shared one default): untouched
    same = load_job(wave2, state_path=first.state_path, report_path=first.report_path)
    assert (await run_job(same)).exit_code() == ExitCode.CONFIG
    assert _files(tmp_path / ".copyengine") == before
    assert len(emu.state.require_mailbox(T_BIANCA).items) == 0  # nothing copied
    # status with that state: refused alike, exit 3, the same message
    code, _, out = await anyio.to_thread.run_sync(
        status_sources, wave2, "--state", str(first.state_path)
    )
    assert code == ExitCode.CONFIG and "belongs to another job" in out and "'wave1'" in out
    assert _files(tmp_path / ".copyengine") == before


async def test_the_command_line_says_the_refusal_and_names_no_report(
    emu: Any, tmp_path: Path
) -> None:
    wave1 = job_file(tmp_path, emu.ep, "wave1", [(ADELE, T_ADELE)])
    assert (await run_job(load_job(wave1))).exit_code() == ExitCode.OK
    before = _files(tmp_path / ".copyengine")
    wave2 = job_file(tmp_path, emu.ep, "wave2", [(ADELE, T_ADELE)])
    state = tmp_path / ".copyengine" / "wave1.state.sqlite"
    args = ["run", str(wave2), "--state", str(state), "--no-progress", "--log-format", "json"]
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "copyengine", *args], check=False)
    said = done.stderr.decode()
    assert done.returncode == ExitCode.CONFIG, said[-2000:]
    assert "belongs to another job" in said and "Traceback" not in said
    assert "report:" not in said  # no report was written, none is named
    out = done.stdout.decode()  # nor a summary of pairs 'pending' as if they were to run
    assert "pending" not in out and out.splitlines()[-1].startswith("exit 3: "), out
    assert _files(tmp_path / ".copyengine") == before


async def test_a_job_name_takes_a_state_over(emu: Any, tmp_path: Path) -> None:
    wave1 = job_file(tmp_path, emu.ep, "wave1", [(ADELE, T_ADELE)])
    assert (await run_job(load_job(wave1))).exit_code() == ExitCode.OK
    # the file renamed: another job, refused; named as the state says, the same job again
    renamed = job_file(tmp_path, emu.ep, "renamed", [(ADELE, T_ADELE)], name="wave1")
    cfg = load_job(renamed)
    assert cfg.state_path == tmp_path / ".copyengine" / "wave1.state.sqlite"
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK, stats.fatal
    assert stats.pass_info is not None and stats.pass_info["kind"] == "delta"


async def test_pairs_added_and_removed_between_passes_are_one_job(emu: Any, tmp_path: Path) -> None:
    wave = tmp_path / "wave.toml"  # one job file, its pairs changed between passes
    waves = [[(ADELE, T_ADELE)], [(BIANCA, T_BIANCA)], [(ADELE, T_ADELE), (BIANCA, T_BIANCA)]]
    for n, pairs in enumerate(waves, 1):
        wave = job_file(tmp_path, emu.ep, "wave", pairs)
        stats = await run_job(load_job(wave))
        assert stats.exit_code() == ExitCode.OK, stats.fatal
        assert stats.pass_info is not None and stats.pass_info["number"] == n
        assert set(stats.pairs) == {f"{s}->{t}" for s, t in pairs}
    assert len(emu.state.require_mailbox(T_BIANCA).items) > 0  # the pair added, copied
    code, sources, _ = await anyio.to_thread.run_sync(status_sources, wave)
    assert code == 0 and sources == {ADELE, BIANCA}


def offline_job(tmp: Path, stem: str, name: str | None = None) -> Path:
    """``<stem>.toml``: a job on (unreached) real tenants, for what loading it decides."""
    from tests.emu import DST_APP, SRC_APP

    (tmp / "src.secret").write_text("s")
    (tmp / "dst.secret").write_text("d")
    job = f"[job]\nname = {json.dumps(name)}\n" if name is not None else ""
    path = tmp / f"{stem}.toml"
    path.write_text(
        f"{job}"
        '[tenants.source]\ngraph_url = "https://graph.example/beta"\n'
        'authority = "https://login.example"\ntenant_id = "contoso.example"\n'
        f'client_id = "{SRC_APP}"\nclient_secret = "file:src.secret"\n'
        '[tenants.target]\ngraph_url = "https://graph.example/beta"\n'
        'authority = "https://login.example"\ntenant_id = "fabrikam.example"\n'
        f'client_id = "{DST_APP}"\nclient_secret = "file:dst.secret"\n'
        f'[[pairs]]\nsource = "{ADELE}"\ntarget = "{T_ADELE}"\n'
    )
    return path


def test_the_default_paths_are_named_after_the_job(tmp_path: Path) -> None:
    cfg = load_job(offline_job(tmp_path, "wave 3", name="Wave 3: Contoso/Fabrikam"))
    own = tmp_path / ".copyengine"
    assert cfg.state_path == own / "Wave-3-Contoso-Fabrikam.state.sqlite"
    assert cfg.report_path == own / "Wave-3-Contoso-Fabrikam.report.json"
    assert cfg.identity()["name"] == "Wave 3: Contoso/Fabrikam"
    unnamed = load_job(offline_job(tmp_path, "wave 3"))
    assert unnamed.state_path == own / "wave-3.state.sqlite"
    assert unnamed.identity()["name"] == "wave 3"
    # the pairs are not part of the identity: a wave's pairs change between passes
    more = offline_job(tmp_path, "wave 3")
    more.write_text(more.read_text() + f'[[pairs]]\nsource = "{BIANCA}"\ntarget = "{T_BIANCA}"\n')
    assert len(load_job(more).pairs) == 2
    assert load_job(more).identity() == unnamed.identity()


async def test_the_state_a_directory_shared_before_is_named_with_the_way_on(
    tmp_path: Path,
) -> None:
    """A job file without its own state yet, beside the one the directory's job files shared
    before, is refused with the command that makes it its own; after it, the state is this
    job's (recorded under its name) and another job file is refused."""
    wave1, wave2 = offline_job(tmp_path, "wave1"), offline_job(tmp_path, "wave2")
    identity = load_job(wave1).identity()
    shared = tmp_path / ".copyengine" / "state.sqlite"
    async with SQLiteStore(shared, identity={**identity, "name": ""}) as store:
        await store.pass_started("first")  # the state as an earlier version left it
    with pytest.raises(ConfigError) as refused:
        load_job(wave1)
    own = tmp_path / ".copyengine" / "wave1.state.sqlite"
    assert "job.state" in str(refused.value) and f"mv {shared} {own}" in str(refused.value)
    shutil.move(shared, own)
    async with SQLiteStore(own, identity=load_job(wave1).identity()) as store:  # taken over
        assert [p["pass"] for p in await store.passes()] == [1]
    with pytest.raises(ForeignState, match="'wave1'"):
        async with SQLiteStore(own, identity=load_job(wave2, state_path=own).identity()):
            pass
