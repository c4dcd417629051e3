"""A Ctrl-C or SIGTERM while the engine is still loading ends the command as an interrupt
(exit 130, one line on stderr), never a traceback."""

from __future__ import annotations

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
    HOW = sys.argv[1]
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
def test_an_interrupt_while_loading_exits_130_without_a_traceback(how: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, how, "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == ExitCode.INTERRUPTED == launch.INTERRUPTED
    assert "Traceback" not in done.stderr
    assert "interrupted while starting" in done.stderr


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
