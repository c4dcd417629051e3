"""The console entry point. Loading the engine takes a second or more on a busy machine; a
Ctrl-C or SIGTERM that lands while Python is still importing it ends the command as an
interrupt (exit 130, one line), never with a traceback. Once the command line is loaded its
own door (``cli.exit_by_verdict``) takes every interrupt: SIGTERM stays an interrupt as
Ctrl-C is (outside the event loop's own handlers, ``stopsignals``, which put it back when
they end), so one that lands while a command reads its configuration, opens its state or
starts the embedded emulator exits 130 as well; put back to the default after the import,
it killed the process (exit -15, a worker's unit reading a crash: a CLI-level trial's
SIGTERM at 2-4 s)."""

from __future__ import annotations

import signal
import sys
from types import FrameType

INTERRUPTED = 130  # exitcodes.ExitCode.INTERRUPTED, not imported: nothing heavy before the guard


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted while starting: nothing was done\n")
        raise SystemExit(INTERRUPTED) from None
    cli_main()
