"""structlog configuration: JSON off a terminal, console on one; secrets redacted everywhere.

Event names are stable (``pair.started``, ``item.failed``, ``job.finished``…); context is
bound per task through contextvars: ``run`` (the run id, by the job) and ``pair`` (by each
pair, inherited by the tasks it starts); item events name their folder.

Where the lines go: to stderr, or with ``--log-file`` to that file (stderr then keeps the
warnings and errors, in console form, for the person watching). Every line on a JSON stream
is JSON: foreign libraries' records (aiohttp, msal) and the commands' notes to the operator
(``say``: the embedded emulator's address, a failed command) are rendered as events too. A
stream whose reader has gone (``| head -1`` closed the pipe) is dropped, never the job: a
write that fails turns that sink off, and the run goes on to the same end, report and
state it would have had.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any, TextIO

import orjson
import structlog

from .secrets import redact, redact_value

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def _redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    return {k: redact_value(v) for k, v in event.items()}


def _dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of the write: while the live table
    is shown, rich replaces it with a proxy that prints log lines above the table instead
    of through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()

    def fileno(self) -> int:
        return sys.stderr.fileno()


class Sink:
    """One destination of log lines: a stream, its format (``json`` or ``console``) and its
    level. A write that fails (a closed pipe, a full disk) turns the sink off: logging never
    stops a job."""

    def __init__(self, stream: Any, fmt: str, level: int, *, screen: bool) -> None:
        self.stream = stream
        self.json = fmt == "json"
        self.level = level
        self.screen = screen  # stderr: where the operator's notes go when it is not JSON
        self.alive = True
        self._lock = threading.Lock()  # token renewals log from worker threads
        self._render: Any = (
            structlog.processors.JSONRenderer(serializer=_dumps)
            if self.json
            else structlog.dev.ConsoleRenderer(
                colors=_isatty(stream), exception_formatter=plain_traceback
            )
        )

    def emit(self, event: Mapping[str, Any], level: int) -> None:
        if self.alive and level >= self.level:
            self.write(self._render(None, "", dict(event)))

    def write(self, line: str) -> None:
        if not self.alive:
            return
        try:
            with self._lock:
                self.stream.write(line + "\n")
                self.stream.flush()
        except BrokenPipeError:  # the reader has gone: so has what is still buffered
            self.alive = False
            silence(self.stream)
        except (OSError, ValueError):  # EIO, ENOSPC; a closed file
            self.alive = False


def silence(stream: Any) -> None:
    """Point ``stream``'s descriptor at the null device: what is still buffered, and what
    Python flushes at exit, goes nowhere instead of failing again (a failed flush at exit
    would end the process with 120; see the note on SIGPIPE in Python's ``signal`` docs)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


def plain_traceback(sio: TextIO, exc_info: Any) -> None:
    """A console line's traceback (``exc_info``, logged at debug level): Python's own text,
    redacted, without the frames' local variables. structlog's default with rich installed
    printed every frame's locals: the bearer token in ``Transport._once``'s headers among
    them, unredacted."""
    sio.write("\n" + redact("".join(traceback.format_exception(*exc_info))).rstrip("\n"))


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (OSError, ValueError, AttributeError):
        return False


class Sinks:
    """The configured sinks: structlog's last processor and the stdlib handler's target."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    @property
    def level(self) -> int:
        return min((s.level for s in self.sinks), default=logging.INFO)

    def __call__(self, _: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        level = LEVELS.get(str(event.get("level", method)), logging.INFO)
        for s in self.sinks:
            s.emit(event, level)
        raise structlog.DropEvent

    def note(self, event: str, text: str, level: str, fields: dict[str, Any]) -> None:
        """A line for the operator: as text on a console screen, as an event elsewhere."""
        record = {
            "event": event,
            "level": level,
            "timestamp": _now(),
            "message": redact(text),
            **{k: redact_value(v) for k, v in fields.items()},
        }
        for s in self.sinks:
            if s.screen and not s.json:
                s.write(redact(text))
            else:
                s.emit(record, logging.CRITICAL)  # a note is always written


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


class _ToSinks(logging.Handler):
    """Foreign libraries logging through stdlib (aiohttp, msal, urllib3): redacted, and
    rendered like the engine's own events (JSON on a JSON stream)."""

    def __init__(self, sinks: Sinks) -> None:
        super().__init__()
        self.sinks = sinks

    def emit(self, record: logging.LogRecord) -> None:
        event: dict[str, Any] = {
            "event": redact(record.getMessage()),
            "logger": record.name,
            "level": record.levelname.lower(),
            "timestamp": _now(),
        }
        if record.exc_info:
            event["exception"] = redact(logging.Formatter().formatException(record.exc_info))
        for s in self.sinks.sinks:
            s.emit(event, record.levelno)


_active = Sinks([])


def configure(
    fmt: str = "auto",
    level: str = "info",
    stream: TextIO | None = None,
    file: Path | None = None,
) -> None:
    """Log lines at ``level`` in ``fmt`` to ``stream`` (stderr at the time of each write),
    or to ``file`` when given (appended; its format ``auto`` is JSON), the screen then
    keeping warnings and errors in console form."""
    global _active
    screen: Any = stream or _CurrentStderr()
    wanted = LEVELS.get(level, logging.INFO)
    if file is not None:
        fh = file.open("a", encoding="utf-8")  # kept open while the logs go there
        sinks = [
            Sink(fh, "json" if fmt == "auto" else fmt, wanted, screen=False),
            Sink(screen, "console", max(wanted, logging.WARNING), screen=True),
        ]
    else:
        if fmt == "auto":
            fmt = "console" if _isatty(screen) else "json"
        sinks = [Sink(screen, fmt, wanted, screen=True)]
    for old in _active.sinks:
        if not old.screen and old.stream not in (sys.stdout, sys.stderr):
            old.stream.close()
    _active = Sinks(sinks)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_event,
            _active,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_active.level),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    root.handlers = [_ToSinks(_active)]
    root.setLevel(logging.WARNING if level != "debug" else logging.DEBUG)


def note(text: str, event: str = "note", level: str = "info", **fields: Any) -> None:
    """A line for the operator (``say``): plain text on a console stderr; an event with
    ``message`` and ``fields`` on a JSON one and in a log file. Before the logs are
    configured (a command that failed early), plain text on stderr."""
    if not _active.sinks:
        Sink(_CurrentStderr(), "console", logging.DEBUG, screen=True).write(redact(text))
        return
    _active.note(event, text, level, fields)


def plain_on_screen() -> bool:
    """Whether a ``note`` reaches the operator's screen (stderr) as plain text: false when
    stderr carries JSON lines (off a terminal, or ``--log-format json``)."""
    return not _active.sinks or any(s.screen and not s.json for s in _active.sinks)
