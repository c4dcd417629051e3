"""The console entry point. Loading the engine takes a second or more on a busy machine.

The first Ctrl-C or SIGTERM (Ctrl-Break on Windows) that lands before a command's own
handlers take over is kept, not raised where it lands: a ``run`` then drains as soon as its
loop starts (``pipeline.job.watch_signals`` takes it), so however early the stop came, the
exit code, the report, the log's ``job.finished`` and the screen say the same thing (raised
mid-import or while the configuration loaded, it ended the run with one line on stderr, no
report, no ``job.finished``, and now and then as killed by SIGINT, exit -2). Any other
command meets the kept stop as soon as it is known (``defer_stops``): an interrupt through
its own door, exit 130. A second stop before the handlers take over is an interrupt at
once: while Python still imports the engine, exit 130 with one line, never a traceback;
after, through ``cli.exit_by_verdict``. SIGTERM is never left at the default, which killed
the process (exit -15, a worker's unit reading a crash)."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

INTERRUPTED = 130  # exitcodes.ExitCode.INTERRUPTED, not imported: nothing heavy before the guard
_STOPS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)
)
_kept: list[int] = []  # the stop that came while stops were deferred
_deferring = [True]


def _stop(signum: int, frame: FrameType | None) -> None:
    if _deferring[0] and not _kept:
        _kept.append(signum)
        return
    raise KeyboardInterrupt


def defer_stops(defer: bool) -> None:
    """Whether the first stop is kept for the command (``run``: its drain) or is an
    interrupt; turned off with a stop kept, the interrupt comes now. Turned off, Ctrl-C is
    Python's own again (an event loop started after then cancels its main task on it, as it
    did before the launcher kept stops)."""
    _deferring[0] = defer
    if not defer and signal.getsignal(signal.SIGINT) is _stop:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not defer and _kept:
        _kept.clear()
        raise KeyboardInterrupt


def take_stop() -> int | None:
    """The stop signal kept before the command's own handlers took over, once."""
    return _kept.pop() if _kept else None


def main() -> None:
    for sig in _STOPS:
        signal.signal(sig, _stop)
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted while starting: nothing was done\n")
        sys.stderr.flush()
        # not by raising SystemExit: after a SIGINT raised mid-import the interpreter was
        # seen to end by SIGINT all the same (exit -2, this line printed)
        os._exit(INTERRUPTED)
    cli_main()
