"""plan reads a delta round as its end state (the last row of an item is its state; the review
of issue 23 found the plan had taken the first); and its ETA model, a table."""

from __future__ import annotations

import math
from typing import Any, cast

import anyio
import pytest

from copyengine import forecast
from copyengine.config import FolderRules, ItemFilters, Limits, Pair
from copyengine.graph.models import DeltaPage, Item, Removed
from copyengine.state import ItemRecord
from copyengine.state.records import Status
from tests.fake_api import FakeAccount


class _Src:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    async def item_delta(self, *a: Any, **k: Any) -> Any:
        yield DeltaPage(self.rows, None, "link2")


def _plan(rows: list[Any], records: dict[str, ItemRecord]) -> forecast.FolderPlanned:
    pair = Pair("a@x", "b@y", FolderRules(), ItemFilters())
    fp = forecast.FolderPlanned("Inbox", "Inbox", True)
    assert anyio.run(forecast._plan_delta, cast(Any, _Src(rows)), "m", "link1", pair, records, fp)
    return fp


def test_item_changed_then_deleted_in_one_round_is_one_removal() -> None:
    rec = ItemRecord("a", "f", Status.DONE, b"k", "tf", "ta", change_key="v1")
    fp = _plan([Item("a", "v2", "message", 10, "", "", ()), Removed("a", "deleted")], {"a": rec})
    # the round ends with the item removed: one removal, nothing to copy
    assert (fp.removed, fp.copy, fp.items) == (1, 0, 0)


def test_the_last_row_of_an_item_is_its_state() -> None:
    rec = ItemRecord("a", "f", Status.DONE, b"k", "tf", "ta", change_key="v1")
    rows = [Item("a", "v1", "message", 10, "", "", ()), Item("a", "v2", "message", 99, "", "", ())]
    fp = _plan(rows, {"a": rec})
    # the row v2 (changed at the source) is one update of 99 bytes
    assert (fp.copy, fp.copy_bytes, fp.present) == (1, 99, 0)


# -- the ETA model: the whole-window bound and the in-flight latency bound, a table ---------
MiB = 2**20
LIM = Limits()  # Exchange: 10,000 requests / 600 s, 150 MB / 300 s, 4 in flight


@pytest.mark.parametrize(
    ("items", "body", "latency", "alone", "seconds", "binds"),
    [
        (0, 0, 0.035, 0, 0.0, ""),
        # the demo job: every body in one window, so no window is waited for; 4 in flight
        (900, 60 * MiB, 0.035, 0, 900 * 0.035 / 4, "latency (35 ms a request, 4 at once)"),
        # four whole windows: three waits of 300 s, then the last window's quarter of the work
        (1000, 600 * MiB, 0.1, 0, 3 * 300 + 1000 * 0.1 / 4 / 4, "upload budget"),
        # one byte over four windows: a fifth
        (1000, 600 * MiB + 1, 0.1, 0, 4 * 300 + 1000 * 0.1 / 4 / 5, "upload budget"),
        # two bodies larger than the whole budget: a window each
        (2, 0, 1.0, 2, 300 + 2 * 1.0 / 4 / 2, "upload budget"),
        # tiny items: the request window binds (three windows of 10,000)
        (25_000, 25 * MiB, 0.01, 0, 2 * 600 + 25_000 * 0.01 / 4 / 3, "request budget"),
        # a slow service: the requests take longer than the window waits
        (400, 160 * MiB, 10.0, 0, 400 * 10.0 / 4, "latency (10000 ms a request, 4 at once)"),
    ],
)
def test_pair_eta(
    items: int, body: int, latency: float, alone: int, seconds: float, binds: str
) -> None:
    eta = forecast.pair_eta(items, body, LIM, latency, alone)
    assert eta.seconds == pytest.approx(seconds)
    assert eta.binding.startswith(binds)


def test_the_first_window_is_not_charged_a_rate() -> None:
    """The issue's job: 67 MB in 900 items took 9.7 s; a rate over the budget said 197 s."""
    assert forecast.pair_eta(900, 89 * 10**6, LIM, 0.035).seconds < 10


