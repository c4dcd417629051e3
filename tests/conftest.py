from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.emu import DST_APP, DST_SECRET, SRC_APP, SRC_SECRET, Api, base_config, running


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
