"""The schedule and the pairs' times in a local run, on a manual clock (``controls``): a
window that closes mid-pass drains the pass, which waits and is continued when the next
window opens; a run started outside every window waits and starts at the window; a pair
waits for its ``start_after``; a cutover waits for its ``complete_after`` and is signed off
after. The target exact against the emulator's ground truth each time."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from copyengine.config import load_job
from copyengine.console.live import live_table
from copyengine.console.text import status_lines
from copyengine.controls import controls_now, job_gate
from copyengine.exitcodes import ExitCode
from copyengine.report import JobStats, PairStatus
from copyengine.wiring import read_overview, run_job
from tests.emu import running
from tests.jobs import assert_exact, write_job
from tests.test_gate import _counts_agree, _emulator, _until  # one run's helpers, shared

pytestmark = pytest.mark.anyio

PAIRS = [
    ("adele@contoso.example", "adele@fabrikam.example"),
    ("bianca@contoso.example", "bianca@fabrikam.example"),
]
KEYS = [f"{s}->{t}" for s, t in PAIRS]
# Monday 2026-12-07, in UTC
MON = datetime(2026, 12, 7, tzinfo=UTC)
TWO_WINDOWS = '[schedule]\ntimezone = "UTC"\nwindows = ["Mon 10:00-11:00", "Mon 12:00-13:00"]\n'


class ManualClock:
    """The time the test says (``t``); the gates read it at each refresh (every second)."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def now(self) -> datetime:
        return self.t

    def real(self, when: datetime) -> datetime:
        return when


def at(hour: int, minute: int = 0) -> datetime:
    return MON.replace(hour=hour, minute=minute)


def screen(stats: JobStats) -> str:
    """The live table as an 80-column terminal shows it."""
    out = io.StringIO()
    Console(file=out, width=80, force_terminal=False).print(live_table(stats))
    text = out.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    return text


def statuses(stats: JobStats) -> dict[str, str]:
    return {k: str(p.status) for k, p in stats.pairs.items()}


async def test_a_window_that_closes_mid_pass_drains_it_and_the_next_window_continues_it(
    tmp_path: Path,
) -> None:
    clock = ManualClock(at(10))
    async with running(_emulator(400)) as (server, ep, _):
        cfg = load_job(write_job(tmp_path, ep, PAIRS, extra=TWO_WINDOWS))
        stats = JobStats()
        adele = server.emulator.require_mailbox(PAIRS[0][1])
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_job(cfg, stats=stats, gate=job_gate(cfg, clock)))
            await _until(lambda: len(adele.items) >= 20)
            clock.t = at(11)  # the window closes mid-pass
            await _until(lambda: stats.pairs[KEYS[0]].status is PairStatus.WAITING)
            st = stats.pairs[KEYS[0]]
            assert st.hold == "waiting for the schedule: next window Mon 2026-12-07 12:00 UTC"
            await _until(lambda: all(s in ("waiting", "done") for s in statuses(stats).values()))
            frozen = len(adele.items)
            assert frozen < 400
            await anyio.sleep(2.5)  # drained: nothing more is copied while it waits
            assert len(adele.items) == frozen
            shown = screen(stats)
            assert "waiting" in shown and "next window Mon 2026-12-07 12:00 UTC" in shown
            clock.t = at(12)  # the next window opens: the same run goes on
    assert stats.exit_code() is ExitCode.OK, stats.as_dict()["pairs"]
    assert set(statuses(stats).values()) == {"done"}
    _counts_agree(stats)
    assert_exact(server.emulator, PAIRS)


async def test_a_run_started_outside_every_window_waits_and_starts_at_the_window(
    tmp_path: Path,
) -> None:
    clock = ManualClock(at(9, 30))
    async with running(_emulator(60)) as (server, ep, _):
        cfg = load_job(write_job(tmp_path, ep, PAIRS, extra=TWO_WINDOWS))
        said = controls_now(cfg, clock)
        assert said["schedule"] == (
            "Mon 10:00-11:00, Mon 12:00-13:00 (UTC): closed: next window Mon 2026-12-07 10:00 UTC"
        )
        assert "schedule " + said["schedule"] in status_lines(
            {"groups": [], "passes": [], "pairs": [], "controls": said}, 0.0
        )
        stats = JobStats()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_job(cfg, stats=stats, gate=job_gate(cfg, clock)))
            await _until(lambda: set(statuses(stats).values()) == {"waiting"})
            await anyio.sleep(1.5)
            for _, target in PAIRS:
                assert len(server.emulator.require_mailbox(target).items) == 0
            assert "2 pairs waiting for the schedule: next window Mon 2026-12-07 10:00" in (
                screen(stats).replace("\n", " ")
            )
            clock.t = at(10)
    assert stats.exit_code() is ExitCode.OK
    _counts_agree(stats)
    assert_exact(server.emulator, PAIRS)
    assert "open until Mon 2026-12-07 11:00 UTC" in controls_now(cfg, clock)["schedule"]


