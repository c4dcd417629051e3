"""Accounting apart from logging: per pair and per folder counters from which progress, the
JSON report, the summary table and the exit code are all computed."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exitcodes import ExitCode

MAX_FAILURES_LISTED = 1000


@dataclass
class FolderStats:
    source_path: str
    target_path: str = ""
    source_items: int = 0
    source_bytes: int = 0
    copied: int = 0
    copied_bytes: int = 0
    already_present: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_items: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_path": self.source_path,
            "target_path": self.target_path,
            "source_items": self.source_items,
            "source_bytes": self.source_bytes,
            "copied": self.copied,
            "copied_bytes": self.copied_bytes,
            "already_present": self.already_present,
            "skipped": dict(self.skipped),
            "skipped_items": self.skipped_items[:MAX_FAILURES_LISTED],
            "failed": len(self.failed),
            "failures": self.failed[:MAX_FAILURES_LISTED],
        }


@dataclass
class PairStats:
    source: str
    target: str
    status: str = "pending"  # pending | running | done | failed | interrupted
    error: str | None = None
    error_code: str | None = None
    started: float | None = None
    finished: float | None = None
    folders: dict[str, FolderStats] = field(default_factory=dict)
    throttled: int = 0
    throttle_wait_s: float = 0.0
    requests: int = 0
    enumerated_all: bool = False

    def folder(self, path: str) -> FolderStats:
        fs = self.folders.get(path)
        if fs is None:
            fs = self.folders[path] = FolderStats(path)
        return fs

    def total(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.folders.values())

    @property
    def failed(self) -> int:
        return sum(len(f.failed) for f in self.folders.values())

    @property
    def skipped(self) -> int:
        return sum(sum(f.skipped.values()) for f in self.folders.values())

    @property
    def done_items(self) -> int:
        return self.total("copied") + self.total("already_present") + self.skipped + self.failed

    def duration(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "status": self.status,
            "error": self.error,
            "error_code": self.error_code,
            "source_items": self.total("source_items"),
            "source_bytes": self.total("source_bytes"),
            "copied": self.total("copied"),
            "copied_bytes": self.total("copied_bytes"),
            "already_present": self.total("already_present"),
            "skipped": self.skipped,
            "failed": self.failed,
            "throttled_429": self.throttled,
            "throttle_wait_s": round(self.throttle_wait_s, 3),
            "requests": self.requests,
            "duration_s": round(self.duration(), 3),
            "folders": [f.as_dict() for f in self.folders.values()],
        }


@dataclass
class JobStats:
    pairs: dict[str, PairStats] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    finished: float | None = None
    interrupted: bool = False
    fatal: str | None = None

    def pair(self, key: str, source: str, target: str) -> PairStats:
        p = self.pairs.get(key)
        if p is None:
            p = self.pairs[key] = PairStats(source, target)
        return p

    def total(self, attr: str) -> int:
        return sum(p.total(attr) for p in self.pairs.values())

    def duration(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def exit_code(self) -> ExitCode:
        if self.fatal:
            return ExitCode.FATAL
        if self.interrupted:
            return ExitCode.INTERRUPTED
        auth = [
            p
            for p in self.pairs.values()
            if p.status == "failed" and p.error_code in ("AuthFailed", "PermissionDenied")
        ]
        if auth and len(auth) == len(self.pairs):
            return ExitCode.AUTH
        if any(p.status == "failed" for p in self.pairs.values()):
            return (
                ExitCode.FATAL
                if not any(p.status == "done" for p in self.pairs.values())
                else ExitCode.ITEMS_FAILED
            )
        if any(p.failed for p in self.pairs.values()):
            return ExitCode.ITEMS_FAILED
        return ExitCode.OK

    def as_dict(self) -> dict[str, Any]:
        d = self.duration()
        copied_bytes = self.total("copied_bytes")
        copied = self.total("copied")
        return {
            "started": self.started_wall,
            "duration_s": round(d, 3),
            "exit_code": int(self.exit_code()),
            "interrupted": self.interrupted,
            "fatal": self.fatal,
            "totals": {
                "pairs": len(self.pairs),
                "pairs_failed": sum(p.status == "failed" for p in self.pairs.values()),
                "source_items": self.total("source_items"),
                "source_bytes": self.total("source_bytes"),
                "copied": copied,
                "copied_bytes": copied_bytes,
                "already_present": self.total("already_present"),
                "skipped": sum(p.skipped for p in self.pairs.values()),
                "failed": sum(p.failed for p in self.pairs.values()),
                "throttled_429": sum(p.throttled for p in self.pairs.values()),
                "throttle_wait_s": round(sum(p.throttle_wait_s for p in self.pairs.values()), 3),
                "requests": sum(p.requests for p in self.pairs.values()),
                "items_per_s": round(copied / d, 1) if d > 0 else 0.0,
                "mb_per_s": round(copied_bytes / d / 1e6, 2) if d > 0 else 0.0,
            },
            "pairs": [p.as_dict() for p in self.pairs.values()],
        }


def write_report(path: Path, stats: JobStats) -> None:
    """Written to a temporary file and renamed: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(stats.as_dict(), fh, indent=2, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
