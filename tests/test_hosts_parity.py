"""A shared job takes what ``run`` takes (issue 25, parity): ``submit --pair/--wave`` queues
only those pairs' groups (a pair apart from the group it shares a mailbox with, too),
``--full``, ``--retry-failed`` and ``--cutover`` start a pass of that kind that every worker
copies that way, a shared cutover is signed off (drifted pairs repaired) once every group is
done; ``worker --metrics`` serves the metrics of ``run --metrics``. A real PostgreSQL
(``tests/pg.py``), the emulator in this process, the workers as child processes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from copyengine.cluster.app import read_groups, submit
from copyengine.cluster.groups import mailbox_groups
from copyengine.cluster.submit import Asked
from copyengine.config import JobConfig, load_job, select_pairs
from copyengine.errors import ConfigError
from copyengine.exitcodes import ExitCode
from copyengine.wiring import read_overview
from tests.emu import base_config, running
from tests.jobs import assert_exact, exit_code, write_job

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]
S0, S1 = "s00@contoso.example", "s01@contoso.example"
T0, T0B, T1 = "t00@fabrikam.example", "t00b@fabrikam.example", "t01@fabrikam.example"
PAIRS = [(S0, T0), (S0, T0B), (S1, T1)]  # s00 in two pairs: one group of two
WORKERS = "[workers]\nheartbeat_s = 1\nstalled_after_s = 4\n"


def _config() -> dict[str, Any]:
    cfg = base_config(profile="unlimited", seed=5)
    src, dst = cfg["tenants"][0], cfg["tenants"][1]
    src["users"] = [
        {"upn": u, "mailbox": {"seed": 40 + i, "items": 30}} for i, u in enumerate((S0, S1))
    ]
    dst["users"] = [{"upn": u, "mailbox": {"layout": "empty"}} for u in (T0, T0B, T1)]
    return cfg


def _job(tmp: Path, ep: Any, url: str) -> Path:
    job = write_job(tmp, ep, PAIRS, extra=WORKERS, limits="upload_mb_per_window = 100000\n")
    job.write_text(job.read_text().replace('state = "state.sqlite"', f'state = "{url}"'))
    return job


def _asked(cfg: JobConfig, *only: str, **kind: bool) -> Asked:
    return Asked(select_pairs(cfg, only), **kind)


def _worker(job: Path, tmp: Path, name: str, *extra: str) -> subprocess.Popen[bytes]:
    log = (tmp / f"{name}.log").open("wb")
    cmd = [sys.executable, "-m", "copyengine", "worker", str(job), "--concurrency", "2", *extra]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def _logs(tmp: Path) -> str:
    return "\n".join(f.read_text(errors="replace")[-3000:] for f in tmp.glob("w*.log"))


async def _until_done(job: Path, tmp: Path, name: str) -> None:
    """A worker run until every group of the pass (and a cutover's sign-off) is done."""
    code = await exit_code(_worker(job, tmp, name, "--until-done"))
    assert code == 0, _logs(tmp)


def _delete_one(box: Any) -> None:
    """One item deleted in a mailbox (a copy deleted in the target, under the copy)."""
    gone = next(i for i in box.items.values() if not i.deleted and i.folder is not None)
    box.delete_item(gone)


def _copies(emu: Any, target: str) -> int:
    return len(emu.require_mailbox(target).snapshot()["items"])


async def test_submit_pair_queues_only_that_pair_and_full_reaches_the_workers(
    tmp_path: Path, pg_url: str
) -> None:
    async with running(_config()) as (server, ep, _):
        job = _job(tmp_path, ep, pg_url)
        cfg = load_job(job)
        whole = {g.key for g in mailbox_groups(cfg.pairs)}
        # --pair t00b: its pair only, apart from the s00 group it shares a mailbox with
        out = await submit(cfg, _asked(cfg, T0B))
        assert (out["pass"], out["kind"], out["groups"], out["queued"]) == (1, "first", 1, 1)
        (g,) = await read_groups(cfg)
        assert g["pairs"] == [f"{S0}->{T0B}"] and g["group"] not in whole
        # while it is under way: the same options continue it; others are refused
        assert (await submit(cfg))["groups"] == 1
        with pytest.raises(ConfigError, match="pass 1 \\(first\\) is under way"):
            await submit(cfg, _asked(cfg, full=True))
        with pytest.raises(ConfigError, match=f"under way without {S1}"):
            await submit(cfg, _asked(cfg, S1))
        await _until_done(job, tmp_path, "w1")
        assert_exact(server.emulator, [(S0, T0B)])
        assert _copies(server.emulator, T0) == _copies(server.emulator, T1) == 0

        # a copy deleted in the target: --full (listing everything, reconciling the target
        # by search key) copies it again on the worker; a delta pass would not see it
        _delete_one(server.emulator.require_mailbox(T0B))
        out = await submit(cfg, _asked(cfg, T0B, full=True))
        assert (out["pass"], out["kind"], out["queued"]) == (2, "full", 1)
        await _until_done(job, tmp_path, "w2")
        assert_exact(server.emulator, [(S0, T0B)])
        assert _copies(server.emulator, T0) == 0

        # the whole job next: the s00 group whole again (one row per pair in the table)
        out = await submit(cfg)
        assert (out["pass"], out["kind"], out["groups"]) == (3, "delta", 2)
        await _until_done(job, tmp_path, "w3")
        assert_exact(server.emulator, PAIRS)
        groups = await read_groups(cfg)
        assert {x["group"] for x in groups} == whole and all(x["pass"] == 3 for x in groups)
        passes = (await read_overview(cfg)).passes
        assert [(p["kind"], p["status"]) for p in passes] == [
            ("first", "ok"),
            ("full", "ok"),
            ("delta", "ok"),
        ]
        # the pair's statistics across those passes, from the workers' segments
        code, text = await _cli("status", str(job), "--pair", T0B, "--json")
        assert code == 0, text
        (entry,) = json.loads(text)["pairs"]
        lines = [(p["pass"], p["kind"], p["copied"], p["status"]) for p in entry["passes"]]
        assert lines == [(1, "first", 30, "done"), (2, "full", 1, "done"), (3, "delta", 0, "done")]


async def test_submit_wave_then_retry_failed_on_the_workers_copies_only_what_failed(
    tmp_path: Path, pg_url: str
) -> None:
    async with running(_config()) as (server, ep, _):
        job = _job(tmp_path, ep, pg_url)
        pair = f'source = "{S1}"\ntarget = "{T1}"\n'
        job.write_text(job.read_text().replace(pair, pair + "wave = 2\n"))
        cfg = load_job(job)
        code, text = await _cli("submit", str(job), "--wave", "2")  # wave 2: s01's pair
        assert code == 0 and "pass 1 (first): 1 mailbox groups, 1 queued" in text, text
        (g,) = await read_groups(cfg)
        assert g["pairs"] == [f"{S1}->{T1}"]
        await _until_done(job, tmp_path, "w1")
        assert _copies(server.emulator, T0) == _copies(server.emulator, T0B) == 0
        box = server.emulator.require_mailbox(S1)
        first = next(i for i in box.items.values() if not i.deleted and i.folder is not None)
        assert first.folder is not None
        box.add_item(first.folder, first.content)  # new at the source: no failure to retry
        out = await submit(cfg, _asked(cfg, S1, retry_failed=True))
        assert (out["pass"], out["kind"]) == (2, "retry")
        await _until_done(job, tmp_path, "w2")
        assert _copies(server.emulator, T1) == 30  # the new item waits for a delta pass
        passes = (await read_overview(cfg)).passes
        assert [(p["kind"], p["status"]) for p in passes] == [("first", "ok"), ("retry", "ok")]


async def _cli(*args: str) -> tuple[int, str]:
    done = await anyio.run_process([sys.executable, "-m", "copyengine", *args], check=False)
    return done.returncode, done.stdout.decode() + done.stderr.decode()


async def test_a_submitted_cutover_is_signed_off_once_every_group_is_done(
    tmp_path: Path, pg_url: str
) -> None:
    async with running(_config()) as (server, ep, _):
        job = _job(tmp_path, ep, pg_url)
        cfg = load_job(job)
        await submit(cfg)
        await _until_done(job, tmp_path, "w1")
        assert_exact(server.emulator, PAIRS)
        # the target drifts under the copy (a copy deleted there): the cutover's first
        # sign-off finds it, the pair is listed in full again, the second signs it off
        _delete_one(server.emulator.require_mailbox(T1))
        code, text = await _cli("submit", str(job), "--cutover")
        assert code == 0 and "pass 2 (cutover)" in text, text
        await _until_done(job, tmp_path, "w2")
        assert_exact(server.emulator, PAIRS)
        ps = (await read_overview(cfg)).passes[-1]
        assert (ps["kind"], ps["status"]) == ("cutover", "ok"), ps
        assert ps["changes"]["pairs_signed_off"] == 3 and ps["changes"]["pairs_repaired"] == 1
        assert ps["changes"]["pairs_not_signed_off"] == 0
        code, text = await _cli("status", str(job), "--pair", S1, "--json")
        (entry,) = json.loads(text)["pairs"]
        last = entry["passes"][-1]
        assert last["kind"] == "cutover" and last["sign_off"]["complete"] is True, last
        assert last["copied"] == 1  # the repair's full listing copied the deleted one again
        # the next submit starts a delta pass
        out = await submit(cfg)
        assert (out["pass"], out["kind"]) == (3, "delta")


async def test_worker_metrics_are_run_s_metrics_for_its_groups(tmp_path: Path, pg_url: str) -> None:
    async with running(_config()) as (server, ep, _):
        job = _job(tmp_path, ep, pg_url)
        cfg = load_job(job)
        await submit(cfg)
        w = _worker(job, tmp_path, "w-metrics", "--metrics", "127.0.0.1:0")
        try:
            port = None
            for _ in range(300):
                found = re.search(r"metrics at http://127\.0\.0\.1:(\d+)/metrics", _logs(tmp_path))
                if found:
                    port = int(found.group(1))
                    break
                await anyio.sleep(0.1)
            assert port is not None, _logs(tmp_path)
            url = f"http://127.0.0.1:{port}/metrics"
            text = ""
            async with aiohttp.ClientSession() as session:
                for _ in range(600):
                    async with session.get(url) as resp:
                        assert resp.status == 200
                        text = await resp.text()
                    if all(
                        f'copyengine_pair_status{{pair="{s}->{t}",status="done"}} 1.0' in text
                        for s, t in PAIRS
                    ):
                        break
                    await anyio.sleep(0.1)
        finally:
            w.send_signal(signal.SIGTERM)
            w.wait(60)
        assert w.returncode == 0, _logs(tmp_path)
        for s, t in PAIRS:
            key = f"{s}->{t}"
            assert f'copyengine_pair_status{{pair="{key}",status="done"}} 1.0' in text, text
            copied = _copies(server.emulator, t)
            line = f'copyengine_items_total{{outcome="copied",pair="{key}"}} {float(copied)}'
            assert line in text, text
        for name in (
            "copyengine_bytes_copied_total",
            "copyengine_requests_total",
            "copyengine_throttle_wait_seconds",
            "copyengine_job_duration_seconds",
        ):
            assert name in text  # fmt: skip


def test_submit_refuses_what_run_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from copyengine.cli import main

    monkeypatch.setenv("CE_PARITY_SECRET", "not-a-real-secret")
    job = tmp_path / "job.toml"
    job.write_text(
        '[job]\nstate = "postgresql://ce@127.0.0.1:1/x"\n'
        '[tenants.source]\ngraph_url = "https://graph.microsoft.com"\n'
        'tenant_id = "contoso.example"\nclient_id = "00000000-0000-0000-0000-000000000001"\n'
        'client_secret = "env:CE_PARITY_SECRET"\n'
        '[tenants.target]\ngraph_url = "https://graph.microsoft.com"\n'
        'tenant_id = "fabrikam.example"\nclient_id = "00000000-0000-0000-0000-000000000002"\n'
        'client_secret = "env:CE_PARITY_SECRET"\n'
        f'[[pairs]]\nsource = "{S0}"\ntarget = "{T0}"\nwave = 1\n'
    )
    r = CliRunner().invoke(main, ["submit", str(job), "--full", "--retry-failed"])
    assert r.exit_code == ExitCode.USAGE and "separate kinds of pass" in r.output, r.output
    r = CliRunner().invoke(main, ["submit", str(job), "--pair", "s0@contoso.example"])
    assert r.exit_code == ExitCode.CONFIG, r.output
    assert "--pair s0@contoso.example" in r.output and f"did you mean {S0}" in r.output
    r = CliRunner().invoke(main, ["submit", str(job), "--wave", "2"])
    assert r.exit_code == ExitCode.CONFIG and "the job's waves: 1" in r.output, r.output
    r = CliRunner().invoke(main, ["worker", str(job), "--metrics", "nowhere"])
    assert r.exit_code == ExitCode.USAGE and "--metrics" in r.output, r.output
