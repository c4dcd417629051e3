"""Packaging (issue 24): the license and the package's metadata, the job template shipped in
the package and ``copyengine init``, shell completion, and benchmark results that go to a
fresh folder unless recorded."""

from __future__ import annotations

import json
import shutil
import tomllib
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner, Result

from copyengine.cli import main
from copyengine.commands.init import template
from copyengine.config import load_job
from copyengine.exitcodes import ExitCode

ROOT = Path(__file__).parent.parent


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_license_is_the_mit_text_the_metadata_declares() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) 2026 copyengine contributors\n")
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert project["license"] == {"text": "MIT"}
    classifiers = project["classifiers"]
    assert "License :: OSI Approved :: MIT License" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert any(c.startswith("Operating System :: ") for c in classifiers)
    assert set(project["urls"]) == {"Homepage", "Documentation", "Issues"}


def test_the_shipped_template_is_the_example_job_file() -> None:
    shipped = ROOT / "copyengine" / "templates" / "job.toml"
    assert shipped.read_bytes() == (ROOT / "config.example.toml").read_bytes()
    assert template() == shipped.read_text(encoding="utf-8")  # as the installed package reads it
    data = _pyproject()["tool"]
    assert isinstance(data, dict)
    assert "templates/*.toml" in data["setuptools"]["package-data"]["copyengine"]


def _init(cwd: Path, *args: str) -> Result:
    import os

    here = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, ["init", *args])
    finally:
        os.chdir(here)


def test_init_writes_a_job_file_of_its_own_that_loads(tmp_path: Path) -> None:
    result = _init(tmp_path, "wave1.toml")
    assert result.exit_code == 0, result.output
    job = tmp_path / "wave1.toml"
    text = job.read_text(encoding="utf-8")
    assert text.count("\n#") > 50  # commented
    assert "copyengine run wave1.toml" in text and "config.example.toml" not in text
    cfg = load_job(job)  # the demo's secrets were written beside it
    assert cfg.state_path == tmp_path / ".copyengine" / "wave1.state.sqlite"
    assert cfg.report_path == tmp_path / ".copyengine" / "wave1.report.json"
    assert len(cfg.pairs) == 4 and cfg.needs_emulator
    secret = tmp_path / "examples" / "demo-secrets" / "source.secret"
    assert secret.read_text() == "demo-source-secret-not-a-real-one\n"
    assert f"wrote {secret.relative_to(tmp_path)}" in result.output
    # a second job file beside it: its own state; the secrets already there are kept
    secret.write_text("changed\n")
    assert _init(tmp_path, "wave2.toml").exit_code == 0
    assert secret.read_text() == "changed\n"
    wave2 = load_job(tmp_path / "wave2.toml")
    assert wave2.state_path != cfg.state_path and wave2.identity() != cfg.identity()


def test_the_job_init_writes_is_the_demo_job_that_runs(tmp_path: Path) -> None:
    """Everything but its file, state and report is the example job's, which
    ``tests/test_cli_demo.py`` runs."""
    assert _init(tmp_path, "wave1.toml").exit_code == 0
    ours = load_job(tmp_path / "wave1.toml")
    demo = tmp_path / "demo"
    demo.mkdir()
    shutil.copy(ROOT / "config.example.toml", demo)
    shutil.copytree(ROOT / "examples", demo / "examples")
    example = load_job(demo / "config.example.toml")
    mine = replace(example, path=ours.path, state_path=ours.state_path)
    assert replace(mine, report_path=ours.report_path) == ours


