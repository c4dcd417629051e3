"""``copyengine init [PATH]``: a commented job file to start from, never written over an
existing file. It is the demo job (``config.example.toml``, shipped in the package as
``templates/job.toml``): it runs as written on the embedded emulator, and every key is
explained where it stands."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import click

from ..config import DEFAULT_DIR, job_file_name
from ..exitcodes import ExitCode

# The template's state and report lines: commented, the defaults named after its file; a
# job file written by ``init`` names its own the same way.
DEMO_PATHS = {
    "state": '# state = ".copyengine/config.example.state.sqlite"   # the default\n',
    "report": '# report = ".copyengine/config.example.report.json"   # the default\n',
}
# what the demo's tenants refer to (``file:examples/demo-secrets/…``): the embedded
# emulator accepts them; not secrets of any real tenant
DEMO_SECRETS = {
    "examples/demo-secrets/source.secret": "demo-source-secret-not-a-real-one\n",
    "examples/demo-secrets/target.secret": "demo-target-secret-not-a-real-one\n",
}


class FileExists(click.ClickException):
    """PATH is there already, or its folder is not: exit code 2 (a bad command line),
    nothing written."""

    exit_code = int(ExitCode.USAGE)


def template() -> str:
    """The demo job file as shipped (the bytes of ``config.example.toml``)."""
    return (resources.files("copyengine") / "templates" / "job.toml").read_text("utf-8")


def job_text(path: Path) -> str:
    """The template as the job file ``path``: named after it in its comments, with its own
    state and report (the defaults, ``.copyengine/<file name>.state.sqlite`` …)."""
    text = template().replace("config.example.toml", path.name)
    own = job_file_name(path.stem)
    for key, kind in (("state", "state.sqlite"), ("report", "report.json")):
        line = DEMO_PATHS[key]
        assert line in text, f"the template sets [job] {key} as {line!r}"
        text = text.replace(line, f'# {key} = "{DEFAULT_DIR}/{own}.{kind}"   # the default\n')
    return text


def _create(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to a new file; FileExistsError if ``path`` is there (even if it
    appeared a moment ago: the file is created exclusively)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(text.encode("utf-8"))


def _check_folder(folder: Path) -> None:
    """Refuse (exit 2, nothing written) a PATH whose folder is missing, as ``cp`` and
    ``touch`` do: a mistyped folder is said, not made, with the job file, the demo's secrets
    and later the job's state in it where nobody looks."""
    if folder.is_dir():
        return
    what = "is not a folder" if folder.exists() else "does not exist"
    raise FileExists(
        f"the folder {folder} {what}; copyengine init makes no folders: create it "
        f"(mkdir -p {folder}), or give a PATH in a folder that exists; nothing written"
    )


@click.command()
@click.argument(
    "path",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    default="job.toml",
    required=False,
)
def init(path: Path) -> None:
    """Write a commented job file at PATH (default: job.toml; "-": to standard output).

    The file is the demo job: `copyengine run PATH` copies four mailboxes between two tenants
    of the embedded emulator. For a real migration, edit its [tenants.*] tables and its
    pairs, and delete [emulator]. An existing file is never overwritten, and no folder is
    made: a PATH that exists or whose folder does not leaves with exit code 2."""
    if str(path) == "-":
        click.echo(template(), nl=False)
        return
    _check_folder(path.parent)
    try:
        _create(path, job_text(path))
    except FileExistsError:
        raise FileExists(
            f"{path} exists; copyengine init never writes over a file: give another PATH, "
            "or move that file away"
        ) from None
    except OSError as exc:  # a folder it may not write in, a read-only file system
        raise FileExists(f"cannot write {path}: {exc.strerror or exc}; nothing written") from None
    click.echo(f"wrote {path}", err=True)
    for name, secret in DEMO_SECRETS.items():
        where = path.parent / name
        if where.exists():
            continue
        where.parent.mkdir(parents=True, exist_ok=True)
        _create(where, secret, 0o600)
        click.echo(f"wrote {where} (the demo's client secret, not a real one)", err=True)
    click.echo(
        f"next: copyengine run {path}   (the demo, on the embedded emulator); for a real "
        "migration edit its [tenants.*] and pairs and delete [emulator]",
        err=True,
    )
