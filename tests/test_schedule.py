"""The job's ``[schedule]`` as pure decisions (``controls.schedule``): the windows parsed with
errors that name the key, when a window is open, when the next opens and the open ones
close, across midnight and daylight-saving changes; each pair's ``start_after`` and
``complete_after`` read as instants, and the gates that hold a pair for them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from copyengine.config import Pair, load_job
from copyengine.controls import Gates, ScheduleGate, TimesGate, job_gate, parse_schedule
from copyengine.controls.schedule import Schedule
from copyengine.errors import ConfigError
from copyengine.exitcodes import ExitCode
from copyengine.pipeline.gate import OPEN, Hold, HoldKind
from copyengine.plan import PassKind
from tests.test_schedule_run import ManualClock

BERLIN = ZoneInfo("Europe/Berlin")
NIGHTS = parse_schedule(
    {"timezone": "Europe/Berlin", "windows": ["Mon-Fri 20:00-06:00", "Sat-Sun 00:00-24:00"]}
)


def at(text: str, tz: ZoneInfo = BERLIN) -> datetime:
    """A wall-clock time in ``tz`` (Berlin), as the instant."""
    return datetime.fromisoformat(text).replace(tzinfo=tz)


# 2026-12-07 is a Monday; 2026-03-29 (clocks go forward 02:00 -> 03:00) and 2026-10-25
# (03:00 -> 02:00) are Sundays in Europe/Berlin
@pytest.mark.parametrize(
    ("now", "open_", "next_open", "closes"),
    [
        ("2026-12-07 12:00", False, "2026-12-07 20:00", None),
        ("2026-12-07 19:59", False, "2026-12-07 20:00", None),
        ("2026-12-07 20:00", True, "2026-12-07 20:00", "2026-12-08 06:00"),
        ("2026-12-08 05:59", True, "2026-12-08 05:59", "2026-12-08 06:00"),
        ("2026-12-08 06:00", False, "2026-12-08 20:00", None),
        # Friday night runs into the weekend, which runs until Monday midnight
        ("2026-12-11 23:00", True, "2026-12-11 23:00", "2026-12-14 00:00"),
        ("2026-12-13 23:59", True, "2026-12-13 23:59", "2026-12-14 00:00"),
        # Monday 00:00-20:00: Sunday's 24:00 closed it (Sunday is not Mon-Fri)
        ("2026-12-14 03:00", False, "2026-12-14 20:00", None),
    ],
)
def test_the_windows_open_and_close_by_the_wall_clock(
    now: str, open_: bool, next_open: str, closes: str | None
) -> None:
    t = at(now)
    assert NIGHTS.open_at(t) is open_
    assert NIGHTS.next_open(t) == at(next_open)
    assert NIGHTS.closes_at(t) == (at(closes) if closes else None)


def test_a_window_on_the_night_clocks_go_forward_keeps_its_wall_clock_hours() -> None:
    s = parse_schedule({"timezone": "Europe/Berlin", "windows": ["Sat 22:00-06:00"]})
    start = at("2026-03-28 22:00")
    end = s.closes_at(start)
    assert end == at("2026-03-29 06:00")
    assert end is not None and end - start == timedelta(hours=7)  # an hour shorter
    assert s.open_at(at("2026-03-29 03:30"))
    assert not s.open_at(at("2026-03-29 06:00"))
    # a time that does not exist that night is the moment an hour later by the clock
    gap = parse_schedule({"timezone": "Europe/Berlin", "windows": ["Sun 02:30-05:00"]})
    assert gap.next_open(at("2026-03-29 01:00")) == at("2026-03-29 03:30")
    assert gap.closes_at(at("2026-03-29 04:00")) == at("2026-03-29 05:00")


def test_a_window_on_the_night_clocks_go_back_keeps_its_wall_clock_hours() -> None:
    s = parse_schedule({"timezone": "Europe/Berlin", "windows": ["Sat 22:00-06:00"]})
    start = at("2026-10-24 22:00")
    end = s.closes_at(start)
    assert end == at("2026-10-25 06:00")
    assert end is not None and end - start == timedelta(hours=9)  # an hour longer
    # 02:30 happens twice; both are inside
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert s.open_at(first) and s.open_at(second)


def test_an_always_open_schedule_never_closes_and_overlaps_merge() -> None:
    always = parse_schedule({"timezone": "UTC", "windows": ["daily 00:00-24:00"]})
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    assert always.open_at(now) and always.closes_at(now) is None
    overlap = parse_schedule(
        {"timezone": "UTC", "windows": ["Mon 08:00-12:00", "Mon 11:00-14:00", "Mon 14:00-15:00"]}
    )
    assert overlap.closes_at(datetime(2026, 12, 7, 9, tzinfo=UTC)) == datetime(
        2026, 12, 7, 15, tzinfo=UTC
    )
    assert Schedule("UTC").open_at(now)  # no windows: always open


def test_the_lowest_cap_of_the_open_windows_holds() -> None:
    s = parse_schedule(
        {
            "timezone": "Europe/Berlin",
            "windows": [
                {"when": "Mon-Fri 08:00-18:00", "bwlimit_mb_s": 20},
                {"when": "Mon-Fri 12:00-13:00", "bwlimit_mb_s": 5.5},
                "Mon-Fri 18:00-08:00",
            ],
        }
    )
    assert s.bwlimit_at(at("2026-12-07 09:00")) == 20.0
    assert s.bwlimit_at(at("2026-12-07 12:30")) == 5.5
    assert s.bwlimit_at(at("2026-12-07 22:00")) is None  # uncapped at night
    assert s.open_at(at("2026-12-07 22:00"))
    assert s.bwlimit_at(at("2026-12-12 12:00")) is None  # Saturday: closed


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("Mon-Fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("Fri-Mon", {4, 5, 6, 0}),
        ("Wednesday", {2}),
        ("daily", set(range(7))),
    ],
)
def test_days_are_ranges_lists_and_names(days: str, expected: set[int]) -> None:
    s = parse_schedule({"timezone": "UTC", "windows": [f"{days} 01:00-02:00"]})
    assert s.windows[0].days == frozenset(expected)


@pytest.mark.parametrize(
    ("raw", "where", "says"),
    [
        ({"windows": ["Mon 01:00-02:00"]}, "schedule.timezone", "is required"),
        ({"timezone": "Mars/Olympus"}, "schedule.timezone", "unknown time zone"),
        ({"timezone": "UTC", "windows": ["Mon-Fry 01:00-02:00"]}, "windows[0]", "Fry"),
        ({"timezone": "UTC", "windows": ["Mon 25:00-02:00"]}, "windows[0]", "bad time"),
        ({"timezone": "UTC", "windows": ["Mon 01:00-24:30"]}, "windows[0]", "bad time"),
        ({"timezone": "UTC", "windows": ["Mon 8-9"]}, "windows[0]", "write days and hours"),
        ({"timezone": "UTC", "windows": ["Mon 09:00-09:00"]}, "windows[0]", "empty"),
        ({"timezone": "UTC", "windows": "Mon 09:00-10:00"}, "schedule.windows", "a list"),
        (
            {"timezone": "UTC", "windows": [{"when": "Mon 01:00-02:00", "bwlimit_mb_s": 0}]},
            "windows[0].bwlimit_mb_s",
            "above 0",
        ),
        ({"timezone": "UTC", "windows": [{"hours": "x"}]}, "windows[0].hours", "unknown key"),
        ({"timezone": "UTC", "window": []}, "schedule.window", "unknown key"),
    ],
)
def test_a_bad_schedule_is_refused_naming_its_key(
    raw: dict[str, object], where: str, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_schedule(raw)
    assert where in err.value.where and says in err.value.message


PAIR_A = ("a@contoso.example", "a@fabrikam.example")


TENANTS = """
[tenants.source]
tenant_id = "contoso.example"
client_id = "c1"
client_secret = "env:CE_TEST_UNUSED"

