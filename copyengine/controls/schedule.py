"""Pure: the job's ``[schedule]``, the hours when passes may run, in the job's time zone.

A window is days of the week and a span of wall-clock time (``Mon-Fri 20:00-06:00``); a
window that crosses midnight belongs to the day it starts (``Fri 20:00-06:00`` ends on
Saturday morning). Windows may overlap: the job may run while any one is open. Wall-clock
times are read in ``timezone`` on the day they fall on, so a window keeps its hours across a
change of daylight-saving time (on the night clocks go forward, ``20:00-06:00`` is an hour
shorter; a time that does not exist that night, 02:30 in Europe/Berlin, is the moment an
hour later by the clock, 03:30; a time that happens twice is its first). Each window may
carry a bandwidth cap (``bwlimit_mb_s``): while windows with caps are open, the lowest of
them holds (``bwlimit_at``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# how far ``next_open`` and ``closes_at`` look: every window recurs within a week
HORIZON_DAYS = 9

WINDOW = re.compile(
    r"^\s*(?P<days>\S+)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday, as ``date.weekday``
    start: int  # minutes after midnight, 0..1439
    end: int  # minutes after midnight, 1..1440 (24:00); at or before ``start``: the next day
    bwlimit_mb_s: float | None = None
    text: str = ""  # as written

    def spans(self, day: date, tz: tzinfo) -> tuple[datetime, datetime] | None:
        """The instants (UTC) the window opens and closes when it starts on ``day``."""
        if day.weekday() not in self.days:
            return None
        end_day = day if self.end > self.start else day + timedelta(days=1)
        return _instant(day, self.start, tz), _instant(end_day, self.end, tz)


def _instant(day: date, minutes: int, tz: tzinfo) -> datetime:
    """Wall-clock ``minutes`` after midnight on ``day`` in ``tz``, as an instant in UTC (24:00:
    the next day's midnight; a time in a gap: as the earlier offset reads it)."""
    if minutes == 24 * 60:
        day, minutes = day + timedelta(days=1), 0
    local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz)
    return local.astimezone(UTC)


@dataclass(frozen=True)
class Schedule:
    """``[schedule]``: ``windows`` in ``timezone``. No windows (only a time zone): always open."""

    timezone: str
    windows: tuple[Window, ...] = ()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _spans(self, now: datetime) -> Iterator[tuple[datetime, datetime, Window]]:
        """Every window's span from two days before ``now`` to HORIZON_DAYS after it."""
        tz = self.tz
        today = now.astimezone(tz).date()
        for offset in range(-2, HORIZON_DAYS):
            day = today + timedelta(days=offset)
            for w in self.windows:
                span = w.spans(day, tz)
                if span is not None:
                    yield span[0], span[1], w

    def _merged(self, now: datetime) -> list[tuple[datetime, datetime]]:
        """The spans around ``now``, overlapping and touching ones joined, in order."""
        out: list[tuple[datetime, datetime]] = []
        for start, end, _ in sorted(self._spans(now), key=lambda s: (s[0], s[1])):
            if start >= end:
                continue  # a window the clocks' change left empty
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
        return out

    def open_at(self, now: datetime) -> bool:
        if not self.windows:
            return True
        return any(s <= now < e for s, e in self._merged(now))

    def next_open(self, now: datetime) -> datetime | None:
        """``now`` when a window is open, else when the next one opens (None: no window
        opens within a week, which a valid schedule cannot give)."""
        if self.open_at(now):
            return now
        return next((s for s, _ in self._merged(now) if s > now), None)

    def closes_at(self, now: datetime) -> datetime | None:
        """When the open windows close (the last of those that overlap or touch); None when
        none is open now, or they never close (every day, all day)."""
        if not self.windows:
            return None
        merged = self._merged(now)
        for s, e in merged:
            if s <= now < e:
                return None if e >= merged[-1][1] and e - now > timedelta(days=7) else e
        return None

    def bwlimit_at(self, now: datetime) -> float | None:
        """The bandwidth cap (MB/s) of the windows open at ``now``: the lowest of those that
        carry one; None when none does (or none is open)."""
        caps = [
            w.bwlimit_mb_s
            for s, e, w in self._spans(now)
            if s <= now < e and w.bwlimit_mb_s is not None
        ]
        return min(caps) if caps else None

    def local(self, when: datetime) -> str:
        """``when`` as the operator reads it: ``Mon 2026-12-07 20:00 Europe/Berlin``."""
        t = when.astimezone(self.tz)
        return f"{DAY_NAMES[t.weekday()]} {t:%Y-%m-%d %H:%M} {self.timezone}"

    def describe(self) -> str:
        return ", ".join(w.text for w in self.windows) + f" ({self.timezone})"


