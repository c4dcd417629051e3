"""R1b's moments on hosts whose clocks disagree (docs/passes.md, docs/several-hosts.md).

Two records of one search key are proven two items when each was still at the source after
the other was first listed (``plan.apart``). With one job shared through PostgreSQL, the
segments of a pair's passes run on whichever host takes them, so a moment one host wrote is
compared with one another host wrote. Taken from each host's clock, a host running behind
by a couple of minutes made a move look like two items: the moved item's new id listed on
the host behind seemed listed before the round in which the old id was last known at the
source (on a host in time), so under ``keep`` the old id's copy was kept beside the new
one, a duplicate; and the other way, an item and its owner's copy proven two items in
time were not proven on the host behind, and the deleted original's copy was removed as a
move's. The moments now come from the database (a sequence: an order shared by every
host, no clock), and the host's clock does not matter (both fail on the commit before).

Each worker here is a child process whose moments' clock (``state.moments``) is shifted by
``SKEW_S`` (``_skewed``): the engine's own code, only the host's clock moved."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from copyengine.cluster.app import submit
from copyengine.cluster.submit import Asked
from copyengine.config import load_job
from tests.emu import base_config, running
from tests.jobs import assert_exact, exit_code, write_job

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]
SRC, DST = "s00@contoso.example", "t00@fabrikam.example"
WORKERS = "[workers]\nheartbeat_s = 1\nstalled_after_s = 4\n"
SKEW_S = 120  # the host behind: a couple of minutes (NTP lost, a VM restored)
# a worker whose host clock reads ``COPYENGINE_TEST_SKEW_S`` seconds off: the moments' clock
# shifted before the engine starts (its only reader of the wall clock for R1b)
SKEWED = (
    "import os, time, types\n"
    "import copyengine.state.moments as m\n"
    "off = int(float(os.environ['COPYENGINE_TEST_SKEW_S']) * 1e9)\n"
    "m.time = types.SimpleNamespace(time_ns=lambda: time.time_ns() + off)\n"
    "from copyengine.launch import main\n"
    "main()\n"
)


def _config() -> dict[str, Any]:
    cfg = base_config(profile="unlimited", seed=5)
    cfg["tenants"][0]["users"] = [{"upn": SRC, "mailbox": {"seed": 41, "items": 30}}]
    cfg["tenants"][1]["users"] = [{"upn": DST, "mailbox": {"layout": "empty"}}]
    return cfg


def _job(tmp: Path, ep: Any, url: str) -> Path:
    extra = WORKERS + '[sync]\ndeletions = "keep"\n'
    job = write_job(tmp, ep, [(SRC, DST)], extra=extra, limits="upload_mb_per_window = 100000\n")
    job.write_text(job.read_text().replace('state = "state.sqlite"', f'state = "{url}"'))
    return job


def _worker(job: Path, log: Path, skew_s: float) -> subprocess.Popen[bytes]:
    """A worker (``--until-done``) on a host whose clock reads ``skew_s`` seconds off."""
    env = {**os.environ, "COPYENGINE_TEST_SKEW_S": str(skew_s)}
    cmd = [sys.executable, "-c", SKEWED, "worker", str(job), "--until-done"]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


async def _pass(job: Path, tmp: Path, name: str, skew_s: float) -> None:
    """A pass: queued, then copied by one worker on a host whose clock reads ``skew_s``
    seconds off."""
    await submit(load_job(job), Asked())
    log = tmp / f"{name}.log"
    code = await exit_code(_worker(job, log, skew_s))
    assert code == 0, log.read_text(errors="replace")[-3000:]


def _inbox_item_and_folder(box: Any) -> tuple[Any, Any]:
    """An /Inbox item and another mail folder."""
    folders = {f.path(): f for f in box.walk()}
    item = min(folders["/Inbox"].live_items(), key=lambda i: i.id)
    to = next(
        f
        for p, f in sorted(folders.items())
        if p not in ("/", "/Inbox") and f.type == "IPF.Note" and not p.startswith("/Recoverable")
    )
    return item, to


def _copies_of(box: Any, key: bytes) -> list[str]:
    """The folders of the live items of ``key`` outside Recoverable Items."""
    return sorted(
        row["folderPath"]
        for row in box.snapshot()["items"]
        if row["searchKey"] == base64.b64encode(key).decode()
        and not row["folderPath"].startswith("/Recoverable")
    )


@pytest.mark.parametrize("behind", [SKEW_S, 0, -SKEW_S], ids=["behind", "in-time", "ahead"])
async def test_a_move_is_a_move_whichever_host_clock_listed_it(
    tmp_path: Path, pg_url: str, behind: int
) -> None:
    """Passes 1 and 3 on a host ``behind`` seconds behind (a negative: ahead), pass 2 on a
    host in time; the item moved between passes 2 and 3. Behind, its new id's listing (3)
    reads before the round of pass 2 that last knew the old id, and pass 1's listing of the
    old id before pass 3's round of the new folder: proven two items (``plan.apart``), the
    old copy kept under ``keep`` beside the new (a duplicate). Ahead, the moments are as
    true as in time here (nothing proven wrongly): the move is a move either way."""
    async with running(_config()) as (server, ep, _):
        job = _job(tmp_path, ep, pg_url)
        await _pass(job, tmp_path, "w1", -behind)
        await _pass(job, tmp_path, "w2", 0)
        box = server.emulator.require_mailbox(SRC)
        box.move_item(*_inbox_item_and_folder(box))
        await _pass(job, tmp_path, "w3", -behind)
        assert_exact(server.emulator, [(SRC, DST)])


@pytest.mark.parametrize("behind", [SKEW_S, 0], ids=["behind", "in-time"])
async def test_a_copy_of_a_deleted_item_is_kept_whichever_host_clock_listed_it(
    tmp_path: Path, pg_url: str, behind: int
) -> None:
    """The other way: two items (an /Inbox item and its owner's copy in another folder,
    one search key), the original deleted, its copy kept under ``keep``, as proven apart:
    the original listed (pass 1) before the copy's folder's round (pass 3), the copy listed
    (pass 2) before the round of pass 3 that last knew the original. Passes 1 and 3 on a
    host ``behind`` seconds behind, 2 and 4 in time: behind, pass 3's /Inbox round reads
    before the copy's listing, nothing is proven, and the departure is taken for a move by
    its key: the original's copy removed (the fallback without evidence, docs/passes.md)."""
    async with running(_config()) as (server, ep, _):
        job = _job(tmp_path, ep, pg_url)
        box, target = (server.emulator.require_mailbox(u) for u in (SRC, DST))
        await _pass(job, tmp_path, "w1", -behind)
        original, folder = _inbox_item_and_folder(box)
        key = original.content.search_key
        box.copy_item(original, folder)
        await _pass(job, tmp_path, "w2", 0)
        await _pass(job, tmp_path, "w3", -behind)
        box.delete_item(original)
        await _pass(job, tmp_path, "w4", 0)
        assert _copies_of(box, key) == [folder.path()]
        assert _copies_of(target, key) == sorted(["/Inbox", folder.path()])
