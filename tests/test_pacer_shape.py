"""The shape of a mailbox's upload window (issue 26): only what the last window will carry
goes at once, the rest of the free room evenly over the window, so that the windows after
the first do not burst and idle, at no cost to when the mailbox is done. The pure decision
(``pacing.shape``), the pacer's state applying it (``step.Budgets.plan``), the pacer reading
the pairs' backlogs, the pipeline's backlog; and, in simulated time, the pacer's own
decisions against the emulator's own throttle (``benchmarks.learn_model``) with seeded
random item sizes."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from benchmarks import learn_model
from copyengine.config import FolderRules, ItemFilters, Limits, Pair
from copyengine.emulator.throttle import Limits as ServiceLimits
from copyengine.graph import Item
from copyengine.pacing import MailboxPacer, PacerLimits
from copyengine.pacing.shape import NONE, Shape, Smooth, burst, plan
from copyengine.pacing.step import INCOMING_BYTES, Budgets, Kind, step
from copyengine.pipeline.backlog import Backlog
from copyengine.pipeline.budget import ByteBudget
from copyengine.pipeline.context import PairContext
from copyengine.pipeline.pair import PairRunner
from copyengine.pipeline.stop import StopFlag
from copyengine.plan import encoded_size
from copyengine.report import PairStats
from copyengine.state import SQLiteStore
from tests.fake_api import FakeApi, FakePacer

SRC, DST = "adele@contoso.example", "adele@fabrikam.example"

L = 1000.0  # budget per window in the pure cases
P = Smooth(slack=0.05, drift=0.0, flow=0.25, cost=0.1)


# -- the pure decision --------------------------------------------------------------------------
def test_unknown_or_all_fitting_now_goes_at_once() -> None:
    assert burst(L, None, L, P) == L  # not known: as without a plan
    assert burst(L, 800.0, L, P) == L  # everything fits now: finishing now beats anything
    assert burst(0.0, 5_000.0, L, P) == 0.0


def test_only_what_the_last_window_carries_goes_at_once() -> None:
    # 4,300 left: the last window carries 300; with a slack of 5% of the budget, 350 go now
    assert burst(L, 4_300.0, L, P) == pytest.approx(350.0)
    s = plan(10.0, L, 4_300.0, L, 5.0, P)
    assert (s.start, s.window) == (10.0, 5.0)
    assert s.spread == pytest.approx(650.0)


def test_a_last_window_near_full_or_near_empty_bursts() -> None:
    # the estimate cannot tell on which side of a window's boundary the mailbox ends
    assert burst(L, 4_980.0, L, P) == L
    assert burst(L, 4_020.0, L, P) == L
    assert plan(0.0, L, 4_020.0, L, 5.0, P) is NONE


def test_the_minimum_flow_costs_at_most_its_share_of_a_window() -> None:
    # 4,800 left: the last window carries 800 (850 with the slack), 150 left to spread,
    # under the minimum flow of 250: the burst is cut only as far as costs a tenth of a
    # window at the end, (m - b) / (free - b) <= cost
    b = burst(L, 4_800.0, L, P)
    assert b < 850.0
    assert (850.0 - b) / (L - b) == pytest.approx(P.cost)
    # with enough to spread, the burst is the last window's share
    assert burst(L, 4_500.0, L, P) == pytest.approx(550.0)


def test_the_slack_grows_with_the_windows_left() -> None:
    p = Smooth(slack=0.05, drift=0.01)
    near = burst(L, 20_300.0, L, p)  # 21 windows: a slack of 26% of the budget
    assert near == pytest.approx(300.0 + 260.0)
    # and by the largest body: a window's room comes back in bodies
    assert burst(L, 4_300.0, L, P, largest=200.0) == pytest.approx(300.0 + 50.0 + 200.0)
    assert burst(L, 4_300.0, L, P, largest=700.0) == L  # it could end either side


def test_a_shape_gives_its_room_back_evenly() -> None:
    s = Shape(10.0, 600.0, 6.0)
    assert s.held(9.0) == 600.0
    assert s.held(10.0) == 600.0
    assert s.held(13.0) == pytest.approx(300.0)
    assert s.held(16.0) == 0.0
    assert s.ends == 16.0
    # 150 bytes: 1.5 s of the shape alone; sooner when room leaves the window meanwhile
    assert s.wait(10.0, 150.0) == pytest.approx(1.5)
    assert s.wait(10.0, 150.0, [(10.5, 100)]) == pytest.approx(0.5)
    assert s.wait(10.0, 150.0, [(10.5, 40)]) == pytest.approx(1.1)
    assert s.wait(10.0, 0.0) == 0.0
    assert s.wait(10.0, 700.0) == math.inf
    assert NONE.held(0.0) == 0.0


# -- the pacer's state ------------------------------------------------------------------------
def budgets() -> Budgets:
    return Budgets(
        PacerLimits(
            concurrency=4, requests=10_000, request_window=10.0, upload_bytes=1000,
            upload_window=10.0, window_slack=0.0,
        )
    )  # fmt: skip


def test_no_shape_before_the_service_let_a_whole_window_through() -> None:
    b = budgets()
    b.smooth = P
    b.plan(0.0, 4_300.0)  # nothing went yet: the service may give less than configured
    assert b.shape is NONE
    for k in range(10):  # 930 bytes in bodies of 93
        b.take(93)
        b.release(0.1 + k * 0.01, 93)
        b.plan(0.2 + k * 0.01, 4_300.0 - 93 * (k + 1))
        assert b.shape is NONE  # nothing free yet
        assert b.shown_full is (k == 9)  # 93% of the budget went through: it gives it
    # the window has emptied: the last window carries 370, plus a slack of 5% and the
    # largest body: 513 at once, 487 spread
    b.plan(10.5, 3_370.0)
    assert b.shape.spread == pytest.approx(487.0)


def test_the_free_room_is_shaped_and_given_back_over_the_window() -> None:
    b = budgets()
    b.smooth = P
    b.shown_full = True  # the service has let a whole window through
    b.plan(0.0, 4_300.0)  # 350 at once, 650 over 10 s
    assert b.shape.spread == pytest.approx(650.0)
    assert b.upload_room(0.0) == pytest.approx(350.0)
    assert step(b, 0.0, 300, 0, None).kind is Kind.GO
    b.take(300)
    b.release(0.1, 300)
    assert step(b, 0.1, 300, 0, None).kind is Kind.SLEEP
    # 50 free now (the shape gave back 6.5 since): 243.5 more at 65 a second
    wait = b.delay(0.1, 300)
    assert wait == pytest.approx(243.5 / 65)
    assert step(b, 0.1 + wait + 1e-6, 300, 0, None).kind is Kind.GO
    b.plan(5.0, 3_700.0)  # a shape runs its window: not planned again
    assert b.shape.start == 0.0


def test_no_shape_while_the_budget_is_cut_and_none_kept_after_a_refusal() -> None:
    b = budgets()
    b.shown_full = True
    b.plan(0.0, 4_300.0)
    assert b.shape.spread > 0
    b.take(600)  # our own bytes in the window: the refusal is of our rate
    b.release(0.05, 600)
    b.take(500)
    b.release(0.1, 500)
    b.throttled(0.1, INCOMING_BYTES, 5.0, 500)
    assert b.shape is NONE
    assert b.learned_uploads.is_cut
    b.plan(20.0, 4_300.0)
    assert b.shape is NONE


def test_the_pacer_reads_every_backlog_that_follows_it() -> None:
    p = MailboxPacer("app/m", PacerLimits())
    assert p.remaining() is None
    one = p.follow(lambda: 100.0)
    p.follow(lambda: 50.0)
    assert p.remaining() == 150.0
    unknown = p.follow(lambda: None)
    assert p.remaining() is None
    unknown()
    one()
    one()  # twice: nothing more
    assert p.remaining() == 50.0


# -- the pipeline's backlog ---------------------------------------------------------------------
def job(count: int, listed: int, complete: bool = False, mode: str = "full") -> Any:
    folder = SimpleNamespace(item_count=count)
    return SimpleNamespace(
        complete=complete,
        mode=mode,
        stats=SimpleNamespace(source_items=listed),
        plan=SimpleNamespace(source=SimpleNamespace(folder=folder)),
    )


def item(n: int, size: int) -> Item:
    return Item(f"i{n}", "", "", size, "", "", (), None)


def test_the_backlog_counts_what_is_left_once_everything_is_listed() -> None:
    folders = [job(3, 3), job(2, 0)]
    bl = Backlog(folders)
    items = [item(n, 1000) for n in range(3)]
    bl.listed(items)
    assert bl() is None  # a folder of the walk's count not listed yet
    folders[1].stats.source_items = 2
    est = encoded_size(1000)
    assert bl() == 3 * est
    # an exported body twice its estimate scales what is left
    e = SimpleNamespace(item=items[0], data=b"x" * 0, folder=SimpleNamespace(target=None))
    e.data = b"x" * (2 * est - 96 - 2)
    e.folder = SimpleNamespace(target=SimpleNamespace(id="ab"))
    bl.exported(e)  # type: ignore[arg-type]
    assert bl() == pytest.approx(3 * 2 * est)
    bl.done(e)  # type: ignore[arg-type]
    assert bl() == pytest.approx(2 * 2 * est)


def test_a_delta_listing_is_known_only_when_complete() -> None:
    folders = [job(10, 1, mode="delta")]
    bl = Backlog(folders)
    assert bl() is None
    folders[0].complete = True
    assert bl() == 0


# -- in simulated time, against the emulator's throttle -----------------------------------------
SEEDS = range(12)
ITEMS = 200


def spread_share(seed: int) -> float:
    """The share of a window a mailbox of these sizes spreads (0: its last window is nearly
    full, it bursts)."""
    svc = ServiceLimits.profile("exchange-fast", learn_model.TIME_SCALE)
    assert svc.upload_bytes
    bodies = learn_model.sizes(ITEMS, seed)
    # planned once the service has let the first window through
    left = float(sum(bodies)) - svc.upload_bytes
    b = burst(svc.upload_bytes, left, svc.upload_bytes, largest=max(bodies))
    return 1.0 - b / svc.upload_bytes


def test_shaped_against_the_emulators_throttle_no_429_no_cost_shorter_idle() -> None:
    """The configured budget is the service's: never a 429; every mailbox done within 2%
    of the burst bound's share the unshaped pacer reaches; and a mailbox that spreads at
    least a quarter of its window (its last window not nearly full: 7 of these 12) has no
    span without an import after its first window longer than half a window (the
    unshaped pacer's are ~95% of a window)."""
    window_s = 300.0  # the profile's window, in service seconds
    shaped_idle = []
    for seed in SEEDS:
        shaped = learn_model.run(1, 0.0, None, ITEMS, seed, known=True)
        burst_run = learn_model.run(1, 0.0, None, ITEMS, seed, known=False)
        assert shaped.share_429 == 0.0
        assert shaped.share >= burst_run.share - 0.02, seed
        assert burst_run.idle_after_s > 0.9 * window_s
        if spread_share(seed) >= 0.25:
            assert shaped.idle_after_s <= window_s / 2, seed
            shaped_idle.append(shaped.idle_after_s)
    assert len(shaped_idle) >= len(SEEDS) // 2
    assert statistics.median(shaped_idle) <= window_s / 2.5


# -- the pipeline tells the target's pacer --------------------------------------------------
class Recorder(FakePacer):
    """A target pacer that reads the pair's backlog whenever an importer chooses an item."""

    def __init__(self) -> None:
        self.backlogs: list[Callable[[], float | None]] = []
        self.seen: list[float | None] = []
        self.following = 0

    def upload_room(self) -> float:
        self.seen.extend(b() for b in self.backlogs)
        return 1.0  # every body waits on the room: importers choose from the ready items

    def follow(self, backlog: Callable[[], float | None]) -> Callable[[], None]:
        self.backlogs.append(backlog)
        self.following += 1

        def stop() -> None:
            self.following -= 1

        return stop


@pytest.mark.anyio
async def test_a_pair_tells_its_target_pacer_what_it_still_has_to_upload(tmp_path: Path) -> None:
    rec = Recorder()
    api = FakeApi()
    api.pacer = lambda mailbox_id: rec  # type: ignore[method-assign]
    api.add_items(SRC, "inbox", 30, size=5000)
    api.mailbox(DST)
    stats = PairStats(SRC, DST)
    async with SQLiteStore(tmp_path / "state.sqlite") as store:
        ctx = PairContext.of(
            Pair(SRC, DST, FolderRules(), ItemFilters()), api, api, store, stats=stats,
            limits=Limits(batch_items=5, exporters_per_pair=2, importers_per_pair=3),
            budget=ByteBudget(1 << 30), stop=StopFlag(),
        )  # fmt: skip
        await PairRunner(ctx).run()
    assert stats.total("copied") == 30
    assert len(rec.backlogs) == 1 and rec.following == 0  # followed during the copy only
    known = [s for s in rec.seen if s is not None]
    assert known, rec.seen
    # the bodies still to upload: at most all 30 items' (scaled by what exports measured),
    # less as imports are answered, none at the end
    body = 5000 * 4 / 3 + 200
    assert max(known) <= 30 * body * 1.2
    assert min(known) < max(known)
    assert rec.backlogs[0]() == 0


def test_a_job_of_mailboxes_is_measured_as_stricter_measures_it() -> None:
    """``learn_model.job``: mailboxes that start together, their imports merged (a span
    without an import in any of them), the slowest mailbox's bound against the job's time.
    At 1/2 of the configured budget the job's budget in effect is shaped after the first
    window as the configured one is (whole windows before: 283 s without an import, the
    first window's rhythm repeated), a mailbox's own spans at least as long."""
    runs = [learn_model.run(2, 0.0, None, 250, seed) for seed in range(8)]
    j = learn_model.job(runs)
    assert len(j.done) == sum(len(r.done) for r in runs)
    assert j.idle_after_s <= max(r.idle_after_s for r in runs)
    assert j.share <= max(r.share for r in runs) + 1e-9
    assert j.share >= 0.8 and j.share_429 < 0.05
    # spent through a bucket once cut (shaped before: 23 s): no window's rhythm repeats,
    # but the bucket's depth let go at once leaves the window at once (31.5 s)
    assert j.idle_after_s <= 35.0
