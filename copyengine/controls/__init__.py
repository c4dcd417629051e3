"""The operator's controls: what holds a pair (suspended, its schedule, StartAfter /
CompleteAfter), read from the job's state and its configuration and seen by the pipeline as
one ``pipeline.gate.Gate`` (``Gates``): ``suspend`` (the state's suspensions), ``schedule``
(the job's ``[schedule]`` windows, the pairs' times) and ``gates`` (their sources)."""

from .gates import (
    SYSTEM,
    Clock,
    Gates,
    ScaledClock,
    ScheduleGate,
    SystemClock,
    TimesGate,
    WindowCap,
    controls_now,
    env_clock,
    job_gate,
    window_caps,
)
from .schedule import Schedule, Window, parse_schedule

__all__ = [
    "SYSTEM",
    "Clock",
    "Gates",
    "ScaledClock",
    "Schedule",
    "ScheduleGate",
    "SystemClock",
    "TimesGate",
    "Window",
    "WindowCap",
    "controls_now",
    "env_clock",
    "job_gate",
    "parse_schedule",
    "window_caps",
]
