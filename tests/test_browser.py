"""The HTML report in a real headless browser (Chromium from Debian's packages, installed by
.ci/run): it renders with no console errors, the totals and a pair row are visible; after a
cutover it is the migration's report across passes (issue 24), and so is the page that
``copyengine report`` writes from the state."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from copyengine.config import load_job
from copyengine.exitcodes import ExitCode
from copyengine.wiring import run_job
from tests.emu import q
from tests.jobs import write_job
from tests.test_truth import _cli, _finish

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)"),
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_html_report_renders_in_a_headless_browser(emu: Any, tmp_path: Path) -> None:
    pairs = [("adele@contoso.example", "adele@fabrikam.example")]
    stats = await run_job(load_job(write_job(tmp_path, emu.ep, pairs)))
    html = tmp_path / "report.html"
    dom = _chromium(tmp_path, "--dump-dom", html.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console  # no console message at all, errors included
    text = dom.stdout
    assert f"{stats.total('copied'):,}" in text and "items copied" in text
    # the pair's status in words ("done" was the engine's word), in the colour it says
    assert "adele@contoso.example → adele@fabrikam.example" in text
    assert 'adele@fabrikam.example</td><td class="l ok">Completed</td>' in text
    shot = tmp_path / "report.png"
    r = _chromium(tmp_path, "--window-size=1280,1400", f"--screenshot={shot}", html.as_uri())
    assert r.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _dom(tmp: Path, page: Path) -> str:
    dom = _chromium(tmp, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert not [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    return dom.stdout


@pytest.mark.slow
async def test_after_a_cutover_the_report_is_the_migration_s_across_passes(
    emu: Any, tmp_path: Path
) -> None:
    """The cutover's report said "0 items copied" (its pass copied nothing new): it now
    leads with what every pass copied, names the job and its tenants, says statuses and
    limits in words and labels its charts' axes; ``copyengine report`` writes the same
    page (and CSV exports) from the state."""
    adele, t_adele = "adele@contoso.example", "adele@fabrikam.example"
    job = write_job(tmp_path, emu.ep, [(adele, t_adele)])
    job.write_text(job.read_text().replace("[job]\n", '[job]\nname = "Contoso wave 1"\n', 1))
    cfg = load_job(job)
    first = await run_job(cfg)
    assert first.exit_code() == ExitCode.OK and first.total("copied") > 0
    mbx = emu.state.require_mailbox(adele).id
    add = {"ops": [{"op": "add", "folder": "inbox", "count": 2}]}
    assert (await emu.src.control("POST", f"/mailboxes/{q(mbx)}/changes", add)).status == 200
    cut = await run_job(cfg, cutover=True)
    assert cut.exit_code() == ExitCode.OK and cut.total("copied") == 2
    report = json.loads(cfg.report_path.read_text())
    (m,) = report["migration"]["pairs"]
    everything = first.total("copied") + 2
    assert m["copied"] == m["current"] == m["selected"] == everything
    assert [p["kind"] for p in report["migration"]["passes"]] == ["first", "cutover"]
    assert report["job"]["name"] == "Contoso wave 1"
    text = _dom(tmp_path, cfg.report_path.with_name("report.html"))
    assert "Migration report: Contoso wave 1" in text
    assert "tenant contoso.example" in text and "tenant fabrikam.example" in text
    assert f"<b>{everything:,}</b>items copied (all passes)" in text
    assert "<b>2</b>items copied in this pass" in text
    assert "Completed and signed off: every source item is accounted for" in text
    assert f'{t_adele}</td><td class="l ok">Completed</td>' in text and ">Signed off<" in text
    assert "cutover (final pass)" in text and "first copy" in text
    assert "Bad-item limit</dt><dd>not set" in text and "None" not in text
    assert "time since the run started (s)" in text and "items per second" in text
    # the job's report from its state: the same migration, as HTML and CSV beside the JSON
    code, out = await _finish(_cli("report", str(job), "--output", str(tmp_path / "job.html")), 60)
    assert code == 0, out[-2000:]
    data = json.loads((tmp_path / "job.json").read_text())
    assert data["migration"]["pairs"][0]["copied"] == everything
    page = _dom(tmp_path, tmp_path / "job.html")
    assert "Migration report: Contoso wave 1" in page
    assert f"<b>{everything:,}</b>items copied (all passes)" in page
    assert f'{t_adele}</td><td class="l ok">Completed</td>' in page
    (row,) = csv.DictReader((tmp_path / "job.pairs.csv").open(encoding="utf-8"))
    assert row["copied"] == str(everything) and row["status"] == "Completed"
    assert (tmp_path / "job.failed.csv").read_text().startswith("pair,folder,id,outcome")
