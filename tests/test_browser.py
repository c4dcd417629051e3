"""The HTML report in a real headless browser (Chromium from Debian's packages, installed by
.ci/run): it renders with no console errors, the totals and a pair row are visible."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from copyengine.config import load_job
from copyengine.wiring import run_job
from tests.jobs import write_job

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
    assert "adele@contoso.example → adele@fabrikam.example" in text and ">done<" in text
    shot = tmp_path / "report.png"
    r = _chromium(tmp_path, "--window-size=1280,1400", f"--screenshot={shot}", html.as_uri())
    assert r.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
