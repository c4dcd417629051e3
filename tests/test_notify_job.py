"""Notifications of a job against the embedded emulator (issue 25): every event received
exactly once per occurrence, with its payload in each format (generic, Teams, Slack): a pair
that fails, a pair stopped at its bad-item limit, the pass's end, a cutover's sign-off
(incomplete, then complete), a stall made by a slow import; no webhook key in the logs, the
report or the state; a hanging receiver costs the run at most the flush."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from copyengine.config import load_job
from copyengine.exitcodes import ExitCode
from copyengine.wiring import run_job
from tests.jobs import write_job
from tests.webhooks import Receiver, json_log, receiver

pytestmark = pytest.mark.anyio
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
BIANCA, T_BIANCA = "bianca@contoso.example", "bianca@fabrikam.example"
KEY = "sig=Th1s-Is-The-Webhook-Key"


log_text = pytest.fixture(json_log)


def _hooks(tmp: Path, rec: Receiver, formats: tuple[str, ...], extra: str = "") -> str:
    """A ``[notify]`` table: one webhook per format at /<format>, its URL (with the key) in a
    file beside the job."""
    out = f"[notify]\n{extra}\n"
    for fmt in formats:
        (tmp / f"{fmt}.url").write_text(rec.url(f"/{fmt}?{KEY}") + "\n")
        out += f'[[notify.webhooks]]\nname = "{fmt}"\nurl = "file:{fmt}.url"\nformat = "{fmt}"\n'
    return out


def _name(fmt: str, body: dict[str, Any]) -> str:
    """The event a body announces, in each format."""
    if fmt == "teams":
        return str(body["attachments"][0]["content"]["body"][1]["text"].split(" · ")[0])
    if fmt == "slack":
        return str(body["blocks"][1]["elements"][0]["text"].split("`")[1])
    return str(body["event"])


def _received(rec: Receiver, fmt: str) -> Counter[str]:
    return Counter(_name(fmt, r.body) for r in rec.at(f"/{fmt}"))


def _no_key(tmp: Path, log_text: io.StringIO) -> None:
    assert KEY not in log_text.getvalue()
    for f in tmp.rglob("*"):
        if f.is_file() and not f.name.endswith(".url"):
            assert KEY.encode() not in f.read_bytes(), f  # report, state, CSV, HTML


async def test_a_run_s_events_once_each_in_every_format(
    emu: Any, tmp_path: Path, log_text: io.StringIO
) -> None:
    adele_dst = await emu.dst.mailbox_id(T_ADELE)
    rules = [
        {"kind": "import_reject", "calls": ["importItem"], "mailbox": adele_dst, "count": 5},
        {"kind": "mailbox_not_found", "mailbox": BIANCA},
    ]
    assert (await emu.src.control("PUT", "/faults", {"rules": rules})).status == 200
    async with receiver() as rec:
        notify = _hooks(tmp_path, rec, ("generic", "teams", "slack"))
        job = write_job(
            tmp_path,
            emu.ep,
            [(ADELE, T_ADELE), (BIANCA, T_BIANCA)],
            extra=notify,
            limits="max_failed_items_per_pair = 2",
        )
        stats = await run_job(load_job(job))
        assert stats.exit_code() == ExitCode.FATAL  # every pair failed
        want = {"pair.bad_item_limit": 1, "pair.failed": 2, "pass.finished": 1}
        for fmt in ("generic", "teams", "slack"):
            assert _received(rec, fmt) == want, fmt
    limit = rec.events("/generic", "pair.bad_item_limit")[0]
    assert limit["pair"] == f"{ADELE}->{T_ADELE}" and limit["limit"] == 2
    assert limit["failed"] >= 3 and limit["job"] == "job"
    failed = {e["pair"]: e for e in rec.events("/generic", "pair.failed")}
    assert failed[f"{BIANCA}->{T_BIANCA}"]["error_type"] == "MailboxNotFound"
    assert failed[f"{ADELE}->{T_ADELE}"]["error_type"] == "BadItemLimit"
    (done,) = rec.events("/generic", "pass.finished")
    assert (done["pass"], done["kind"], done["exit_code"]) == (1, "first", 5)
    assert done["outcome"] == "fatal" and done["pairs_failed"] == 2
    assert done["copied"] == stats.total("copied") and done["failed"] == limit["failed"]
    teams = rec.at("/teams")[0].body["attachments"][0]
    assert teams["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert all("text" in r.body and r.body["blocks"] for r in rec.at("/slack"))
    sent = [json.loads(x) for x in log_text.getvalue().splitlines() if "notify.sent" in x]
    assert len(sent) == 3 * 4 and {s["host"] for s in sent} == {"127.0.0.1"}
    _no_key(tmp_path, log_text)


async def test_a_cutover_s_sign_off_is_announced(
    emu: Any, tmp_path: Path, log_text: io.StringIO
) -> None:
    bianca_dst = await emu.dst.mailbox_id(T_BIANCA)
    rule = {"kind": "import_reject", "calls": ["importItem"], "mailbox": bianca_dst, "count": 2}
    assert (await emu.src.control("PUT", "/faults", {"rules": [rule]})).status == 200
    async with receiver() as rec:
        job = write_job(
            tmp_path, emu.ep, [(BIANCA, T_BIANCA)], extra=_hooks(tmp_path, rec, ("generic",))
        )
        cfg = load_job(job)
        first = await run_job(cfg, cutover=True)
        assert first.sign_off is not None and not first.sign_off["complete"]
        assert _received(rec, "generic") == {"signoff.incomplete": 1, "pass.finished": 1}
        (off,) = rec.events("/generic", "signoff.incomplete")
        assert (off["pairs_incomplete"], off["pairs_complete"], off["complete"]) == (1, 0, False)
        (entry,) = off["pairs"]
        assert entry["pair"] == f"{BIANCA}->{T_BIANCA}" and entry["failed"] == 2
        await emu.src.control("DELETE", "/faults")
        again = await run_job(cfg, retry_only=True, cutover=True)
        assert again.sign_off is not None and again.sign_off["complete"]
        assert _received(rec, "generic") == {
            "signoff.incomplete": 1,
            "signoff.complete": 1,
            "pass.finished": 2,
        }
        (ok,) = rec.events("/generic", "signoff.complete")
        assert ok["pairs_complete"] == 1 and ok["pairs"][0]["complete"] is True
        assert [e["exit_code"] for e in rec.events("/generic", "pass.finished")] == [1, 0]
    _no_key(tmp_path, log_text)


async def test_a_stall_is_announced_once_per_stall(emu: Any, tmp_path: Path) -> None:
    # one import at a time, and the 4th import answers after 4 s: nothing moves meanwhile
    rule = {"kind": "slow", "calls": ["importItem"], "after": 3, "count": 1, "delay": 4}
    assert (await emu.src.control("PUT", "/faults", {"rules": [rule]})).status == 200
    async with receiver() as rec:
        job = write_job(
            tmp_path,
            emu.ep,
            [(BIANCA, T_BIANCA)],
            extra=_hooks(tmp_path, rec, ("generic",), "stalled_after_min = 0.025"),
            limits="in_flight_per_mailbox = 1\nimporters_per_pair = 1\nexporters_per_pair = 1",
        )
        stats = await run_job(load_job(job))
        assert stats.exit_code() == ExitCode.OK
    stalls = rec.events("/generic", "job.stalled")
    assert stalls, "the 4 s import should have stalled the job (1.5 s)"
    # once per stall: never twice at the same progress (a loaded host may pause elsewhere)
    at = [(s["copied"], s["copied_bytes"], s["listed"]) for s in stalls]
    assert len(at) == len(set(at)) and all(s["stalled_min"] == 0.025 for s in stalls)
    assert any(s["copied"] == 3 for s in stalls)  # the slow 4th import
    assert len(rec.events("/generic", "pass.finished")) == 1


async def test_a_hanging_receiver_does_not_slow_the_job(emu: Any, tmp_path: Path) -> None:
    async with receiver() as rec:
        rec.script["/generic"] = ["hang"] * 100
        job = write_job(
            tmp_path,
            emu.ep,
            [(BIANCA, T_BIANCA)],
            extra=_hooks(tmp_path, rec, ("generic",), "flush_timeout_s = 1"),
        )
        started = time.monotonic()
        stats = await run_job(load_job(job))
        overhead = time.monotonic() - started - stats.duration()
        assert stats.exit_code() == ExitCode.OK
        assert len(rec.at("/generic")) == 1  # the pass's end was sent, and never answered
    assert overhead < 1 + 5  # the flush's 1 s, and slack for building clients on a busy host