def test_init_never_writes_over_a_file(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text("mine\n")
    before = job.stat().st_mtime_ns
    result = _init(tmp_path)  # the default PATH: job.toml
    assert result.exit_code == ExitCode.USAGE
    assert "job.toml exists" in result.output and "never writes over" in result.output
    assert job.read_text() == "mine\n" and job.stat().st_mtime_ns == before
    assert not (tmp_path / "examples").exists()  # nothing else written either


def test_init_dash_prints_the_template(tmp_path: Path) -> None:
    result = _init(tmp_path, "-")
    assert result.exit_code == 0 and result.output == template()
    assert list(tmp_path.iterdir()) == []


def _complete(env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, [], env=env, prog_name="copyengine")


def test_shell_completion_scripts_generate_and_complete() -> None:
    for shell, mark in (
        ("bash", "complete -o nosort -F _copyengine_completion copyengine"),
        ("zsh", "#compdef copyengine"),
        ("fish", "complete --no-files --command copyengine"),
    ):
        result = _complete({"_COPYENGINE_COMPLETE": f"{shell}_source"})
        assert result.exit_code == 0, result.output
        assert mark in result.output and "_COPYENGINE_COMPLETE" in result.output
    words = {
        "_COPYENGINE_COMPLETE": "bash_complete",
        "COMP_WORDS": "copyengine in",
        "COMP_CWORD": "1",
    }
    assert _complete(words).output.split() == ["plain,init"]
    words = {
        "_COPYENGINE_COMPLETE": "bash_complete",
        "COMP_WORDS": "copyengine run job.toml --retry",
        "COMP_CWORD": "3",
    }
    assert "plain,--retry-failed" in _complete(words).output.split()


def test_benchmark_results_go_to_a_fresh_folder_unless_recorded(tmp_path: Path) -> None:
    from benchmarks.__main__ import MARKER, collect
    from benchmarks.common import results_dir, write_result
    from benchmarks.harness import write

    recorded = tmp_path / "results"
    recorded.mkdir()
    (recorded / "throughput.json").write_text('{"recorded": true}')
    (recorded / "README.md").write_text(f"# Results\n\nprose\n{MARKER}\nold\n")
    before = {p.name: p.read_bytes() for p in recorded.iterdir()}
    fresh = results_dir(False, recorded)
    again = results_dir(False, recorded)  # a second run in the same second: its own folder
    assert fresh.parent == again.parent == recorded / "runs" and fresh != again
    assert list(fresh.iterdir()) == []
    result = {"scenario": "throughput", "summary": {}}
    write(result, "### throughput\n\nnew table\n", fresh)
    write_result("soak-passes", {"seeds": 1}, "soak table\n", fresh)
    collect(fresh)
    assert json.loads((fresh / "throughput.json").read_text()) == result
    assert "new table" in (fresh / "README.md").read_text()
    assert (fresh / "soak-passes.md").read_text() == "soak table\n"
    assert {p.name: p.read_bytes() for p in recorded.iterdir() if p.is_file()} == before
    # --record: the committed folder itself, its README's hand-written part kept
    assert results_dir(True, recorded) == recorded
    write(result, "### throughput\n\nnew table\n", recorded)
    collect(recorded)
    readme = (recorded / "README.md").read_text()
    assert readme.startswith(f"# Results\n\nprose\n{MARKER}\n") and "new table" in readme
    assert json.loads((recorded / "throughput.json").read_text()) == result


def test_the_benchmark_commands_take_record() -> None:
    import contextlib
    import io

    import pytest

    from benchmarks.__main__ import main as bench_main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        bench_main(["run", "--help"])
    assert "--record" in out.getvalue() and "benchmarks/results/runs/" in out.getvalue()


def test_init_refuses_a_path_whose_folder_is_missing(tmp_path: Path) -> None:
    """A mistyped folder is said, not made (it made every missing folder silently, the job
    file, the demo's secrets and later the state in it): exit 2, nothing written."""
    result = _init(tmp_path, "jobs/contoso/wave1.toml")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "the folder jobs/contoso does not exist" in result.output, result.output
    assert "mkdir -p jobs/contoso" in result.output and "nothing written" in result.output
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "notes").write_text("mine\n")  # a file where the folder would be
    result = _init(tmp_path, "notes/wave1.toml")
    assert result.exit_code == ExitCode.USAGE and "notes is not a folder" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]
    (tmp_path / "jobs").mkdir()  # once made, the same PATH is written
    assert _init(tmp_path, "jobs/wave1.toml").exit_code == 0
    assert (tmp_path / "jobs" / "wave1.toml").is_file()


def test_a_copy_of_the_example_job_is_a_job_of_its_own(tmp_path: Path) -> None:
    """The README's way to a real job starts from the demo's file: a copy of it inherited the
    demo's state and report (``.copyengine/example.sqlite``, beside the emulator's data), so
    the demo and the copy shared one state (the second refused as another job's) and a real
    job's state sat among the emulator's files. Each is now named after its own file."""
    from copyengine.embedded.runner import emulator_config

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    demo = tmp_path / "config.example.toml"
    shutil.copy(ROOT / "config.example.toml", demo)
    shutil.copy(demo, tmp_path / "contoso.toml")
    example, mine = load_job(demo), load_job(tmp_path / "contoso.toml")
    assert example.state_path == tmp_path / ".copyengine" / "config.example.state.sqlite"
    assert mine.state_path == tmp_path / ".copyengine" / "contoso.state.sqlite"
    assert mine.report_path == tmp_path / ".copyengine" / "contoso.report.json"
    assert example.report_path != mine.report_path
    # the emulator's data lives beside the state of the job that ran it, never another's
    persist = {emulator_config(c, tmp_path / "x")["emulator"]["persist"] for c in (example, mine)}
    assert persist == {
        str(tmp_path / ".copyengine" / "config.example.state.emulator.pickle"),
        str(tmp_path / ".copyengine" / "contoso.state.emulator.pickle"),
    }
