"""The commands of a job shared by several hosts through PostgreSQL: ``submit`` queues its
mailbox groups, ``worker`` runs them, ``report`` writes the JSON report of every host's work."""

from __future__ import annotations

import json
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import click

from ..config import JobConfig, select_pairs
from ..console.html import report_files
from ..console.text import report_line, submit_line
from ..errors import ConfigError
from ..report import job_names, report_paths, write_atomically
from ..stopsignals import ignore_stops
from ..verify import sign_off
from ..wiring import clients, notifying, read_overview, state_exists, tune_for_copying
from .caps import bwlimit_option, overridden
from .options import (
    configure_logs,
    job_command,
    load,
    metrics_address,
    metrics_option,
    one_kind_of_pass,
    pair_option,
    pass_kind_options,
    say,
    state_option,
    wave_option,
    writable_file,
)


def shared_job(config: Path) -> JobConfig:
    """The job file ``config``, which several hosts can share (a PostgreSQL state, no
    embedded emulator), its logs configured."""
    cfg = load(config)
    if cfg.state_url is None:
        raise ConfigError(
            "job.state",
            "several hosts share a job through PostgreSQL: set [job] state = "
            '"postgresql://user@host:5432/db" (docs/several-hosts.md)',
        )
    if cfg.needs_emulator:
        raise ConfigError(
            "tenants",
            'a tenant says "emulator", whose embedded emulator lives inside one process; '
            "workers on several hosts need the real service or a standalone emulator "
            "(`copyengine emulator serve`, its URLs in the job file)",
        )
    configure_logs(cfg)
    return cfg


@job_command(pair_option, wave_option, *pass_kind_options)
def submit(
    config: Path,
    only: tuple[str, ...],
    waves: tuple[str, ...],
    retry_failed: bool,
    full: bool,
    cutover: bool,
) -> None:
    """Queue the job's mailbox groups in PostgreSQL for `copyengine worker` processes on any
    host. Creates the schema if needed; running it again queues only unfinished groups (and,
    once every group of a pass is done, starts the next pass). --pair, --wave, --full,
    --cutover and --retry-failed mean what they mean to `run`: the pass it starts covers
    those pairs' groups and is of that kind (a cutover is signed off once every group is
    done)."""
    from ..cluster.app import submit as do_submit
    from ..cluster.submit import Asked

    one_kind_of_pass(retry_failed, full, cutover)
    cfg = shared_job(config)
    asked = Asked(select_pairs(cfg, only, waves), full, cutover, retry_failed)
    click.echo(submit_line(anyio.run(do_submit, cfg, asked)))


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
        help="Exit once every group of the current pass is finished or suspended (exit 1 if "
        "one failed, else 8 if one is suspended; 130 if stopped by SIGTERM/Ctrl-C before "
        "then); without it a worker waits for work until stopped.",
    ),
    bwlimit_option,
    metrics_option,
)
def worker(config: Path, concurrency: int | None, until_done: bool, metrics: str | None) -> None:
    """Run queued mailbox groups of a shared job until stopped (SIGTERM/Ctrl-C: running
    segments drain and their continuation is queued for any worker). --bwlimit caps this
    worker process's uploads (each worker has its own cap). --metrics: the same Prometheus
    metrics as `run --metrics`, for the groups this worker runs."""
    from ..cluster.app import run_worker
    from ..tally import WorkerStats

    address = metrics_address(metrics)
    cfg = overridden(shared_job(config))
    tune_for_copying()
    stats = WorkerStats()

    async def body() -> int:
        async with clients(cfg) as built, notifying(cfg) as notifier, AsyncExitStack() as stack:
            if address is not None:
                from ..cluster.worker import stalled_groups
                from ..console.metrics import serve_worker_metrics  # aiohttp.web: only here

                host = address[0]
                served = serve_worker_metrics(
                    stats, *address, stalled_groups(cfg), cfg.limits.bwlimit_mb_s
                )
                try:
                    port = await stack.enter_async_context(served)
                except OSError as exc:
                    where = f"{host}:{address[1]}"
                    raise ConfigError(
                        "--metrics", f"{where}: cannot listen ({exc.strerror})"
                    ) from None
                say(f"metrics at http://{host}:{port}/metrics", "metrics.serving", port=port)
            n = concurrency or cfg.workers.concurrency
            return await run_worker(cfg, built, n, until_done, notifier, sign_off, stats)

    code = anyio.run(body)
    # the worker has stopped and its handlers are gone: a stop landing now (a service
    # manager's SIGTERM as --until-done ends) has nothing to stop, and raised on the way out
    # it ended the process by SIGINT (-2) past the exit code said; ignored, as ``run`` does
    ignore_stops()
    sys.exit(code)


@job_command(
    click.option(
        "--output",
        type=click.Path(path_type=Path, dir_okay=False),
        callback=writable_file,
        help="Override [job].report (report.html or report.json: the JSON, the HTML page and "
        "the CSV exports side by side), in a folder that exists.",
    ),
    state_option("The state given to `run --state`."),
)
def report(config: Path, output: Path | None, state: Path | None) -> None:
    """Write the job's report from its state (every pass, every host's work): JSON, the
    customer's HTML page and CSV exports of the pairs and of the failed items."""
    cfg = load(config, state, resolve_secrets=False)
    configure_logs(cfg, "warning")
    if not state_exists(cfg):
        raise ConfigError("job.state", f"no state yet at {cfg.state_path}")
    data = {"job": job_names(cfg), **anyio.run(read_overview, cfg).report()}
    path, stem = report_paths((output or cfg.report_path).resolve())
    files = {path.name: json.dumps(data, indent=2, default=str).encode("utf-8")}
    files.update({stem.name + suffix: blob for suffix, blob in report_files(data).items()})
    try:
        if output is None:  # job.report's folder is made, as a run makes it; --output's is not
            path.parent.mkdir(parents=True, exist_ok=True)
        for name, blob in files.items():
            write_atomically(path.with_name(name), blob)
    except OSError as exc:
        where = "--output" if output else "job.report"
        raise ConfigError(where, f"cannot write the report {path}: {exc.strerror or exc}") from None
    click.echo(report_line(path, data["totals"]))
    click.echo(f"report: {stem.with_name(stem.name + '.html')} (the CSV exports beside it)")
