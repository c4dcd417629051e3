"""The ``copyengine`` command line: options in, the work done through ``wiring``, text out
through ``console``. Every failure leaves through one door, ``failures.classify``."""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click

from . import __version__, logs
from .config import JobConfig, Pair, load_job
from .console.live import outcome_line, print_summary, show_progress
from .console.signoff import print_sign_off
from .console.text import (
    doctor_lines,
    print_plan,
    report_line,
    status_lines,
    submit_line,
    verify_lines,
)
from .embedded.runner import embedded_emulator
from .errors import ConfigError
from .exitcodes import ExitCode
from .failures import classify
from .pipeline.job import watch_signals
from .pipeline.stop import StopFlag
from .plan import retired_source
from .report import JobStats, iso
from .wiring import clients, plan_job, run_job, state_exists, store, verify_content_job, verify_job
from .wiring import doctor as run_doctor

F = TypeVar("F", bound=Callable[..., Any])


def _tune_for_copying() -> None:
    """Memory and garbage collection for a process that copies (``run``, ``worker``); not
    for the emulator, which reuses its multi-MB response buffers and is faster with glibc's
    default (it serves exports at half speed with every large buffer mmapped).

    - glibc raises its mmap threshold after large blocks are freed, after which multi-MB
      item buffers come from the heap and are not returned to the OS: RSS keeps the
      high-water mark of the largest items forever. A fixed threshold keeps large buffers
      mmapped.
    - Almost everything a copy allocates is freed by reference counting as soon as it is
      done with; the cycle collector's default (a young collection every 700 net
      allocations) ran about 250 times in a 20,000-item run for 2-3% of the engine's CPU,
      finding next to nothing. Young objects are collected every 20,000 instead, and what
      start-up made (modules, classes) is frozen out of the rare full collections."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD = 4 MiB: typical exports stay on the heap
        libc.mallopt(-1, 1 << 20)  # M_TRIM_THRESHOLD = 1 MiB
    except (OSError, AttributeError):
        pass
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


EXIT_CODES_HELP = """\b
Exit codes:
  0    every selected item is in the target
  1    the job ran; some items failed or are unknown, or some pairs failed (see the report)
  2    bad command line
  3    configuration error, or a state store of another job (nothing was sent)
  4    authentication or permission refused for every pair
  5    fatal: state store unusable, disk full, the emulator would not start, every pair failed
  6    verify found missing, extra or misplaced items (stale copies with --content)
  7    another run of this job is in progress (its lock is held)
  130  interrupted (Ctrl-C / SIGTERM); run again to finish