[tenants.target]
tenant_id = "fabrikam.example"
client_id = "c2"
client_secret = "env:CE_TEST_UNUSED"
"""


def _job(tmp_path: Path, extra: str, pair_keys: str = "") -> Path:
    pair = f'[[pairs]]\nsource = "{PAIR_A[0]}"\ntarget = "{PAIR_A[1]}"\nwave = 1\n{pair_keys}'
    path = tmp_path / "job.toml"
    path.write_text(TENANTS + pair + extra, encoding="utf-8")
    return path


def test_times_are_read_with_an_offset_or_in_the_schedules_time_zone(tmp_path: Path) -> None:
    cfg = load_job(
        resolve_secrets=False,
        path=_job(
            tmp_path,
            '[schedule]\ntimezone = "Europe/Berlin"\nwindows = ["Mon-Fri 20:00-06:00"]\n'
            "[waves.1]\ncomplete_after = 2026-12-12T09:00:00\npriority = 3\n",
            "start_after = 2026-12-07T20:00:00Z\n",
        ),
    )
    p = cfg.pairs[0]
    assert p.start_after == datetime(2026, 12, 7, 20, tzinfo=UTC)
    assert p.complete_after == at("2026-12-12 09:00")  # the wave's, in Berlin
    assert p.priority == 3
    assert cfg.schedule is not None and cfg.schedule.timezone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("extra", "keys", "where", "says"),
    [
        ("", "start_after = 2026-12-07T20:00:00\n", "pairs[0].start_after", "no offset"),
        ("", 'start_after = "tomorrow"\n', "pairs[0].start_after", "TOML date-time"),
        ("[waves.1]\ncomplete_after = 2026-12-07\n", "", "waves.1.complete_after", "date-time"),
        ('[schedule]\ntimezone = "Nowhere/Else"\n', "", "schedule.timezone", "unknown time"),
    ],
)
def test_bad_times_are_refused_naming_the_key(
    tmp_path: Path, extra: str, keys: str, where: str, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_job(resolve_secrets=False, path=_job(tmp_path, extra, keys))
    assert err.value.where == where and says in err.value.message


LATE, EARLY = "2026-12-12T10:00:00Z", "2026-12-12T09:00:00Z"


@pytest.mark.parametrize(
    ("extra", "keys", "where", "named"),
    [  # after inheritance: the pair's own keys, its wave's, or one of each
        ("", f"start_after = {LATE}\ncomplete_after = {EARLY}\n", "pairs[0]", ("pairs[0].",) * 2),
        (
            f"[waves.1]\nstart_after = {LATE}\ncomplete_after = {EARLY}\n",
            "",
            "waves.1",
            ("waves.1.start_after", "waves.1.complete_after"),
        ),
        (
            f"[waves.1]\ncomplete_after = {EARLY}\n",
            f"start_after = {LATE}\n",
            "pairs[0]",
            ("pairs[0].start_after", "waves.1.complete_after"),
        ),
    ],
)
def test_a_start_after_later_than_complete_after_is_refused_naming_both(
    tmp_path: Path, extra: str, keys: str, where: str, named: tuple[str, str]
) -> None:
    with pytest.raises(ConfigError) as err:
        load_job(resolve_secrets=False, path=_job(tmp_path, extra, keys))
    assert err.value.where == where, err.value
    assert "start_after" in err.value.message and "complete_after" in err.value.message
    assert all(n in err.value.message for n in named), err.value
    assert "2026-12-12 10:00" in err.value.message and "2026-12-12 09:00" in err.value.message
    same = _job(tmp_path, "", f"start_after = {EARLY}\ncomplete_after = {EARLY}\n")
    assert load_job(resolve_secrets=False, path=same).pairs[0].start_after is not None


def test_a_start_after_later_than_complete_after_exits_3(tmp_path: Path) -> None:
    job = _job(tmp_path, f"[waves.1]\nstart_after = {LATE}\ncomplete_after = {EARLY}\n")
    done = subprocess.run(
        [sys.executable, "-m", "copyengine", "plan", str(job)],
        capture_output=True,
        check=False,
        env={**os.environ, "CE_TEST_UNUSED": "not-a-secret"},
    )
    assert done.returncode == ExitCode.CONFIG, done.stderr.decode()
    assert "waves.1: start_after" in done.stderr.decode(), done.stderr.decode()


@pytest.mark.anyio
async def test_the_gates_hold_for_the_schedule_and_the_pairs_times(tmp_path: Path) -> None:
    clock = ManualClock(at("2026-12-07 12:00"))
    gate = ScheduleGate(NIGHTS, clock)
    pair = load_job(resolve_secrets=False, path=_job(tmp_path, "")).pairs[0]
    hold = gate.hold(pair, PassKind.FIRST)
    assert hold == Hold(
        HoldKind.SCHEDULE,
        "waiting for the schedule: next window Mon 2026-12-07 20:00 Europe/Berlin",
        until=at("2026-12-07 20:00"),
    )
    clock.t = at("2026-12-07 20:00")
    assert gate.hold(pair, PassKind.FIRST) == hold  # read again only at refresh
    await gate.refresh()
    assert gate.hold(pair, PassKind.FIRST) is None

    timed = Pair(
        *PAIR_A,
        pair.folders,
        pair.items,
        start_after=at("2026-12-08 08:00"),
        complete_after=at("2026-12-09 08:00"),
    )
    times = TimesGate(clock, NIGHTS)
    held = times.hold(timed, PassKind.DELTA)
    assert held is not None and held.kind is HoldKind.START_AFTER
    assert held.until == at("2026-12-08 08:00") and "Tue 2026-12-08 08:00" in held.text
    clock.t = at("2026-12-08 08:00")
    await times.refresh()
    assert times.hold(timed, PassKind.DELTA) is None  # a delta pass: complete_after is no bar
    cut = times.hold(timed, PassKind.CUTOVER)
    assert cut is not None and cut.kind is HoldKind.COMPLETE_AFTER
    clock.t = at("2026-12-09 08:00")
    await times.refresh()
    assert times.hold(timed, PassKind.CUTOVER) is None


@pytest.mark.anyio
async def test_a_suspension_comes_before_any_other_hold(tmp_path: Path) -> None:
    clock = ManualClock(at("2026-12-07 12:00"))
    pair = load_job(resolve_secrets=False, path=_job(tmp_path, "")).pairs[0]
    suspended = Hold(HoldKind.SUSPENDED, "suspended")

    class Suspend:
        refreshed = 0

        def hold(self, pair: Pair, kind: PassKind) -> Hold | None:
            return suspended

        async def refresh(self) -> None:
            self.refreshed += 1

    s = Suspend()
    gates = Gates(ScheduleGate(NIGHTS, clock), s)
    assert gates.hold(pair, PassKind.FIRST) is suspended
    await gates.refresh()
    assert s.refreshed == 1


def test_a_job_without_schedule_or_times_has_the_open_gate(tmp_path: Path) -> None:
    assert job_gate(load_job(resolve_secrets=False, path=_job(tmp_path, ""))) is OPEN
    timed = load_job(
        resolve_secrets=False, path=_job(tmp_path, "", "start_after = 2026-12-07T20:00:00Z\n")
    )
    assert isinstance(job_gate(timed), TimesGate)


def test_submit_queues_a_group_held_by_its_times_for_when_they_come(tmp_path: Path) -> None:
    """``submit`` (``cluster.submit.held_until``): a cutover's group waits for its pairs'
    ``complete_after``; any other pass's does not; a pair free to run queues it now."""
    from copyengine.cluster.groups import mailbox_groups
    from copyengine.cluster.submit import held_until

    keys = "complete_after = 2026-12-12T09:00:00+01:00\n"
    cfg = load_job(resolve_secrets=False, path=_job(tmp_path, "", keys))
    gate = job_gate(cfg, ManualClock(at("2026-12-07 12:00")))
    (g,) = mailbox_groups(cfg.pairs)
    assert held_until(gate, g, PassKind.DELTA) is None
    assert held_until(gate, g, PassKind.CUTOVER) == (
        at("2026-12-12 09:00"),
        "cutover waiting for its complete_after: 2026-12-12 09:00+01:00",
    )
    late = job_gate(cfg, ManualClock(at("2026-12-12 09:00")))
    assert held_until(late, g, PassKind.CUTOVER) is None


