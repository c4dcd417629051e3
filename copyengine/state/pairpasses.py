"""A pair's statistics per pass (what ``status --pair`` shows, like Exchange's
Get-MoveRequestStatistics): one row per pass, pair and run, written when the pair's pass ends
in a local run and when each segment of its group ends on a worker (a pair copied in several
segments of one pass has a row per segment: they add up). Pure: the row, its columns, and
how rows add up into a pass's line and a pair's totals; both stores write and read it
(``sql.Statements``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

MAX_FAILURES = 20  # failed or unknown items kept per row (each with its reason)

# the counters of a row: summed over the runs of one pass, and over passes for the totals
COUNTS = (
    "source_items",
    "copied",
    "copied_bytes",
    "updated",
    "moved",
    "deleted",
    "already_present",
    "skipped",
    "failed",
    "unknown",
    "throttled",
    "requests",
)


@dataclass(frozen=True)
class PairPass:
    """What one run (a local pass, or one segment of a worker) did to one pair in one pass.
    ``started``: wall-clock time; ``duration_s`` and ``throttle_wait_s``: seconds (the
    latter: wall-clock time a mailbox of the pair was held back by Exchange's budgets or a
    Retry-After, ``pacing.accounting``). ``failures``: failed and unknown items with their
    reason (at most ``MAX_FAILURES``); ``sign_off``: the pair's entry of a cutover's
    sign-off."""

    pass_number: int
    pair: str
    run: str
    kind: str
    status: str
    started: float | None = None
    duration_s: float = 0.0
    source_items: int = 0
    copied: int = 0
    copied_bytes: int = 0
    updated: int = 0
    moved: int = 0
    deleted: int = 0
    already_present: int = 0
    skipped: int = 0
    failed: int = 0
    unknown: int = 0
    throttled: int = 0
    throttle_wait_s: float = 0.0
    requests: int = 0
    error: str | None = None
    failures: tuple[dict[str, Any], ...] = ()
    sign_off: dict[str, Any] | None = None
    recorded: float = 0.0
    # the pacer's advice where the service gave a mailbox of the pair clearly less than
    # ``[limits]`` (``learn.Advice`` as dicts): what ``report`` and ``status`` hint from the
    # state; None: a row an engine before schema 8 wrote (it did not say)
    hints: tuple[dict[str, Any], ...] | None = None
    # the budget in effect per mailbox of the pair as the pass ended, where the service's
    # 429s cut it (``report.PairStats.budget_in_effect``: role: limit: share of [limits]);
    # kept in the ``hints`` column's JSON beside the advice (no column of its own, no
    # schema change): None where the row does not say (an engine before)
    budget: dict[str, dict[str, float]] | None = field(default=None, metadata={"in": "hints"})
    # the [limits] the budget's shares are of, per limit (``[amount, window seconds]``), so
    # a later pass of the pair starts at the same budget under other [limits]
    # (``pipeline.remember``); in the ``hints`` JSON too, None where the row does not say
    limits: dict[str, list[float]] | None = field(default=None, metadata={"in": "hints"})
    # per mailbox of the pair, the limits whose budget was kept over a window shorter than
    # the configured one (role: limit: seconds, ``report.PairStats.budget_windows``): a
    # later pass keeps it over that window too; in the ``hints`` JSON, None: not said
    windows: dict[str, dict[str, float]] | None = field(default=None, metadata={"in": "hints"})
    # ... and those whose budget was kept over a window tried in place of the configured
    # one (``Learned.tried``): a later pass keeps it over that window, as tried
    tried: dict[str, dict[str, float]] | None = field(default=None, metadata={"in": "hints"})

    def row(self) -> tuple[Any, ...]:
        """The row in ``COLUMNS`` order (lists and dicts as JSON)."""
        out = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "failures":
                v = json.dumps(list(v), default=str) if v else None
            elif f.name == "sign_off":
                v = json.dumps(v, default=str) if v is not None else None
            elif f.name == "hints":
                v = hints_text(v, self.budget, self.limits, self.windows, self.tried)
            elif "in" in f.metadata:
                continue
            out.append(v)
        return tuple(out)


# the table's columns, in ``PairPass`` field order
COLUMNS = tuple(
    "pass" if f.name == "pass_number" else f.name
    for f in fields(PairPass)
    if "in" not in f.metadata  # kept inside another column's JSON (``row``)
)


def table(prefix: str, real: str, integer: str) -> str:
    """The table's DDL for one server (``real``, ``integer``: its spelling of the types)."""
    counts = ", ".join(f"{c} {integer} NOT NULL DEFAULT 0" for c in COUNTS)
    return (
        f"CREATE TABLE IF NOT EXISTS {prefix}pair_passes (\n"
        f"    pass {integer} NOT NULL, pair TEXT NOT NULL, run TEXT NOT NULL, "
        f"kind TEXT NOT NULL, status TEXT NOT NULL, started {real}, "
        f"duration_s {real} NOT NULL DEFAULT 0, {counts}, "
        f"throttle_wait_s {real} NOT NULL DEFAULT 0, error TEXT, failures TEXT, "
        f"sign_off TEXT, recorded {real} NOT NULL, hints TEXT,\n"
        "    PRIMARY KEY (pass, pair, run)\n)"
    )


