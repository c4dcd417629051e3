"""The command line's overrides of the common limits (``--pairs-in-parallel``, ``--bwlimit``)
and a run's caps (``--max-items``, ``--max-mb``). Checked as the job file's keys are: a bad
value is a usage error (exit 2) naming the option."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import click

from ..config import JobConfig
from ..pipeline.caps import RunCaps

F = TypeVar("F", bound=Callable[..., Any])
OVERRIDES = "limit_overrides"  # where the options leave their values (the click context's meta)
CAPS = "run_caps"


class BwLimit(click.ParamType):  # type: ignore[type-arg]
    """MB/s (1 MB = 1 MiB) greater than 0, or ``off``: no cap whatever the job file says."""

    name = "MB/s"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        text = str(value).strip().lower()
        if text in ("off", "none"):
            return math.inf  # lifted (``overridden`` makes it None)
        try:
            mb_s = float(text)
        except ValueError:
            self.fail(f"{value!r} is not a number of MB/s (or off)", param, ctx)
        if not math.isfinite(mb_s) or mb_s <= 0:
            self.fail(f"{value!r}: must be greater than 0 (or off: no cap)", param, ctx)
        return mb_s


def _remember(key: str, name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def keep(ctx: click.Context, _: click.Parameter, value: Any) -> Any:
        if value is not None:
            ctx.meta.setdefault(key, {})[name] = value
        return value

    return keep


def _option(key: str, name: str, flag: str, **kw: Any) -> Callable[[F], F]:
    return click.option(flag, expose_value=False, callback=_remember(key, name), **kw)


bwlimit_option = _option(
    OVERRIDES,
    "bwlimit_mb_s",
    "--bwlimit",
    type=BwLimit(),
    help="Cap the bytes uploaded into target mailboxes at this many MB/s (1 MB = 1 MiB), for "
    "the whole process; off: no cap. Overrides [limits] bwlimit_mb_s.",
)
pairs_in_parallel_option = _option(
    OVERRIDES,
    "pairs_in_parallel",
    "--pairs-in-parallel",
    type=click.IntRange(min=1),
    metavar="N",
    help="Pairs copied at once. Overrides [limits] pairs_in_parallel.",
)
max_items_option = _option(
    CAPS,
    "max_items",
    "--max-items",
    type=click.IntRange(min=1),
    metavar="N",
    help="Copy at most N items in this run, then stop cleanly (exit 8); the next run goes on.",
)
max_mb_option = _option(
    CAPS,
    "max_mb",
    "--max-mb",
    type=click.FloatRange(min=0, min_open=True),
    metavar="MB",
    help="Copy at most this many MB of items (their sizes; 1 MB = 1 MiB) in this run, then "
    "stop cleanly (exit 8); the next run goes on.",
)


def run_options(f: F) -> F:
    """``run``'s: ``--max-items``, ``--max-mb``, ``--pairs-in-parallel``, ``--bwlimit``."""
    for option in (bwlimit_option, pairs_in_parallel_option, max_mb_option, max_items_option):
        f = option(f)
    return f


def _meta(key: str) -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    return dict(ctx.meta.get(key, {})) if ctx is not None else {}


def overridden(cfg: JobConfig) -> JobConfig:
    """``cfg`` with the limits the command line gave instead of the job file's."""
    given = _meta(OVERRIDES)
    if not given:
        return cfg
    if given.get("bwlimit_mb_s") == math.inf:
        given["bwlimit_mb_s"] = None
    return replace(cfg, limits=replace(cfg.limits, **given))


def run_caps() -> RunCaps | None:
    """``--max-items`` / ``--max-mb``, when given."""
    given = _meta(CAPS)
    if not given:
        return None
    return RunCaps.of(given.get("max_items"), given.get("max_mb"))
