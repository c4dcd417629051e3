"""The strict tools run with the tests, so CI enforces them: ruff (incl. ASYNC and B) and
mypy --strict over copyengine/, tests/ and benchmarks/ (configured in pyproject.toml); and the
documentation holds: every relative link resolves, every test named exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff() -> None:
    r = _run("ruff", "check", "copyengine", "tests", "benchmarks")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict() -> None:
    r = _run("mypy")
    assert r.returncode == 0, r.stdout + r.stderr


# -- the documentation: README.md, docs/ and the benchmark results page -------------------------
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "benchmarks" / "results" / "README.md",
]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
NAMED_FILE = re.compile(r"`((?:tests|benchmarks)/[\w./*-]+|test_[\w*]+\.py)`")


def _prose(md: Path) -> list[str]:
    """The lines of ``md`` outside fenced code blocks."""
    lines, fenced = [], False
    for line in md.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchors(md: Path) -> set[str]:
    """GitHub's anchors for the headings of ``md``."""
    heads = (line.lstrip("#").strip().lower() for line in _prose(md) if line.startswith("#"))
    return {re.sub(r"[^\w\- ]", "", h).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("md", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(md: Path) -> None:
    broken = []
    for line in _prose(md):
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            dest = (md.parent / path).resolve() if path else md
            unknown_anchor = bool(anchor) and dest.suffix == ".md"
            if not dest.exists() or (unknown_anchor and anchor not in _anchors(dest)):
                broken.append(target)
    assert not broken, f"{md.relative_to(ROOT)}: {broken}"


@pytest.mark.parametrize("md", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_test_and_benchmark_named_exists(md: Path) -> None:
    """A claim backed by a test or a benchmark names a file that is there."""
    missing = []
    for name in NAMED_FILE.findall(md.read_text(encoding="utf-8")):
        pattern = name if "/" in name else f"tests/{name}"
        if not any(ROOT.glob(pattern)):
            missing.append(name)
    assert not missing, f"{md.relative_to(ROOT)}: {missing}"


def test_the_results_page_keeps_its_hand_written_part(tmp_path: Path) -> None:
    from benchmarks.__main__ import MARKER, collect

    (tmp_path / "README.md").write_text(f"# Results\n\nprose\n{MARKER}\nold tables\n")
    (tmp_path / "throughput.md").write_text("### throughput\n\nnew table\n")
    collect(tmp_path)
    text = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert text.startswith(f"# Results\n\nprose\n{MARKER}\n")
    assert "new table" in text and "old tables" not in text


def test_the_readme_walkthrough_job_file_is_one_copyengine_reads(tmp_path: Path) -> None:
    """The two-wave walkthrough's job file (README) holds keys copyengine accepts, as
    written: its snippet on top of the example job, with a pairs file in two waves."""
    from datetime import datetime

    from copyengine.config import load_job

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## A two-wave migration, step by step") :]
    found = re.search(r"```toml\n(.*?)```", section, re.S)
    assert found is not None
    snippet = found.group(1)
    (tmp_path / "pairs.csv").write_text(
        "source,target,wave\nceo@contoso.example,ceo@fabrikam.example,1\n"
        "ann@contoso.example,ann@fabrikam.example,2\n",
        encoding="utf-8",
    )
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    job = tmp_path / "contoso.toml"
    job.write_text(snippet + "\n" + example, encoding="utf-8")
    cfg = load_job(job, resolve_secrets=False)
    by_source = {p.source: p for p in cfg.pairs}
    ceo, ann = by_source["ceo@contoso.example"], by_source["ann@contoso.example"]
    assert (ceo.wave, ceo.priority, ann.priority) == ("1", 10, 0)
    assert ceo.complete_after is not None and ann.complete_after is not None
    assert ceo.complete_after < ann.complete_after
    assert cfg.schedule is not None
    assert cfg.schedule.open_at(datetime.fromisoformat("2026-12-07T21:00:00+01:00"))
    assert not cfg.schedule.open_at(datetime.fromisoformat("2026-12-07T12:00:00+01:00"))


def test_the_exit_code_tables_agree() -> None:
    """The operator guide's exit codes, `copyengine --help`'s and ``ExitCode`` name the same
    codes ("the same table is in `copyengine --help` and each command's `--help`")."""
    from copyengine.exitcodes import HELP, ExitCode

    guide = (ROOT / "docs" / "operator-guide.md").read_text(encoding="utf-8")
    table = guide.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)}
    helped = {int(m) for m in re.findall(r"^  (\d+) ", HELP, re.M)}
    assert documented == helped == {int(c) for c in ExitCode}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    said = readme.split("Exit codes:", 1)[1].split("The full table", 1)[0]
    assert {int(m) for m in re.findall(r"(?:^|[;:])\s+(\d+)\s", said)} == documented
