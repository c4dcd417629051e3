"""What the commands share: the options several take (the job file, ``--state``, ``--json``,
``--wave``, ``--debug``, ``--log-file``), and loading the job, its logs and its embedded emulator
the same way; what they print for people, to a reader that may have gone (``| head``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import logs
from ..config import JobConfig, load_job, select_pairs
from ..embedded.runner import embedded_emulator, saved_data
from ..errors import ConfigError
from ..exitcodes import HELP as EXIT_HELP

F = TypeVar("F", bound=Callable[..., Any])


def is_debug() -> bool:
    """Whether ``--debug`` was given (to the command or to ``copyengine`` itself)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get("debug"))


def debug_option(f: F) -> F:
    """``--debug``: logs at debug level, tracebacks shown (remembered for the whole run)."""

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


def log_file_option(f: F) -> F:
    """``--log-file PATH``: the log lines to PATH (appended; JSON unless --log-format or
    [job] log_format says console); the screen keeps the human output and warnings."""

    def remember(ctx: click.Context, _: click.Parameter, value: Path | None) -> Path | None:
        if value is not None:
            ctx.meta["log_file"] = value
        return value

    return click.option(
        "--log-file",
        type=click.Path(path_type=Path, dir_okay=False),
        expose_value=False,
        callback=remember,
        help="Write the log lines to this file (appended) instead of stderr.",
    )(f)


def writable_file(_: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """A file the command writes at its end, refused now (exit 3, nothing contacted) when its
    folder is missing or cannot be written in: else the whole comparison ran for nothing and
    ended in exit 5. No folder is made (as ``--log-file``, ``init``): a missing one is named
    with the ``mkdir -p`` that makes it."""
    if value is None:
        return None
    probe = value.with_name(f".{value.name}.probe")
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        folder = value.parent
        what = "is not a folder" if folder.exists() else f"does not exist (mkdir -p {folder})"
        why = exc.strerror if folder.is_dir() else f"the folder {folder} {what}"
        raise ConfigError(
            f"--{param.name or 'output'}".replace("_", "-"), f"cannot write {value}: {why}"
        ) from None
    return value


json_output_option = click.option(
    "--json-output",
    type=click.Path(path_type=Path, dir_okay=False),
    callback=writable_file,
    help="Also write the comparison as JSON.",
)


def state_option(help: str = "Override [job].state.") -> Callable[[F], F]:
    return click.option("--state", type=click.Path(path_type=Path), help=help)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
pair_option = click.option(
    "--pair",
    "only",
    multiple=True,
    metavar="UPN",
    help="Only the pairs with this source or target (repeatable).",
)
wave_option = click.option(
    "--wave",
    "waves",
    multiple=True,
    metavar="N",
    help="Only the pairs of this wave (the pairs file's wave or batch column, wave = N in "
    "[[pairs]]); repeatable.",
)


pass_kind_options = (
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
)
metrics_option = click.option(
    "--metrics",
    metavar="HOST:PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics while the job runs.",
)


def one_kind_of_pass(retry_failed: bool, full: bool, cutover: bool) -> None:
    """``--retry-failed``, ``--full`` and ``--cutover`` are kinds of pass: one at most."""
    if sum((retry_failed, full, cutover)) > 1:
        # a bad command line (exit 2, as click's own), not a configuration error (3)
        raise click.UsageError(
            "--retry-failed, --full, --cutover: separate kinds of pass; give one"
        )


def metrics_address(metrics: str | None) -> tuple[str, int] | None:
    """``--metrics HOST:PORT`` as an address (None without the option)."""
    if not metrics:
        return None
    from ..console.metrics import parse_address  # prometheus_client, aiohttp.web: only here

    try:
        return parse_address(metrics)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--metrics'") from None


def job_command(
    *options: Callable[[Any], Any], name: str | None = None
) -> Callable[[Callable[..., None]], click.Command]:
    """A command on a job file: the CONFIG argument, ``options``, --debug, --log-file, the exit
    codes."""

    def wrap(f: Callable[..., None]) -> click.Command:
        decorated: Any = f
        config = click.argument("config", type=click.Path(path_type=Path))
        for option in reversed((config, *options, debug_option, log_file_option)):
            decorated = option(decorated)
        return click.command(name=name, epilog=EXIT_HELP)(decorated)

    return wrap


def load(config: Path, state: Path | None = None, **overrides: object) -> JobConfig:
    """The job file ``config``, its state at ``state`` when given (``--state``)."""
    if state:
        overrides["state_path"] = state.resolve()
    return load_job(config, **overrides)  # type: ignore[arg-type]


def in_waves(cfg: JobConfig, waves: tuple[str, ...]) -> JobConfig:
    """The job narrowed to the pairs of ``waves`` (``--wave``); the whole job without."""
    chosen = select_pairs(cfg, (), waves)
    return cfg if chosen is None else replace(cfg, pairs=chosen)


def configure_logs(cfg: JobConfig, level: str | None = None) -> None:
    """Logs as the job says, at ``level`` (the job's own when None); --debug: everything;
    to the file --log-file names, if any."""
    ctx = click.get_current_context(silent=True)
    file = ctx.meta.get("log_file") if ctx else None
    level = "debug" if is_debug() else level or cfg.log_level
    try:
        logs.configure(cfg.log_format, level, file=file)
    except OSError as exc:
        raise ConfigError("--log-file", f"cannot write {file}: {exc.strerror}") from None
    if ctx:
        ctx.meta["logs"] = True


def say(text: str, event: str = "note", **fields: Any) -> None:
    """A line for the operator, on stderr (stdout is the command's answer): plain text there,
    or an ``event`` with ``fields`` when stderr carries JSON log lines. Before the command
    has configured its logs (a bad option, a bad job file), plain text."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get("logs"):
        logs.note(text, event, **fields)
    else:
        click.echo(text, err=True)


def show(text: str = "", render: Callable[[], None] | None = None) -> None:
    """The command's answer on stdout: ``text``, or what ``render`` prints there. A reader
    that has gone (a closed pipe) loses the rest; the command goes on to its own end."""
    try:
        if render is not None:
            render()
        else:
            click.echo(text)
        sys.stdout.flush()
    except BrokenPipeError:
        logs.silence(sys.stdout)


def with_emulator(cfg: JobConfig, body: Callable[[JobConfig], int], read_only: bool = False) -> int:
    """Run ``body`` against the job's embedded emulator when a tenant asks for one
    (``read_only``: a command that changes nothing leaves nothing of the emulator's behind)."""
    if not cfg.needs_emulator:
        return body(cfg)
    with embedded_emulator(cfg, read_only) as (pointed, info, pid):
        url = info["graph_url"]
        say(f"embedded emulator (pid {pid}) at {url}", "emulator.started", pid=pid, url=url)
        if read_only and not saved_data(cfg).exists():  # a verify then compares the seed's
            say(
                f"the embedded emulator starts as [emulator] seeds it: no run left its "
                f"mailboxes beside the state {cfg.state_path} (give the --state a run was "
                "given, or run first)",
                "emulator.unsaved",
                level="warning",
            )
        return body(pointed)
