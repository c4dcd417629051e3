"""``copyengine suspend`` and ``copyengine resume``: a pair, a wave or the whole job
suspended or resumed from any shell, while a run or the workers copy (``controls.suspend``
says which command decides; the state records them without the job's lock). In a job
shared by several hosts, ``resume`` also queues again the mailbox groups it releases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import click

from ..config import JobConfig, Pair, select_pairs
from ..controls.suspend import ALL, PAIR, WAVE, Change, apply
from ..pairsfile import wave_label
from ..wiring import controls_state, state_exists
from .options import configure_logs, job_command, load, show, state_option

SCOPE_OPTIONS = "--pair, --wave, --all"
Scope = tuple[str, tuple[str, ...], tuple[Pair, ...]]  # its kind, targets and pairs


def _options(verb: str) -> tuple[Callable[[Any], Any], ...]:
    return (
        click.option(
            "--pair",
            "only",
            multiple=True,
            metavar="UPN",
            help=f"{verb.capitalize()} the pairs with this source or target (repeatable).",
        ),
        click.option(
            "--wave",
            "waves",
            multiple=True,
            metavar="N",
            help=f"{verb.capitalize()} every pair of this wave (repeatable).",
        ),
        click.option("--all", "every", is_flag=True, help=f"{verb.capitalize()} the whole job."),
    )


def one_scope(only: tuple[str, ...], waves: tuple[str, ...], every: bool) -> None:
    """No scope, or two: a bad command line (click's usage error, exit 2), before the job
    file is read."""
    if sum((bool(only), bool(waves), every)) != 1:
        raise click.UsageError(
            f"{SCOPE_OPTIONS}: give one of them: which pairs (a UPN, a wave, or all)"
        )


def chosen(cfg: JobConfig, only: tuple[str, ...], waves: tuple[str, ...], every: bool) -> Scope:
    """The scope, its targets and its pairs, validated like ``run --pair/--wave`` (a pair
    or a wave the job does not have: a ConfigError naming it, exit 3)."""
    one_scope(only, waves, every)
    if every:
        return ALL, (), cfg.pairs
    if waves:
        pairs = select_pairs(cfg, (), waves) or ()
        return WAVE, tuple(dict.fromkeys(wave_label(w) for w in waves)), pairs
    pairs = select_pairs(cfg, only) or ()
    return PAIR, tuple(p.key for p in pairs), pairs


async def _command(cfg: JobConfig, verb: str, scope: Scope, reason: str | None) -> list[str]:
    if verb == "resume" and not state_exists(cfg):  # nothing was ever suspended: no state made
        return Change(verb, scope[0], scope[1], already=list(scope[2])).lines()
    async with controls_state(cfg) as state:
        change = await apply(state, cfg, verb, scope[0], scope[1], scope[2], reason)
    lines = change.lines()
    if verb == "resume" and cfg.state_url is not None and change.changed:
        lines.append(await _requeue(cfg, change))
    return lines


async def _requeue(cfg: JobConfig, change: Change) -> str:
    from ..cluster.submit import requeue_resumed  # procrastinate only for a shared job

    n = await requeue_resumed(cfg, {p.key for p in change.changed})
    return f"queued again {n} mailbox group" + ("" if n == 1 else "s") + " released suspended"


@job_command(
    state_option(),
    *_options("suspend"),
    click.option("--reason", metavar="TEXT", help="Why (shown by status, the screen, the report)."),
)
def suspend(
    config: Path,
    state: Path | None,
    only: tuple[str, ...],
    waves: tuple[str, ...],
    every: bool,
    reason: str | None,
) -> None:
    """Suspend pairs of the job CONFIG, from any shell, while it runs or not: a running pair
    stops taking work within seconds, settles what is in flight and is reported suspended
    (exit 8 when nothing else is left); `copyengine resume` continues it."""
    one_scope(only, waves, every)
    cfg = load(config, state, resolve_secrets=False)
    configure_logs(cfg, "warning")
    scope = chosen(cfg, only, waves, every)
    for line in anyio.run(_command, cfg, "suspend", scope, (reason or "").strip() or None):
        show(line)


@job_command(state_option(), *_options("resume"))
def resume(
    config: Path, state: Path | None, only: tuple[str, ...], waves: tuple[str, ...], every: bool
) -> None:
    """Resume suspended pairs of the job CONFIG: a run in progress continues them within
    seconds; a shared job's workers are given their mailbox groups again. Resuming one pair
    of a suspended wave (or of a suspended job) resumes that pair alone."""
    one_scope(only, waves, every)
    cfg = load(config, state, resolve_secrets=False)
    configure_logs(cfg, "warning")
    scope = chosen(cfg, only, waves, every)
    for line in anyio.run(_command, cfg, "resume", scope, None):
        show(line)
