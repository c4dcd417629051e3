"""The ``copyengine`` command line."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import click

from . import __version__, logs
from .config import JobConfig, Pair, load_job
from .embedded import embedded_emulator
from .errors import ConfigError, CopyEngineError, ForeignState, StateError
from .exitcodes import ExitCode
from .failures import classify
from .pipeline.job import watch_signals
from .pipeline.stop import StopFlag
from .progress import outcome_line, print_plan, print_sign_off, print_summary, show_progress
from .report import JobStats
from .verify import PairCheck, verify_pairs
from .wiring import clients, plan_job, read_overview, run_job, state_exists, store, verify_job
from .wiring import doctor as run_doctor


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


class _Cli(click.Group):
    """Every failure reaches the operator as a message and an exit code, never a traceback
    (``--debug`` or ``COPYENGINE_DEBUG=1`` shows it)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(ExitCode.INTERRUPTED)
        except Exception as exc:
            if ctx.meta.get("debug") or os.environ.get("COPYENGINE_DEBUG") == "1":
                raise
            verdict = classify(exc)
            click.echo(f"error: {verdict.message}", err=True)
            ctx.exit(verdict.code)


def _debug_option(f: Callable[..., Any]) -> Callable[..., Any]:
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


@click.group(cls=_Cli, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="copyengine")
@_debug_option
def main() -> None:
    """Copy Exchange Online mailboxes in bulk through the Graph mailbox import/export API."""


def _load(config: Path, **overrides: object) -> JobConfig:
    try:
        return load_job(config, **overrides)  # type: ignore[arg-type]
    except ConfigError as exc:
        click.echo(f"error: configuration: {exc}", err=True)
        sys.exit(ExitCode.CONFIG)


def _with_emulator(cfg: JobConfig, body: Callable[[JobConfig], int]) -> int:
    """Run ``body`` against the job's embedded emulator when a tenant asks for one."""
    if not cfg.needs_emulator:
        return body(cfg)
    try:
        with embedded_emulator(cfg) as (pointed, info, pid):
            click.echo(f"embedded emulator (pid {pid}) at {info['graph_url']}", err=True)
            return body(pointed)
    except ConfigError as exc:
        click.echo(f"error: configuration: {exc}", err=True)
        return ExitCode.CONFIG
    except CopyEngineError as exc:
        click.echo(f"error: {exc}", err=True)
        return ExitCode.FATAL


def _state_override(state: Path | None) -> dict[str, object]:
    return {"state_path": state.resolve()} if state else {}


def _is_debug() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get("debug"))


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--state", type=click.Path(path_type=Path), help="Override [job].state.")
@click.option("--report", type=click.Path(path_type=Path), help="Override [job].report.")
@click.option("--log-format", type=click.Choice(["auto", "json", "console"]))
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--no-progress",
    is_flag=True,
    help="No live table on a terminal (progress events are still logged).",
)
@click.option(
    "--pair",
    "only",
    multiple=True,
    metavar="UPN",
    help="Only the pairs with this source or target (repeatable).",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Only the items that failed or stayed unknown in the last run.",
)
@click.option(
    "--full",
    is_flag=True,
    help="List every folder in full instead of reading what changed, and reconcile the target "
    "by search key (finds copies deleted or edited in the target); new delta links are made.",
)
@click.option(
    "--cutover",
    is_flag=True,
    help="The last pass: copy what changed, then verify every pair and write the sign-off "
    "(every source item accounted for) into the report.",
)
@click.option(
    "--metrics",
    metavar="HOST:PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics while the job runs.",
)
@_debug_option
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
        click.echo(
            "error: configuration: --retry-failed, --full and --cutover are separate kinds "
            "of pass; give one",
            err=True,
        )
        sys.exit(ExitCode.CONFIG)
    _tune_for_copying()
    overrides: dict[str, object] = _state_override(state)
    if report:
        overrides["report_path"] = report.resolve()
    if log_format:
        overrides["log_format"] = log_format
    if log_level:
        overrides["log_level"] = log_level
    if _is_debug():
        overrides["log_level"] = "debug"
    cfg = _load(config, **overrides)
    pairs = _select_pairs(cfg, only)
    address = None
    if metrics:
        from .metrics import parse_address  # prometheus_client and aiohttp.web: only here

        try:
            address = parse_address(metrics)
        except ValueError as exc:
            click.echo(f"error: configuration: --metrics: {exc}", err=True)
            sys.exit(ExitCode.CONFIG)
    logs.configure(cfg.log_format, cfg.log_level)

    def body(c: JobConfig) -> int:
        stats = anyio.run(_run, c, not no_progress, pairs, retry_failed, address, full, cutover)
        print_summary(stats)
        if stats.sign_off is not None:
            print_sign_off(stats.sign_off)
        code = stats.exit_code()
        if stats.fatal_code is not ExitCode.LOCKED or not stats.fatal:
            click.echo(f"report: {c.report_path}", err=True)
        if stats.fatal:
            click.echo(f"error: {stats.fatal}", err=True)
        click.echo(outcome_line(stats), err=True)
        return int(code)

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
        click.echo(
            f"error: configuration: --pair {missing[0]}: no pair of the job has this source or "
            "target",
            err=True,
        )
        sys.exit(ExitCode.CONFIG)
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
                    from .metrics import serve_metrics

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


