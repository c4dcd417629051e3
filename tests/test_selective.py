"""Selective runs (issue 13): --pair, --retry-failed, the bad-item limit, the large-item
policy stated in the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from copyengine.config import load_job
from copyengine.exitcodes import ExitCode
from copyengine.wiring import run_job
from tests.jobs import assert_exact, write_job

pytestmark = pytest.mark.anyio
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
BIANCA, T_BIANCA = "bianca@contoso.example", "bianca@fabrikam.example"
PAIRS = [(ADELE, T_ADELE), (BIANCA, T_BIANCA)]


def _report(tmp: Path) -> dict[str, Any]:
    return json.loads((tmp / "report.json").read_text())  # type: ignore[no-any-return]


def _imports(emu: Any) -> int:
    return sum(n for (call, _), n in emu.state.stats.requests.items() if call == "importItem")


async def test_retry_failed_sends_only_the_failed_items(emu: Any, tmp_path: Path) -> None:
    rule = {"kind": "import_reject", "calls": ["importItem"], "count": 3}
    assert (await emu.src.control("PUT", "/faults", {"rules": [rule]})).status == 200
    cfg = load_job(write_job(tmp_path, emu.ep, PAIRS))
    first = await run_job(cfg)
    assert first.exit_code() == ExitCode.ITEMS_FAILED and _report(tmp_path)["totals"]["failed"] == 3
    await emu.src.control("DELETE", "/faults")
    await emu.src.control("POST", "/stats/reset")
    again = await run_job(cfg, retry_only=True)
    report = _report(tmp_path)
    assert again.exit_code() == ExitCode.OK == report["exit_code"]
    assert report["totals"]["copied"] == 3 and report["totals"]["source_items"] == 3
    assert _imports(emu) == 3  # only the three failed items were sent again
    assert all(p["policy"]["selection"].startswith("only items") for p in report["pairs"])
    assert_exact(emu.state, PAIRS)


async def test_the_bad_item_limit_stops_a_pair(emu: Any, tmp_path: Path) -> None:
    adele = await emu.dst.mailbox_id(T_ADELE)
    rule = {"kind": "import_reject", "calls": ["importItem"], "mailbox": adele, "count": 5}
    assert (await emu.src.control("PUT", "/faults", {"rules": [rule]})).status == 200
    cfg = load_job(write_job(tmp_path, emu.ep, PAIRS, limits="max_failed_items_per_pair = 2"))
    stats = await run_job(cfg)
    report = _report(tmp_path)
    assert stats.exit_code() == ExitCode.ITEMS_FAILED == report["exit_code"]
    by = {p["source"]: p for p in report["pairs"]}
    assert by[ADELE]["status"] == "failed" and by[ADELE]["error_code"] == "BadItemLimit"
    assert "more than 2 items failed" in by[ADELE]["error"]
    # the pair stopped: imports already in flight (6 importers) may still have failed
    assert 3 <= by[ADELE]["failed"] <= 2 + 6 and by[ADELE]["copied"] < 100
    assert by[ADELE]["policy"]["max_failed_items"] == 2
    assert by[BIANCA]["status"] == "done"
    assert_exact(emu.state, [(BIANCA, T_BIANCA)])


async def test_large_item_policy_is_stated(emu: Any, tmp_path: Path) -> None:
    cfg = load_job(write_job(tmp_path, emu.ep, PAIRS, extra="[items]\nmax_size_mb = 0.05\n"))
    await run_job(cfg)
    policy = _report(tmp_path)["pairs"][0]["policy"]
    assert policy["large_items"] == "items over 0.05 MB are skipped and listed per folder"


async def test_run_only_the_named_pairs(emu: Any, tmp_path: Path) -> None:
    import sys

    import anyio

    job = write_job(tmp_path, emu.ep, PAIRS)
    args = [sys.executable, "-m", "copyengine", "run", str(job), "--no-progress"]
    with anyio.fail_after(60):
        bad = await anyio.run_process([*args, "--pair", "nobody@contoso.example"], check=False)
        assert bad.returncode == ExitCode.CONFIG
        assert b"--pair nobody@contoso.example" in bad.stderr
        ok = await anyio.run_process([*args, "--pair", T_BIANCA.upper()], check=False)
    assert ok.returncode == 0, ok.stderr[-2000:]
    report = _report(tmp_path)
    assert [p["source"] for p in report["pairs"]] == [BIANCA]
    assert len(emu.state.require_mailbox(T_ADELE).items) == 0
    assert_exact(emu.state, [(BIANCA, T_BIANCA)])


async def test_the_html_report_and_csv_exports(emu: Any, tmp_path: Path) -> None:
    import csv
    from html.parser import HTMLParser

    rule = {"kind": "import_reject", "calls": ["importItem"], "count": 2}
    assert (await emu.src.control("PUT", "/faults", {"rules": [rule]})).status == 200
    extra = "[items]\nmax_size_mb = 0.05\n"
    stats = await run_job(load_job(write_job(tmp_path, emu.ep, PAIRS, extra=extra)))
    html = (tmp_path / "report.html").read_text()
    own = (tmp_path / f"report.{stats.run_id}.html").read_text()
    assert html == own and html.startswith("<!doctype html>")
    assert "http://" not in html and "https://" not in html and "<script" not in html

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.text: list[str] = []

        def handle_data(self, data: str) -> None:
            self.text.append(data)

    parser = Text()
    parser.feed(html)
    text = " ".join(parser.text)
    report = _report(tmp_path)
    assert f"{report['totals']['copied']:,}" in text and "items copied" in text
    assert f"{ADELE} → {T_ADELE}" in text and "exit 1" in text
    assert "The item could not be imported" in text  # the failures, with reasons
    # in words, the pair's status and colour agreeing (it was "done" in red), items by
    # folder, type, date and size rather than by id (issue 24)
    assert "Completed with problems: 2 failed items" in text
    assert '<td class="l warn">Completed with ' in html and "failed item" in text
    assert "larger than the size limit" in text
    assert "<svg" in html and len(report["timeline"]) >= 2
    # what listing says of an item, never its content (no subject)
    listed = [r for p in report["pairs"] for f in p["folders"] for r in f["failures"]]
    assert listed and all(
        set(r) == {"id", "size", "type", "created", "reason", "request_id"} for r in listed
    )
    failed = list(csv.DictReader((tmp_path / "report.failed.csv").open()))
    assert len(failed) == 2 and all(r["outcome"] == "failed" and r["id"] for r in failed)
    assert all(r["folder"] and r["type"] and r["created"] and int(r["size"]) > 0 for r in failed)
    skipped = list(csv.DictReader((tmp_path / "report.skipped.csv").open()))
    assert len(skipped) == report["totals"]["skipped"] > 0
    assert all(int(r["size"]) > 0.05 * 1024 * 1024 for r in skipped)
    assert all(r["folder"] and r["type"] and r["created"] for r in skipped)
    pairs = list(csv.DictReader((tmp_path / "report.pairs.csv").open()))
    assert sum(int(p["failed"]) for p in pairs) == 2 and len(pairs) == len(PAIRS)
    for p in pairs:
        words = f"Completed with {p['failed']} failed item" if p["failed"] != "0" else "Completed"
        assert p["status"].startswith(words), p


async def test_metrics_endpoint_serves_the_documented_names_during_a_run(
    emu: Any, tmp_path: Path
) -> None:
    import aiohttp
    import anyio

    from copyengine.console.metrics import serve_metrics
    from copyengine.report import JobStats

    cfg = load_job(
        write_job(tmp_path, emu.ep, PAIRS, limits="upload_mb_per_window = 5\nupload_window_s = 1\n")
    )
    stats = JobStats()
    seen: list[str] = []
    async with serve_metrics(stats, "127.0.0.1", 0) as port, aiohttp.ClientSession() as http:

        async def scrape_while_running() -> None:
            for _ in range(400):
                if stats.total("copied") > 0:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                        assert r.status == 200
                        seen.append(await r.text())
                    return
                await anyio.sleep(0.02)

        async with anyio.create_task_group() as tg:
            tg.start_soon(scrape_while_running)
            await run_job(cfg, None, stats)
    assert seen, "no scrape happened while the job ran"
    body = seen[0]
    for name in (
        "copyengine_items_total",
        "copyengine_source_items",
        "copyengine_bytes_copied_total",
        "copyengine_throttle_wait_seconds",
        "copyengine_requests_total",
        "copyengine_inflight_requests",
        "copyengine_pair_status",
        "copyengine_ceiling_percent",
        "copyengine_job_duration_seconds",
    ):
        assert name in body, name
    copied = [
        line
        for line in body.splitlines()
        if line.startswith("copyengine_items_total{")
        and f'pair="{ADELE}->{T_ADELE}"' in line
        and 'outcome="copied"' in line
    ]
    assert len(copied) == 1
    assert 'status="running"} 1.0' in body


def test_metrics_address_is_checked() -> None:
    from click.testing import CliRunner

    from copyengine.cli import main

    result = CliRunner().invoke(main, ["run", "config.example.toml", "--metrics", "nowhere"])
    assert result.exit_code == ExitCode.USAGE and "--metrics" in result.output


async def test_plan_equals_what_the_run_copies_and_writes_nothing(emu: Any, tmp_path: Path) -> None:
    from copyengine.wiring import plan_job

    extra = "[items]\nmax_size_mb = 0.05\n"
    cfg = load_job(write_job(tmp_path, emu.ep, PAIRS, extra=extra))
    # a first partial copy, so that the plan sees items already present
    await run_job(cfg, pairs=(cfg.pairs[1],))
    before = {u: emu.state.require_mailbox(u).snapshot() for u in (T_ADELE, T_BIANCA)}
    state_before = (tmp_path / "state.sqlite").read_bytes()
    planned, summary = await plan_job(cfg)
    after = {u: emu.state.require_mailbox(u).snapshot() for u in (T_ADELE, T_BIANCA)}
    assert after == before  # nothing written to the target
    assert (tmp_path / "state.sqlite").read_bytes() == state_before  # nor to the state
    assert summary["eta_s"] > 0 and summary["binding_limits"]
    stats = await run_job(cfg)
    report = _report(tmp_path)
    assert stats.exit_code() == ExitCode.OK
    for pp, rp in zip(planned, report["pairs"], strict=True):
        got = {f["source_path"]: f for f in rp["folders"]}
        for f in pp.folders:
            r = got[f.source_path]
            assert (f.copy, f.present, sum(f.skipped.values())) == (
                r["copied"],
                r["already_present"],
                sum(r["skipped"].values()),
            ), f.source_path
    assert summary["copy"] == report["totals"]["copied"] > 0
    assert summary["already_present"] == report["totals"]["already_present"]
    # the pair copied before is read by delta, by the plan as by the run (a folder empty at
    # that pass was not read, so has no link: listed, nothing in it)
    assert {f.mode for f in planned[1].folders} <= {"delta", "full"}
    assert any(f.mode == "delta" for f in planned[1].folders)
    assert all(f.items == 0 for f in planned[1].folders if f.mode != "delta")
    assert {f.mode for f in planned[0].folders} == {"full"}


async def test_doctor_finds_a_missing_permission_and_an_out_of_scope_mailbox(
    emu: Any, tmp_path: Path
) -> None:
    from copyengine.doctor import least_privilege
    from copyengine.wiring import doctor
    from tests.emu import DST_APP

    cfg = load_job(write_job(tmp_path, emu.ep, PAIRS))
    healthy = await doctor(cfg)
    assert healthy["ok"], healthy
    assert healthy["tenants"]["target"]["missing"] == []
    assert healthy["tenants"]["source"]["excess"] == [
        "MailboxFolder.ReadWrite.All",
        "MailboxItem.ImportExport.All",
    ]  # the source app may do more than a source needs
    app = emu.state.tokens.tenant("fabrikam.example").apps[DST_APP]
    app.roles = ("User.Read.All", "MailboxFolder.ReadWrite.All", "MailboxItem.Read.All")
    app.scope = frozenset({T_ADELE})
    before = {u: emu.state.require_mailbox(u).snapshot() for u in (T_ADELE, T_BIANCA)}
    sick = await doctor(cfg)
    assert not sick["ok"]
    assert sick["tenants"]["target"]["missing"] == ["MailboxItem.ImportExport.All"]
    by = {p["target"]: p for p in sick["pairs"]}
    failing = {c["what"]: c["detail"] for c in by[T_ADELE]["checks"] if not c["ok"]}
    assert list(failing) == ["target: create an import session"]
    assert "MailboxItem.ImportExport.All" in failing["target: create an import session"]
    out_of_scope = [c for c in by[T_BIANCA]["checks"] if not c["ok"]]
    assert out_of_scope and all("access denied" in c["detail"] for c in out_of_scope)
    assert "target: list folders" in {c["what"] for c in out_of_scope}
    after = {u: emu.state.require_mailbox(u).snapshot() for u in (T_ADELE, T_BIANCA)}
    assert after == before  # the preflight wrote nothing
    assert any("New-ManagementScope" in line and T_BIANCA in line for line in sick["rbac"])
    assert least_privilege("target", {"MailboxItem.ImportExport.All"})[0] == [
        "MailboxFolder.ReadWrite.All",
        "MailboxItem.Read.All",
        "User.Read.All",
    ]
