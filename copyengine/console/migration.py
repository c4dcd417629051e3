"""The migration as the customer reads it, across every pass: one row per pair (selected,
copied, current in the target, skipped by reason, failed, sign-off) and the items that
failed or wait to be confirmed, with their folder, type, date and size.

Read from a report's dict, of either shape: a run's report (``JobStats.as_dict``: this
pass's ``pairs`` and ``sign_off``, and ``migration``, the state across passes read at the
run's end) or the job's report from its state (``copyengine report``: ``migration`` only).
Where the state says (``migration``) it wins; a run whose state could not be read falls
back on what the run itself saw."""

from __future__ import annotations

from typing import Any


def pair_key(source: str, target: str) -> str:
    """The state's key of a pair (``config.Pair.key``)."""
    return f"{source.lower()}->{target.lower()}"


def _skipped(pair: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in pair.get("folders") or []:
        for why, n in (f.get("skipped") or {}).items():
            out[why] = out.get(why, 0) + int(n)
    return out


def _from_run(p: dict[str, Any]) -> dict[str, Any]:
    """A pair as this run alone saw it (no state read)."""
    skipped = _skipped(p)
    return {
        "source": p["source"],
        "target": p["target"],
        "status": p.get("status"),
        "error": p.get("error"),
        "selected": max(0, int(p.get("source_items", 0)) - sum(skipped.values())),
        "copied": int(p.get("copied", 0)),
        "current": int(p.get("copied", 0)) + int(p.get("already_present", 0)),
        "failed": int(p.get("failed", 0)),
        "waiting": int(p.get("unknown", 0)) + int(p.get("not_done", 0)),
        "skipped": skipped,
        "skipped_from": "this pass",
    }


def _from_state(m: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": m["source"],
        "target": m["target"],
        "status": m.get("status"),
        "error": m.get("error"),
        "selected": int(m.get("selected", 0)),
        "copied": int(m.get("copied", 0)),
        "current": int(m.get("current", 0)),
        "failed": int(m.get("failed", 0)),
        "waiting": int(m.get("unknown", 0)) + int(m.get("not_attempted", 0)),
        "skipped": {},
        "skipped_from": None,
    }


def run_pairs(report: dict[str, Any]) -> list[dict[str, Any]]:
    """This run's pairs (a run's report; the job's report has none)."""
    return list(report["pairs"]) if "run_id" in report else []


def pair_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pair of the job across its passes, the pairs of this run first (in its order),
    then the state's others; with ``sign_off`` (this run's entry or None), ``this_pass``
    (copied in this run) and ``in_run`` (whether this run copied the pair)."""
    state = {m["pair"]: m for m in (report.get("migration") or {}).get("pairs") or []}
    signed = {
        pair_key(e["source"], e["target"]): e
        for e in (report.get("sign_off") or {}).get("pairs") or []
    }
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for p in run_pairs(report):
        key = pair_key(p["source"], p["target"])
        seen.add(key)
        run = _from_run(p)
        row = _from_state(state[key]) if key in state else run
        row["skipped"], row["skipped_from"] = run["skipped"], run["skipped_from"]
        row.update(key=key, this_pass=int(p.get("copied", 0)), in_run=True)
        rows.append(row)
    for key, m in state.items():
        if key not in seen:
            rows.append({**_from_state(m), "key": key, "this_pass": 0, "in_run": False})
    for row in rows:
        entry = signed.get(row["key"])
        row["sign_off"] = entry
        if entry is not None:  # the sign-off listed every source item: its counts hold
            row["selected"] = int(entry.get("selected", row["selected"]))
            row["skipped"], row["skipped_from"] = dict(entry.get("skipped") or {}), "sign-off"
    return rows


def _run_details(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What this run knows of its failed and unknown items, by id (type, date, request)."""
    out: dict[str, dict[str, Any]] = {}
    for p in run_pairs(report):
        for f in p.get("folders") or []:
            for kind, key in (("failed", "failures"), ("unknown", "unknown_items")):
                for r in f.get(key) or []:
                    out[str(r["id"])] = {
                        **r,
                        "outcome": kind,
                        "folder": f.get("source_path", ""),
                        "pair": f"{p['source']} -> {p['target']}",
                    }
    return out


def item_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """The items that failed or wait to be confirmed: as the state has them now (an item
    that failed in one pass and was copied by a later one is not listed), completed with
    what this run saw of them; a run without a state read lists its own."""
    details = _run_details(report)
    mig = report.get("migration")
    rows: list[dict[str, Any]] = []
    if mig is None:
        rows = list(details.values())
    else:
        for m in mig.get("pairs") or []:
            for it in m.get("items") or []:
                seen = details.get(str(it["id"]), {})
                pair = f"{m['source']} -> {m['target']}"
                rows.append({**seen, **{k: v for k, v in it.items() if v}, "pair": pair})
    return [
        {
            "pair": str(r.get("pair", "")),
            "folder": str(r.get("folder") or ""),
            "id": str(r["id"]),
            "outcome": str(r.get("outcome", "")),
            "reason": str(r.get("reason") or ""),
            "request_id": str(r.get("request_id") or ""),
            "type": str(r.get("type") or ""),
            "created": str(r.get("created") or ""),
            "size": str(r.get("size", "")),
        }
        for r in rows
    ]