async def verify_with_state(cfg: JobConfig) -> list[PairCheck]:
    """``verify --content``: the comparison with the job's state read (never written): the
    versions of the copies compared through change keys (source listing, state record,
    target listing), and copies kept of items deleted at the source told apart."""
    async with clients(cfg) as built:
        st = store(cfg, exclusive=False)
        await st.open()
        try:
            return await verify_pairs(cfg, built, st)
        finally:
            await st.close()


def _verify_lines(pc: PairCheck) -> tuple[list[str], bool]:
    """What ``verify`` prints for a pair, and whether it is a mismatch."""
    head = f"{pc.source} -> {pc.target}"
    if pc.error:
        return [f"FAIL {head}: {pc.error}"], True
    v = pc.verdict
    out: list[str] = []
    for fc in pc.folders:
        if fc.ok:
            continue
        said = [f"{len(fc.missing)} missing", f"{len(fc.extra)} extra"]
        if fc.misplaced or fc.misplaced_in:
            said.append(f"{len(fc.misplaced)} misplaced, {len(fc.misplaced_in)} from elsewhere")
        if fc.duplicated:
            said.append(f"{len(fc.duplicated)} duplicated")
        if fc.stale:
            said.append(f"{len(fc.stale)} stale")
        out.append(
            f"FAIL {head} {fc.source_path}: {', '.join(said)} "
            f"(expected {fc.expected}, found {fc.found})"
        )
    for r in v.missing_folders[:MAX_SHOWN]:
        out.append(f"FAIL {head} {r['folder']}: no target folder ({r['target_path']})")
    in_mapped = {i for fc in pc.folders for i in fc.extra}
    elsewhere = [r for r in v.extra if r["id"] not in in_mapped]
    if elsewhere:
        out.append(
            f"FAIL {head}: {len(elsewhere)} extra items in target folders no selected source "
            "folder maps to, e.g. "
            + ", ".join(f"{r['folder']} {r['id']}" for r in elsewhere[:MAX_SHOWN])
        )
    if pc.content:  # (without a state there are no versions to compare: nothing is stale)
        for r in v.stale[:MAX_SHOWN]:
            out.append(f"STALE {head} {r['folder']} {r['id']}: {r['reason']}")
        if len(v.stale) > MAX_SHOWN:
            out.append(f"STALE {head}: ... and {len(v.stale) - MAX_SHOWN} more (--json-output)")
    for r in v.leftover_folders[:MAX_SHOWN]:
        out.append(f"note {head}: target folder {r['path']} is no selected folder's copy")
    if pc.ok:
        n = v.selected
        what = "current" if pc.content else "present"
        out.insert(0, f"ok   {head}: {n} items in {len(pc.folders)} folders ({what})")
        if pc.content and v.content_unchecked:
            out.append(
                f"note {head}: {len(v.content_unchecked)} copies have no record of their "
                "version (adopted, or never seen by a pass): present, content not compared"
            )
    return out, not pc.ok


MAX_SHOWN = 20


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("config", type=click.Path(path_type=Path))
@click.option(
    "--state",
    type=click.Path(path_type=Path),
    help="The state given to `run --state` (the embedded emulator's data lives beside it).",
)
@click.option(
    "--content",
    is_flag=True,
    help="Also check that every copy holds its source item's current version (change keys "
    "from the listings against the state's records; nothing is exported). Needs the state.",
)
@click.option(
    "--json-output", type=click.Path(path_type=Path), help="Also write the comparison as JSON."
)
@_debug_option
def verify(config: Path, state: Path | None, content: bool, json_output: Path | None) -> None:
    """Compare source and target of every pair (its archive too when the pair has one): every
    selected item once, in its folder, by search key; with --content, every copy current."""
    cfg = _load(config, **_state_override(state))
    logs.configure(cfg.log_format, "debug" if _is_debug() else "warning")
    if content and not state_exists(cfg):
        click.echo(
            f"error: --content needs the job's state (none at {cfg.state_path}): the "
            "versions copied are recorded there, so without it content cannot be checked; "
            "give --state PATH, or run verify without --content (presence only)",
            err=True,
        )
        sys.exit(ExitCode.CONFIG)

    def body(c: JobConfig) -> int:
        try:
            checks = anyio.run(verify_with_state if content else verify_job, c)
        except (StateError, ForeignState) as exc:
            click.echo(f"error: state: {exc}", err=True)
            return ExitCode.CONFIG if isinstance(exc, ForeignState) else ExitCode.FATAL
        bad = 0
        for pc in checks:
            lines, mismatch = _verify_lines(pc)
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


