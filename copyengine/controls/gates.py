"""The operator's controls as the pipeline's ``Gate``: the job's ``[schedule]`` windows, each
pair's ``start_after`` and ``complete_after``, read against a clock (``Clock``: the system's,
or a test's), and ``Gates``, several sources seen as one."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError
from ..pipeline.gate import OPEN, Gate, Hold, HoldKind
from ..plan import PassKind
from .schedule import Schedule

if TYPE_CHECKING:
    from ..config import JobConfig, Pair


class Clock(Protocol):
    def now(self) -> datetime:
        """The time now, aware."""
        ...

    def real(self, when: datetime) -> datetime:
        """The instant of the system's clock at which this clock reads ``when`` (what the job
        queue, which keeps the database's time, is told: a group queued for a window)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def real(self, when: datetime) -> datetime:
        return when


SYSTEM = SystemClock()


class ScaledClock:
    """A clock that reads ``start`` when made and runs ``factor`` times as fast as the
    system's: a rehearsal of a schedule (or a test) in seconds instead of hours."""

    def __init__(self, start: datetime, factor: float, since: datetime | None = None) -> None:
        self.start, self.factor = start, factor
        self.real_start = since or datetime.now(UTC)  # when it read ``start``

    def now(self) -> datetime:
        return self.start + (datetime.now(UTC) - self.real_start) * self.factor

    def real(self, when: datetime) -> datetime:
        return self.real_start + (when - self.start) / self.factor


CLOCK_ENV = "COPYENGINE_CLOCK"


def env_clock() -> Clock:
    """The controls' clock: the system's, or ``COPYENGINE_CLOCK=START@FACTOR[@SINCE]`` (an
    ISO date-time with its offset, a speed, and the real instant it read START, by default
    when the process started: ``2026-12-07T19:55:00+01:00@60``), a scaled clock for
    rehearsing a schedule (several processes given one SINCE read the same time); a bad
    value is a ConfigError naming the variable."""
    raw = os.environ.get(CLOCK_ENV, "").strip()
    if not raw:
        return SYSTEM
    start_s, _, rest = raw.partition("@")
    factor_s, _, since_s = rest.partition("@")
    try:
        start = datetime.fromisoformat(start_s)
        factor = float(factor_s or "1")
        since = datetime.fromisoformat(since_s) if since_s else datetime.now(UTC)
    except ValueError:
        start, factor, since = datetime.min, 0.0, datetime.min
    if start.tzinfo is None or since.tzinfo is None or not 0 < factor < 1e6:
        raise ConfigError(
            CLOCK_ENV,
            f"{raw!r}: give START@FACTOR[@SINCE] with offsets, as 2026-12-07T19:55:00+01:00@60",
        )
    return ScaledClock(start, factor, since)


class Gates:
    """Several sources as one gate: a pair's hold is the first source's that holds it, a
    suspension (``HoldKind.SUSPENDED``, only the operator lifts it) before any other."""

    def __init__(self, *sources: Gate) -> None:
        self.sources = sources

    def hold(self, pair: Pair, kind: PassKind) -> Hold | None:
        first: Hold | None = None
        for s in self.sources:
            h = s.hold(pair, kind)
            if h is not None and h.kind is HoldKind.SUSPENDED:
                return h
            first = first or h
        return first

    async def refresh(self) -> None:
        for s in self.sources:
            await s.refresh()


class ScheduleGate:
    """Every pair waits while the job's ``[schedule]`` has no window open."""

    def __init__(self, schedule: Schedule, clock: Clock = SYSTEM) -> None:
        self.schedule = schedule
        self.clock = clock
        self.now_hold = self._read()

    def _read(self) -> Hold | None:
        now = self.clock.now()
        nxt = self.schedule.next_open(now)
        if nxt == now:
            return None
        when = "none within a week" if nxt is None else self.schedule.local(nxt)
        return Hold(HoldKind.SCHEDULE, f"waiting for the schedule: next window {when}", until=nxt)

    def hold(self, pair: Pair, kind: PassKind) -> Hold | None:
        return self.now_hold

    async def refresh(self) -> None:
        self.now_hold = self._read()


class TimesGate:
    """A pair waits for its ``start_after`` (any pass) and its cutover for its
    ``complete_after``. Times are shown in ``tz`` (``[schedule] timezone``) when given."""

    def __init__(self, clock: Clock = SYSTEM, schedule: Schedule | None = None) -> None:
        self.clock = clock
        self.schedule = schedule
        self.now = clock.now()

    def _shown(self, when: datetime) -> str:
        if self.schedule is not None:
            return self.schedule.local(when)
        return when.isoformat(sep=" ", timespec="minutes")

    def hold(self, pair: Pair, kind: PassKind) -> Hold | None:
        if pair.start_after is not None and self.now < pair.start_after:
            text = f"waiting for its start_after: {self._shown(pair.start_after)}"
            return Hold(HoldKind.START_AFTER, text, until=pair.start_after)
        done_after = pair.complete_after
        if kind is PassKind.CUTOVER and done_after is not None and self.now < done_after:
            text = f"cutover waiting for its complete_after: {self._shown(done_after)}"
            return Hold(HoldKind.COMPLETE_AFTER, text, until=done_after)
        return None

    async def refresh(self) -> None:
        self.now = self.clock.now()


