"""Notifications of a job shared by several hosts (issue 25): two workers, a pass of four
mailbox groups, one of whose pairs fails: the pair's failure is announced once, by the
worker that ran it, and the pass's end once, by the worker that ended the pass."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from copyengine.cluster.app import read_groups, submit
from copyengine.config import load_job
from tests.emu import base_config, running
from tests.jobs import write_job
from tests.webhooks import receiver

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]
N = 4
KEY = "sig=Sh4red-Job-Key"


def _config() -> dict[str, Any]:
    cfg = base_config(profile="unlimited", seed=5)
    src, dst = cfg["tenants"][0], cfg["tenants"][1]
    src["users"] = [
        {"upn": f"s{i}@contoso.example", "mailbox": {"seed": 50 + i, "items": 20}} for i in range(N)
    ]
    dst["users"] = [
        {"upn": f"t{i}@fabrikam.example", "mailbox": {"layout": "empty"}} for i in range(N)
    ]
    return cfg


async def test_a_shared_pass_is_announced_once(tmp_path: Path, pg_url: str) -> None:
    pairs = [(f"s{i}@contoso.example", f"t{i}@fabrikam.example") for i in range(N)]
    async with running(_config()) as (_, ep, session), receiver() as rec:
        (tmp_path / "hook.url").write_text(rec.url(f"/h?{KEY}"))
        job = write_job(
            tmp_path,
            ep,
            pairs,
            extra='[workers]\nheartbeat_s = 1\nstalled_after_s = 3\n[[notify.webhooks]]\nurl = "file:hook.url"\n',
        )
        job.write_text(job.read_text().replace('state = "state.sqlite"', f'state = "{pg_url}"'))
        fault = {"rules": [{"kind": "mailbox_not_found", "mailbox": "s3@contoso.example"}]}
        async with session.put(ep.control_url + "/faults", json=fault) as r:
            assert r.status == 200
        cfg = load_job(job)
        await submit(cfg)
        codes: dict[int, int] = {}

        async def worker(i: int) -> None:
            with (tmp_path / f"w{i}.log").open("wb") as log:
                done = await anyio.run_process(
                    [sys.executable, "-m", "copyengine", "worker", str(job), "--until-done"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
            codes[i] = done.returncode

        with anyio.fail_after(180):
            async with anyio.create_task_group() as tg:
                for i in range(2):
                    tg.start_soon(worker, i)
        text = "".join((tmp_path / f"w{i}.log").read_text() for i in range(2))
        assert codes == {0: 1, 1: 1}, text[-3000:]
        groups = await read_groups(cfg)
        assert Counter(g["state"] for g in groups) == {"done": 3, "failed": 1}
    assert Counter(r.body["event"] for r in rec.at("/h")) == {
        "pair.failed": 1,
        "pass.finished": 1,
    }, text[-3000:]
    (done,) = rec.events("/h", "pass.finished")
    assert (done["pass"], done["groups"], done["groups_failed"]) == (1, N, 1)
    assert done["exit_code"] == 1 and done["copied"] == done["changes"]["created"] == 3 * 20
    assert done["host"].count(":") == 1  # the worker that ended it: host:pid
    (failed,) = rec.events("/h", "pair.failed")
    assert failed["pair"] == "s3@contoso.example->t3@fabrikam.example"
    assert failed["error_type"] == "MailboxNotFound"
    assert KEY not in text
