"""The report a customer reads: one self-contained HTML file (inline CSS and SVG, no script,
no network) rendered from the JSON report, and CSV exports of the pairs, the failed and the
skipped items.

It leads with the migration across every pass (``console.migration``: per pair selected,
copied, current in the target, skipped by reason, failed, sign-off), names the job and its
tenants, and says statuses and limits in plain words (``console.words``); then this run as
a pass, with charts whose axes are labelled (``console.chart``). Rendered from the report's
dict, not from live objects, so any report file can be turned into HTML again
(``render(json.load(fh))``): a run's report, or the job's report from its state
(``copyengine report``)."""

from __future__ import annotations

import csv
import io
from html import escape
from typing import Any

from ..pacing import learn
from . import words
from .chart import chart
from .live import mb
from .migration import item_rows, pair_rows, run_pairs
from .signoff import sign_off_problems

MAX_ROWS = 500  # per table in the HTML; the CSV exports have every row the JSON has

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#1b1f23}
h1{font-size:1.5em;margin:0 0 .2em} h2{font-size:1.15em;margin:1.6em 0 .5em}
.muted{color:#57606a} .ok{color:#1a7f37} .bad{color:#cf222e} .warn{color:#9a6700}
.verdict{font-size:1.1em;padding:.5em .8em;border-radius:6px;border:1px solid #d0d7de}
table{border-collapse:collapse;width:100%;margin:.4em 0}
th,td{border-bottom:1px solid #d0d7de;padding:.3em .5em;text-align:right;white-space:nowrap}
th{background:#f6f8fa;white-space:normal} td.l,th.l{text-align:left;white-space:normal}
.cards{display:flex;flex-wrap:wrap;gap:1em} .card{border:1px solid #d0d7de;border-radius:6px;
padding:.6em 1em;min-width:9em} .card b{display:block;font-size:1.4em}
svg{background:#fbfcfd;border:1px solid #d0d7de;border-radius:6px;display:block;margin:.6em 0}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em} dt{color:#57606a}
"""


def _n(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else escape(str(v))


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:,.0f}%"


def _ceiling(pair: dict[str, Any]) -> str:
    """The pair's % of Exchange's limit (``[limits]``: ``limit_pct``), and, when the service
    gave its target less (another writer, a stricter tenant), how much, and how near the
    pair ran to what it gave (``ceiling_pct``): a pair at the budget it was given reads 10%
    of the limit, which alone would say the copy was slow (review, issue 26). A report
    written before ``limit_pct`` measured ``ceiling_pct`` against ``[limits]``."""
    shares = [
        share
        for role, cut in (pair.get("budget_in_effect") or {}).items()
        if not role.startswith("source")  # its uploads are lists of ids: not the copy's
        for share in cut.values()
    ]
    given = pair.get("ceiling_pct")
    of_limit = pair.get("limit_pct", given)
    pct = _pct(of_limit)
    if not shares or min(shares) >= learn.HINT_BELOW:
        return pct
    said = f"{pct} (Exchange gave {escape(learn.fraction(min(shares)))} of it"
    if "limit_pct" in pair and given is not None:
        said += f"; {_pct(given)} of what it gave"
    return said + ")"


def _mb(v: int) -> str:
    return mb(v)  # 1 MB = 1 MiB, as on the screen


def _cards(cards: list[tuple[str, Any]]) -> str:
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{_n(v)}</b>{escape(k)}</div>' for k, v in cards)
        + "</div>"
    )


def _tenant(job: dict[str, Any], side: str) -> str:
    domains = ", ".join(job.get(f"{side}_domains") or [])
    tenant = str(job.get(f"{side}_tenant") or "-")
    return escape(f"{domains} (tenant {tenant})" if domains else f"tenant {tenant}")


def _verdict(report: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[str, str]:
    """The page's verdict in words: a run's by its exit code, the job's by its pairs."""
    failed = sum(r["failed"] for r in rows)
    waiting = sum(r["waiting"] for r in rows)
    problems = [
        words.plural(failed, "failed item") if failed else "",
        words.plural(waiting, "item") + " to confirm in the next pass" if waiting else "",
    ]
    for status, what in (("failed", "stopped"), ("interrupted", "interrupted")):
        n = sum(1 for r in rows if r["status"] == status)
        problems.append(f"{words.plural(n, 'mailbox pair')} {what}" if n else "")
    so = report.get("sign_off")
    if so and not so.get("complete"):
        problems.append("the sign-off is not complete")
    said = ", ".join(p for p in problems if p)
    if "exit_code" in report:
        cls, text = words.VERDICTS.get(
            int(report["exit_code"]), ("bad", f"Ended with exit code {report['exit_code']}")
        )
        if so and so.get("complete") and cls == "ok":
            text = "Completed and signed off: every source item is accounted for"
        if cls == "ok" and said:  # this pass went well; earlier ones left items behind
            cls, text = "warn", "This pass completed; the migration still has"
    else:
        cls, text = ("warn", "Completed with problems") if said else ("ok", "Up to date")
    if cls != "ok" and said:
        text = f"{text} {said}" if text.endswith("has") else f"{text}: {said}"
    return cls, text


def _head(report: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The page's head: the job, its tenants, when, the verdict."""
    job = report.get("job") or {}
    name = str(job.get("name") or "mailbox migration")
    cls, verdict = _verdict(report, rows)
    when = report.get("finished") or report.get("generated") or report.get("started")
    extra = "".join(
        f" — {escape(str(report[k]))}" for k in ("fatal", "paused", "stop_reason") if report.get(k)
    )
    return [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        f"<title>Migration report: {escape(name)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Migration report: {escape(name)}</h1>",
        f"<dl><dt>From</dt><dd>{_tenant(job, 'source')}</dd>"
        f"<dt>To</dt><dd>{_tenant(job, 'target')}</dd>"
        f"<dt>As of</dt><dd>{escape(words.when(when))}</dd></dl>",
        f'<p class="verdict {cls}"><b>{escape(verdict)}</b>{extra}</p>',
        *(f"<p>Hint: {escape(str(h))}</p>" for h in report.get("hints") or ()),
    ]


def _mailboxes(report: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The migration across every pass: the job's cards and one row per pair."""
    passes = _passes_of(report)
    out = [
        "<h2>The migration, all passes</h2>",
        _cards(
            [
                ("mailbox pair" if len(rows) == 1 else "mailbox pairs", len(rows)),
                ("items copied (all passes)", sum(r["copied"] for r in rows)),
                ("items in the target now", sum(r["current"] for r in rows)),
                ("skipped", sum(sum(r["skipped"].values()) for r in rows)),
                ("failed", sum(r["failed"] for r in rows)),
                ("passes", len(passes)),
            ]
        ),
        "<table><tr><th class=l>source → target</th><th class=l>status</th><th>selected</th>"
        "<th>copied (all passes)</th><th>in the target now</th><th class=l>skipped</th>"
        "<th>failed</th><th class=l>sign-off</th></tr>",
    ]
    for r in rows[:MAX_ROWS]:
        scls, status = words.pair_status(r)
        ocls, signed = words.sign_off(r["sign_off"])
        skipped = ", ".join(
            f"{n:,} {words.skip_reason(why)}" for why, n in sorted(r["skipped"].items()) if n
        )
        if skipped and r["skipped_from"] == "this pass":
            skipped += " (this pass)"
        skipped = skipped or ("none" if r["skipped_from"] else "-")  # "-": the state keeps none
        out.append(
            f"<tr><td class=l>{escape(r['source'])} → {escape(r['target'])}</td>"
            f'<td class="l {scls}">{escape(status)}</td><td>{_n(r["selected"])}</td>'
            f"<td>{_n(r['copied'])}</td><td>{_n(r['current'])}</td>"
            f"<td class=l>{escape(skipped)}</td><td>{_n(r['failed'])}</td>"
            f'<td class="l {ocls}">{escape(signed)}</td></tr>'
        )
    out.append("</table>")
    return out


def _passes_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    return list((report.get("migration") or {}).get("passes") or report.get("passes") or [])


def _passes(report: dict[str, Any]) -> list[str]:
    """Every pass of the job, in words."""
    passes = _passes_of(report)
    if not passes:
        return []
    out = [
        "<h2>Passes</h2><table><tr><th>pass</th><th class=l>kind</th><th class=l>started</th>"
        "<th class=l>finished</th><th class=l>result</th><th>copied</th><th>updated</th>"
        "<th>failed</th></tr>"
    ]
    for ps in passes[-MAX_ROWS:]:
        cls, result = words.pass_result(ps.get("status"))
        ch = ps.get("changes") or {}
        out.append(
            f"<tr><td>{_n(ps.get('pass'))}</td><td class=l>{escape(words.pass_kind(ps['kind']))}"
            f"</td><td class=l>{escape(words.when(ps.get('started')))}</td>"
            f"<td class=l>{escape(words.when(ps.get('finished')))}</td>"
            f'<td class="l {cls}">{escape(result)}</td><td>{_n(int(ch.get("created", 0)))}</td>'
            f"<td>{_n(int(ch.get('updated', 0)))}</td><td>{_n(int(ch.get('failed', 0)))}</td>"
            "</tr>"
        )
    out.append("</table>")
    return out


def _this_pass(report: dict[str, Any]) -> list[str]:
    """This run as a pass of the job: its cards, its pairs' throughput, the changes."""
    info = report.get("pass") or {}
    tot = report["totals"]
    number = f"Pass {info.get('number')} ({info.get('kind')})" if info else "This run"
    ch = report.get("changes") or {}
    shown = ", ".join(f"{k.replace('_', ' ')} {_n(v)}" for k, v in ch.items() if v)
    out = [
        f"<h2>{escape(number)}: this run, {escape(words.duration(report['duration_s']))}</h2>",
        _cards(
            [
                ("items copied in this pass", tot["copied"]),
                ("MB copied", _mb(tot["copied_bytes"])),
                ("already present", tot["already_present"]),
                ("skipped", tot["skipped"]),
                ("failed", tot["failed"]),
                ("to confirm", tot.get("unknown", 0)),
                ("times Exchange asked us to slow down", tot["throttled_429"]),
            ]
        ),
        f"<p>Changes applied to the targets: {escape(shown or 'none')}.</p>",
        "<table><tr><th class=l>source → target</th><th>listed</th><th>MB</th><th>copied</th>"
        "<th>already present</th><th>% of Exchange's limit</th><th>slowed down (s)</th>"
        "<th>duration</th></tr>",
    ]
    for p in report["pairs"][:MAX_ROWS]:
        out.append(
            f"<tr><td class=l>{escape(p['source'])} → {escape(p['target'])}</td>"
            f"<td>{_n(p['source_items'])}</td><td>{_mb(p['source_bytes'])}</td>"
            f"<td>{_n(p['copied'])}</td><td>{_n(p['already_present'])}</td>"
            f"<td>{_ceiling(p)}</td><td>{p['throttle_wait_s']:,.1f}</td>"
            f"<td>{escape(words.duration(p['duration_s']))}</td></tr>"
        )
    out.append("</table>")
    return out


SIGN_OFF_HEADS = (
    ("selected", "selected"),
    ("in_target", "in target"),
    ("skipped", "skipped"),
    ("failed", "failed"),
    ("unaccounted", "unaccounted"),
    ("stale", "stale"),
    ("duplicated", "duplicated"),
    ("misplaced", "misplaced"),
    ("leftover_folders", "leftover folders"),
    ("extra_in_target", "extra in target"),
    ("kept", "kept"),
)


def _sign_off(report: dict[str, Any]) -> list[str]:
    """The cutover's sign-off: every source item accounted for, per pair, and what not."""
    so = report.get("sign_off")
    if not so:
        return []
    cls = "ok" if so.get("complete") else "bad"
    verdict = "every source item is accounted for" if so.get("complete") else "NOT complete"
    out = [
        f'<h2>Sign-off</h2><p class="{cls}">every source change made before '
        f"{escape(words.when(so.get('changes_captured_until')))} was read; {verdict}</p>"
        "<table><tr><th class=l>source → target</th>"
        + "".join(f"<th>{h}</th>" for _, h in SIGN_OFF_HEADS)
        + "</tr>"
    ]
    for p in so.get("pairs", [])[:MAX_ROWS]:
        nums = [p.get(k, 0) for k, _ in SIGN_OFF_HEADS]
        nums[2] = sum(p["skipped"].values())
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


def _stopped(rows: list[dict[str, Any]]) -> list[str]:
    errors = [r for r in rows if r.get("error")]
    if not errors:
        return []
    out = ["<h2>Mailboxes that stopped</h2><table><tr><th class=l>pair</th><th class=l>why</th>"]
    out += [
        f"<tr><td class=l>{escape(r['source'])} → {escape(r['target'])}</td>"
        f"<td class=l>{escape(str(r['error']))}</td></tr>"
        for r in errors[:MAX_ROWS]
    ]
    out.append("</table>")
    return out


def _item_table(rows: list[dict[str, str]], with_reason: bool) -> list[str]:
    """Items by where they are, what they are, when and how large: never their content."""
    head = "<th class=l>why</th>" if with_reason else ""
    out = [
        "<table><tr><th class=l>mailbox</th><th class=l>folder</th><th class=l>type</th>"
        f"<th class=l>created</th><th>size</th>{head}</tr>"
    ]
    for r in rows[:MAX_ROWS]:
        why = f"<td class=l>{escape(r['reason'])}</td>" if with_reason else ""
        out.append(
            f"<tr><td class=l>{escape(r['pair'].partition(' -> ')[0])}</td>"
            f"<td class=l>{escape(r['folder'] or '-')}</td>"
            f"<td class=l>{escape(words.item_type(r['type']))}</td>"
            f"<td class=l>{escape(words.when(r['created']))}</td>"
            f"<td>{escape(words.size(r['size']))}</td>{why}</tr>"
        )
    out.append("</table>")
    if len(rows) > MAX_ROWS:
        out.append(f'<p class="muted">{len(rows) - MAX_ROWS:,} more in the CSV export.</p>')
    return out


def _items(report: dict[str, Any]) -> list[str]:
    """The items that failed, those to confirm, and the skipped large items."""
    rows = failure_rows(report)
    out: list[str] = []
    for outcome, title in (
        ("failed", "Items that failed"),
        ("unknown", "Items to confirm in the next pass (sent; whether they arrived is unknown)"),
    ):
        mine = [r for r in rows if r["outcome"] == outcome]
        out.append(f"<h2>{escape(title)} ({len(mine):,})</h2>")
        out += _item_table(mine, True) if mine else ['<p class="muted">none</p>']
    skipped = skip_rows(report)
    if skipped:
        out.append(f"<h2>Items skipped as larger than the size limit ({len(skipped):,})</h2>")
        out += _item_table(skipped, False)
    return out


def _policy(report: dict[str, Any]) -> list[str]:
    pairs = run_pairs(report)
    p0 = pairs[0].get("policy") if pairs else None
    if not p0:
        return []
    return [
        "<h2>What the copy was asked to do</h2><dl>"
        f"<dt>Large items</dt><dd>{escape(str(p0.get('large_items')))}</dd>"
        f"<dt>Bad-item limit</dt><dd>{escape(words.bad_item_limit(p0.get('max_failed_items')))}"
        f"</dd><dt>Selection</dt><dd>{escape(str(p0.get('selection')))}</dd></dl>"
    ]


def _notes(report: dict[str, Any]) -> list[str]:
    """What a pass noticed per pair that is no failure (rules changed, an auto-expanding
    archive's redirects)."""
    said = [
        f"<li>{escape(p.get('source', ''))} → {escape(p.get('target', ''))}: {escape(n)}</li>"
        for p in run_pairs(report)
        for n in p.get("notes") or ()
    ]
    return ["<h2>Notes</h2><ul>", *said, "</ul>"] if said else []


def _details(report: dict[str, Any]) -> list[str]:
    """For scripts and support: the run id, the exit code, where the state is."""
    said = []
    if report.get("run_id"):
        said.append(f"run {report['run_id']}")
    if "exit_code" in report:
        said.append(f"exit {report['exit_code']}")
    if report.get("state"):
        said.append(f"state {report['state']}")
    return [f'<p class="muted">For support: {escape(" · ".join(said))}.</p>'] if said else []


def render(report: dict[str, Any]) -> str:
    """The whole report as one HTML page (a run's report, or the job's from its state)."""
    rows = pair_rows(report)
    out = _head(report, rows) + _mailboxes(report, rows) + _passes(report)
    if "run_id" in report:
        out += _this_pass(report) + _sign_off(report)
    out += _stopped(rows)
    if "run_id" in report:
        timeline = report.get("timeline") or []
        out.append("<h2>Throughput and throttling over this pass</h2>")
        out.append(chart(timeline, "copied", "Items copied", "items per second"))
        out.append(
            chart(timeline, "throttled_429", "Slow-down answers (429)", "429 answers per second")
        )
    out += _items(report) + _notes(report) + _policy(report) + _details(report)
    out.append("</body></html>")
    return "\n".join(out)


def failure_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """Failed and unknown items across passes (``migration.item_rows``)."""
    return item_rows(report)


def skip_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """This pass's items skipped as too large (the state records no skipped item)."""
    rows = []
    for p in run_pairs(report):
        for f in p["folders"]:
            for r in f.get("skipped_items", []):
                rows.append(
                    {
                        "pair": f"{p['source']} -> {p['target']}",
                        "folder": f["source_path"],
                        "id": str(r["id"]),
                        "size": str(r["size"]),
                        "reason": "larger than max_size",
                        "type": str(r.get("type") or ""),
                        "created": str(r.get("created") or ""),
                    }
                )
    return rows


def pair_csv_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for r in pair_rows(report):
        so = r["sign_off"]
        out.append(
            {
                "source": r["source"],
                "target": r["target"],
                "status": words.pair_status(r)[1],
                "selected": str(r["selected"]),
                "copied": str(r["copied"]),
                "in_target": str(r["current"]),
                "skipped": str(sum(r["skipped"].values())),
                "failed": str(r["failed"]),
                "to_confirm": str(r["waiting"]),
                "sign_off": "" if so is None else words.sign_off(so)[1],
            }
        )
    return out


def to_csv(rows: list[dict[str, str]], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


FAILED_COLUMNS = (
    "pair",
    "folder",
    "id",
    "outcome",
    "reason",
    "request_id",
    "type",
    "created",
    "size",
)
SKIPPED_COLUMNS = ("pair", "folder", "id", "size", "reason", "type", "created")
PAIR_COLUMNS = (
    "source",
    "target",
    "status",
    "selected",
    "copied",
    "in_target",
    "skipped",
    "failed",
    "to_confirm",
    "sign_off",
)


def report_files(report: dict[str, Any]) -> dict[str, bytes]:
    """The report's files beside its JSON: the HTML page and the CSV exports of the pairs,
    of failed and unknown items and of skipped large items (``report.write_report``'s
    renderings, and ``copyengine report``'s)."""
    return {
        ".html": render(report).encode("utf-8"),
        ".pairs.csv": to_csv(pair_csv_rows(report), PAIR_COLUMNS).encode("utf-8"),
        ".failed.csv": to_csv(failure_rows(report), FAILED_COLUMNS).encode("utf-8"),
        ".skipped.csv": to_csv(skip_rows(report), SKIPPED_COLUMNS).encode("utf-8"),
    }
