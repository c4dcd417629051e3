"""The report a customer reads: one self-contained HTML file (inline CSS and SVG, no script,
no network) rendered from the JSON report, and CSV exports of the failed and skipped items.

Rendered from the report's dict, not from live objects, so any report file can be turned
into HTML again (``render(json.load(fh))``)."""

from __future__ import annotations

import csv
import io
from html import escape
from itertools import pairwise
from typing import Any

from .signoff import sign_off_problems

MAX_ROWS = 500  # per table in the HTML; the CSV exports have every row the JSON has

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#1b1f23}
h1{font-size:1.5em;margin:0 0 .2em} h2{font-size:1.15em;margin:1.6em 0 .5em}
.muted{color:#57606a} .ok{color:#1a7f37} .bad{color:#cf222e} .warn{color:#9a6700}
table{border-collapse:collapse;width:100%;margin:.4em 0}
th,td{border-bottom:1px solid #d0d7de;padding:.3em .5em;text-align:right;white-space:nowrap}
th{background:#f6f8fa} td.l,th.l{text-align:left;white-space:normal}
.cards{display:flex;flex-wrap:wrap;gap:1em} .card{border:1px solid #d0d7de;border-radius:6px;
padding:.6em 1em;min-width:9em} .card b{display:block;font-size:1.4em}
svg{background:#fbfcfd;border:1px solid #d0d7de;border-radius:6px}
"""


def _n(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else escape(str(v))


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:,.0f}%"


def _mb(v: int) -> str:
    return f"{v / 1e6:,.1f}"


def _verdict(code: int) -> tuple[str, str]:
    return {
        0: ("ok", "every selected item is in the target"),
        1: ("warn", "some items failed or are unknown, or some pairs failed"),
        3: ("bad", "configuration error"),
        4: ("bad", "authentication or permission refused"),
        5: ("bad", "the job could not go on"),
        7: ("bad", "another run of this job was in progress"),
        130: ("warn", "interrupted: run again to finish"),
    }.get(code, ("bad", f"exit code {code}"))


def _chart(timeline: list[dict[str, Any]], key: str, label: str, width: int = 760) -> str:
    """An inline SVG line chart of a cumulative series as a rate per interval."""
    if len(timeline) < 2:
        return f'<p class="muted">{escape(label)}: not enough samples.</p>'
    pts: list[tuple[float, float]] = [(timeline[0]["t"], 0.0)]
    for a, b in pairwise(timeline):
        dt = b["t"] - a["t"]
        if dt > 0:
            pts.append((b["t"], max(0.0, (b[key] - a[key]) / dt)))
    if not pts:
        return ""
    height, pad = 160, 30
    t0, t1 = timeline[0]["t"], timeline[-1]["t"] or 1
    peak = max(v for _, v in pts)
    top = peak or 1.0
    xs = [pad + (t - t0) / ((t1 - t0) or 1) * (width - 2 * pad) for t, _ in pts]
    ys = [height - pad - v / top * (height - 2 * pad) for _, v in pts]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    return (
        f'<svg role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><text x="{pad}" y="18" font-size="12">'
        f"{escape(label)} (peak {peak:,.1f})</text>"
        f'<polyline fill="none" stroke="#0969da" stroke-width="2" points="{line}"/>'
        f'<text x="{pad}" y="{height - 8}" font-size="11">0 s</text>'
        f'<text x="{width - pad}" y="{height - 8}" font-size="11" text-anchor="end">'
        f"{t1 - t0:,.0f} s</text></svg>"
    )


def _pass_section(report: dict[str, Any]) -> list[str]:
    """This run as a pass of the job: the changes it applied, and the cutover's sign-off."""
    info = report.get("pass") or {}
    ch = report.get("changes") or {}
    out: list[str] = []
    if info:
        shown = ", ".join(f"{k.replace('_', ' ')} {_n(v)}" for k, v in ch.items() if v)
        out.append(
            f"<h2>Pass {escape(str(info.get('number')))} ({escape(str(info.get('kind')))})</h2>"
            f"<p>changes applied: {escape(shown or 'none')}</p>"
        )
    so = report.get("sign_off")
    if so:
        cls = "ok" if so.get("complete") else "bad"
        verdict = "every source item is accounted for" if so.get("complete") else "NOT complete"
        heads = (
            "selected",
            "in target",
            "skipped",
            "failed",
            "unaccounted",
            "stale",
            "duplicated",
            "misplaced",
            "leftover folders",
            "extra in target",
            "kept",
        )
        out.append(
            f'<h2>Sign-off</h2><p class="{cls}">every source change made before '
            f"{escape(str(so.get('changes_captured_until')))} was read; {verdict}</p>"
            "<table><tr><th class=l>source → target</th>"
            + "".join(f"<th>{h}</th>" for h in heads)
            + "</tr>"
        )
        for p in so.get("pairs", [])[:MAX_ROWS]:
            nums = (
                p["selected"],
                p["in_target"],
                sum(p["skipped"].values()),
                p["failed"],
                p["unaccounted"],
                p.get("stale", 0),
                p.get("duplicated", 0),
                p.get("misplaced", 0),
                p.get("leftover_folders", 0),
                p["extra_in_target"],
                p.get("kept", 0),
            )
            arch = " (+archive)" if p.get("archive") else ""
            out.append(
                f"<tr><td class=l>{escape(p['source'])} → {escape(p['target'])}{arch}</td>"
                + "".join(f"<td>{_n(n)}</td>" for n in nums)
                + "</tr>"
            )
        out.append("</table>")
        for p in so.get("pairs", [])[:MAX_ROWS]:
            problems = sign_off_problems(p)
            if not problems:
                continue
            out.append(
                f'<h3 class="bad">{escape(p["source"])} → {escape(p["target"])}: '
                + (escape(p["error"]) if p.get("error") else "not complete")
                + "</h3>"
            )
            for heading, lines in problems:
                items = "".join(f"<li><code>{escape(x)}</code></li>" for x in lines)
                out.append(f"<p>{escape(heading)}</p><ul>{items}</ul>")
    return out


def _head(report: dict[str, Any]) -> list[str]:
    """The page's head, the run's verdict and the job's totals as cards."""
    tot = report["totals"]
    cls, what = _verdict(int(report["exit_code"]))
    cards = [
        ("pairs", tot["pairs"]),
        ("items copied", tot["copied"]),
        ("MB copied", _mb(tot["copied_bytes"])),
        ("already present", tot["already_present"]),
        ("skipped", tot["skipped"]),
        ("failed", tot["failed"]),
        ("unknown", tot.get("unknown", 0)),
        ("429s", tot["throttled_429"]),
    ]
    return [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        f"<title>copyengine report {escape(report.get('run_id') or '')}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Mailbox copy report</h1>",
        f'<p class="muted">run {escape(str(report.get("run_id")))} · started '
        f"{escape(str(report.get('started')))} · finished {escape(str(report.get('finished')))}"
        f" · {report['duration_s']:,.0f} s</p>",
        f'<p class="{cls}"><b>exit {report["exit_code"]}</b>: {escape(what)}'
        + (f" — {escape(report['fatal'])}" if report.get("fatal") else "")
        + (f" — {escape(report['stop_reason'])}" if report.get("stop_reason") else "")
        + "</p>",
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{_n(v)}</b>{escape(k)}</div>' for k, v in cards)
        + "</div>",
    ]


def _pairs_section(report: dict[str, Any]) -> list[str]:
    """Every pair's counts, then the pairs that stopped and why."""
    out = [
        "<h2>Pairs</h2><table><tr><th class=l>source → target</th><th class=l>status</th>"
        "<th>items</th><th>MB</th><th>copied</th><th>present</th><th>skipped</th>"
        "<th>failed</th><th>unknown</th><th>% of ceiling</th><th>429s</th><th>throttled s</th>"
        "<th>duration s</th></tr>",
    ]
    for p in report["pairs"][:MAX_ROWS]:
        status = p["status"] + (f": {p['error_code']}" if p.get("error_code") else "")
        scls = "ok" if p["status"] == "done" and not p["failed"] else "bad"
        out.append(
            f"<tr><td class=l>{escape(p['source'])} → {escape(p['target'])}</td>"
            f'<td class="l {scls}">{escape(status)}</td><td>{_n(p["source_items"])}</td>'
            f"<td>{_mb(p['source_bytes'])}</td><td>{_n(p['copied'])}</td>"
            f"<td>{_n(p['already_present'])}</td><td>{_n(p['skipped'])}</td>"
            f"<td>{_n(p['failed'])}</td><td>{_n(p.get('unknown', 0))}</td>"
            f"<td>{_pct(p.get('ceiling_pct'))}</td>"
            f"<td>{_n(p['throttled_429'])}</td><td>{p['throttle_wait_s']:,.1f}</td>"
            f"<td>{p['duration_s']:,.1f}</td></tr>"
        )
    out.append("</table>")
    out += _pass_section(report)
    errors = [p for p in report["pairs"] if p.get("error")]
    if errors:
        out.append(
            "<h2>Pairs that stopped</h2><table><tr><th class=l>pair</th><th class=l>why</th></tr>"
        )
        out += [
            f"<tr><td class=l>{escape(p['source'])} → {escape(p['target'])}</td>"
            f"<td class=l>{escape(p['error'])}</td></tr>"
            for p in errors[:MAX_ROWS]
        ]
        out.append("</table>")
    return out


def _items_section(report: dict[str, Any]) -> list[str]:
    """The failed and unknown items (a table of the first ones), then the skipped by reason."""
    failed = failure_rows(report)
    out = [f"<h2>Failed and unknown items ({len(failed):,})</h2>"]
    if failed:
        out.append(
            "<table><tr><th class=l>pair</th><th class=l>folder</th><th class=l>item</th>"
            "<th class=l>outcome</th><th class=l>reason</th></tr>"
        )
        out += [
            f"<tr><td class=l>{escape(r['pair'])}</td><td class=l>{escape(r['folder'])}</td>"
            f"<td class=l>{escape(r['id'])}</td><td class=l>{escape(r['outcome'])}</td>"
            f"<td class=l>{escape(r['reason'])}</td></tr>"
            for r in failed[:MAX_ROWS]
        ]
        out.append("</table>")
    out.append(f"<h2>Skipped ({sum(p['skipped'] for p in report['pairs']):,})</h2>")
    reasons: dict[str, int] = {}
    for p in report["pairs"]:
        for f in p["folders"]:
            for why, n in f["skipped"].items():
                reasons[why] = reasons.get(why, 0) + n
    if reasons:
        out.append("<table><tr><th class=l>reason</th><th>items</th></tr>")
        out += [
            f"<tr><td class=l>{escape(k)}</td><td>{v:,}</td></tr>"
            for k, v in sorted(reasons.items())
        ]
        out.append("</table>")
    skipped = skip_rows(report)
    if skipped:
        out.append(f'<p class="muted">{len(skipped):,} large items listed in the CSV export.</p>')
    return out


def render(report: dict[str, Any]) -> str:
    """The whole report as one HTML page."""
    out = _head(report) + _pairs_section(report)
    timeline = report.get("timeline") or []
    out.append("<h2>Throughput and throttling over time</h2>")
    out.append(_chart(timeline, "copied", "items copied per second"))
    out.append(_chart(timeline, "throttled_429", "429 answers per second"))
    out += _items_section(report)
    p0 = report["pairs"][0].get("policy") if report["pairs"] else None
    if p0:
        out.append(
            f"<h2>Policy</h2><p>Large items: {escape(str(p0.get('large_items')))}. "
            f"Bad-item limit: {escape(str(p0.get('max_failed_items')))}. Selection: "
            f"{escape(str(p0.get('selection')))}.</p>"
        )
    out.append("</body></html>")
    return "\n".join(out)


def failure_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for p in report["pairs"]:
        pair = f"{p['source']} -> {p['target']}"
        for f in p["folders"]:
            for kind, key in (("failed", "failures"), ("unknown", "unknown_items")):
                for r in f.get(key, []):
                    rows.append(
                        {
                            "pair": pair,
                            "folder": f["source_path"],
                            "id": str(r["id"]),
                            "outcome": kind,
                            "reason": str(r.get("reason") or ""),
                            "request_id": str(r.get("request_id") or ""),
                        }
                    )
    return rows


def skip_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for p in report["pairs"]:
        for f in p["folders"]:
            for r in f.get("skipped_items", []):
                rows.append(
                    {
                        "pair": f"{p['source']} -> {p['target']}",
                        "folder": f["source_path"],
                        "id": str(r["id"]),
                        "size": str(r["size"]),
                        "reason": "larger than max_size",
                    }
                )
    return rows


def to_csv(rows: list[dict[str, str]], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def report_files(report: dict[str, Any]) -> dict[str, bytes]:
    """The report's files beside its JSON: the HTML page and the CSV exports of failed and
    unknown items and of skipped large items (``report.write_report``'s renderings)."""
    return {
        ".html": render(report).encode("utf-8"),
        ".failed.csv": to_csv(
            failure_rows(report), ("pair", "folder", "id", "outcome", "reason", "request_id")
        ).encode("utf-8"),
        ".skipped.csv": to_csv(
            skip_rows(report), ("pair", "folder", "id", "size", "reason")
        ).encode("utf-8"),
    }