"""


def _is_debug() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get("debug"))


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
        if _is_debug() or os.environ.get("COPYENGINE_DEBUG") == "1":
            traceback.print_exception(exc)
        verdict = classify(exc)
        interrupted = verdict.code is ExitCode.INTERRUPTED
        click.echo(verdict.message if interrupted else f"error: {verdict.message}", err=True)
        ctx.exit(verdict.code)


class _Cli(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        with exit_by_verdict(ctx):
            return super().invoke(ctx)


# -- the options several commands share -------------------------------------------------------
def debug_option(f: F) -> F:
    def remember(ctx: click.Context, _: click.Parameter, value: bool) -> bool:
        if value:
            ctx.meta["debug"] = True
        return value

    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        callback=remember,
        help="Log at debug level and show tracebacks.",
    )(f)


def state_option(help: str = "Override [job].state.") -> Callable[[F], F]:
    return click.option("--state", type=click.Path(path_type=Path), help=help)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")


@click.group(cls=_Cli, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="copyengine")
@debug_option
def main() -> None:
    """Copy Exchange Online mailboxes in bulk through the Graph mailbox import/export API."""


def job_command(
    *options: Callable[[Any], Any], name: str | None = None
) -> Callable[[Callable[..., None]], click.Command]:
    """A command on a job file: the CONFIG argument, ``options``, --debug, the exit codes."""

    def wrap(f: Callable[..., None]) -> click.Command:
        decorated: Any = f
        config = click.argument("config", type=click.Path(path_type=Path))
        for option in reversed((config, *options, debug_option)):
            decorated = option(decorated)
        return main.command(name=name, epilog=EXIT_CODES_HELP)(decorated)

    return wrap


def _load(config: Path, state: Path | None = None, **overrides: object) -> JobConfig:
    if state:
        overrides["state_path"] = state.resolve()
    return load_job(config, **overrides)  # type: ignore[arg-type]


def _logs(cfg: JobConfig, level: str | None = None) -> None:
    """Logs as the job says, at ``level`` (the job's own when None); --debug: everything."""
    logs.configure(cfg.log_format, "debug" if _is_debug() else level or cfg.log_level)


def _with_emulator(cfg: JobConfig, body: Callable[[JobConfig], int]) -> int:
    """Run ``body`` against the job's embedded emulator when a tenant asks for one."""
    if not cfg.needs_emulator:
        return body(cfg)
    with embedded_emulator(cfg) as (pointed, info, pid):
        click.echo(f"embedded emulator (pid {pid}) at {info['graph_url']}", err=True)
        return body(pointed)


@job_command(
    state_option(),
    click.option("--report", type=click.Path(path_type=Path), help="Override [job].report."),
    click.option("--log-format", type=click.Choice(["auto", "json", "console"])),
    click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"])),
    click.option(
        "--no-progress",
        is_flag=True,
        help="No live table on a terminal (progress events are still logged).",
    ),
    click.option(
        "--pair",
        "only",
        multiple=True,
        metavar="UPN",
        help="Only the pairs with this source or target (repeatable).",
    ),
    click.option(
        "--retry-failed",
        is_flag=True,
        help="Only the items that failed or stayed unknown in the last run.",
    ),
    click.option(
        "--full",
        is_flag=True,
        help="List every folder in full instead of reading what changed, and reconcile the "
        "target by search key (finds copies deleted or edited in the target); new delta links "
        "are made.",
    ),
    click.option(
        "--cutover",
        is_flag=True,
        help="The last pass: copy what changed, then verify every pair and write the sign-off "
        "(every source item accounted for) into the report.",
    ),
    click.option(
        "--metrics",
        metavar="HOST:PORT",
        help="Serve Prometheus metrics at http://HOST:PORT/metrics while the job runs.",
    ),
)
def run(
    config: Path,
    state: Path | None,
    report: Path | None,
    log_format: str | None,
    log_level: str | None,
    no_progress: bool,
    only: tuple[str, ...],
    retry_failed: bool,
    full: bool,
    cutover: bool,
    metrics: str | None,
) -> None:
    """Copy every mailbox pair of the job CONFIG (TOML).

    The first run copies everything; each later run is a pass that applies only what
    changed at the source since the last one (new, changed, moved and, with [sync]
    deletions = "mirror", deleted items; folder changes). --cutover ends a migration."""
    if sum((retry_failed, full, cutover)) > 1:
        raise ConfigError("--retry-failed, --full, --cutover", "separate kinds of pass; give one")
    _tune_for_copying()
    given = {
        "report_path": report and report.resolve(),
        "log_format": log_format,
        "log_level": "debug" if _is_debug() else log_level,
    }
    cfg = _load(config, state, **{k: v for k, v in given.items() if v})
    pairs = _select_pairs(cfg, only)
    address = None
    if metrics:
        from .console.metrics import parse_address  # prometheus_client, aiohttp.web: only here

        try:
            address = parse_address(metrics)
        except ValueError as exc:
            raise ConfigError("--metrics", str(exc)) from None
    _logs(cfg)

    def body(c: JobConfig) -> int:
        stats = anyio.run(_run, c, not no_progress, pairs, retry_failed, address, full, cutover)
        print_summary(stats)
        if stats.sign_off is not None:
            print_sign_off(stats.sign_off)
        if stats.fatal_code is not ExitCode.LOCKED or not stats.fatal:
            click.echo(f"report: {c.report_path}", err=True)
        if stats.fatal:
            click.echo(f"error: {stats.fatal}", err=True)
        click.echo(outcome_line(stats), err=True)
        return int(stats.exit_code())

    sys.exit(_with_emulator(cfg, body))


def _select_pairs(cfg: JobConfig, only: tuple[str, ...]) -> tuple[Pair, ...] | None:
    """The pairs ``--pair`` names (by source or target); every one must match a pair."""
    if not only:
        return None
    wanted = {u.strip().lower() for u in only}
    chosen = tuple(p for p in cfg.pairs if {p.source.lower(), p.target.lower()} & wanted)
    known = {u.lower() for p in cfg.pairs for u in (p.source, p.target)}
    missing = sorted(wanted - known)
    if missing:
        raise ConfigError(f"--pair {missing[0]}", "no pair of the job has this source or target")
    return chosen


async def _run(
    cfg: JobConfig,
    live_table: bool,
    pairs: tuple[Pair, ...] | None = None,
    retry_failed: bool = False,
    metrics: tuple[str, int] | None = None,
    full: bool = False,
    cutover: bool = False,
) -> JobStats:
    stop = StopFlag()
    stats = JobStats()
    with anyio.CancelScope() as abort:
        async with AsyncExitStack() as stack:
            if metrics is not None:
                try:
                    from .console.metrics import serve_metrics

                    port = await stack.enter_async_context(serve_metrics(stats, *metrics))
                except OSError as exc:
                    stats.fatal, stats.fatal_code = (
                        f"--metrics {metrics[0]}:{metrics[1]}: cannot listen ({exc.strerror})",
                        ExitCode.CONFIG,
                    )
                    return stats
                click.echo(f"metrics at http://{metrics[0]}:{port}/metrics", err=True)
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch_signals, stop, abort)
                tg.start_soon(show_progress, stats, live_table)
                await run_job(cfg, stop, stats, pairs, retry_failed, full, cutover)
                tg.cancel_scope.cancel()
    if abort.cancel_called:
        stats.interrupted = True
    return stats


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
    click.option(
        "--json-output", type=click.Path(path_type=Path), help="Also write the comparison as JSON."
    ),
)
def verify(config: Path, state: Path | None, content: bool, json_output: Path | None) -> None:
    """Compare source and target of every pair (its archive too when the pair has one): every
    selected item once, in its folder, by search key; with --content, every copy current."""
    cfg = _load(config, state)
    _logs(cfg, "warning")
    if content and not state_exists(cfg):
        raise ConfigError(
            "--content",
            f"needs the job's state (none at {cfg.state_path}): the versions copied are "
            "recorded there, so without it content cannot be checked; give --state PATH, or "
            "run verify without --content (presence only)",
        )

    def body(c: JobConfig) -> int:
        checks = anyio.run(verify_content_job if content else verify_job, c)
        bad = 0
        for pc in checks:
            lines, mismatch = verify_lines(pc)
            for line in lines:
                click.echo(line)
            bad += mismatch
        if json_output:
            json_output.write_text(
                json.dumps([pc.as_dict() for pc in checks], indent=2), encoding="utf-8"
            )
        if checks and all(pc.error_code in ("AuthFailed", "PermissionDenied") for pc in checks):
            return ExitCode.AUTH
        return ExitCode.VERIFY_MISMATCH if bad else ExitCode.OK

    sys.exit(_with_emulator(cfg, body))


