"""The ``copyengine`` command line: options in, the work done through ``wiring``, text out
through ``console``. Every failure leaves through one door, ``failures.classify``."""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import click
import structlog

from . import __version__, logs
from .commands.caps import overridden, run_caps, run_options
from .commands.controls import resume, suspend
from .commands.emulator import emulator
from .commands.hosts import report, submit, worker
from .commands.init import init
from .commands.options import (
    configure_logs,
    debug_option,
    in_waves,
    is_debug,
    job_command,
    json_option,
    json_output_option,
    load,
    metrics_address,
    metrics_option,
    one_kind_of_pass,
    pair_option,
    pass_kind_options,
    say,
    show,
    state_option,
    wave_option,
    with_emulator,
)
from .commands.pairstats import show_pair_statistics
from .config import JobConfig, select_pairs
from .console.live import outcome_line, print_summary
from .console.signoff import print_sign_off
from .console.text import (
    doctor_lines,
    print_plan,
    status_lines,
    verify_lines,
    verify_outcome,
)
from .controls import controls_now
from .controls.suspend import suspended_pairs
from .errors import ConfigError
from .exitcodes import HELP as EXIT_HELP
from .exitcodes import ExitCode
from .failures import classify
from .launch import defer_stops
from .stopsignals import ignore_stops
from .wiring import doctor as run_doctor
from .wiring import (
    plan_job,
    read_overview,
    run_watched,
    state_exists,
    tune_for_copying,
    verify_content_job,
    verify_job,
)

log = structlog.get_logger("copyengine")


@contextmanager
def exit_by_verdict(ctx: click.Context) -> Iterator[None]:
    """The one way a failure leaves the command line: classified by ``failures.classify``,
    its message printed, the process ended with its exit code; never a traceback unless
    ``--debug`` (or ``COPYENGINE_DEBUG=1``) asks for one."""
    try:
        yield
    except (click.exceptions.Exit, click.ClickException, click.Abort):
        raise
    except (Exception, KeyboardInterrupt) as exc:
        if is_debug() or os.environ.get("COPYENGINE_DEBUG") == "1":
            traceback.print_exception(exc)
        verdict = classify(exc)
        interrupted = verdict.code is ExitCode.INTERRUPTED
        text = verdict.message if interrupted else f"error: {verdict.message}"
        say(text, "command.failed", level="error", exit_code=int(verdict.code))
        if not logs.plain_on_screen():  # stderr is JSON for machines: stdout says it to people
            show(f"exit {int(verdict.code)}: {verdict.message}")
        ctx.exit(verdict.code)


class _Cli(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        with exit_by_verdict(ctx):
            return super().invoke(ctx)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        found = super().resolve_command(ctx, args)
        # a stop kept since the start (``launch``): run drains with it, the others end
        defer_stops(getattr(found[1], "name", None) == "run")
        return found


@click.group(cls=_Cli, epilog=EXIT_HELP)
@click.version_option(__version__, prog_name="copyengine")
@debug_option
def main() -> None:
    """Copy Exchange Online mailboxes in bulk through the Graph mailbox import/export API."""


@job_command(
    state_option(),
    click.option("--report", type=click.Path(path_type=Path), help="Override [job].report."),
    click.option(
        "--log-format",
        type=click.Choice(["auto", "json", "console"]),
        help="Override [job] log_format (auto: console on a terminal, else JSON).",
    ),
    click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        help="Override [job] log_level.",
    ),
    click.option(
        "--no-progress",
        is_flag=True,
        help="No live table on a terminal (progress events are still logged).",
    ),
    pair_option,
    wave_option,
    *pass_kind_options,
    metrics_option,
    run_options,
)
def run(
    config: Path,
    state: Path | None,
    report: Path | None,
    log_format: str | None,
    log_level: str | None,
    no_progress: bool,
    only: tuple[str, ...],
    waves: tuple[str, ...],
    retry_failed: bool,
    full: bool,
    cutover: bool,
    metrics: str | None,
) -> None:
    """Copy every mailbox pair of the job CONFIG (TOML).

    The first run copies everything; each later run is a pass that applies only what
    changed at the source since the last one (new, changed, moved and, with [sync]
    deletions = "mirror", deleted items; folder changes). --cutover ends a migration."""
    one_kind_of_pass(retry_failed, full, cutover)
    tune_for_copying()
    given = {
        "report_path": report and report.resolve(),
        "log_format": log_format,
        "log_level": "debug" if is_debug() else log_level,
    }
    cfg = overridden(load(config, state, **{k: v for k, v in given.items() if v}))
    pairs = select_pairs(cfg, only, waves)
    address = metrics_address(metrics)
    configure_logs(cfg)

    def body(c: JobConfig) -> int:
        stats = anyio.run(
            run_watched,
            c,
            not no_progress,
            pairs,
            retry_failed,
            address,
            full,
            cutover,
            say,
            run_caps(),
        )
        ignore_stops()  # the run is over and reported: say it whole
        code, sign_off = stats.exit_code(), stats.sign_off
        if not stats.refused:  # a refused run did nothing: no table of pairs 'pending'
            show(render=lambda: print_summary(stats))
        if sign_off is not None:
            show(render=lambda: print_sign_off(sign_off))
        if stats.report_own:  # written: a refused run or a full disk wrote none
            show(f"report: {c.report_path} (this run's copy: {stats.report_own.name})")
        if stats.fatal:
            show(f"error: {stats.fatal}")
        show(outcome_line(stats))
        said = log.info if code is ExitCode.OK else log.warning
        said("job.outcome", exit_code=int(code), outcome=outcome_line(stats))
        return int(code)

    sys.exit(with_emulator(cfg, body))