def pair_pass_of(row: Sequence[Any]) -> PairPass:
    d = dict(zip(COLUMNS, row, strict=True))
    d["pass_number"] = int(d.pop("pass"))
    d["failures"] = tuple(json.loads(d["failures"])) if d["failures"] else ()
    d["sign_off"] = json.loads(d["sign_off"]) if d["sign_off"] else None
    d["budget"] = budget_of(d["hints"])
    d["limits"] = limits_of(d["hints"])
    d["windows"] = windows_of(d["hints"])
    d["tried"] = windows_of(d["hints"], "tried")
    d["hints"] = hints_of(d["hints"])
    for name in COUNTS:
        d[name] = int(d[name] or 0)
    return PairPass(**d)


@dataclass
class PassLine:
    """One pass of a pair: its runs added up."""

    pass_number: int
    kind: str
    status: str = "running"
    started: float | None = None
    duration_s: float = 0.0
    throttle_wait_s: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    runs: int = 0
    error: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    sign_off: dict[str, Any] | None = None

    def add(self, r: PairPass) -> None:
        """A later run of the same pass: counters add up; the status, the error and what is
        still unknown are the last run's (a segment's unknown items are settled by the
        next)."""
        self.runs += 1
        self.status = r.status
        self.error = r.error or (self.error if r.status == "failed" else None)
        if r.started is not None:
            self.started = r.started if self.started is None else min(self.started, r.started)
        self.duration_s += r.duration_s
        self.throttle_wait_s += r.throttle_wait_s
        for name in COUNTS:
            self.counts[name] = (
                getattr(r, name) if name == "unknown" else self.counts[name] + getattr(r, name)
            )
        known = {(f.get("folder"), f.get("id")) for f in self.failures}
        for f in r.failures:
            if (f.get("folder"), f.get("id")) not in known and len(self.failures) < MAX_FAILURES:
                self.failures.append(f)
        self.sign_off = r.sign_off or self.sign_off

    def as_dict(self) -> dict[str, Any]:
        return {
            "pass": self.pass_number,
            "kind": self.kind,
            "status": self.status,
            "started": self.started,
            "duration_s": round(self.duration_s, 3),
            "throttle_wait_s": round(self.throttle_wait_s, 3),
            **self.counts,
            "runs": self.runs,
            "error": self.error,
            "failures": self.failures,
            "sign_off": self.sign_off,
        }


def pass_lines(rows: Iterable[PairPass]) -> list[PassLine]:
    """A pair's rows (ordered by pass, then by when they were recorded) as one line per
    pass."""
    lines: dict[int, PassLine] = {}
    for r in rows:
        line = lines.get(r.pass_number)
        if line is None:
            line = lines[r.pass_number] = PassLine(r.pass_number, r.kind)
        line.add(r)
    return [lines[k] for k in sorted(lines)]