@main.command(name="doctor", epilog=EXIT_CODES_HELP)
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@_debug_option
def doctor_cmd(config: Path, as_json: bool) -> None:
    """Preflight every tenant and pair without writing anything: token, mailboxes, each
    permission probed, least privilege against the token's roles, and the RBAC for
    Applications commands that scope the apps to the job's mailboxes. Exits 4 when a pair
    would fail for a permission, 5 for anything else."""
    cfg = _load(config)
    logs.configure(cfg.log_format, "debug" if _is_debug() else "error")

    def body(c: JobConfig) -> int:
        result = anyio.run(run_doctor, c)
        if as_json:
            click.echo(json.dumps(result, indent=2))
        else:
            for side, t in result["tenants"].items():
                if not t.get("token"):
                    click.echo(f"FAIL {side} app {t['app']}: {t.get('error')}")
                    continue
                click.echo(
                    f"ok   {side} app {t['app']}: token; missing {t['missing'] or 'nothing'}; "
                    f"beyond least privilege {t['excess'] or 'nothing'}"
                )
            for p in result["pairs"]:
                for ch in p["checks"]:
                    if not ch["ok"]:
                        click.echo(
                            f"FAIL {p['source']} -> {p['target']}: {ch['what']}: {ch['detail']}"
                        )
                if p["ok"]:
                    click.echo(f"ok   {p['source']} -> {p['target']}")
            st = result.get("state") or {}
            if st:
                click.echo(
                    f"ok   state {st['where']}"
                    if st["ok"]
                    else f"FAIL state {st['where']}: {st.get('error')}"
                )
            click.echo("\n".join(["", *result["rbac"]]))
        return int(result["exit_code"])

    sys.exit(_with_emulator(cfg, body))


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--state", type=click.Path(path_type=Path), help="Override [job].state.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@_debug_option
def plan(config: Path, state: Path | None, as_json: bool) -> None:
    """Size the job without copying anything: per pair and folder, what would be copied,
    what is already there, what is skipped and why, and an ETA from the per-mailbox budgets.
    Writes nothing to the target or the state."""
    cfg = _load(config, **_state_override(state))
    logs.configure(cfg.log_format, "debug" if _is_debug() else "warning")

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


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--state", type=click.Path(path_type=Path), help="Override [job].state.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@_debug_option
def status(config: Path, state: Path | None, as_json: bool) -> None:
    """Show what the job's state store knows, without contacting the service (safe while a
    run is in progress)."""
    cfg = _load(config, resolve_secrets=False, **_state_override(state))
    if not state_exists(cfg):
        if as_json:
            click.echo(json.dumps({"state": str(cfg.state_path), "pairs": []}))
        else:
            click.echo(f"no state yet at {cfg.state_path}")
        return

    try:
        ov = anyio.run(read_overview, cfg)
    except StateError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.CONFIG if isinstance(exc, ForeignState) else ExitCode.FATAL)
    pairs, passes, groups = ov.pairs, ov.passes, ov.groups
    if as_json:
        click.echo(
            json.dumps(
                {
                    "state": cfg.state_url or str(cfg.state_path),
                    "passes": passes,
                    "groups": groups,
                    "pairs": pairs,
                },
                indent=2,
                default=str,
            )
        )
        return
    now = time.time()
    for g in groups:
        beat = f", heartbeat {now - g['heartbeat']:.0f}s ago" if g["heartbeat"] else ""
        click.echo(
            f"group {g['group']} ({len(g['pairs'])} pairs): {g['state']}"
            + (f" on {g['host']}" if g["host"] else "")
            + f"{beat}; copied {g['copied']}, failed {g['failed']}, unknown {g['unknown']}, "
            f"{g['items_per_s']} items/s, {g['segments']} segments"
            + (f", retried {g['retried']}x" if g["retried"] else "")
            + (f"; {g['error']}" if g["error"] else "")
        )
    for ps in passes:
        changes = ", ".join(f"{k} {v}" for k, v in ps["changes"].items() if v) or "no changes"
        click.echo(
            f"pass {ps['pass']} ({ps['kind']}): {ps['started']} to {ps['finished'] or '…'} "
            f"{ps['status']} ({changes})"
        )
    for p in pairs:
        counts = p["items"]
        shown = ", ".join(f"{k} {v}" for k, v in counts.items()) or "no items yet"
        click.echo(
            f"{p['source']} -> {p['target']}: {p['status']} ({shown}; "
            f"{p['folders_with_delta_link']} of {p['folders']} folders read by delta next)"
            + (f" error: {p['error']}" if p["error"] else "")
        )


