"""The default run on several processes (pytest-xdist), and the tests that need the machine to
themselves run alone among them.

``pytest -q`` and ``pytest -q -m slow`` (the README's and ``.ci/run``'s commands: every test
under ``testpaths``) run on ``WORKERS`` processes unless ``-n`` says otherwise; a run of named
files or tests stays in one process (``-n 4`` to spread it); ``-n 0`` or ``-p no:xdist`` keeps
any run in one.

A test marked ``serial`` (real-time waits of worker heartbeats, stalls and schedule windows,
a bound on seconds or CPU) runs alone: a readers-writer lock across the workers, two files
locked with ``flock`` in a directory named after the run's ``--testrunuid``. Every test takes
the gate exclusively for a moment, then the shared lock shared for its whole protocol (setup,
call, teardown); a serial test takes the gate and keeps it while it takes the shared lock
exclusively, so the tests started after it wait for it (it never starves) and it waits only
for those already running. Taken outside pytest-timeout's timer: a wait for the lock is not
the test's time.

On several processes the serial tests are collected first (``serial_first``): they run one
after the other at the start, while nothing else is running, instead of each waiting, gate
held and the other workers idle, for the longest test running beside it to end."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# four: the tests wait on sockets, subprocesses and the emulator's windows much of the time
# (two cores); measured in the commit that set it
WORKERS = 4


def lock_dir(testrunuid: str) -> Path:
    return Path(tempfile.gettempdir()) / f"copyengine-tests-{testrunuid}"


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def choose_workers(config: pytest.Config) -> None:
    """Called from ``pytest_cmdline_main`` before xdist's: the whole run (no paths or ids
    named) on ``WORKERS`` processes when ``-n`` was not given; a run id for the lock either
    way when there are workers."""
    if is_worker(config) or not hasattr(config.option, "numprocesses"):
        return  # a worker, or xdist disabled (-p no:xdist)
    whole = config.args_source is pytest.Config.ArgsSource.TESTPATHS
    if (
        config.option.numprocesses is None
        and whole
        and not config.option.collectonly
        and not config.getoption("usepdb", False)
    ):
        config.option.numprocesses = WORKERS
    if config.option.numprocesses and not config.option.testrunuid:
        config.option.testrunuid = uuid.uuid4().hex


class Gate:
    """This worker's side of the lock (its own open files: ``flock`` is per open file)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(exist_ok=True)
        self.gate = os.open(directory / "gate", os.O_RDWR | os.O_CREAT, 0o600)
        self.shared = os.open(directory / "shared", os.O_RDWR | os.O_CREAT, 0o600)

    @contextmanager
    def held(self, alone: bool) -> Iterator[None]:
        fcntl.flock(self.gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self.shared, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        except BaseException:
            fcntl.flock(self.gate, fcntl.LOCK_UN)
            raise
        if not alone:
            fcntl.flock(self.gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self.shared, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(self.gate, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.gate)
        os.close(self.shared)


GATE = pytest.StashKey[Gate]()


def open_gate(config: pytest.Config) -> None:
    """A worker's gate, from the run id the controller gave every worker."""
    if is_worker(config):
        uid = config.workerinput["testrunuid"]  # type: ignore[attr-defined]
        config.stash[GATE] = Gate(lock_dir(uid))


def close_gate(config: pytest.Config) -> None:
    """A worker closes its files; the controller removes the directory after the run."""
    gate = config.stash.get(GATE, None)
    if gate is not None:
        gate.close()
    elif not is_worker(config) and getattr(config.option, "numprocesses", None):
        shutil.rmtree(lock_dir(config.option.testrunuid), ignore_errors=True)


def serial_first(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A worker's collection with its serial tests first (the same order in every worker, as
    xdist requires; the order of the rest unchanged)."""
    if is_worker(config):
        items.sort(key=lambda item: item.get_closest_marker("serial") is None)


@contextmanager
def alone_if_serial(item: pytest.Item) -> Iterator[None]:
    gate = item.config.stash.get(GATE, None)
    if gate is None:
        yield
        return
    with gate.held(alone=item.get_closest_marker("serial") is not None):
        yield
