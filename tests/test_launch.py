"""A Ctrl-C or SIGTERM while the engine is still loading is kept for the command: ``run``
drains as soon as its loop starts, any other command ends as an interrupt (exit 130); an
interrupt raised mid-import (a second stop) ends it at once with one line on stderr, never a
traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from copyengine import launch
from copyengine.exitcodes import ExitCode

# a finder that interrupts the import of the command line, as a signal landing mid-import would
PROGRAM = textwrap.dedent(
    """
    import importlib.abc, os, signal, sys
    HOW = sys.argv.pop(1)
    class Interrupt(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "copyengine.cli":
                if HOW == "int":
                    raise KeyboardInterrupt
                os.kill(os.getpid(), signal.SIGTERM)
            return None
    sys.meta_path.insert(0, Interrupt())
    from copyengine.launch import main
    main()
    """
)


@pytest.mark.parametrize("how", ["int", "term"])
def test_an_interrupt_while_loading_exits_130_without_a_traceback(how: str, tmp_path: Path) -> None:
    """``int``: an interrupt raised mid-import ends the command there; ``term``: a SIGTERM
    mid-import is kept, and met by a command that is no run as soon as it is known."""
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, how, "status", str(tmp_path / "none.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == ExitCode.INTERRUPTED == launch.INTERRUPTED
    assert "Traceback" not in done.stderr
    said = "interrupted while starting" if how == "int" else "interrupted"
    assert said in done.stderr, done.stderr
    assert "no such file" not in done.stderr.lower()  # the status never began


def test_the_console_script_is_the_guarded_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "copyengine", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "copyengine" in done.stdout
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["copyengine"] == "copyengine.launch:main"


# SIGTERM to the command itself at a chosen moment of `copyengine run` (the example job, on its
# embedded emulator): ``before``, as it selects the pairs (loaded, the loop not started);
# ``after``, as it prints the summary (the job over and reported)
AT_A_MOMENT = textwrap.dedent(
    """
    import os, signal, sys
    import copyengine.cli as cli
    WHEN = sys.argv.pop(1)
    name = "select_pairs" if WHEN == "before" else "print_summary"
    real = getattr(cli, name)
    def hooked(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)
    setattr(cli, name, hooked)
    sys.argv[0] = "copyengine"
    from copyengine.launch import main
    main()
    """
)


@pytest.mark.parametrize("when", ["before", "after"])
def test_sigterm_outside_the_loop_is_an_interrupt_or_waits_for_the_last_word(
    when: str, tmp_path: Path
) -> None:
    """Loaded but before the loop (reading the configuration, opening the state, starting
    the embedded emulator) a SIGTERM drains the run as soon as it starts: exit 130, nothing
    copied, the report and the screen saying so; once the run is over and reported, the
    command says it whole and exits with the run's code. Both killed the process before
    (exit -15: a CLI-level trial's SIGTERM 2-4 s into a run)."""
    from tests.jobs import demo_job

    demo_job(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", AT_A_MOMENT, when, "run", "config.example.toml", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    if when == "before":
        assert done.returncode == ExitCode.INTERRUPTED, (done.returncode, done.stderr[-2000:])
        assert "exit 130: interrupted: 0 copied" in done.stdout, done.stdout[-2000:]
        report = json.loads((tmp_path / ".copyengine/config.example.report.json").read_text())
        assert report["exit_code"] == ExitCode.INTERRUPTED
    else:
        assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
        assert "exit 0: every selected item" in done.stdout
