"""A stop while ``copyengine run`` starts on its embedded emulator (``tests/startstop.py``):
at a random moment of its first seconds, seeded; the exit code documented, no traceback, the
report, ``job.finished`` and the screen agreeing, and the next run exact. Many more seeds:
``python -m benchmarks soak startstop --seeds N``. And the window before the launcher takes
over the stop signals holds none of the engine's imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.startstop import Case, run_case

# the modules loaded, beyond the interpreter's own, when the launcher sets its first handler
AT_THE_HANDLERS = textwrap.dedent(
    """
    import signal, sys
    before = set(sys.modules)
    real, seen = signal.signal, []
    def spy(sig, handler):
        if not seen:
            new = set(sys.modules) - before
            seen.append(sorted(m for m in new if m.split(".")[0] not in sys.stdlib_module_names))
        return real(sig, handler)
    signal.signal = spy
    sys.argv = ["copyengine", "--version"]
    try:
        from copyengine.launch import main
        main()
    except SystemExit:
        pass
    print(seen[0])
    """
)


def test_nothing_of_the_engine_loads_before_the_launcher_takes_the_stop_signals() -> None:
    """A stop before the launcher's handlers is the interpreter's (SIGTERM: killed, exit
    -15; Ctrl-C: a KeyboardInterrupt's traceback): that window is Python's own start, not
    the engine's. ``copyengine/__init__`` imported structlog (for rich's sake) before the
    launcher could set them: 0.15-0.35 s unguarded on a busy machine, ~0.06-0.13 s now."""
    done = subprocess.run(
        [sys.executable, "-c", AT_THE_HANDLERS], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "['copyengine', 'copyengine.launch']", done.stdout


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
@pytest.mark.timeout(600)
# a stop 0-400 ms after pair.started (1), 347 ms after spawn (2), after emulator.started
# (4), after job.started (6)
@pytest.mark.parametrize("seed", [1, 2, 4, 6])
def test_a_stop_while_the_run_starts_is_said_alike_and_the_next_run_is_exact(
    seed: int, tmp_path: Path
) -> None:
    case = Case.of(seed)
    assert run_case(case, tmp_path).problems == [], case