def time_gates(cfg: JobConfig, clock: Clock | None = None) -> list[Gate]:
    """The job's own time-driven sources: its pairs' times, its schedule (none: no source)."""
    clock = clock or env_clock()
    out: list[Gate] = []
    if any(p.start_after or p.complete_after for p in cfg.pairs):
        out.append(TimesGate(clock, cfg.schedule))
    if cfg.schedule is not None and cfg.schedule.windows:
        out.append(ScheduleGate(cfg.schedule, clock))
    return out


class Rate(Protocol):
    """A bandwidth cap that can be changed while uploads wait (``pacing.BandwidthCap``)."""

    def set_rate(self, mb_s: float | None) -> None: ...


class WindowCap:
    """Holds no pair: at each refresh, the process's bandwidth cap follows the ``[schedule]``
    windows open now (``Schedule.bwlimit_at``), never above the job's own ``base`` cap
    (``[limits] bwlimit_mb_s`` / ``--bwlimit``)."""

    def __init__(
        self, schedule: Schedule, cap: Rate, base: float | None, clock: Clock = SYSTEM
    ) -> None:
        self.schedule, self.cap, self.base, self.clock = schedule, cap, base, clock
        self.now: float | None = None
        self._apply()

    def rate_now(self) -> float | None:
        rates = [r for r in (self.base, self.schedule.bwlimit_at(self.clock.now())) if r]
        return min(rates) if rates else None

    def _apply(self) -> None:
        rate = self.rate_now()
        if rate != self.now:
            self.now = rate
            self.cap.set_rate(rate)

    def hold(self, pair: Pair, kind: PassKind) -> Hold | None:
        return None

    async def refresh(self) -> None:
        self._apply()


def window_caps(cfg: JobConfig, cap: Rate, clock: Clock | None = None) -> tuple[WindowCap, ...]:
    """The source that makes ``cap`` follow the schedule's windows, when a window has a
    ``bwlimit_mb_s`` (none otherwise)."""
    s = cfg.schedule
    if s is None or not any(w.bwlimit_mb_s is not None for w in s.windows):
        return ()
    return (WindowCap(s, cap, cfg.limits.bwlimit_mb_s, clock or env_clock()),)


def job_gate(cfg: JobConfig, clock: Clock | None = None, *more: Gate) -> Gate:
    """The gate a job's run hands the pipeline: ``more`` (a suspension source first) and the
    job's time-driven sources; none at all: the open gate."""
    sources = [*more, *time_gates(cfg, clock)]
    if not sources:
        return OPEN
    return sources[0] if len(sources) == 1 else Gates(*sources)


def running_kind(passes: list[dict[str, Any]]) -> PassKind | None:
    """The kind of the pass under way, from the state's passes (None: none is)."""
    running = [p for p in passes if p.get("finished") is None]
    try:
        return PassKind(running[-1]["kind"]) if running else None
    except ValueError:
        return None


def controls_now(
    cfg: JobConfig, clock: Clock | None = None, passes: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """What ``status`` says of the job's schedule and its pairs' times now: whether a
    window is open (and until when) or when the next opens, and each pair that its times
    hold. While a pass is under way (``passes``: the state's), the holds of its kind, as the
    running job decides them (a pair's ``complete_after`` holds only a cutover: a delta pass
    copies it); with none under way, every hold the next pass may meet (``start_after``,
    and ``complete_after`` for a cutover, each text naming which)."""
    kind = running_kind(passes or []) or PassKind.CUTOVER
    clock = clock or env_clock()
    now = clock.now()
    out: dict[str, Any] = {"schedule": None, "pairs": {}}
    s = cfg.schedule
    if s is not None and s.windows:
        closes, nxt = s.closes_at(now), s.next_open(now)
        if nxt == now:
            state = "open" + (f" until {s.local(closes)}" if closes else "")
        else:
            state = "closed: next window " + (s.local(nxt) if nxt else "none within a week")
        out["schedule"] = f"{s.describe()}: {state}"
    times = TimesGate(clock, s)
    for p in cfg.pairs:
        hold = times.hold(p, kind)  # its start_after, else (a cutover) its complete_after
        if hold is not None:
            out["pairs"][p.key] = hold.text
    return out
