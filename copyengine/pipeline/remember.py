"""A later pass of a pair starts at the budget in effect its last pass ended with (issue 26,
``pacing.remember``): read from the store (several hosts read the same one: a worker that
takes a pair another host copied starts where that host ended), handed to each pacer of
the pair as it starts, and said in the pair's notes and the log's
``pair.budget_remembered``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..graph.api import PacerView
from ..report import ROLES, PairStats, budget_said
from ..state import Store
from ..state.pairpasses import PairPass


async def remembered(store: Store, pair: str) -> PairPass | None:
    """The pair's latest row that said its budget in effect and the [limits] it is a share
    of (a pass in segments: its last segment's); None: none did."""
    said = [r for r in await store.pair_passes(pair) if r.budget is not None]
    if not said or said[-1].limits is None:
        return None  # no budget said, or by an engine that did not say of which [limits]
    return said[-1]


def remember(row: PairPass | None, st: PairStats, pacers: Sequence[PacerView], log: Any) -> None:
    """Start the pair's ``pacers`` just watched (the last of ``st.pacers``, in ``ROLES``
    order) at the budget ``row`` says their mailboxes ended its pass with."""
    if row is None or not row.budget or row.limits is None:
        return
    first = len(st.pacers) - len(pacers)
    started: dict[str, dict[str, float]] = {}
    for i, pacer in enumerate(pacers, first):
        if not 0 <= i < len(ROLES):
            continue
        role = ROLES[i]
        for limit, share in row.budget.get(role, {}).items():
            of = row.limits.get(limit)
            if of is None or len(of) != 2:
                continue
            window = (row.windows or {}).get(role, {}).get(limit)
            tried = None if window else (row.tried or {}).get(role, {}).get(limit)
            now = pacer.budgets.remember(
                limit,
                share,
                (float(of[0]), float(of[1])),
                row.throttled > 0,
                window or tried,
                tried=tried is not None,
            )
            if now:
                started.setdefault(role, {})[limit] = round(now, 4)
    if started:
        said = f"started at the budget in effect of pass {row.pass_number}: {budget_said(started)}"
        st.notes.append(said)
        st.remembered = started
        log.info("pair.budget_remembered", pass_number=row.pass_number, budget=started, said=said)


def limits_said(st: PairStats) -> dict[str, list[float]] | None:
    """The [limits] the pair's budget in effect is a share of (the job's, the same for
    every mailbox), per limit: ``[amount, window seconds]``; None: no pacer of the pair."""
    for account in st.pacers:
        learned = account.budget_in_effect()
        if learned:
            return {k: [lim.configured, lim.period] for k, lim in learned.items()}
    return None
