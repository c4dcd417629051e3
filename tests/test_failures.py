"""``failures.classify``, the one door from a failure to an exit code: a table of exceptions
(alone, and nested in the exception groups task groups raise) and the verdict on each."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from click.testing import CliRunner

from copyengine.cli import main
from copyengine.errors import (
    AuthFailed,
    BadItemLimit,
    ConfigError,
    CopyEngineError,
    ForeignState,
    JobLocked,
    MailboxNotFound,
    NotFound,
    PermissionDenied,
    StateError,
    Throttled,
    Transient,
)
from copyengine.exitcodes import ExitCode
from copyengine.failures import classify, leaves
from tests.test_config import GOOD

TOKEN_URL = "https://x.example/import?authtoken=SECRETTOKEN"

# (what was raised, exit code, error_type, job_wide, a fragment of the message)
CASES: list[tuple[str, BaseException, ExitCode, str, bool, str]] = [
    ("Ctrl-C", KeyboardInterrupt(), ExitCode.INTERRUPTED, "Interrupted", True, "interrupted"),
    ("lock held", JobLocked("held by pid 7"), ExitCode.LOCKED, "JobLocked", True, "pid 7"),
    ("foreign", ForeignState("another job"), ExitCode.CONFIG, "ForeignState", True, "another"),
    (
        "config",
        ConfigError("job.state", "must be a file path"),
        ExitCode.CONFIG,
        "ConfigError",
        True,
        "configuration: job.state: must be a file path",
    ),
    ("state", StateError("database is corrupt"), ExitCode.FATAL, "StateError", True, "corrupt"),
    (
        "disk full",
        OSError(errno.ENOSPC, "No space left on device"),
        ExitCode.FATAL,
        "DiskFull",
        True,
        "free some space and run again",
    ),
    (
        "quota",
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        ExitCode.FATAL,
        "DiskFull",
        True,
        "disk full",
    ),
    ("auth", AuthFailed("AADSTS7000215"), ExitCode.AUTH, "AuthFailed", False, "AADSTS7000215"),
    (
        "permission",
        PermissionDenied("ErrorAccessDenied", status=403),
        ExitCode.AUTH,
        "PermissionDenied",
        False,
        "status=403",
    ),
    (
        "no mailbox",
        MailboxNotFound("no such user"),
        ExitCode.FATAL,
        "MailboxNotFound",
        False,
        "no such user",
    ),
    ("bad items", BadItemLimit("21 failed"), ExitCode.FATAL, "BadItemLimit", False, "21"),
    (
        "unreachable",
        Transient("connection refused"),
        ExitCode.FATAL,
        "ServiceUnreachable",
        False,
        "could not be reached (connection refused)",
    ),
    (
        "5xx",
        Transient("service unavailable", status=503),
        ExitCode.FATAL,
        "ServiceFailed",
        False,
        "kept failing after every retry",
    ),
    (
        "throttled",
        Throttled("too many", retry_after=5.0, reason="RequestRate", status=429),
        ExitCode.FATAL,
        "ServiceFailed",
        False,
        "status=429",
    ),
    (
        # a 404 is never retried: not "after every retry"
        "not found",
        NotFound("itemDelta folder gone", status=404),
        ExitCode.FATAL,
        "ServiceFailed",
        False,
        "answered with an error the pair cannot go past (itemDelta folder gone",
    ),
    (
        "engine",
        CopyEngineError("the embedded emulator: would not start"),
        ExitCode.FATAL,
        "CopyEngineError",
        True,
        "the embedded emulator: would not start",
    ),
    (
        "os",
        PermissionError(errno.EACCES, "Permission denied", "/report.json"),
        ExitCode.FATAL,
        "OSError",
        False,
        "PermissionError: [Errno 13] Permission denied",
    ),
    (
        "os secret",
        ConnectionResetError(f"reset while sending {TOKEN_URL}"),
        ExitCode.FATAL,
        "OSError",
        False,
        "authtoken=<redacted>",
    ),
    (
        "bug",
        ValueError("unexpected"),
        ExitCode.FATAL,
        "InternalError",
        False,
        "internal error ValueError: unexpected (run with --debug",
    ),
    (
        "bug secret",
        KeyError(TOKEN_URL),
        ExitCode.FATAL,
        "InternalError",
        False,
        "authtoken=<redacted>",
    ),
    # In exception groups: the most serious leaf decides, however deep.
    (
        "group: job-wide outranks a bug",
        ExceptionGroup("tg", [ValueError("x"), ExceptionGroup("inner", [StateError("gone")])]),
        ExitCode.FATAL,
        "StateError",
        True,
        "gone",
    ),
    (
        "group: lock outranks auth",
        ExceptionGroup("tg", [AuthFailed("no"), JobLocked("held")]),
        ExitCode.LOCKED,
        "JobLocked",
        True,
        "held",
    ),
    (
        "group: config outranks state",
        ExceptionGroup("tg", [StateError("gone"), ConfigError("limits", "bad")]),
        ExitCode.CONFIG,
        "ConfigError",
        True,
        "limits: bad",
    ),
    (
        "group: auth outranks the service",
        ExceptionGroup("tg", [Transient("refused"), PermissionDenied("denied")]),
        ExitCode.AUTH,
        "PermissionDenied",
        False,
        "denied",
    ),
    (
        "group: Ctrl-C outranks everything",
        BaseExceptionGroup("tg", [JobLocked("held"), KeyboardInterrupt()]),
        ExitCode.INTERRUPTED,
        "Interrupted",
        True,
        "interrupted",
    ),
    (
        "group: a bug alone",
        ExceptionGroup("tg", [RuntimeError("deep")]),
        ExitCode.FATAL,
        "InternalError",
        False,
        "RuntimeError: deep",
    ),
]


@pytest.mark.parametrize(
    ("exc", "code", "error_type", "job_wide", "fragment"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_classify(
    exc: BaseException, code: ExitCode, error_type: str, job_wide: bool, fragment: str
) -> None:
    verdict = classify(exc)
    assert (verdict.code, verdict.error_type, verdict.job_wide) == (code, error_type, job_wide)
    assert fragment in verdict.message, verdict.message
    assert "SECRETTOKEN" not in verdict.message


def test_leaves_looks_through_nested_groups() -> None:
    a, b, c = ValueError("a"), StateError("b"), KeyError("c")
    nested = ExceptionGroup("outer", [a, ExceptionGroup("inner", [b, ExceptionGroup("x", [c])])])
    assert list(leaves(nested)) == [a, b, c]
    assert list(leaves(a)) == [a]


@pytest.mark.parametrize(
    ("args", "state", "code", "said"),
    [
        (["status"], b"not a database at all, " * 100, ExitCode.FATAL, "error: "),
        (["report"], None, ExitCode.CONFIG, "error: configuration: "),
        (["run", "--full", "--cutover"], None, ExitCode.USAGE, "separate kinds of pass"),
        (["run", "--pair", "z@contoso.example"], None, ExitCode.CONFIG, "--pair z@contoso"),
        (["verify", "--content"], None, ExitCode.CONFIG, "--content: needs the job's state"),
        (["submit"], None, ExitCode.CONFIG, 'db" (docs/several-hosts.md)'),
    ],
    ids=[
        "unreadable state",
        "report without state",
        "two kinds",
        "unknown pair",
        "content",
        "submit",
    ],
)
@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_the_command_line_leaves_by_the_verdict(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    state: bytes | None,
    code: ExitCode,
    said: str,
    debug: bool,
) -> None:
    """Every command's failure is classified: its message, its exit code, and a traceback
    only with --debug."""
    monkeypatch.setenv("CE_TEST_SECRET", "s3cret-value")
    job = tmp_path / "job.toml"
    job.write_text(GOOD, encoding="utf-8")
    (tmp_path / "secret.txt").write_text("other-secret\n")
    if state is not None:
        (tmp_path / ".copyengine").mkdir()
        (tmp_path / ".copyengine" / "job.state.sqlite").write_bytes(state)
    command = [args[0], str(job), *args[1:]] + (["--debug"] if debug else [])
    result = CliRunner().invoke(main, command)
    assert result.exit_code == code, result.output
    assert said in result.output
    # a bad command line is click's usage error: no traceback to ask for
    assert ("Traceback" in result.output) is (debug and code is not ExitCode.USAGE)
    assert "s3cret-value" not in result.output