@job_command(json_option, name="doctor")
def doctor_cmd(config: Path, as_json: bool) -> None:
    """Preflight every tenant and pair without writing anything: token, mailboxes, each
    permission probed, least privilege against the token's roles, and the RBAC for
    Applications commands that scope the apps to the job's mailboxes. Exits 4 when a pair
    would fail for a permission, 5 for anything else."""
    cfg = _load(config)
    _logs(cfg, "error")

    def body(c: JobConfig) -> int:
        result = anyio.run(run_doctor, c)
        text = json.dumps(result, indent=2) if as_json else "\n".join(doctor_lines(result))
        click.echo(text)
        return int(result["exit_code"])

    sys.exit(_with_emulator(cfg, body))


@job_command(state_option(), json_option)
def plan(config: Path, state: Path | None, as_json: bool) -> None:
    """Size the job without copying anything: per pair and folder, what would be copied,
    what is already there, what is skipped and why, and an ETA from the per-mailbox budgets.
    Writes nothing to the target or the state."""
    cfg = _load(config, state)
    _logs(cfg, "warning")

    def body(c: JobConfig) -> int:
        pairs, summary = anyio.run(plan_job, c)
        if as_json:
            click.echo(
                json.dumps({"summary": summary, "pairs": [p.as_dict() for p in pairs]}, indent=2)
            )
        else:
            print_plan(pairs, summary)
        return ExitCode.FATAL if summary["pairs_failing"] else ExitCode.OK

    sys.exit(_with_emulator(cfg, body))


async def read_status(cfg: JobConfig) -> dict[str, Any]:
    """What ``status`` shows, read from the state alone (never the service): every pair's
    items by outcome and folders read by delta next, the passes and, for a shared job, its
    mailbox groups."""
    state = store(cfg, exclusive=False)
    await state.open()
    try:
        pairs = []
        for p in await state.pairs():
            p["items"] = await state.summary(p["pair"])
            p["started"], p["finished"] = iso(p["started"]), iso(p["finished"])
            every = await state.folders(p["pair"])
            folders = [f for f in every if retired_source(f.source_folder_id) is None]
            p["folders"] = len(folders)
            p["folders_with_delta_link"] = sum(f.delta_link is not None for f in folders)
            pairs.append(p)
        passes = await state.passes()
        for ps in passes:
            ps["started"], ps["finished"] = iso(ps["started"]), iso(ps["finished"])
    finally:
        await state.close()
    groups: list[dict[str, Any]] = []
    if cfg.state_url is not None:
        from .cluster.app import read_groups

        groups = await read_groups(cfg)
    where = cfg.state_url or str(cfg.state_path)
    return {"state": where, "passes": passes, "groups": groups, "pairs": pairs}


