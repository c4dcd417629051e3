from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import pytest

from tests import serial
from tests.emu import DST_APP, DST_SECRET, SRC_APP, SRC_SECRET, Api, base_config, running


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """The whole run on several processes by default (``tests/serial.py``)."""
    serial.choose_workers(config)


def pytest_configure(config: pytest.Config) -> None:
    serial.open_gate(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    serial.serial_first(config, items)


def pytest_unconfigure(config: pytest.Config) -> None:
    serial.close_gate(config)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """A test marked ``serial`` runs alone among the workers (``tests/serial.py``)."""
    with serial.alone_if_serial(item):
        return (yield)


@pytest.fixture(autouse=True, scope="session")
def _app_certificates_made_once() -> Iterator[None]:
    """The emulator's generated app certificate (``certificate = "generate"``, the source
    app of ``tests/emu.py``'s tenants) made once per client id for the session, not an RSA
    key per emulator started (0.1-0.25 s each, hundreds of starts): each start still writes
    its own key and certificate files into its own state directory."""
    from pathlib import Path

    from copyengine.emulator import identity, state

    made: dict[str, tuple[bytes, bytes]] = {}
    real = identity.generate_app_certificate

    def once(client_id: str, directory: Path) -> tuple[Path, Path, bytes]:
        if client_id not in made:
            key_path, cert_path, pem = real(client_id, directory)
            made[client_id] = (key_path.read_bytes(), pem)
            return key_path, cert_path, pem
        return identity.write_app_certificate(client_id, directory, *made[client_id])

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state, "generate_app_certificate", once)
        yield


@pytest.fixture(autouse=True)
def _structlog_as_it_was() -> Iterator[None]:
    """structlog's configuration restored after each test: a command run in-process
    (``CliRunner``) configures the logs at its level, and a later test's ``capture_logs``
    would then miss every event under it (``tests/test_pacer_learn.py`` after any of them)."""
    import structlog

    before = structlog.get_config()
    yield
    structlog.configure(**before)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def emu_config() -> dict[str, Any]:
    return base_config()


@pytest.fixture
async def emu(emu_config: dict[str, Any]) -> AsyncIterator[Any]:
    async with running(emu_config) as (server, ep, session):
        src = Api(ep, session, "contoso", SRC_APP, SRC_SECRET)
        dst = Api(ep, session, "fabrikam.example", DST_APP, DST_SECRET)
        await src.login()
        await dst.login()
        yield Env(server, ep, session, src, dst)


class Env:
    def __init__(self, server: Any, ep: Any, session: Any, src: Api, dst: Api) -> None:
        self.server = server
        self.ep = ep
        self.session = session
        self.src = src
        self.dst = dst

    @property
    def state(self) -> Any:
        return self.server.emulator


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server with the template database loaded (see ``tests/pg.py``). Where
    PostgreSQL is not installed the tests that need it are skipped, except under ``.ci/run``
    (``COPYENGINE_REQUIRE_PG=1``), which installs and starts it: there they always run."""
    from tests import pg

    try:
        ctx = pg.server()
        url = ctx.__enter__()
    except RuntimeError as exc:
        if os.environ.get("COPYENGINE_REQUIRE_PG"):
            raise
        pytest.skip(f"PostgreSQL: {exc}")
    try:
        pg.make_template(url)
        yield url
    finally:
        ctx.__exit__(None, None, None)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh database of its own, cloned from the template, dropped after the test (the CI's
    server is shared by the run's processes: without it, each test left its database behind)."""
    from tests import pg

    url = pg.new_database(pg_server)
    yield url
    pg.drop_database(pg_server, url)