def time_zone(name: Any, where: str) -> str:
    """An IANA time zone name (``Europe/Berlin``), checked."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(where, "must be an IANA time zone name such as Europe/Berlin")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            where,
            f"unknown time zone {name!r}: give an IANA name such as Europe/Berlin, "
            "America/New_York or UTC",
        ) from None
    return name


def parse_days(text: str, where: str) -> frozenset[int]:
    """``Mon-Fri``, ``Sat,Sun``, ``Fri-Mon`` (a range may wrap), ``Mon``, ``daily``."""
    if text.lower() in ("daily", "*"):
        return frozenset(range(7))
    out: set[int] = set()
    for part in text.split(","):
        ends = part.split("-")
        if len(ends) > 2 or not all(ends):
            raise ConfigError(where, f"{text!r}: bad days {part!r} (write Mon-Fri or Sat,Sun)")
        first, last = (_day(e, where) for e in (ends[0], ends[-1]))
        out.update((first + i) % 7 for i in range((last - first) % 7 + 1))
    return frozenset(out)


def _day(name: str, where: str) -> int:
    n = name.strip().lower()
    for names in (DAYS, FULL_DAYS):
        if n in names:
            return names.index(n)
    raise ConfigError(where, f"unknown day {name.strip()!r} (Mon, Tue, Wed, Thu, Fri, Sat, Sun)")


def parse_time(text: str, where: str, end: bool) -> int:
    hours, minutes = (int(x) for x in text.split(":"))
    if end and (hours, minutes) == (24, 0):
        return 24 * 60
    if hours > 23 or minutes > 59:
        top = "24:00" if end else "23:59"
        raise ConfigError(where, f"bad time {text!r}: from 00:00 to {top}")
    return hours * 60 + minutes


def parse_window(value: Any, where: str) -> Window:
    """``"Mon-Fri 20:00-06:00"``, or ``{ when = "Mon-Fri 20:00-06:00", bwlimit_mb_s = 50 }``."""
    cap: float | None = None
    text = value
    if isinstance(value, dict):
        extra = sorted(set(value) - {"when", "bwlimit_mb_s"})
        if extra:
            raise ConfigError(f"{where}.{extra[0]}", "unknown key (when, bwlimit_mb_s)")
        text = value.get("when")
        if text is None:
            raise ConfigError(f"{where}.when", "is required")
        where = f"{where}.when"
        raw_cap = value.get("bwlimit_mb_s")
        if raw_cap is not None:
            if isinstance(raw_cap, bool) or not isinstance(raw_cap, int | float) or raw_cap <= 0:
                raise ConfigError(
                    where.removesuffix(".when") + ".bwlimit_mb_s", "must be a number above 0"
                )
            cap = float(raw_cap)
    if not isinstance(text, str):
        raise ConfigError(where, 'must be a string such as "Mon-Fri 20:00-06:00" or a table')
    m = WINDOW.match(text)
    if m is None:
        raise ConfigError(
            where,
            f'{text!r}: write days and hours, as "Mon-Fri 20:00-06:00" or "Sat-Sun 00:00-24:00"',
        )
    start = parse_time(m["start"], where, end=False)
    stop = parse_time(m["end"], where, end=True)
    if start == stop % (24 * 60) and stop != 24 * 60:
        raise ConfigError(where, f"{text!r}: the window is empty; a whole day is 00:00-24:00")
    return Window(parse_days(m["days"], where), start, stop, cap, text.strip())


SCHEDULE_KEYS = ("timezone", "windows")  # [schedule]'s keys (docs/configuration.md)


def parse_schedule(raw: dict[str, Any], where: str = "schedule") -> Schedule:
    """``[schedule]``: ``timezone`` (required) and ``windows`` (a list; none: always open)."""
    extra = sorted(set(raw) - set(SCHEDULE_KEYS))
    if extra:
        raise ConfigError(f"{where}.{extra[0]}", f"unknown key ({', '.join(SCHEDULE_KEYS)})")
    if "timezone" not in raw:
        raise ConfigError(f"{where}.timezone", "is required: the windows' hours are read in it")
    tz = time_zone(raw["timezone"], f"{where}.timezone")
    windows = raw.get("windows", [])
    if not isinstance(windows, list):
        raise ConfigError(f"{where}.windows", "must be a list")
    parsed = tuple(parse_window(w, f"{where}.windows[{i}]") for i, w in enumerate(windows))
    return Schedule(tz, parsed)


def aware(value: Any, where: str, tz: str | None) -> datetime:
    """A TOML date-time as an instant: an offset date-time as it is, a local one in ``tz``
    (``[schedule] timezone``), refused without one."""
    if not isinstance(value, datetime):
        raise ConfigError(
            where,
            "must be a TOML date-time such as 2026-12-07T20:00:00+01:00 (or a local "
            "2026-12-07T20:00:00 with [schedule] timezone)",
        )
    if value.tzinfo is not None:
        return value
    if tz is None:
        raise ConfigError(
            where,
            f"{value.isoformat()} has no offset: give one (+01:00, Z) or set "
            '[schedule] timezone = "Europe/Berlin" to read it in',
        )
    return value.replace(tzinfo=ZoneInfo(tz))
