"""What the commands print for people: the plan, verify's findings, doctor's checks, the
state's status, and the one-line answers of ``submit`` and ``report``. Each renderer takes
plain data (what the command computed) and returns or prints text; none reads or decides."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from ..exitcodes import ExitCode
from ..report import budget_said
from ..verify import PairCheck
from .fit import Fitted, console_for
from .live import mb

MAX_SHOWN = 20  # of each kind of finding verify prints per pair


PLAN_COLUMNS = (
    "pair / folder",
    "target",
    "items",
    "MB",
    "to copy",
    "MB to copy",
    "present",
    "skipped",
    "ETA",
)


def print_plan(pairs: list[Any], summary: dict[str, Any], stream: Any = None) -> None:
    """``copyengine plan`` on a terminal: pairs, their folders, the ETA and its binding limit."""
    console = console_for(stream)
    t = Fitted(PLAN_COLUMNS, names=2, title="plan: nothing was copied")
    for p in pairs:
        if p.error:
            t.add_row(f"{p.source} → {p.target}", f"[red]{escape(p.error)}[/]", *[""] * 7)
            continue
        t.add_row(
            f"[b]{p.source} → {p.target}[/]",
            p.binding,
            f"{p.total('items'):,}",
            mb(p.total("bytes")),
            f"{p.total('copy'):,}",
            mb(p.total("copy_bytes")),
            f"{p.total('present'):,}",
            f"{sum(sum(f.skipped.values()) for f in p.folders):,}",
            f"{p.eta_s:,.0f}s",
        )
        for f in p.folders:
            t.add_row(
                f"  {escape(f.source_path)}",
                escape(f.target_path) + ("" if f.exists else " (new)"),
                f"{f.items:,}",
                mb(f.bytes),
                f"{f.copy:,}",
                mb(f.copy_bytes),
                f"{f.present:,}",
                f"{sum(f.skipped.values()):,}",
                "",
            )
    console.print(t)
    console.print(plan_line(summary))


def plan_line(summary: dict[str, Any]) -> str:
    """``plan``'s last line: what a run would copy and its ETA; with nothing to copy it
    says so (it said "bound by - (requests took 0 ms)")."""
    head = (
        f"{summary['copy']:,} items ({mb(summary['copy_bytes'])} MB) to copy, "
        f"{summary['already_present']:,} already present"
    )
    failing = summary.get("pairs_failing", 0)  # the exit code (5) says it: so does the line
    tail = f"; {failing} pairs could not be sized: see the table (exit 5)" if failing else ""
    if not summary["copy"] and not summary["binding_limits"]:
        return f"{head}: nothing to copy, no ETA{tail}"
    return (
        f"{head}; ETA {summary['eta_s']:,.0f} s with {summary['pairs_in_parallel']} pairs at "
        f"once, bound by {', '.join(summary['binding_limits']) or '-'} (requests took "
        f"{summary.get('request_latency_ms', 0):,.0f} ms){tail}"
    )


KEPT = "kept by deletions = keep"


def verify_outcome(checks: list[PairCheck], differ: int) -> tuple[ExitCode, str]:
    """``verify``'s exit code and its last line: 6 when a pair compared differs, else 1 when
    a pair could not be compared (the service failed: nothing was found wrong), 4 when
    every pair was refused its token or permission, else 0."""
    n, unchecked = len(checks), sum(1 for pc in checks if pc.error)
    if n and all(pc.error_code in ("AuthFailed", "PermissionDenied") for pc in checks):
        code, what = ExitCode.AUTH, "no pair could be compared: authentication or permission"
    elif differ:
        code, what = ExitCode.VERIFY_MISMATCH, f"{differ} of {n} pairs differ (FAIL lines)"
    elif unchecked:
        what = f"{unchecked} of {n} pairs could not be compared (FAIL lines); run verify again"
        code = ExitCode.ITEMS_FAILED
    else:
        code, what = ExitCode.OK, f"{n} pairs: every selected item once in the target"
    if unchecked and code is ExitCode.VERIFY_MISMATCH:
        what += f"; {unchecked} could not be compared"
    return code, f"exit {int(code)}: {what}"


def verify_lines(pc: PairCheck) -> tuple[list[str], bool]:
    """What ``verify`` prints for a pair, and whether it is a mismatch. Copies kept of items
    deleted at the source (``deletions = "keep"``) are said kept, never counted extra."""
    head = f"{pc.source} -> {pc.target}"
    if pc.error:
        return [f"FAIL {head}: {pc.error}"], True
    v = pc.verdict
    out: list[str] = []
    for fc in pc.folders:
        if fc.ok:
            continue
        said = [f"{len(fc.missing)} missing", f"{len(fc.unexpected)} extra"]
        if fc.kept:
            said.append(f"{len(fc.kept)} {KEPT}")
        if fc.misplaced or fc.misplaced_in:
            said.append(f"{len(fc.misplaced)} misplaced, {len(fc.misplaced_in)} from elsewhere")
        if fc.duplicated:
            said.append(f"{len(fc.duplicated)} duplicated")
        if fc.stale:
            said.append(f"{len(fc.stale)} stale")
        out.append(
            f"FAIL {head} {fc.source_path}: {', '.join(said)} "
            f"(expected {fc.expected}, found {fc.found})"
        )
    for r in v.missing_folders[:MAX_SHOWN]:
        out.append(f"FAIL {head} {r['folder']}: no target folder ({r['target_path']})")
    in_mapped = {i for fc in pc.folders for i in fc.extra}
    elsewhere = [r for r in v.unexpected if r["id"] not in in_mapped]
    if elsewhere:
        out.append(
            f"FAIL {head}: {len(elsewhere)} extra items in target folders no selected source "
            "folder maps to, e.g. "
            + ", ".join(f"{r['folder']} {r['id']}" for r in elsewhere[:MAX_SHOWN])
        )
    if v.unexpected and pc.deletions == "keep" and not pc.state_read:
        out.append(
            f"note {head}: without the job's state an extra item cannot be told from a copy "
            'deletions = "keep" kept of an item deleted at the source; run verify where the '
            "state is (or --state PATH)"
        )
    if pc.content:  # (without a state there are no versions to compare: nothing is stale)
        for r in v.stale[:MAX_SHOWN]:
            out.append(f"STALE {head} {r['folder']} {r['id']}: {r['reason']}")
        if len(v.stale) > MAX_SHOWN:
            out.append(f"STALE {head}: ... and {len(v.stale) - MAX_SHOWN} more (--json-output)")
    for r in v.leftover_folders[:MAX_SHOWN]:
        out.append(f"note {head}: target folder {r['path']} is no selected folder's copy")
    if v.kept_unchecked:
        out.append(
            f"FAIL {head}: {len(v.kept_unchecked)} kept copies of items left out not checked "
            "(their items not asked about in time; verify again), e.g. "
            + ", ".join(f"{r['folder']} {r['id']}" for r in v.kept_unchecked[:MAX_SHOWN])
        )
    if pc.ok:
        n = v.selected
        what = "current" if pc.content else "present"
        kept = f"; {len(v.kept)} {KEPT}" if v.kept else ""
        out.insert(0, f"ok   {head}: {n} items in {len(pc.folders)} folders ({what}){kept}")
        if pc.content and v.content_unchecked:
            out.append(
                f"note {head}: {len(v.content_unchecked)} copies have no record of their "
                "version (adopted, or never seen by a pass): present, content not compared"
            )
    return out, not pc.ok


def _roles(names: list[str]) -> str:
    """Application permissions as a sentence lists them (not as a Python list)."""
    return ", ".join(names) or "nothing"


def doctor_lines(result: dict[str, Any]) -> list[str]:
    """``doctor`` on a terminal: the proxy rule, each tenant's cloud (and what the contract
    says of the mailbox API there), token and privileges, each pair's failed checks, the state
    store, then the RBAC for Applications commands."""
    out: list[str] = []
    if result.get("network"):
        out.append(f"note network: {result['network']}")
    for side, t in result["tenants"].items():
        if t.get("cloud"):
            out.append(f"note {side} tenant: {t['cloud']}, tokens for {t['scope']}")
        if t.get("contract"):
            out.append(f"note {side} tenant: {t['contract']}")
        if not t.get("token"):
            out.append(f"FAIL {side} app {t['app']}: {t.get('error')}")
            continue
        # roles missing from the token are a warning, not a failure: RBAC for Applications
        # grants in Exchange what the token does not carry; the pairs' checks below say
        # whether the mailboxes answer ("ok" here read as all granted)
        mark = "warn" if t["missing"] else "ok  "
        out.append(
            f"{mark} {side} app {t['app']}: token; missing {_roles(t['missing'])}; "
            f"beyond least privilege {_roles(t['excess'])}"
        )
    for p in result["pairs"]:
        for ch in p["checks"]:
            if not ch["ok"]:
                out.append(f"FAIL {p['source']} -> {p['target']}: {ch['what']}: {ch['detail']}")
        if p["ok"]:
            out.append(f"ok   {p['source']} -> {p['target']}")
    st = result.get("state") or {}
    if st:
        out.append(
            f"ok   state {st['where']}"
            if st["ok"]
            else f"FAIL state {st['where']}: {st.get('error')}"
        )
    return [*out, "", *result["rbac"]]


# what each number ``status`` shows counts, said under them (one word, two meanings before:
# a group's "copied" was its pass's new copies, a pair's every copy of ours in the state)
COUNTED = (
    "counted: a pass's and a group's \"copied\" are the new copies that pass made (a copy "
    'moved with its item is not counted again); a pair\'s "now" counts are its items in '
    'the state, every pass together ("copied": the target holds our copy)'
)

# a pass's counters as ``status`` says them: its "created" are the copies it made, the
# group lines' and the summary's "copied" (the JSON keeps the key)
PASS_WORDS = {"created": "copied"}
# a pass's status as ``status`` says it, where its name alone would not
PASS_STATUS_WORDS = {
    "report_unwritten": "ended, its report not written (exit 5: a full disk?); "
    "`copyengine report` writes it from this state",
}


def groups_line(groups: list[dict[str, Any]]) -> str | None:
    """The latest pass's mailbox groups by where they are: a group between two segments
    (its next one queued) is at work as a running one is, not "queued" (which a group
    counting only "running" ones saw drop at every segment's end while work remained)."""
    if not groups:
        return None
    latest = max(int(g["pass"]) for g in groups)
    mine = [g for g in groups if int(g["pass"]) == latest]
    running = sum(g["state"] == "running" for g in mine)
    between = sum(bool(g.get("at_work")) and g["state"] != "running" for g in mine)
    by: dict[str, int] = {}
    for g in mine:
        if not g.get("at_work"):
            by[g["state"]] = by.get(g["state"], 0) + 1
    rest = "".join(f", {n} {state}" for state, n in sorted(by.items()))
    return (
        f"mailbox groups of pass {latest}: {len(mine)}; at work {running + between} "
        f"({running} running, {between} between segments){rest}"
    )


def status_lines(status: dict[str, Any], now: float) -> list[str]:
    """``status`` on a terminal: the mailbox groups (several hosts), the passes, the pairs,
    and what their numbers count (``COUNTED``)."""
    out: list[str] = []
    head = groups_line(status["groups"])
    if head is not None:
        out.append(head)
    for g in status["groups"]:
        beat = f", heartbeat {now - g['heartbeat']:.0f}s ago" if g["heartbeat"] else ""
        where = (
            "between segments (its next one queued)"
            if (g.get("at_work") and g["state"] != "running")
            else g["state"]
        )
        out.append(
            f"group {g['group']} ({len(g['pairs'])} pairs): {where}"
            + (f" on {g['host']}" if g["host"] else "")
            + f"{beat}; pass {g['pass']}: copied {g['copied']}, failed {g['failed']}, "
            f"unknown {g['unknown']}, {g['items_per_s']} items/s; {g['segments']} segments "
            "in all"
            + (f", retried {g['retried']}x" if g["retried"] else "")
            + (f"; {g['error']}" if g["error"] else "")
        )
    last = max((ps["pass"] for ps in status["passes"]), default=0)
    for ps in status["passes"]:
        said, pending = ps["status"], "its changes are counted when it ends"
        if said == "running" and ps["pass"] < last:  # a later pass began: this one is over
            said = "ended without a word (killed, or its end not written: a full disk)"
            pending = "its changes were not counted"
        said = PASS_STATUS_WORDS.get(said, said)
        changes = ", ".join(
            f"{PASS_WORDS.get(k, k)} {v}" for k, v in ps["changes"].items() if v
        ) or ("no changes" if ps["finished"] else pending)
        out.append(
            f"pass {ps['pass']} ({ps['kind']}): {ps['started']} to {ps['finished'] or '…'} "
            f"{said} ({changes})"
        )
    controls = status.get("controls") or {}
    if controls.get("schedule"):
        out.append(f"schedule {controls['schedule']}")
    for key, why in (controls.get("pairs") or {}).items():
        out.append(f"{key}: {why}")
    for p in status["pairs"]:
        counts = p["items"]
        shown = ", ".join(f"{k} {v}" for k, v in counts.items()) or "no items yet"
        out.append(
            f"{p['source']} -> {p['target']}: {p['status']} (now: {shown}; "
            f"{p['folders_with_delta_link']} of {p['folders']} folders read by delta next)"
            + (f" error: {p['error']}" if p["error"] else "")
            + budget_words(p)
        )
    started = {p.get("pair") for p in status["pairs"]}
    for p in status.get("suspended", []):
        if p["pair"] not in started:  # suspended before it ever started: its line all the same
            out.append(f"{p['source']} -> {p['target']}: suspended, not started")
    for p in status.get("suspended", []):
        why = f": {p['reason']}" if p["reason"] else ""
        out.append(
            f"suspended: {p['source']} -> {p['target']} ({p['scope']}) by {p['by']} at "
            f"{p['at']}{why}; {p['resume']}"
        )
    out.extend(f"hint: {h}" for h in status.get("hints") or ())
    if status["passes"] or status["pairs"]:
        out.append(COUNTED)
    return out


def budget_words(entry: dict[str, Any]) -> str:
    """A pair's budget in effect as the state keeps it (``overview``): "; budget in effect
    (pass 2): target upload 76% of [limits]"; "" where no row said it."""
    budget = entry.get("budget_in_effect")
    if budget is None:
        return ""
    return f"; budget in effect (pass {entry.get('budget_pass')}): {budget_said(budget)}"


def submit_line(out: dict[str, Any]) -> str:
    """``submit``: the pass queued and where its mailbox groups stand."""
    return (
        f"pass {out['pass']} ({out['kind']}): {out['groups']} mailbox groups, {out['queued']} "
        f"queued, {out['running']} running, {out['done']} done"
        + (f", {out['waiting']} of them waiting for their schedule" if out.get("waiting") else "")
        + (f", {out['suspended']} suspended" if out.get("suspended") else "")
        + f" (queue {out['queue']})"
    )


def report_line(path: Any, totals: dict[str, Any]) -> str:
    """``report``: where the report went and the job's totals (mailbox groups only for a
    job shared by several hosts: a local job has none, and said "groups 0 done of 0")."""
    t = totals
    groups = f"; groups {t['groups_done']} done of {t['groups']}" if t["groups"] else ""
    return (
        f"report: {path} ({t['pairs']} pairs: {t['copied']} copied, {t['failed']} failed, "
        f"{t['unknown']} unknown{groups})"
    )