class RecordedRate:
    def __init__(self) -> None:
        self.rates: list[float | None] = []

    def set_rate(self, mb_s: float | None) -> None:
        self.rates.append(mb_s)


@pytest.mark.anyio
async def test_the_bandwidth_cap_follows_the_windows_never_above_the_jobs_own(
    tmp_path: Path,
) -> None:
    """A window's ``bwlimit_mb_s`` caps the process's uploads while it is open (the lowest
    of the open windows' and the job's own cap); outside it, the job's own cap again."""
    from copyengine.controls import WindowCap

    s = parse_schedule(
        {
            "timezone": "Europe/Berlin",
            "windows": ["Mon-Fri 20:00-06:00", {"when": "Mon-Fri 12:00-13:00", "bwlimit_mb_s": 5}],
        }
    )
    clock, cap = ManualClock(at("2026-12-07 11:00")), RecordedRate()
    follows = WindowCap(s, cap, 8.0, clock)
    pair = load_job(resolve_secrets=False, path=_job(tmp_path, "")).pairs[0]
    assert follows.hold(pair, PassKind.DELTA) is None  # it holds nothing
    for when in ("2026-12-07 12:30", "2026-12-07 12:45", "2026-12-07 21:00"):
        clock.t = at(when)
        await follows.refresh()
    assert cap.rates == [8.0, 5.0, 8.0]  # told once per change
    lifted = WindowCap(s, cap := RecordedRate(), None, clock)
    clock.t = at("2026-12-08 12:10")
    await lifted.refresh()
    assert cap.rates == [5.0]  # no cap until the capped window opens