def _shared(config: Path) -> JobConfig:
    cfg = _load(config)
    if cfg.state_url is None:
        click.echo(
            "error: configuration: job.state: several hosts share a job through PostgreSQL: "
            'set [job] state = "postgresql://user@host:5432/db" (see the README)',
            err=True,
        )
        sys.exit(ExitCode.CONFIG)
    if cfg.needs_emulator:
        click.echo(
            'error: configuration: tenants: a tenant says "emulator", whose embedded emulator '
            "lives inside one process; workers on several hosts need the real service or a "
            "standalone emulator (`copyengine emulator serve`, its URLs in the job file)",
            err=True,
        )
        sys.exit(ExitCode.CONFIG)
    return cfg


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("config", type=click.Path(path_type=Path))
@_debug_option
def submit(config: Path) -> None:
    """Queue the job's mailbox groups in PostgreSQL for `copyengine worker` processes on any
    host. Creates the schema if needed; running it again queues only unfinished groups (and,
    once every group of a pass is done, starts the next pass)."""
    from .cluster.app import submit as do_submit

    cfg = _shared(config)
    logs.configure(cfg.log_format, "debug" if _is_debug() else cfg.log_level)
    try:
        out = anyio.run(do_submit, cfg)
    except StateError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.FATAL)
    click.echo(
        f"pass {out['pass']} ({out['kind']}): {out['groups']} mailbox groups, {out['queued']} "
        f"queued, {out['running']} running, {out['done']} done (queue {out['queue']})"
    )


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("config", type=click.Path(path_type=Path))
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1000),
    default=None,
    help="Mailbox groups this process runs at once ([workers] concurrency).",
)
@click.option(
    "--until-done",
    is_flag=True,
    help="Exit once every group of the current pass is finished (exit 1 if one failed); "
    "without it a worker waits for work until stopped.",
)
@_debug_option
def worker(config: Path, concurrency: int | None, until_done: bool) -> None:
    """Run queued mailbox groups of a shared job until stopped (SIGTERM/Ctrl-C: running
    segments drain and their continuation is queued for any worker)."""
    from .cluster.app import run_worker
    from .wiring import clients

    cfg = _shared(config)
    logs.configure(cfg.log_format, "debug" if _is_debug() else cfg.log_level)
    _tune_for_copying()

    async def body() -> int:
        async with clients(cfg) as built:
            return await run_worker(cfg, built, concurrency or cfg.workers.concurrency, until_done)

    try:
        code = anyio.run(body)
    except StateError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.FATAL)
    sys.exit(code)


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--output", type=click.Path(path_type=Path), help="Override [job].report.")
@_debug_option
def report(config: Path, output: Path | None) -> None:
    """Write the job's JSON report from its state (every host's work, from the database)."""
    cfg = _load(config, resolve_secrets=False)
    logs.configure(cfg.log_format, "warning")
    if not state_exists(cfg):
        click.echo(f"error: no state yet at {cfg.state_path}", err=True)
        sys.exit(ExitCode.CONFIG)
    try:
        data = anyio.run(read_overview, cfg).report()
    except StateError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.FATAL)
    path = (output or cfg.report_path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)
    t = data["totals"]
    click.echo(
        f"report: {path} ({t['pairs']} pairs: {t['copied']} copied, {t['failed']} failed, "
        f"{t['unknown']} unknown; groups {t['groups_done']} done of {t['groups']})"
    )


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
    from .emulator import EmulatorConfigError, EmulatorServer, load_config, write_ready_file
    from .emulator.server import tune_process_for_serving

    try:
        config = load_config(config_path)
    except EmulatorConfigError as exc:
        click.echo(f"error: emulator configuration: {exc}", err=True)
        sys.exit(ExitCode.CONFIG)

    async def run() -> None:
        server = EmulatorServer(config, host, port)
        endpoints = await server.start()
        tune_process_for_serving()
        if ready_file is not None:
            write_ready_file(ready_file, endpoints)
        click.echo(f"emulator listening on {endpoints.origin}", err=True)
        click.echo(f"  graph:     {endpoints.graph_url}", err=True)
        click.echo(f"  authority: {endpoints.origin}/<tenant>", err=True)
        click.echo(f"  control:   {endpoints.control_url}", err=True)
        if endpoints.ca_cert:
            click.echo(f"  CA:        {endpoints.ca_cert}", err=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop()

    asyncio.run(run())


if __name__ == "__main__":
    main()
