"""aiohttp's ``sock_read`` timeout (``Timeouts.sock_read``) with one timer per read.

aiohttp restarts a connection's read timer on every chunk an answer brings
(``ResponseHandler._reschedule_timeout``): a timer handle cancelled and a new one pushed
onto the event loop's heap, the cancelled ones swept off it later, and it cancels the
timer at the answer's end. That is 2-3 timers per item in ``throughput`` (an import's
answer, an export's chunks), ~5% of the engine's Python there (cpu10: ``py-spy --gil``),
which a client without a read timeout (``minimal``) never pays. Here a chunk, or the next
request on the connection, only moves the deadline on; the timer stays set, and when it
comes due before the deadline it is set again for the rest (once per ``sock_read`` seconds
on a busy connection), or lapses when no read is under way. A read still fails once nothing
has arrived for ``sock_read`` seconds, at the moment aiohttp's own timer would have fired,
never earlier and never later; a deadline brought forward (a shorter timeout on a reused
connection) sets the timer again at once; a closed connection's timer is cancelled.

Used only where the installed aiohttp has the parts this relies on (checked once at import);
otherwise its own timer stays (``lazy_read_timeout`` answers False).
"""

from __future__ import annotations

import asyncio
import functools

import aiohttp
from aiohttp.client_proto import ResponseHandler

_NEEDS = (
    "_reschedule_timeout",
    "_on_read_timeout",
    "start_timeout",
    "_drop_timeout",
    "connection_lost",
    "close",
    "abort",
)


class LazyReadTimeout(ResponseHandler):
    """A connection whose read timer is moved on lazily (see the module's docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._read_deadline: float | None = None  # None: no read under way

    def _reschedule_timeout(self) -> None:
        timeout = self._read_timeout
        if not timeout:
            self._read_deadline = None
            return
        loop = self._loop
        deadline = self._read_deadline = loop.time() + timeout
        handle = self._read_timeout_handle
        if handle is None or deadline < handle.when():
            if handle is not None:
                handle.cancel()
            self._read_timeout_handle = loop.call_at(deadline, self._read_due)

    def _drop_timeout(self) -> None:
        """No read under way: the timer stays set (the next request's read moves the
        deadline on without a new one) and lapses if it comes due first."""
        self._read_deadline = None

    def _read_due(self) -> None:
        """The timer came due: the read timed out, unless data since moved the deadline
        on (set again for it) or the read is over (the timer lapses)."""
        handle, self._read_timeout_handle = self._read_timeout_handle, None
        deadline = self._read_deadline
        if deadline is None:
            return
        if handle is not None and deadline > handle.when():
            self._read_timeout_handle = self._loop.call_at(deadline, self._read_due)
            return
        self._on_read_timeout()

    def _stop_timer(self) -> None:
        handle, self._read_timeout_handle = self._read_timeout_handle, None
        if handle is not None:
            handle.cancel()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_timer()  # a closed connection is not kept alive by its timer
        super().connection_lost(exc)

    def close(self) -> None:
        self._stop_timer()
        super().close()

    def abort(self) -> None:
        self._stop_timer()
        super().abort()


def _usable() -> bool:
    probe = ResponseHandler.__init__
    return all(callable(getattr(ResponseHandler, name, None)) for name in _NEEDS) and (
        "_read_timeout_handle" in probe.__code__.co_names
    )


USABLE = _usable()


def lazy_read_timeout(conn: aiohttp.BaseConnector) -> bool:
    """Make ``conn``'s new connections ``LazyReadTimeout``; False (nothing changed) where
    this aiohttp lacks what it relies on."""
    loop = getattr(conn, "_loop", None)
    if not USABLE or loop is None or not hasattr(conn, "_factory"):
        return False
    conn._factory = functools.partial(LazyReadTimeout, loop=loop)  # type: ignore[attr-defined, assignment]
    return True
