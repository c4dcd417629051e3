"""One place that turns any failure into what the operator is told: an exit code, a message
that says what is wrong and what to do, and whether it stops one pair or the whole job.

anyio task groups wrap what their tasks raise in ``ExceptionGroup``s; everything here looks
through them, so a failure deep in a pipeline stage is classified like one raised directly.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import (
    AuthFailed,
    ConfigError,
    CopyEngineError,
    Fatal,
    ForeignState,
    JobLocked,
    PermissionDenied,
    ServiceError,
    StateError,
    Throttled,
    Transient,
    Unreachable,
)
from .exitcodes import ExitCode
from .secrets import redact


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (nested) exception groups, or ``exc`` itself."""
    if isinstance(exc, BaseExceptionGroup):
        for e in exc.exceptions:
            yield from leaves(e)
    else:
        yield exc


@dataclass(frozen=True)
class Verdict:
    code: ExitCode
    error_type: str  # a stable name for reports: AuthFailed, ServiceUnreachable, StateError…
    message: str
    job_wide: bool  # stops the whole job (the state store is gone), not one pair


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def classify(exc: BaseException) -> Verdict:
    """The verdict on ``exc`` (or the most serious failure in an exception group)."""
    found = list(leaves(exc))
    # Most serious first: the operator's stop, then a job-wide failure, then a pair's.
    for e in found:
        if isinstance(e, KeyboardInterrupt):
            return Verdict(ExitCode.INTERRUPTED, "Interrupted", "interrupted", True)
    for e in found:
        if isinstance(e, JobLocked):
            return Verdict(ExitCode.LOCKED, "JobLocked", str(e), True)
        if isinstance(e, ForeignState):
            return Verdict(ExitCode.CONFIG, "ForeignState", str(e), True)
        if isinstance(e, ConfigError):
            return Verdict(ExitCode.CONFIG, "ConfigError", f"configuration: {e}", True)
    for e in found:
        if isinstance(e, StateError):
            return Verdict(ExitCode.FATAL, "StateError", str(e), True)
        if _disk_full(e):
            return Verdict(
                ExitCode.FATAL,
                "DiskFull",
                f"disk full: {redact(str(e))}; free some space and run again (nothing is lost)",
                True,
            )
    for e in found:
        if isinstance(e, AuthFailed | PermissionDenied):
            return Verdict(ExitCode.AUTH, type(e).__name__, str(e), False)
    for e in found:
        if isinstance(e, Fatal):
            return Verdict(ExitCode.FATAL, type(e).__name__, str(e), False)
    for e in found:
        if isinstance(e, Unreachable):
            return Verdict(
                ExitCode.FATAL,
                "ServiceUnreachable",
                f"the service could not be reached ({e.message}); "
                f"{e.advice or 'run again when it answers'}",
                False,
            )
        if isinstance(e, Transient) and e.status is None:
            return Verdict(
                ExitCode.FATAL,
                "ServiceUnreachable",
                f"the service could not be reached ({e.message}); run again when it answers",
                False,
            )
        if isinstance(e, Transient | Throttled):
            return Verdict(
                ExitCode.FATAL,
                "ServiceFailed",
                f"the service kept failing after every retry ({e}); run again later",
                False,
            )
        if isinstance(e, ServiceError):  # an answer that is never retried (a 404, a 410...)
            return Verdict(
                ExitCode.FATAL,
                "ServiceFailed",
                f"the service answered with an error the pair cannot go past ({e}); "
                "run again later",
                False,
            )
    for e in found:
        if isinstance(e, CopyEngineError):  # e.g. the embedded emulator would not start
            return Verdict(ExitCode.FATAL, type(e).__name__, str(e), True)
    for e in found:
        if isinstance(e, OSError):
            return Verdict(ExitCode.FATAL, "OSError", redact(f"{type(e).__name__}: {e}"), False)
    e = found[0] if found else exc
    return Verdict(
        ExitCode.FATAL,
        "InternalError",
        redact(f"internal error {type(e).__name__}: {e} (run with --debug for the traceback)"),
        False,
    )
