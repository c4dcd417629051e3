"""The cutover's sign-off as people read it: on the screen after ``run --cutover``, in the
outcome line, and in the HTML report (what keeps a pair's sign-off from being complete)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from ..verify.signoff import pending_words
from .fit import Fitted, console_for

SIGN_OFF_LISTS: tuple[tuple[str, str, str], ...] = (
    # (count key, list key, what it means)
    ("failed", "failed_items", "failed (the reason the state recorded)"),
    ("unaccounted", "unaccounted_items", "missing from the target"),
    ("stale", "stale_items", "copies older than the source (or edited in the target)"),
    ("duplicated", "duplicated_items", "second copies"),
    ("misplaced", "misplaced_items", "copies in another folder than their source's"),
    ("missing_folders", "missing_folder_list", "selected source folders with no target folder"),
    ("leftover_folders", "leftover_folder_list", "leftover target folders"),
    (
        "moved_folders",
        "moved_folder_list",
        "target folders renamed or moved in the target (not at their source's path)",
    ),
    (
        "pending_deletions",
        "pending_deletion_items",
        "copies of items deleted at the source still in the target (the next run --full "
        "removes them)",
    ),
    (
        "kept_unchecked",
        "kept_unchecked_items",
        "kept copies of items left out not checked (their items not asked about in time: "
        "the next sign-off asks)",
    ),
)


def sign_off_problems(entry: dict[str, Any], limit: int = 20) -> list[tuple[str, list[str]]]:
    """What keeps a pair's sign-off from being complete: (heading, up to ``limit`` lines of
    ids and paths) per kind of problem found."""
    out: list[tuple[str, list[str]]] = []
    for count, rows, what in SIGN_OFF_LISTS:
        n = int(entry.get(count) or 0)
        if not n:
            continue
        lines = []
        for r in (entry.get(rows) or [])[:limit]:
            where = r.get("path") or r.get("folder") or ""
            ident = r.get("id", "")
            extra = r.get("reason") or r.get("state") or r.get("why") or ""
            if r.get("found_in"):
                extra = f"found in {r['found_in']}"
            if r.get("target_path") and not ident:
                extra = f"-> {r['target_path']}"
            if r.get("expected") and r.get("found") and not ident:
                extra = f"found at {r['found']}, belongs at {r['expected']}"
            lines.append(" ".join(x for x in (where, ident, extra and f"({extra})") if x))
        if n > len(lines):
            lines.append(f"... and {n - len(lines):,} more (see the JSON report)")
        out.append((f"{n:,} {what}", lines))
    return out


def sign_off_shortfall(sign_off: dict[str, Any]) -> str:
    """What an incomplete sign-off lacks, in a few words (the outcome line)."""
    pairs = sign_off.get("pairs", [])
    said = []
    for key, what in (
        ("unaccounted", "source items missing"),
        ("failed", "failed"),
        ("stale", "stale copies"),
        ("duplicated", "duplicated"),
        ("misplaced", "misplaced"),
        ("missing_folders", "folders missing"),
        ("leftover_folders", "leftover folders"),
        ("moved_folders", "folders renamed or moved in the target"),
        ("pending_deletions", "deletions pending"),
        ("kept_unchecked", "kept copies not checked"),
    ):
        n = sum(int(p.get(key) or 0) for p in pairs)
        if n and key == "pending_deletions":
            rows = [r for p in pairs for r in p.get("pending_deletion_items") or []]
            said.append(pending_words(rows, n))
        elif n:
            said.append(f"{n:,} {what}")
    errors = sum(1 for p in pairs if p.get("error"))
    if errors:
        said.append(f"{errors} pairs not checked")
    return ", ".join(said) or "see the pairs"


SIGN_OFF_COLUMNS = (
    "pair",
    "selected",
    "in target",
    "skipped",
    "failed",
    "unaccounted",
    "stale",
    "dup",
    "misplaced",
    "leftover folders",
    "extra",
    "kept",
    "complete",
)


def print_sign_off(sign_off: dict[str, Any], stream: Any = None) -> None:
    """``run --cutover``: per pair, where every selected source item is, and what keeps the
    sign-off from being complete (ids and paths, a few of each kind)."""
    console = console_for(stream)
    t = Fitted(
        SIGN_OFF_COLUMNS,
        title=f"sign-off: changes captured until {sign_off['changes_captured_until']}",
    )
    for p in sign_off["pairs"]:
        t.add_row(
            f"{p['source']} → {p['target']}" + (" (+archive)" if p.get("archive") else ""),
            f"{p['selected']:,}",
            f"{p['in_target']:,}",
            f"{sum(p['skipped'].values()):,}",
            f"{p['failed']:,}",
            f"{p['unaccounted']:,}",
            f"{p.get('stale', 0):,}",
            f"{p.get('duplicated', 0):,}",
            f"{p.get('misplaced', 0):,}",
            f"{p.get('leftover_folders', 0):,}",
            f"{p['extra_in_target']:,}",
            f"{p.get('kept', 0):,}",
            "yes" if p["complete"] else f"[red]no[/] {escape(p['error'] or '')}",
        )
    console.print(t)
    for p in sign_off["pairs"]:
        problems = sign_off_problems(p)
        if not problems:
            continue
        console.print(f"[b]{p['source']} → {p['target']}[/]: not complete")
        for heading, lines in problems:
            console.print(f"  {heading}:", highlight=False)
            for line in lines:
                console.print(f"    {line}", highlight=False, markup=False)
