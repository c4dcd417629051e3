"""The customer's report in plain words: statuses, pass kinds, limits, item types, sizes and
dates as a reader outside engineering says them. Pure functions of the report's values;
each status comes with the colour class it is shown in (``ok``, ``warn``, ``bad``,
``muted``), so that the word and the colour always agree."""

from __future__ import annotations

import math
from typing import Any

KINDS = {
    "first": "first copy",
    "delta": "incremental pass",
    "full": "full re-check",
    "retry": "retry of failed items",
    "cutover": "cutover (final pass)",
}

# a pass's recorded status (the run's exit code by name, or "running") in words
PASS_RESULTS = {
    "ok": ("ok", "Completed"),
    # exit 1: failed or unknown items, or a pair that failed with none (a mailbox not found)
    "items_failed": ("warn", "Completed with problems: failed items or mailbox pairs"),
    "interrupted": ("warn", "Interrupted: run again to finish"),
    "running": ("warn", "Running, or ended without a word (a process was killed)"),
    "fatal": ("bad", "Stopped: the job could not go on"),
    # the copy ended (its changes are what it did); its report could not be written then
    "report_unwritten": ("warn", "Ended; its report could not be written then (exit 5)"),
    "auth": ("bad", "Stopped: sign-in or permission refused"),
    "config": ("bad", "Not run: configuration error"),
    "locked": ("bad", "Not run: another run was in progress"),
}

# a run's exit code in words (the page's verdict)
VERDICTS = {
    0: ("ok", "Completed: every selected item is in the target"),
    1: ("warn", "Completed with problems"),
    3: ("bad", "Not run: the job's configuration has an error"),
    4: ("bad", "Stopped: sign-in or permission refused"),
    5: ("bad", "Stopped: the job could not go on"),
    7: ("bad", "Not run: another run of this job was in progress"),
    8: ("warn", "Paused by the operator's controls: run again to continue"),
    130: ("warn", "Interrupted: run again to finish"),
}

SKIP_REASONS = {
    "larger than max_size": "larger than the size limit",
    "created outside the date range": "created outside the selected dates",
    "item type not selected": "item type not selected",
    "deleted at source during the copy": "deleted at the source during the copy",
}

# Exchange message classes in words (the most specific prefix first)
ITEM_TYPES = (
    ("IPM.Schedule.Meeting.Request", "Meeting request"),
    ("IPM.Schedule.Meeting.Resp", "Meeting response"),
    ("IPM.Schedule.Meeting.Canceled", "Meeting cancellation"),
    ("IPM.Note.SMIME", "Email (signed or encrypted)"),
    ("IPM.Note", "Email"),
    ("IPM.Appointment", "Calendar item"),
    ("IPM.Contact", "Contact"),
    ("IPM.DistList", "Contact group"),
    ("IPM.Task", "Task"),
    ("IPM.StickyNote", "Note"),
    ("IPM.Activity", "Journal entry"),
    ("IPM.Post", "Post"),
)


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def pass_kind(kind: Any) -> str:
    return KINDS.get(str(kind), str(kind))


def pass_result(status: Any) -> tuple[str, str]:
    s = str(status or "running")
    return PASS_RESULTS.get(s, ("warn", s.replace("_", " ").capitalize()))


def skip_reason(reason: str) -> str:
    return SKIP_REASONS.get(reason, reason)


def item_type(cls: Any) -> str:
    """``IPM.Note`` -> ``Email``; an unknown class as it is; none -> ``-``."""
    s = str(cls or "")
    for prefix, words in ITEM_TYPES:
        if s == prefix or s.startswith(prefix + "."):
            return words
    return s or "-"


def _ladder(v: float, steps: tuple[tuple[float, float, str, str], ...]) -> str:
    """``v`` in the first unit it is below: steps of (below, divisor, format, unit), the
    last one's ``below`` infinite."""
    _, div, fmt, unit = next(step for step in steps if v < step[0])
    return f"{v / div:{fmt}} {unit}"


KIB = 1024.0  # sizes as Outlook and Exchange show them (and every MB here: 1 MB = 1 MiB)
SIZES = (
    (KIB, 1.0, ",.0f", "bytes"),
    (KIB**2, KIB, ",.0f", "KB"),
    (KIB**3, KIB**2, ",.1f", "MB"),
    (math.inf, KIB**3, ",.2f", "GB"),
)
DURATIONS = (
    (90.0, 1.0, ",.0f", "s"),
    (5400.0, 60.0, ",.0f", "min"),
    (math.inf, 3600.0, ",.1f", "h"),
)


def size(n: Any) -> str:
    """Bytes in the units a reader expects (of 1,024): ``512 bytes``, ``34 KB``, ``1.2 MB``."""
    try:
        return _ladder(int(n), SIZES)
    except (TypeError, ValueError):
        return "-"


def when(iso: Any) -> str:
    """``2026-12-04T17:01:02Z`` -> ``2026-12-04 17:01 UTC``; none -> ``-``."""
    s = str(iso or "")
    if len(s) < 16 or s[10] != "T":
        return s or "-"
    return f"{s[:10]} {s[11:16]} UTC" if s.endswith(("Z", "+00:00")) else f"{s[:10]} {s[11:16]}"


def duration(seconds: Any) -> str:
    return _ladder(float(seconds or 0), DURATIONS)


def bad_item_limit(limit: Any) -> str:
    if limit is None:
        return "not set (a mailbox pair goes on whatever the number of failed items)"
    return f"a mailbox pair stops once more than {plural(int(limit), 'item')} failed"


def pair_status(row: dict[str, Any]) -> tuple[str, str]:
    """A pair's state in words and colour: ``Completed`` only when nothing is left."""
    status = str(row.get("status") or "pending")
    failed, waiting = int(row.get("failed") or 0), int(row.get("waiting") or 0)
    if status == "failed":
        return "bad", "Stopped (see why below)"
    if status == "interrupted":
        return "warn", "Interrupted: run again to finish"
    if status == "running":
        return "warn", "Running"
    if status == "suspended":
        return "warn", "Suspended by the operator: resume continues it"
    if status == "paused":
        return "warn", "Paused at the run's cap: run again to continue"
    if status != "done":
        return "muted", "Not started"
    if failed:
        return "warn", f"Completed with {plural(failed, 'failed item')}"
    if waiting:
        return "warn", f"Completed; {plural(waiting, 'item')} to confirm in the next pass"
    return "ok", "Completed"


def sign_off(entry: dict[str, Any] | None) -> tuple[str, str]:
    if entry is None:
        return "muted", "-"
    if entry.get("error"):
        return "bad", "Could not be checked"
    return ("ok", "Signed off") if entry.get("complete") else ("bad", "Not complete")
