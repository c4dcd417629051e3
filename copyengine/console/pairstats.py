"""``status --pair UPN``: one pair's statistics across passes, as Exchange's
Get-MoveRequestStatistics shows a move request's: per pass its number and kind, status,
items copied, skipped, failed and unknown, bytes, start, duration and the time Exchange's
budgets held it back; the totals; the items that failed with their reasons. A table where
there is room, a block per pass on an 80-column terminal (``fit``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.text import Text

from . import words
from .fit import Fitted, console_for
from .text import budget_words

COLUMNS = (
    "pass",
    "status",
    "started",
    "copied",
    "skipped",
    "failed",
    "unknown",
    "size",
    "took",
    "throttled",
)


def _numbers(d: dict[str, Any]) -> tuple[str, ...]:
    """The count cells of a pass's line or of the totals."""
    return (
        *(f"{d[k]:,}" for k in ("copied", "skipped", "failed", "unknown")),
        words.size(d["copied_bytes"]),
        words.duration(d["duration_s"]),
        words.duration(d["throttle_wait_s"]),
    )


def pair_table(entry: dict[str, Any]) -> Fitted:
    """The pair's passes, then their totals."""
    t = Fitted(
        COLUMNS,
        names=1,
        title=f"{entry['source']} -> {entry['target']}: {entry['status']}",
        caption="throttled: time Exchange's budgets (429s, the pacer) held the pair back",
    )
    for line in entry["passes"]:
        pass_cell = f"{line['pass']} {line['kind']}"
        t.add_row(pass_cell, str(line["status"]), words.when(line["started"]), *_numbers(line))
    if entry["passes"]:
        tot = entry["totals"]
        t.add_section()
        t.add_row(words.plural(tot["passes"], "pass", "passes"), "", "", *_numbers(tot))
    return t


def detail_lines(entry: dict[str, Any]) -> Iterator[str]:
    """What the table does not hold: the pair's error, each pass's failures with their
    reasons, a cutover's sign-off, what the item records say now, and the hints of its
    latest pass (``[limits]`` above what the service gave it)."""
    if not entry["passes"]:
        yield "no pass has recorded statistics for this pair yet"
    if entry["error"]:
        yield f"error: {entry['error']}"
    for line in entry["passes"]:
        head = f"pass {line['pass']}"
        if line["error"]:
            yield f"{head}: stopped: {line['error']}"
        so = line.get("sign_off")
        if so is not None:
            _, said = words.sign_off(so)
            yield (
                f"{head}: sign-off: {said} ({so.get('in_target', 0):,} of "
                f"{so.get('selected', 0):,} selected items in the target)"
            )
        for f in line["failures"]:
            reason = f.get("reason") or "no reason recorded"
            yield f"{head}: {f.get('outcome', 'failed')} {f.get('folder')} {f.get('id')}: {reason}"
    now = entry["now"]
    if now:
        shown = ", ".join(f"{k} {v:,}" for k, v in now.items())
        yield f"now in the state: {shown}"
    if (said := budget_words(entry)) != "":
        yield said.removeprefix("; ")
    for h in entry.get("hints") or ():
        yield f"hint: {h}"


def print_pair_statistics(entries: list[dict[str, Any]], stream: Any = None) -> None:
    console = console_for(stream)
    for i, entry in enumerate(entries):
        if i:
            console.print()
        console.print(pair_table(entry))
        for line in detail_lines(entry):
            console.print(Text(line, overflow="fold"))
