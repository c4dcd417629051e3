"""The signals that stop a run, on every platform.

asyncio's ``loop.add_signal_handler`` exists only on POSIX event loops: Windows'
ProactorEventLoop raises NotImplementedError, and so does anyio's ``open_signal_receiver``
there. Where the loop cannot, the handler is installed with ``signal.signal`` (the main
thread's C-level handler); it only hands the signal to the loop with
``call_soon_threadsafe``, which also wakes a loop blocked in its selector or proactor, so the
callback always runs on the loop, as it does on POSIX.

Windows delivers Ctrl-C as SIGINT and Ctrl-Break (and a console closed) as SIGBREAK; SIGTERM
exists there but is never delivered from outside the process.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

import anyio

# First one: drain; a second: abort. SIGBREAK only where it exists (Windows).
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)
)
# "Where is every task waiting": SIGUSR1 where there is one (not on Windows).
DUMP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGUSR1",) if hasattr(signal, name)
)


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


@contextmanager
def handling(
    callback: Callable[[int], object],
    signals: Sequence[int] = STOP_SIGNALS,
    loop: asyncio.AbstractEventLoop | None = None,
    leave: Any = None,
) -> Iterator[None]:
    """``callback(sig)`` runs on ``loop`` (the running one) for each of ``signals`` until the
    block ends; the previous handlers are put back then, or ``leave`` (``signal.SIG_IGN``:
    a process whose work is over, what is left of it a teardown that a stop would only cut
    into). The signals are blocked while the handlers change hands (POSIX): one landing
    then meets the new handler, never the default in between (the loop puts back SIGTERM's
    default, which kills the process)."""
    running = loop or asyncio.get_running_loop()
    on_loop: list[int] = []
    previous: dict[int, Any] = {}  # what signal.signal returned: a handler, SIG_DFL, SIG_IGN

    def deliver(sig: int, frame: FrameType | None) -> None:
        try:
            running.call_soon_threadsafe(callback, sig)
        except RuntimeError:
            pass  # the loop is closed: the run it would stop is over

    try:
        for sig in signals:
            try:
                before = signal.getsignal(sig)
                running.add_signal_handler(sig, callback, sig)
                on_loop.append(sig)
                # the loop puts back the default, not what was there (``launch``'s SIGTERM
                # as an interrupt): put back by hand below
                previous[sig] = before
            except NotImplementedError:  # Windows' event loops
                previous[sig] = signal.signal(sig, deliver)
        yield
    finally:
        with _blocked(signals):
            for sig in on_loop:
                running.remove_signal_handler(sig)
            for sig, old in previous.items():
                after = leave if leave is not None else old
                signal.signal(sig, after if after is not None else signal.SIG_DFL)


@contextmanager
def _blocked(signals: Sequence[int]) -> Iterator[None]:
    """``signals`` held pending in this thread for the block (where the platform can)."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def ignore_stops() -> None:
    """The run is over; what is left is saying what happened (the summary, the report's
    path, the outcome line: milliseconds). A stop then has nothing to stop, and ending the
    process by it would leave the screen and the exit code short of what the report and
    ``job.finished`` already say: ignored from here on (main thread only)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


@contextmanager
def receiving(signals: Sequence[int] = STOP_SIGNALS) -> Iterator[AsyncIterator[int]]:
    """``anyio.open_signal_receiver`` that also works where the loop cannot add signal
    handlers: the signals as they arrive (a burst beyond 16 waiting is dropped)."""
    send, receive = anyio.create_memory_object_stream[int](16)

    def put(sig: int) -> None:
        try:
            send.send_nowait(sig)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    try:
        with handling(put, signals):
            yield receive
    finally:
        send.close()
        receive.close()
