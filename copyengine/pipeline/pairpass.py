"""A pair's statistics for its pass, written to the state when the pair's run ends (a local
pass, or one segment of a worker): what ``status --pair`` shows across passes
(``state.pairpasses``)."""

from __future__ import annotations

import time
from typing import Any

import structlog

from ..errors import StateError
from ..report import PairStats
from ..state import Store
from ..state.pairpasses import MAX_FAILURES, PairPass
from .remember import limits_said

log = structlog.get_logger("copyengine.job")
# what a sign-off entry keeps in the pair's statistics: its counts and verdict, not its lists
SIGN_OFF_KEPT = (
    "complete",
    "error",
    "selected",
    "in_target",
    "current",
    "failed",
    "unaccounted",
    "stale",
    "duplicated",
    "misplaced",
    "leftover_folders",
    "missing_folders",
    "extra_in_target",
    "kept",
)


def failures_of(st: PairStats) -> tuple[dict[str, Any], ...]:
    """The pair's failed and unknown items with their reason, at most ``MAX_FAILURES``."""
    out: list[dict[str, Any]] = []
    for path, fs in st.folders.items():
        for outcome, items in (("failed", fs.failed), ("unknown", fs.unknown)):
            for it in items:
                if len(out) >= MAX_FAILURES:
                    return tuple(out)
                reason = it.get("reason")
                out.append(
                    {"folder": path, "id": it.get("id"), "outcome": outcome, "reason": reason}
                )
    return tuple(out)


def pair_pass(st: PairStats, key: str, number: int, kind: str, run: str) -> PairPass:
    """What ``st`` says of the pair's run, as a row (pure but for the clock, read once)."""
    now_wall, now = time.time(), time.monotonic()
    started = None if st.started is None else now_wall - (now - st.started)
    return PairPass(
        pass_number=number,
        pair=key,
        run=run,
        kind=kind,
        status=str(st.status),
        started=started,
        duration_s=round(st.duration(), 3),
        source_items=st.total("source_items"),
        copied=st.total("copied"),
        copied_bytes=st.total("copied_bytes"),
        updated=st.total("updated"),
        moved=st.total("moved_in"),
        deleted=st.total("deleted"),
        already_present=st.total("already_present"),
        skipped=st.skipped,
        failed=st.failed,
        unknown=st.unknown,
        throttled=st.throttled,
        throttle_wait_s=round(st.throttle_wait_s, 3),
        requests=st.requests,
        error=st.error,
        failures=failures_of(st),
        recorded=now_wall,
        hints=tuple(a._asdict() for a in st.budget_advice()),
        budget=st.budget_in_effect(),
        limits=limits_said(st),
        windows=st.budget_windows() or None,
        tried=st.budget_windows(tried=True) or None,
    )


async def record_pair_pass(store: Store, st: PairStats, key: str, kind: str, run: str) -> None:
    """The pair's row for the store's pass; a store that cannot take it is said in the log
    (the job sees the store's failure on its next write; the report has the pair anyway)."""
    number = store.pass_number
    if number is None or st.started is None:
        return
    try:
        await store.record_pair_pass(pair_pass(st, key, number, kind, run))
    except StateError as exc:
        log.warning("pair.statistics_not_saved", pair=key, error=str(exc))


async def record_sign_off(store: Store, number: int, sign_off: dict[str, Any]) -> None:
    """Each pair's entry of a cutover's sign-off, on its statistics of pass ``number``."""
    for entry in sign_off.get("pairs", []):
        kept = {k: entry[k] for k in SIGN_OFF_KEPT if k in entry}
        await store.record_pair_sign_off(number, str(entry["pair"]), kept)
