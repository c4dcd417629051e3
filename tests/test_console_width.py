"""Every table people read stays whole: at 80 columns (a block per pair where the table does not
fit) and in a file or a pipe (as wide as the table needs), no cell is cut short."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console

from copyengine.config import MB
from copyengine.console.fit import Fitted, console_for
from copyengine.console.live import live_table, summary_table
from copyengine.console.signoff import print_sign_off
from copyengine.console.text import print_plan, status_lines, verify_lines
from copyengine.forecast import FolderPlanned, PairPlanned
from copyengine.report import JobStats, PairStatus
from copyengine.verify import PairCheck

SRC = "firstname.lastname-contractor@subsidiary.contoso-holdings.example"
DST = "firstname.lastname-contractor@subsidiary.fabrikam-holdings.example"
# longer than a whole line of 80 columns: folded, never cut
LONG = "a-very-long-shared-mailbox-name-for-the-finance-department@emea.contoso-holdings.example"
PAIRS = [(SRC, DST), (LONG, "finance@fabrikam.example")]
COUNTS = ["1,234,567", "987,654", "12,345", "4,321"]


def _stats(live: bool = False) -> JobStats:
    """Two pairs with long UPNs and large counts; at the end (not ``live``) one has failed."""
    stats = JobStats()
    for i, (s, t) in enumerate(PAIRS):
        p = stats.pair(f"{s}->{t}", s, t)
        p.status = PairStatus.RUNNING if live or i == 0 else PairStatus.FAILED
        p.error_code = None if live or i == 0 else "MailboxNotFound"
        f = p.folder("/Inbox/Projects/2026 budget review", ("Inbox",))
        f.source_items, f.copied, f.already_present = 1_234_567, 987_654, 12_345
        f.copied_bytes = 4_321 * MB  # 1 MB = 1 MiB, as shown
        f.skipped["too_large"] = 4_321
    return stats


def _plan() -> tuple[list[PairPlanned], dict[str, Any]]:
    pairs = []
    for s, t in PAIRS:
        p = PairPlanned(s, t, eta_s=123_456, binding="upload budget (150 MB / 300 s)")
        f = FolderPlanned("/Inbox/Projects/2026 budget review [final]", "/Migrated/Inbox", False)
        f.items, f.bytes, f.present = 1_234_567, 9_876_543_210, 12_345
        f.copy, f.copy_bytes = 987_654, 1
        f.skipped = {"too_large": 4_321}
        p.folders.append(f)
        pairs.append(p)
    pairs.append(PairPlanned(LONG, DST, error="MailboxNotFound: the target mailbox [x] is gone"))
    summary = {
        "copy": 1_975_308,
        "copy_bytes": 2,
        "already_present": 24_690,
        "eta_s": 123_456,
        "pairs_in_parallel": 8,
        "binding_limits": ["upload budget (150 MB / 300 s)"],
        "request_latency_ms": 35.0,
    }
    return pairs, summary


def _sign_off() -> dict[str, Any]:
    entry = {
        "selected": 1_234_567,
        "in_target": 987_654,
        "skipped": {"too_large": 4_321},
        "failed": 12_345,
        "unaccounted": 4_321,
        "stale": 0,
        "extra_in_target": 0,
        "complete": False,
        "error": None,
        "archive": True,
    }
    return {
        "changes_captured_until": "2026-01-01T00:00:00Z",
        "complete": False,
        "pairs": [{"source": s, "target": t, **entry} for s, t in PAIRS],
    }


def _render(what: Callable[[Any], None], console: Console) -> str:
    what(console)
    return str(console.file.getvalue())  # type: ignore[attr-defined]


def _suspended() -> JobStats:
    """The live run with its second pair suspended by the operator."""
    stats = _stats(live=True)
    held = stats.pairs[f"{LONG}->finance@fabrikam.example"]
    held.status, held.hold = PairStatus.SUSPENDED, "suspended by ops@host-1 at 2026-01-01T00:00:00Z"
    return stats


RENDERINGS: dict[str, Callable[[Any], None]] = {
    "live": lambda c: c.print(live_table(_stats(live=True))),
    "live, one pair suspended": lambda c: c.print(live_table(_suspended())),
    "summary": lambda c: c.print(summary_table(_stats())),
    "plan": lambda c: print_plan(*_plan(), stream=c),
    "sign-off": lambda c: print_sign_off(_sign_off(), c),
}


def _whole(text: str) -> str:
    """The text with every line break and space gone: a value wrapped or folded across
    lines is found whole in it, a value cut short is not."""
    return re.sub(r"\s+", "", text)


def _assert_nothing_cut(text: str) -> None:
    assert "…" not in text, text
    flat = _whole(text)
    for upn in (SRC, DST, LONG):
        assert upn in flat, f"{upn} cut in:\n{text}"
    for n in COUNTS:
        assert n in flat, f"{n} cut in:\n{text}"


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_every_table_is_whole_at_80_columns(name: str) -> None:
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    text = _render(RENDERINGS[name], console)
    _assert_nothing_cut(text)
    assert max(len(line) for line in text.splitlines()) <= 80, text


@pytest.mark.parametrize("columns", ["40", "80", "400"])
@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_a_file_gets_the_whole_table_whatever_the_terminal_says(
    name: str, columns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    console = console_for(io.StringIO())
    assert not console.is_terminal
    text = _render(RENDERINGS[name], console)
    _assert_nothing_cut(text)
    # a table, each pair's row on one line: a script can grep a pair's line
    assert any(SRC in line and DST in line for line in text.splitlines()), text
    assert "┃" in text or "│" in text


def test_a_narrow_screen_stacks_one_block_per_pair() -> None:
    console = Console(file=io.StringIO(), width=80, color_system=None)
    text = _render(RENDERINGS["summary"], console)
    lines = text.splitlines()
    assert "│" not in text  # no squeezed table: blocks
    head = next(i for i, line in enumerate(lines) if line.startswith(SRC))
    assert DST in lines[head] + lines[head + 1]
    assert "copied 987,654" in text and "MB copied 4,321.0" in text


def test_a_table_that_fits_is_a_table() -> None:
    t = Fitted(("pair", "copied"))
    t.add_row("a@x.example → b@y.example", "12")
    console = Console(file=io.StringIO(), width=80, color_system=None)
    text = _render(lambda c: c.print(t), console)
    assert "┃" in text and "a@x.example → b@y.example" in text


def test_status_and_verify_lines_carry_whole_upns() -> None:
    status = {
        "groups": [],
        "passes": [],
        "pairs": [
            {
                "source": s,
                "target": t,
                "status": "done",
                "items": {"done": 1_234_567},
                "folders_with_delta_link": 12,
                "folders": 12,
                "error": None,
            }
            for s, t in PAIRS
        ],
    }
    lines = status_lines(status, 0.0)
    lines += verify_lines(PairCheck(SRC, DST, error="MailboxNotFound"))[0]
    lines += verify_lines(PairCheck(LONG, DST))[0]
    text = "\n".join(lines)  # plain lines: the terminal wraps them, nothing cuts them
    assert "…" not in text and "done 1234567" in text
    for upn in (SRC, DST, LONG):
        assert upn in text


def test_the_live_table_shows_a_suspended_pair_beside_the_running_ones() -> None:
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    text = _render(RENDERINGS["live, one pair suspended"], console)
    flat = _whole(text)
    assert "pairs0/2finished·1suspended" in flat and "suspended" in text
    assert LONG in flat  # its row is there though it does not run


def test_the_summary_and_the_report_line_say_nothing_untrue_of_a_delta_or_local_job() -> None:
    """The summary's count is what the pass listed ("source items 0" after a delta pass
    read as an empty source), as the live table says it; ``report`` on a local job, which has
    no mailbox groups, said "groups 0 done of 0"."""
    from copyengine.console.live import SUMMARY_COLUMNS
    from copyengine.console.text import report_line

    assert "listed" in SUMMARY_COLUMNS and "source items" not in SUMMARY_COLUMNS
    totals = {"pairs": 4, "copied": 2822, "failed": 0, "unknown": 0, "groups": 0}
    line = report_line("r.json", {**totals, "groups_done": 0})
    assert line == "report: r.json (4 pairs: 2822 copied, 0 failed, 0 unknown)"
    shared = report_line("r.json", {**totals, "groups": 3, "groups_done": 2})
    assert shared.endswith("0 unknown; groups 2 done of 3)")


def test_plan_says_nothing_to_copy_instead_of_bound_by_a_dash() -> None:
    from copyengine.console.text import plan_line

    none = {
        "copy": 0,
        "copy_bytes": 0,
        "already_present": 0,
        "eta_s": 0.0,
        "pairs_in_parallel": 8,
        "binding_limits": [],
        "request_latency_ms": 0,
    }
    assert plan_line(none) == "0 items (0.0 MB) to copy, 0 already present: nothing to copy, no ETA"
    some = {**none, "copy": 5, "copy_bytes": 1 << 20, "eta_s": 12.0, "binding_limits": ["upload"]}
    assert plan_line(some).endswith(
        "ETA 12 s with 8 pairs at once, bound by upload (requests took 0 ms)"
    )


def test_the_summary_says_why_each_failed_pair_failed() -> None:
    """The table's status names the error's kind alone (``failed: MailboxNotFound``: which
    mailbox, which side?); under it the first pairs' messages, one line each, then how
    many more (an operator's run with an unknown target said only the kind)."""
    from copyengine.console.live import FAILED_SAID, print_summary
    from copyengine.report import JobStats, PairStats, PairStatus

    stats = JobStats()
    for k in range(FAILED_SAID + 2):
        p = PairStats(f"s{k}@contoso.example", f"nobody{k}@fabrikam.example")
        p.status, p.error_code = PairStatus.FAILED, "MailboxNotFound"
        p.error = (
            f"resolveMailbox: Resource 'nobody{k}@fabrikam.example' does not\nexist " + "x" * 400
        )
        stats.pairs[p.source] = p
    ok = PairStats("a@contoso.example", "a@fabrikam.example", status=PairStatus.DONE)
    stats.pairs[ok.source] = ok
    out = io.StringIO()
    print_summary(stats, out)
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("failed: ")]
    assert len(lines) == FAILED_SAID + 1
    assert lines[0].startswith(
        "failed: s0@contoso.example → nobody0@fabrikam.example: resolveMailbox: Resource "
        "'nobody0@fabrikam.example' does not exist xxx"
    )
    assert all(len(ln) < 300 for ln in lines) and lines[0].endswith("…")
    assert lines[-1] == "failed: 2 more pairs: see the report"
    assert not any("a@contoso" in ln for ln in lines)