def test_a_plan_counts_bodies_larger_than_the_budget_alone() -> None:
    lim = Limits(upload_bytes_per_window=int(2.5 * MiB), upload_window_s=5.0)
    p = forecast.PairPlanned("a@x", "b@y")
    f = forecast.FolderPlanned("/Inbox", "/Inbox", True)
    for size in (3 * MiB, 100_000, 100_000):  # one body over 2.5 MiB, two that share a window
        f.to_copy(size)
    p.folders.append(f)
    f.exists = False  # created first, one request before the copy starts
    eta = forecast.pair_work_eta(p, lim, 0.04)
    survey = (forecast.SURVEY_REQUESTS + 1) * 0.04
    assert eta.seconds == pytest.approx(survey + 5.0 + 3 * 0.04 / 4 / 2)


def test_the_survey_comes_before_the_imports() -> None:
    eta = forecast.pair_eta(900, 60 * MiB, LIM, 0.04, setup=20)
    assert eta.seconds == pytest.approx(20 * 0.04 + 900 * 0.04 / 4)


class _Account(FakeAccount):
    """A mailbox's account with ``requests`` answered and no throttling."""

    def __init__(self, requests: int) -> None:
        self.requests = requests

    def requests_total(self) -> int:
        return self.requests


def _running_pair(started_ago: float) -> Any:
    import time

    from copyengine.report import PairStats, PairStatus

    p = PairStats("a@x", "b@y", status=PairStatus.RUNNING, started=time.monotonic() - started_ago)
    f = p.folder("/Inbox")
    f.source_items, f.source_bytes, f.copied = 1000, 1000 * 50_000, 400
    p.enumerated_all = True
    p.pacers.append(_Account(400))  # 400 requests in 10 s, 4 at once: 0.1 s each
    return p


def test_the_live_eta_is_the_plans_model_not_a_rate() -> None:
    from copyengine.console.live import pair_eta_s

    p = _running_pair(10.0)
    # no window to wait for: the latency bound, 600 left at 0.1 s, 4 at once
    assert pair_eta_s(p, LIM) == pytest.approx(600 * 0.1 / 4, rel=0.01)
    # time-scaled windows (2.5 MB / 5 s): the first window went at once, the rest wait for
    # theirs; a rate over the first 10 s (400 items) would say 15 s
    small = Limits(upload_bytes_per_window=int(2.5 * MiB), upload_window_s=5.0)
    body = forecast.import_body(50_000)
    windows = math.ceil(1000 * body / small.upload_bytes_per_window)
    whole = (windows - 1) * 5.0 + 1000 * 0.1 / 4 / windows
    assert pair_eta_s(p, small) == pytest.approx(whole - 10.0, rel=0.01)
    assert pair_eta_s(p, small) > 100  # type: ignore[operator]


class _CutAccount(_Account):
    """A target mailbox whose upload budget the service's 429s cut to 1/10 of [limits], kept
    over the 5 s window the service showed (as the x60 emulator under default [limits])."""

    def budget_in_effect(self) -> dict[str, Any]:
        from copyengine.pacing.learn import Learned

        lim = Learned.of(150 * MiB, 300.0)
        return {"upload": Learned(lim.configured, lim.configured / 10, 300.0, 5.0, cuts=3)}


def test_the_live_eta_follows_the_budget_the_service_left() -> None:
    """Review, issue 26: against a service giving 1/10 of [limits], the live ETA read 0s for
    most of the run, as if everything left fitted [limits]' first window."""
    from copyengine.console.live import pair_eta_s

    p = _running_pair(10.0)
    p.pacers.append(_CutAccount(400))  # the pair's target
    body = forecast.import_body(50_000)
    rate = 15 * MiB * 5 / 300 / 5  # the budget in effect over its window, per second
    assert pair_eta_s(p, LIM) == pytest.approx(600 * body / rate, rel=0.01)
    assert pair_eta_s(p, LIM) > 600  # type: ignore[operator]
