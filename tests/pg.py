"""A real PostgreSQL for the tests: the server ``.ci/run`` started (``COPYENGINE_TEST_PG``, a
superuser URL), or one these tests start themselves from Debian's binaries in a temporary
directory on 127.0.0.1 (as the ``postgres`` user when run as root: initdb refuses root), and
stop by PID at the end. The schema is loaded once into a template database; each test gets
its own database cloned from it."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

# one template per pytest-xdist worker (``gw0``, ``gw1``...): the workers share the CI's server
# (``COPYENGINE_TEST_PG``), and each session drops and makes its template again
TEMPLATE = "ce_template" + (
    f"_{os.environ['PYTEST_XDIST_WORKER']}" if os.environ.get("PYTEST_XDIST_WORKER") else ""
)


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def server() -> Iterator[str]:
    """A superuser URL of a running server (the CI's, or one started here)."""
    given = os.environ.get("COPYENGINE_TEST_PG")
    if given:
        yield given
        return
    bindir = _binaries()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    tmp = Path(tempfile.mkdtemp(prefix="ce-pg-"))
    data = tmp / "data"
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
    subprocess.run(
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = _free_port()
    proc = subprocess.Popen(
        _as_postgres(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(tmp),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=300",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        for _ in range(300):
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if proc.poll() is not None:
                    raise RuntimeError("the test PostgreSQL server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()  # the postmaster we started, by its PID (runuser passes it on)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def with_db(url: str, db: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{db}"


def make_template(url: str) -> None:
    """The template database: every table of the store and of procrastinate, loaded once."""
    import anyio

    from copyengine.cluster.app import apply_schema
    from copyengine.state.postgres import PostgresStore

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")

    async def load() -> None:
        store = PostgresStore(with_db(url, TEMPLATE), identity=None, exclusive=False)
        await store.open()
        await store.close()
        await apply_schema(with_db(url, TEMPLATE), None)

    anyio.run(load)


def new_database(url: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return with_db(url, name)


def drop_database(url: str, db_url: str) -> None:
    """Drop a test's database, closing what is still connected to it (``WITH (FORCE)``): a
    test's processes are stopped by then; a failure to drop leaves a database on a throwaway
    server and fails no test."""
    name = db_url.rpartition("/")[2]
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except psycopg.Error:
        pass


class OwnServer:
    """A PostgreSQL server of a test's own, on 127.0.0.1, that can be stopped (by the
    postmaster's PID) and started again on the same port and data directory."""

    def __init__(self) -> None:
        bindir = _binaries()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.tmp = Path(tempfile.mkdtemp(prefix="ce-pg-outage-"))
        self.data = self.tmp / "data"
        if os.geteuid() == 0:
            shutil.chown(self.tmp, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            _as_postgres(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.tmp),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=200",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.proc.poll() is not None:
                    raise RuntimeError("the PostgreSQL server did not start") from None
                time.sleep(0.1)
        raise RuntimeError("the PostgreSQL server did not answer within 30 s")

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> float:
        """Fast shutdown (SIGINT to the postmaster we started: every session is cut); waits
        for it to be gone. Returns when it stopped (monotonic)."""
        assert self.proc is not None
        pid = self.postmaster_pid()
        os.kill(pid, signal.SIGINT)
        for _ in range(200):
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
        return time.monotonic()

    def close(self) -> None:
        if self.proc is not None:
            try:
                os.kill(self.postmaster_pid(), signal.SIGINT)
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)