@job_command(state_option(), json_option)
def status(config: Path, state: Path | None, as_json: bool) -> None:
    """Show what the job's state store knows, without contacting the service (safe while a
    run is in progress)."""
    cfg = _load(config, state, resolve_secrets=False)
    if not state_exists(cfg):
        none = {"state": str(cfg.state_path), "pairs": []}
        click.echo(json.dumps(none) if as_json else f"no state yet at {cfg.state_path}")
        return
    known = anyio.run(read_status, cfg)
    if as_json:
        click.echo(json.dumps(known, indent=2, default=str))
    else:
        for line in status_lines(known, time.time()):
            click.echo(line)


def _shared(config: Path) -> JobConfig:
    cfg = _load(config)
    if cfg.state_url is None:
        raise ConfigError(
            "job.state",
            "several hosts share a job through PostgreSQL: set [job] state = "
            '"postgresql://user@host:5432/db" (see the README)',
        )
    if cfg.needs_emulator:
        raise ConfigError(
            "tenants",
            'a tenant says "emulator", whose embedded emulator lives inside one process; '
            "workers on several hosts need the real service or a standalone emulator "
            "(`copyengine emulator serve`, its URLs in the job file)",
        )
    _logs(cfg)
    return cfg


@job_command()
def submit(config: Path) -> None:
    """Queue the job's mailbox groups in PostgreSQL for `copyengine worker` processes on any
    host. Creates the schema if needed; running it again queues only unfinished groups (and,
    once every group of a pass is done, starts the next pass)."""
    from .cluster.app import submit as do_submit

    click.echo(submit_line(anyio.run(do_submit, _shared(config))))


@job_command(
    click.option(
        "--concurrency",
        type=click.IntRange(1, 1000),
        default=None,
        help="Mailbox groups this process runs at once ([workers] concurrency).",
    ),
    click.option(
        "--until-done",
        is_flag=True,
        help="Exit once every group of the current pass is finished (exit 1 if one failed); "
        "without it a worker waits for work until stopped.",
    ),
)
def worker(config: Path, concurrency: int | None, until_done: bool) -> None:
    """Run queued mailbox groups of a shared job until stopped (SIGTERM/Ctrl-C: running
    segments drain and their continuation is queued for any worker)."""
    from .cluster.app import run_worker

    cfg = _shared(config)
    _tune_for_copying()

    async def body() -> int:
        async with clients(cfg) as built:
            return await run_worker(cfg, built, concurrency or cfg.workers.concurrency, until_done)

    sys.exit(anyio.run(body))


@job_command(
    click.option("--output", type=click.Path(path_type=Path), help="Override [job].report.")
)
def report(config: Path, output: Path | None) -> None:
    """Write the job's JSON report from its state (every host's work, from the database)."""
    from .cluster.report import build_report

    cfg = _load(config, resolve_secrets=False)
    _logs(cfg, "warning")
    if not state_exists(cfg):
        raise ConfigError(str(cfg.state_path), "no state yet")
    data = anyio.run(build_report, cfg)
    path = (output or cfg.report_path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)
    click.echo(report_line(path, data["totals"]))


@main.group()
def emulator() -> None:
    """The local emulator of the Graph mailbox service."""


@emulator.command("serve")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Emulator configuration (TOML).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, show_default=True, type=int, help="0 picks a free port.")
@click.option(
    "--ready-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Written (JSON: URLs, CA path, directory) once connections are accepted.",
)
def serve(config_path: Path, host: str, port: int, ready_file: Path | None) -> None:
    """Serve the emulator until interrupted."""
    import asyncio

    from .emulator import EmulatorConfigError, load_config
    from .emulator.server import serve_until_stopped

    try:
        config = load_config(config_path)
    except EmulatorConfigError as exc:
        raise ConfigError(f"emulator {config_path}", str(exc)) from None
    asyncio.run(
        serve_until_stopped(config, host, port, ready_file, lambda s: click.echo(s, err=True))
    )


if __name__ == "__main__":
    main()