async def test_a_pair_waits_for_its_start_after(tmp_path: Path) -> None:
    clock = ManualClock(at(10))
    async with running(_emulator(60)) as (server, ep, _):
        path = write_job(tmp_path, ep, PAIRS)
        text = path.read_text().replace(
            f'target = "{PAIRS[0][1]}"\n',
            f'target = "{PAIRS[0][1]}"\nstart_after = 2026-12-07T10:30:00Z\n',
        )
        path.write_text(text)
        cfg = load_job(path)
        assert controls_now(cfg, clock)["pairs"] == {
            KEYS[0]: "waiting for its start_after: 2026-12-07 10:30+00:00"
        }
        stats = JobStats()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_job(cfg, stats=stats, gate=job_gate(cfg, clock)))
            await _until(lambda: statuses(stats) == {KEYS[0]: "waiting", KEYS[1]: "done"})
            assert len(server.emulator.require_mailbox(PAIRS[0][1]).items) == 0
            assert stats.pairs[KEYS[0]].hold == (
                "waiting for its start_after: 2026-12-07 10:30+00:00"
            )
            clock.t = at(10, 30)
    assert stats.exit_code() is ExitCode.OK
    _counts_agree(stats)
    assert_exact(server.emulator, PAIRS)


async def test_a_cutover_launched_ahead_starts_at_its_complete_after_and_is_signed_off(
    tmp_path: Path,
) -> None:
    clock = ManualClock(at(10))
    waves = "[waves.1]\ncomplete_after = 2026-12-07T12:00:00Z\n"
    async with running(_emulator(60)) as (server, ep, _):
        path = write_job(tmp_path, ep, PAIRS, extra=waves)
        path.write_text(path.read_text().replace('"\n[[pairs]]', '"\nwave = 1\n[[pairs]]'))
        cfg = load_job(path)
        assert [p.complete_after is not None for p in cfg.pairs] == [True, False]
        # the pre-staging pass is no cutover: complete_after does not hold it, and `status`
        # says so while such a pass is under way (the holds of the running pass's kind)
        held = {KEYS[0]: "cutover waiting for its complete_after: 2026-12-07 12:00+00:00"}
        assert controls_now(cfg, clock)["pairs"] == held  # no pass under way: the next may
        for kind in ("first", "delta", "full", "retry"):
            under_way = [{"pass": 1, "kind": kind, "finished": None}]
            assert controls_now(cfg, clock, under_way)["pairs"] == {}
        ended = [{"pass": 1, "kind": "delta", "finished": "2026-12-07T09:00:00Z"}]
        assert controls_now(cfg, clock, ended)["pairs"] == held
        first = await run_job(cfg, gate=job_gate(cfg, clock))
        assert first.exit_code() is ExitCode.OK
        stats = JobStats()
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: run_job(cfg, stats=stats, cutover=True, gate=job_gate(cfg, clock))
            )
            await _until(lambda: statuses(stats) == {KEYS[0]: "waiting", KEYS[1]: "done"})
            assert stats.pairs[KEYS[0]].hold == (
                "cutover waiting for its complete_after: 2026-12-07 12:00+00:00"
            )
            # `status` beside the run: the state's pass under way, the hold the job decided
            ov = await read_overview(cfg)
            assert controls_now(cfg, clock, ov.passes)["pairs"] == {
                KEYS[0]: stats.pairs[KEYS[0]].hold
            }
            await anyio.sleep(1.5)
            assert stats.sign_off is None  # the sign-off waits for every pair
            clock.t = at(12)
    assert stats.exit_code() is ExitCode.OK, stats.as_dict()["pairs"]
    assert stats.pass_info["kind"] == "cutover"
    assert stats.sign_off is not None and stats.sign_off["complete"]
    assert set(statuses(stats).values()) == {"done"}
    assert_exact(server.emulator, PAIRS)