@job_command(
    state_option(
        "The state given to `run --state` (the embedded emulator's data lives beside it)."
    ),
    click.option(
        "--content",
        is_flag=True,
        help="Also check that every copy holds its source item's current version (change keys "
        "from the listings against the state's records; nothing is exported). Needs the state.",
    ),
    json_output_option,
    wave_option,
)
def verify(
    config: Path,
    state: Path | None,
    content: bool,
    json_output: Path | None,
    waves: tuple[str, ...],
) -> None:
    """Compare source and target of every pair (its archive too when the pair has one): every
    selected item once, in its folder, by search key; with --content, every copy current.
    Exits 6 when a pair differs, 1 when a pair could not be compared."""
    cfg = in_waves(load(config, state), waves)
    configure_logs(cfg, "warning")
    if content and not state_exists(cfg):
        raise ConfigError(
            "--content",
            f"needs the job's state (none at {cfg.state_path}): the versions copied are "
            "recorded there, so without it content cannot be checked; give --state PATH, or "
            "run verify without --content (presence only)",
        )

    def body(c: JobConfig) -> int:
        checks = anyio.run(verify_content_job if content else verify_job, c)
        differ = 0  # pairs compared that differ (one not compared is no difference)
        for pc in checks:
            lines, mismatch = verify_lines(pc)
            for line in lines:
                show(line)
            differ += mismatch and not pc.error
        if json_output:
            json_output.write_text(
                json.dumps([pc.as_dict() for pc in checks], indent=2), encoding="utf-8"
            )
        code, outcome = verify_outcome(checks, differ)
        show(outcome)
        return code

    sys.exit(with_emulator(cfg, body, read_only=True))


@job_command(json_option, name="doctor")
def doctor_cmd(config: Path, as_json: bool) -> None:
    """Preflight every tenant and pair without writing anything: token, mailboxes, each
    permission probed, least privilege against the token's roles, and the RBAC for
    Applications commands that scope the apps to the job's mailboxes. Exits 4 when a pair
    would fail for a permission, 5 for anything else."""
    cfg = load(config)
    configure_logs(cfg, "error")

    def body(c: JobConfig) -> int:
        result = anyio.run(run_doctor, c)
        text = json.dumps(result, indent=2) if as_json else "\n".join(doctor_lines(result))
        show(text)
        return int(result["exit_code"])

    sys.exit(with_emulator(cfg, body, read_only=True))


@job_command(state_option(), json_option, wave_option)
def plan(config: Path, state: Path | None, as_json: bool, waves: tuple[str, ...]) -> None:
    """Size the job without copying anything: per pair and folder, what would be copied,
    what is already there, what is skipped and why, and an ETA from the per-mailbox budgets.
    Writes nothing to the target or the state. Exits 5 when a pair cannot be sized."""
    cfg = in_waves(load(config, state), waves)
    configure_logs(cfg, "warning")

    def body(c: JobConfig) -> int:
        pairs, summary = anyio.run(plan_job, c)
        if as_json:
            show(json.dumps({"summary": summary, "pairs": [p.as_dict() for p in pairs]}, indent=2))
        else:
            show(render=lambda: print_plan(pairs, summary))
        return ExitCode.FATAL if summary["pairs_failing"] else ExitCode.OK

    sys.exit(with_emulator(cfg, body, read_only=True))


@job_command(state_option(), json_option, wave_option, pair_option)
def status(
    config: Path, state: Path | None, as_json: bool, waves: tuple[str, ...], only: tuple[str, ...]
) -> None:
    """Show what the job's state store knows, without contacting the service (safe while a
    run is in progress). --pair UPN: that pair's statistics across passes."""
    cfg = in_waves(load(config, state, resolve_secrets=False), waves)
    configure_logs(cfg, "warning")
    if only:
        show_pair_statistics(cfg, only, as_json)
        return
    if not state_exists(cfg):
        none = {"state": str(cfg.state_path), "pairs": []}
        show(json.dumps(none) if as_json else f"no state yet at {cfg.state_path}")
        return
    ov = anyio.run(read_overview, cfg)
    keys = {p.key for p in cfg.pairs}  # --wave: that wave's pairs
    pairs = [p for p in ov.pairs if p["pair"] in keys] if waves else ov.pairs
    known: dict[str, Any] = {"state": ov.state, "passes": ov.passes, "groups": ov.groups}
    known["hints"] = ov.hints  # as the run ended with them, from the state
    # the schedule and the pairs' times now, for the kind of the pass under way
    known |= {"pairs": pairs, "controls": controls_now(cfg, passes=ov.passes)}
    known["suspended"] = suspended_pairs(cfg, ov.controls)
    if as_json:
        show(json.dumps(known, indent=2, default=str))
    else:
        for line in status_lines(known, time.time()):
            show(line)


for command in (run, verify, doctor_cmd, plan, status, submit, worker, report, emulator, init):
    main.add_command(command)
for command in (suspend, resume):
    main.add_command(command)

if __name__ == "__main__":
    main()
