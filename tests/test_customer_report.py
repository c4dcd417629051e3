"""The customer's report as pure functions of a report's dict (issue 24): statuses in words
whose colour agrees, the verdict across passes, items by folder, type, date and size, the
job's report from its state, charts with labelled axes. No sockets; the page in a real
browser is ``tests/test_browser.py``."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from copyengine.console import words
from copyengine.console.chart import chart, ticks
from copyengine.console.html import render, report_files
from copyengine.console.migration import item_rows, pair_rows

A, TA = "adele@contoso.example", "adele@fabrikam.example"
KEY = f"{A}->{TA}"
JOB = {
    "name": "Contoso wave 1",
    "source_tenant": "contoso.example",
    "target_tenant": "fabrikam.example",
    "source_domains": ["contoso.example"],
    "target_domains": ["fabrikam.example"],
}


def _text(html: str) -> str:
    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []

        def handle_data(self, data: str) -> None:
            self.parts.append(data)

    parser = Text()
    parser.feed(html)
    return " ".join(parser.parts)


def _state_pair(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "pair": KEY,
        "source": A,
        "target": TA,
        "status": "done",
        "error": None,
        "copied": 120,
        "current": 121,
        "already_present": 1,
        "failed": 0,
        "unknown": 0,
        "not_attempted": 0,
        "kept": 0,
        "selected": 121,
        "items": [],
    }
    return {**base, **over}


TOTALS = [
    "copied",
    "copied_bytes",
    "already_present",
    "skipped",
    "failed",
    "unknown",
    "throttled_429",
]


def _run_report(state: dict[str, Any], exit_code: int = 0, failures: Any = ()) -> dict[str, Any]:
    """A run's report (``JobStats.as_dict``'s shape) of a delta pass that copied 3 items."""
    folder = {
        "source_path": "/Inbox",
        "skipped": {"larger than max_size": 1},
        "skipped_items": [
            {
                "id": "big",
                "size": 40_000_000,
                "type": "IPM.Appointment",
                "created": "2024-02-03T04:05:06Z",
            }
        ],
        "failures": list(failures),
        "unknown_items": [],
    }
    pair = {
        "source": A,
        "target": TA,
        "status": "done",
        "error": None,
        "source_items": 5,
        "source_bytes": 40_001_000,
        "copied": 3,
        "copied_bytes": 3000,
        "already_present": 0,
        "skipped": 1,
        "failed": len(folder["failures"]),
        "unknown": 0,
        "not_done": 0,
        "throttled_429": 0,
        "throttle_wait_s": 0.0,
        "ceiling_pct": None,
        "duration_s": 2.0,
        "policy": {"large_items": "items over 35 MB are skipped", "max_failed_items": 50},
        "folders": [folder],
    }
    return {
        "run_id": "20261204T170000.000Z-abcd",
        "started": "2026-12-04T17:00:00Z",
        "finished": "2026-12-04T17:00:02Z",
        "duration_s": 2.0,
        "exit_code": exit_code,
        "pass": {"number": 2, "kind": "delta"},
        "changes": {"created": 3},
        "sign_off": None,
        "job": JOB,
        "totals": {"pairs": 1, **{k: pair[k] for k in TOTALS}},
        "pairs": [pair],
        "timeline": [
            {"t": 0.0, "copied": 0, "copied_bytes": 0, "throttled_429": 0},
            {"t": 2.0, "copied": 3, "copied_bytes": 3000, "throttled_429": 0},
        ],
        "migration": {
            "pairs": [state],
            "passes": [
                {"pass": 1, "kind": "first", "status": "ok", "changes": {"created": 117}},
                {"pass": 2, "kind": "delta", "status": "ok", "changes": {"created": 3}},
            ],
        },
    }


@pytest.mark.parametrize(
    ("row", "want"),
    [
        ({"status": "done"}, ("ok", "Completed")),
        ({"status": "done", "failed": 2}, ("warn", "Completed with 2 failed items")),
        ({"status": "done", "failed": 1}, ("warn", "Completed with 1 failed item")),
        (
            {"status": "done", "waiting": 3},
            ("warn", "Completed; 3 items to confirm in the next pass"),
        ),
        ({"status": "failed", "failed": 2}, ("bad", "Stopped (see why below)")),
        ({"status": "interrupted"}, ("warn", "Interrupted: run again to finish")),
        ({"status": None}, ("muted", "Not started")),
    ],
)
def test_a_pair_s_status_in_words_and_its_colour_agree(
    row: dict[str, Any], want: tuple[str, str]
) -> None:
    assert words.pair_status(row) == want


def test_limits_types_sizes_and_dates_in_words() -> None:
    assert words.bad_item_limit(None).startswith("not set")
    assert words.bad_item_limit(50) == "a mailbox pair stops once more than 50 items failed"
    assert words.item_type("IPM.Note") == "Email"
    assert words.item_type("IPM.Schedule.Meeting.Request") == "Meeting request"
    assert words.item_type("IPM.Note.SMIME.MultipartSigned") == "Email (signed or encrypted)"
    assert words.item_type("X.Custom") == "X.Custom" and words.item_type("") == "-"
    kib = 1024  # 1 KB = 1 KiB, as Outlook shows sizes and as every MB copyengine shows
    assert [words.size(n) for n in (512, 34 * kib, 1_258_291, 5 * kib**3 // 2)] == [
        "512 bytes",
        "34 KB",
        "1.2 MB",
        "2.50 GB",
    ]
    assert words.when("2026-12-04T17:01:02Z") == "2026-12-04 17:01 UTC"
    assert words.pass_kind("cutover") == "cutover (final pass)"
    # exit 1 is failed items or a failed pair: a pass whose only trouble was a mailbox not
    # found said "Completed with failed items" beside 0 failed (review 4)
    assert words.pass_result("items_failed") == (
        "warn",
        "Completed with problems: failed items or mailbox pairs",
    )


def test_the_migration_counts_every_pass_not_this_one() -> None:
    report = _run_report(_state_pair())
    (row,) = pair_rows(report)
    assert (row["copied"], row["current"], row["this_pass"]) == (120, 121, 3)
    assert row["skipped"] == {"larger than max_size": 1} and row["skipped_from"] == "this pass"
    text = _text(render(report))
    assert "Migration report: Contoso wave 1" in text
    assert "contoso.example (tenant contoso.example)" in text
    assert "120 items copied (all passes)" in text and "3 items copied in this pass" in text
    assert "Completed: every selected item is in the target" in text
    assert "1 larger than the size limit (this pass)" in text
    assert "a mailbox pair stops once more than 50 items failed" in text and "exit 0" in text
    assert "incremental pass" in text and "first copy" in text


def test_earlier_failures_keep_the_verdict_from_saying_complete() -> None:
    """This pass went well (exit 0), the state still has an item that failed before."""
    item = {
        "id": "f1",
        "folder": "/Inbox/Receipts",
        "size": 2048,
        "outcome": "failed",
        "reason": "refused",
    }
    report = _run_report(_state_pair(failed=1, selected=122, items=[item]))
    html = render(report)
    text = _text(html)
    assert "This pass completed; the migration still has 1 failed item" in text
    assert '<td class="l warn">Completed with 1 failed item</td>' in html
    assert "/Inbox/Receipts" in text and "2 KB" in text and "refused" in text


def test_failed_items_are_listed_as_the_state_has_them_with_what_the_run_saw() -> None:
    seen = {
        "id": "f1",
        "size": 2048,
        "type": "IPM.Note",
        "created": "2025-06-07T08:09:10Z",
        "reason": "The item could not be imported",
        "request_id": "req-1",
    }
    old = {"id": "f1", "folder": "/Inbox", "size": 2048, "outcome": "failed", "reason": "refused"}
    report = _run_report(_state_pair(failed=1, items=[old]), exit_code=1, failures=[seen])
    (row,) = item_rows(report)
    assert (row["type"], row["created"], row["request_id"]) == (
        "IPM.Note",
        "2025-06-07T08:09:10Z",
        "req-1",
    )
    assert row["reason"] == "refused" and row["folder"] == "/Inbox"  # the state's, the latest
    # copied by a later pass: the state has no failed record, so nothing is listed
    assert item_rows(_run_report(_state_pair(), failures=[])) == []
    text = _text(render(report))
    assert "Email" in text and "2025-06-07 08:09 UTC" in text and "f1" not in text
    files = report_files(report)
    assert b"f1" in files[".failed.csv"] and b"Calendar item" not in files[".skipped.csv"]
    assert files[".skipped.csv"].splitlines()[1].endswith(b"IPM.Appointment,2024-02-03T04:05:06Z")


def test_the_job_s_report_from_its_state_renders_without_a_run() -> None:
    """``copyengine report``'s shape: the state's view only (no run, no timeline)."""
    report = {
        "generated": "2026-12-04T18:00:00Z",
        "state": "/srv/job/state.sqlite",
        "job": JOB,
        "passes": [],
        "totals": {},
        "groups": [],
        "pairs": [],
        "migration": {
            "pairs": [_state_pair(status="interrupted", unknown=2)],
            "passes": [{"pass": 1, "kind": "first", "status": "interrupted", "changes": {}}],
        },
    }
    html = render(report)
    text = _text(html)
    assert "Completed with problems: 2 items to confirm in the next pass" in text
    assert "1 mailbox pair interrupted" in text
    assert '<td class="l warn">Interrupted: run again to finish</td>' in html
    assert "<svg" not in html and "this run" not in text
    assert "For support: state /srv/job/state.sqlite." in text
    pairs = report_files(report)[".pairs.csv"].decode().splitlines()
    assert pairs[1].startswith(f"{A},{TA},Interrupted: run again to finish,121,120,121,0,0,2,")


def test_charts_have_round_ticks_and_labelled_axes() -> None:
    assert ticks(18) == [0, 5, 10, 15, 20] and ticks(248, 5) == [0, 100, 200, 300]
    timeline = [{"t": float(t), "copied": 100 * t} for t in range(0, 601, 60)]
    svg = chart(timeline, "copied", "Items copied", "items per second")
    assert "time since the run started (min)" in svg and ">items per second</text>" in svg
    assert ">10</text>" in svg and ">0.5</text>" not in svg  # minutes 0..10; rate 0..100
    assert "too short" in chart(timeline[:1], "copied", "Items copied", "items per second")


def test_a_pair_the_service_gave_less_says_so_beside_its_share_of_the_limit() -> None:
    """Review (issue 26): a pair at the budget a stricter service gave read "10%" of
    Exchange's limit in the customer's page, as if the copy were slow."""
    report = _run_report(_state_pair())
    pair = report["pairs"][0]
    pair["ceiling_pct"] = 11.6
    pair["budget_in_effect"] = {"source": {"upload": 0.25}, "target": {"upload": 0.1}}
    assert "12% (Exchange gave 1/10 of it)" in _text(render(report))
    pair["budget_in_effect"] = {"source": {"upload": 0.25}}  # the source's: not the copy's
    text = _text(render(report))
    assert "12%" in text and "Exchange gave" not in text


def test_a_pair_the_service_gave_less_reads_both_shares_each_true() -> None:
    """Review (issue 26): "% of ceiling" follows the budget in effect (``ceiling_pct``: of
    what the service let the pair have), so the page's share of Exchange's limit is
    ``limit_pct``; beside what Exchange gave, how near the pair ran to it."""
    report = _run_report(_state_pair())
    pair = report["pairs"][0]
    pair["ceiling_pct"], pair["limit_pct"] = 97.2, 11.6
    pair["budget_in_effect"] = {"target": {"upload": 0.1}}
    assert "12% (Exchange gave 1/10 of it; 97% of what it gave)" in _text(render(report))
    pair["budget_in_effect"] = {}  # nothing cut: the two are one
    pair["ceiling_pct"] = pair["limit_pct"] = 96.0
    text = _text(render(report))
    assert "96%" in text and "Exchange gave" not in text
