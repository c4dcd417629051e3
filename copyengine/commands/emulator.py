"""``copyengine emulator serve``: the local emulator of the Graph mailbox service, standalone
(the embedded one a job starts runs this command in a child process)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ConfigError


@click.group()
def emulator() -> None:
    """The local emulator of the Graph mailbox service."""


@emulator.command("serve")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Emulator configuration (TOML, or JSON when it ends in .json).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on (tests and benchmarks keep to 127.0.0.1).",
)
@click.option("--port", default=0, show_default=True, type=int, help="0 picks a free port.")
@click.option(
    "--ready-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Written (JSON: URLs, CA path, directory) once connections are accepted.",
)
@click.option(
    "--stop-on-eof",
    is_flag=True,
    hidden=True,
    help="Stop when standard input closes, and leave Ctrl-C to the parent (a job's emulator).",
)
def serve(
    config_path: Path, host: str, port: int, ready_file: Path | None, stop_on_eof: bool
) -> None:
    """Serve the emulator until interrupted."""
    import asyncio

    from ..emulator import EmulatorConfigError, load_config
    from ..emulator.server import serve_until_stopped

    try:
        config = load_config(config_path)
    except EmulatorConfigError as exc:
        raise ConfigError("emulator serve --config", str(exc)) from None
    asyncio.run(
        serve_until_stopped(
            config, host, port, ready_file, lambda s: click.echo(s, err=True), stop_on_eof
        )
    )
