"""The ``copyengine`` command line."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

from . import __version__
from .exitcodes import ExitCode


@click.group()
@click.version_option(__version__, prog_name="copyengine")
def main() -> None:
    """Copy Exchange Online mailboxes in bulk through the Graph mailbox import/export API."""


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

    try:
        config = load_config(config_path)
    except EmulatorConfigError as exc:
        click.echo(f"error: emulator configuration: {exc}", err=True)
        sys.exit(ExitCode.CONFIG)

    async def run() -> None:
        server = EmulatorServer(config, host, port)
        endpoints = await server.start()
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