def totals(lines: Sequence[PassLine]) -> dict[str, Any]:
    """Every pass added up: counters as each pass counted them (an item that failed in two
    passes is counted twice; ``unknown``: the last pass's); time, throttled time."""
    out: dict[str, Any] = {"passes": len(lines)}
    for name in COUNTS:
        out[name] = sum(line.counts[name] for line in lines)
    out["unknown"] = lines[-1].counts["unknown"] if lines else 0
    out["duration_s"] = round(sum(line.duration_s for line in lines), 3)
    out["throttle_wait_s"] = round(sum(line.throttle_wait_s for line in lines), 3)
    return out


def as_dicts(rows: Iterable[PairPass]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def latest_hints(
    rows: Iterable[tuple[int, Sequence[dict[str, Any]] | None]],
) -> list[dict[str, Any]]:
    """What one pair's rows, as (pass, hints) by pass then as recorded, advise now: the
    advice of its latest pass that said (a pass copied in several segments: each
    segment's); rows an engine before schema 8 wrote say nothing either way."""
    said = [(number, hints) for number, hints in rows if hints is not None]
    if not said:
        return []
    last = said[-1][0]
    out: list[dict[str, Any]] = []
    for number, hints in said:
        if number == last:
            out.extend(a for a in hints or () if a not in out)
    return out


def hints_text(
    hints: Sequence[dict[str, Any]] | None,
    budget: dict[str, dict[str, float]] | None,
    limits: dict[str, list[float]] | None = None,
    windows: dict[str, dict[str, float]] | None = None,
    tried: dict[str, dict[str, float]] | None = None,
) -> str | None:
    """The ``hints`` column: the advice as a JSON list (schema 8 as first written), or, with
    the budget in effect, ``{"advice": [...], "budget": {...}}`` (and ``"limits"``, the
    [limits] it is a share of, where known; ``"windows"``, the shorter windows it was kept
    over, where any; ``"tried"``, the windows tried in place of the configured one it was
    kept over, where any)."""
    if budget is not None:
        said: dict[str, Any] = {"advice": list(hints or ()), "budget": budget}
        if limits is not None:
            said["limits"] = limits
        if windows:
            said["windows"] = windows
        if tried:
            said["tried"] = tried
        return json.dumps(said)
    return json.dumps(list(hints)) if hints is not None else None


def hints_of(text: str | None) -> tuple[dict[str, Any], ...] | None:
    """A row's ``hints`` column read back: its advice."""
    if text is None:
        return None
    said = json.loads(text)
    return tuple(said.get("advice") or ()) if isinstance(said, dict) else tuple(said)


def budget_of(text: str | None) -> dict[str, dict[str, float]] | None:
    """A row's ``hints`` column read back: the budget in effect it kept (None: not said)."""
    said = json.loads(text) if text is not None else None
    return said.get("budget") if isinstance(said, dict) else None


def limits_of(text: str | None) -> dict[str, list[float]] | None:
    """A row's ``hints`` column read back: the [limits] its budget is a share of."""
    said = json.loads(text) if text is not None else None
    return said.get("limits") if isinstance(said, dict) else None


def windows_of(text: str | None, key: str = "windows") -> dict[str, dict[str, float]] | None:
    """A row's ``hints`` column read back: the windows shorter than configured its budget
    was kept over (None: not said); ``key`` ``"tried"``: those tried in place of it."""
    said = json.loads(text) if text is not None else None
    return said.get(key) if isinstance(said, dict) else None


def latest_budget(
    rows: Iterable[tuple[int, dict[str, dict[str, float]] | None]],
) -> tuple[int, dict[str, dict[str, float]]] | None:
    """What one pair's rows, as (pass, budget) by pass then as recorded, say of its budget
    in effect: the pass and budget of the latest row that said (a pass in segments: its
    last segment's); None where none said."""
    said = [(number, budget) for number, budget in rows if budget is not None]
    return said[-1] if said else None
