"""Paths written in a job file, as the host that runs the job reads them.

A job file is edited on the jump host that runs it, often Windows: ``C:\\migr\\state.sqlite``
and ``lists\\wave1.csv`` are paths there, with the host's own rules (pathlib's flavour of
it, so ``\\`` separates on Windows and ``/`` everywhere). A relative path is taken from the
job file's folder, never from the working directory. A Windows drive or UNC path on a host
that is not Windows is refused by name rather than read as a file called ``C:\\...`` in the
job's folder.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath, PureWindowsPath
from typing import TypeVar

from .errors import ConfigError

P = TypeVar("P", bound=PurePath)

_WINDOWS_ONLY = re.compile(r"^(?:[A-Za-z]:|\\\\)")  # C:… or \\server\share…


def job_path(value: str, where: str, base: P) -> P:
    """``value`` from the job file at key ``where``, as a path of ``base``'s flavour: ``~``
    expanded (on a real host), and relative to ``base`` (the job file's folder) unless it is
    absolute there."""
    if not isinstance(base, PureWindowsPath) and _WINDOWS_ONLY.match(value):
        raise ConfigError(
            where,
            f"{value} is a Windows path and this host is not Windows: give a path of this "
            "host (a relative one with / works on both)",
        )
    p = type(base)(value)
    if isinstance(p, Path):
        p = p.expanduser()
    return p if p.is_absolute() else base / p  # type: ignore[return-value]


def not_found(p: PurePath, value: str) -> str:
    """What to say of ``value`` (read as ``p``) when no file is there."""
    if isinstance(p, Path) and p.is_dir():
        return f"{p} is a folder, not a file: name the file in it"
    if "\\" in value and not isinstance(p, PureWindowsPath):
        return f"file {p} does not exist (\\ separates folders only on Windows: use /)"
    return f"file {p} does not exist"
