"""How a worker reaches the database: the job queue's connector, patient while the server is
unreachable (bounded by ``outage_s``), and the job's two stores (its state, its group
table) opened the same patient way."""

from __future__ import annotations

import os
import time
from typing import Any

import anyio
import structlog
from procrastinate import PsycopgConnector, exceptions

from ..config import JobConfig
from ..state.fence import GroupFence
from ..state.groups import GroupStore
from ..state.postgres import (
    OUTAGE_S,
    Outage,
    PostgresStore,
    StoreUnavailable,
    explain,
    patiently,
    transient,
)

log = structlog.get_logger("copyengine.cluster")


def outage_s() -> float:
    """How long a worker waits for an unreachable database before it gives up."""
    try:
        return max(1.0, float(os.environ.get("COPYENGINE_STORE_OUTAGE_S", OUTAGE_S)))
    except ValueError:
        return OUTAGE_S


def backoff_s(attempt: int) -> float:
    return min(2.0, 0.1 * 2.0 ** min(attempt, 10))


def warn_unreachable(exc: BaseException, down: float) -> None:
    if down == 0.0:
        log.warning("store.unreachable", error=explain(exc), waiting_up_to_s=outage_s())


class PatientConnector(PsycopgConnector):
    """procrastinate's connector, whose statements (fetch, heartbeat, finish, retry, defer)
    are tried again while the server is unreachable (bounded by ``outage_s``), and whose
    LISTEN connection is opened again: a restart of the database does not stop the worker.
    Every one of them may run twice (a defer twice is refused by its queueing lock)."""

    def __init__(self, *, outage_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outage_s = outage_s

    async def _patient(self, call: Any) -> Any:
        async def once(_wait: float) -> Any:
            try:
                return await call()
            except exceptions.ConnectorException as exc:
                cause = exc.__cause__
                if cause is not None and transient(cause):
                    raise cause from None
                raise

        return await patiently("the job queue", once, self.outage_s, warn_unreachable)

    async def execute_query_async(self, query: Any, **arguments: Any) -> None:
        await self._patient(lambda: PsycopgConnector.execute_query_async(self, query, **arguments))

    async def execute_query_one_async(self, query: Any, **arguments: Any) -> dict[str, Any]:
        out: dict[str, Any] = await self._patient(
            lambda: PsycopgConnector.execute_query_one_async(self, query, **arguments)
        )
        return out

    async def execute_query_all_async(self, query: Any, **arguments: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = await self._patient(
            lambda: PsycopgConnector.execute_query_all_async(self, query, **arguments)
        )
        return out

    async def listen_notify(self, on_notification: Any, channels: Any) -> None:
        first: float | None = None
        last = 0.0
        for attempt in range(1_000_000):  # bounded in time below
            try:
                await super().listen_notify(on_notification, channels)
                return
            except exceptions.ConnectorException as exc:
                if exc.__cause__ is None or not transient(exc.__cause__):
                    raise
                Outage.seen()
                now = time.monotonic()
                if first is None or now - last > 10.0:  # a new outage
                    first, attempt = now, 0
                last = now
                if now - first >= self.outage_s or Outage.gone is not None:
                    raise StoreUnavailable(
                        f"the job queue: unreachable for {now - first:.0f} s "
                        f"(the limit is {self.outage_s:.0f} s): {explain(exc.__cause__)}"
                    ) from None
                await anyio.sleep(backoff_s(attempt))


def store_of(
    cfg: JobConfig, exclusive: bool = False, pass_number: int | None = None
) -> PostgresStore:
    """The job's state, as a worker's segment (or ``submit``) opens it."""
    assert cfg.state_url is not None
    return PostgresStore(
        cfg.state_url,
        cfg.state_password,
        identity=cfg.identity(),
        exclusive=exclusive,
        pass_number=pass_number,
        outage_s=outage_s(),
        wait_on_open=not exclusive,
    )


def group_store(cfg: JobConfig) -> GroupStore:
    """The job's group table."""
    assert cfg.state_url is not None
    return GroupStore(cfg.state_url, cfg.state_password, outage_s=outage_s())


def group_fence(cfg: JobConfig, group: str) -> GroupFence:
    """The fence a segment of ``group`` holds while it runs (one segment at a time)."""
    assert cfg.state_url is not None
    return GroupFence(cfg.state_url, cfg.state_password, cfg.identity(), group, outage_s())
