"""A budget a pass ended with over the window *tried* in place of the configured one
(``step.Budgets._widened_under_shown``: the documented [limits] beside another writer on a
service whose window is 60 times shorter) is remembered apart from a window the service
showed: restored as one shown, the next pass spent it in even parts of that window and
climbed at its pace, the mode the tried window's docstring found at 71-73% of the real
budget (review of fb11013: 71.6% of the real budget against 76.8% without the window);
left out (over the configured window), the next pass climbed back doubling per configured
window, 60 times slower than per the service's: cut-short seeds 959 and 1014 (at
192b4f2), whose first runs ended on a window tried, ran their next runs past 300 s.
Remembered as tried (``remember.window_of(lim, tried=True)``, the state's ``tried``), the
next pass keeps it over that window as tried again (``Budgets._on_tried``)."""

from __future__ import annotations

import json
import statistics
from typing import Any

import pytest

from benchmarks import learn_model
from copyengine.pacing import PacerLimits, remember
from copyengine.pacing.step import Budgets
from copyengine.state.pairpasses import PairPass, pair_pass_of

MB = 1 << 20
# 8 seeds: with 4, the two arms' medians moved by a point and a half with the ready pool's
# order (``ReadyItems.choose``, ``MIXED``: 81.1% against 79.4%; 16 seeds 83.7% against
# 80.3%, at the base 82.3% against 79.0%)
SEEDS = 8


def _second_passes(monkeypatch: pytest.MonkeyPatch, as_state_says: bool) -> float:
    """``learn_model`` at 1/60 beside a writer taking half, the documented 300 s window: the
    median share of the real budget of a second pass seeded from each first pass's end, as
    the pipeline seeds it from what the state says (``as_state_says``; else over the
    configured window unless a window shown)."""
    made: list[Budgets] = []
    seed_with: list[Any] = [None]

    class Seeded(Budgets):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            made.append(self)
            if seed_with[0] is not None:
                remember.remember(self, "upload", *seed_with[0])

    monkeypatch.setattr(learn_model, "Budgets", Seeded)
    shares, tried_ends = [], 0
    for seed in range(SEEDS):
        seed_with[0] = None
        learn_model.run(60, 0.5, 300, 250, seed)
        lim = made[-1].learned()["upload"]  # as the report reads it
        shown, tried = remember.window_of(lim), remember.window_of(lim, tried=True)
        tried_ends += tried is not None
        if not as_state_says:
            tried = None
        window = shown if shown is not None else tried
        of = (lim.configured, lim.period)
        seed_with[0] = (lim.share, of, True, window, shown is None and tried is not None)
        shares.append(learn_model.run(60, 0.5, 300, 250, seed + 100).share)
    # the first passes ended on a window tried (else: no test)
    assert tried_ends >= 3 * SEEDS // 4, tried_ends
    return statistics.median(shares)


def test_a_window_tried_is_remembered_as_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    # 8 seeds: 83.4% of the real budget against 80.3% over the configured window (4 seeds
    # before the ready pool's ``MIXED``: 81.8% against 76.8%; 16 seeds: 82.0% against
    # 78.1%; restored as shown, 71.5%)
    remembered = _second_passes(monkeypatch, True)
    configured = _second_passes(monkeypatch, False)
    assert remembered >= configured + 0.02, (remembered, configured)


def test_a_seeded_tried_window_is_kept_as_tried() -> None:
    limits = PacerLimits()  # Exchange's documented 150 MB per 300 s
    fresh = Budgets(limits)
    share = remember.remember(fresh, "upload", 0.03, (150.0 * MB, 300.0), True, 22.0, True)
    assert share is not None and abs(share - 0.03 * remember.MARGIN) < 1e-9
    lim = fresh.learned()["upload"]
    assert (lim.window, lim.tried) == (22.0, True)
    assert remember.window_of(lim) is None and remember.window_of(lim, tried=True) == 22.0
    shown = Budgets(limits)
    remember.remember(shown, "upload", 0.03, (150.0 * MB, 300.0), True, 22.0)
    lim = shown.learned()["upload"]
    assert (lim.window, lim.tried) == (22.0, False)
    assert remember.window_of(lim) == 22.0 and remember.window_of(lim, tried=True) is None


def test_the_state_keeps_the_windows_tried_apart() -> None:
    row = PairPass(
        pass_number=1,
        pair="p",
        run="r",
        kind="first",
        status="done",
        budget={"target": {"upload": 0.03, "requests": 0.5}},
        limits={"upload": [150.0 * MB, 300.0], "requests": [10000.0, 600.0]},
        windows={"target": {"requests": 60.0}},
        tried={"target": {"upload": 22.0}},
    )
    back = pair_pass_of(row.row())
    assert (back.windows, back.tried) == (row.windows, row.tried)
    hints = json.loads(row.row()[-1])
    assert hints["tried"] == {"target": {"upload": 22.0}}
    older = pair_pass_of(PairPass(1, "p", "r", "first", "done", budget={}).row())
    assert older.tried is None
