"""A mailbox group's fence: one segment of a group copies at a time, whatever the job queue
believes.

A worker whose event loop stalls (a loaded host, a paused VM, SIGSTOP) sends no heartbeat
for a while; another worker's reaper then takes it for dead and queues its group again, and
a second segment of the group would start while the first one still runs: both list the
target before the other's imports land, and both copy the same items (duplicates by the
thousand). The fence is a session advisory lock on the job's database, taken by a segment
before it does anything and held on a connection of its own until it ends. A stalled
process keeps its session (the lock stays held: the second segment does not start); a dead
one loses it at once (the server ends the session).

Intents are written on the fence's own connection (``run``): an intent becomes durable only
on the session that holds the lock. If that session is lost (the server restarted, the
network cut), the lock is taken again on a new connection before the next intent; when
another segment holds it by then, ``GroupTaken``: this segment sends nothing more."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import psycopg

from ..errors import StateError
from ..secrets import Secret
from .groups import connection_kwargs
from .postgres import explain, lock_key, patiently, unlock

T = TypeVar("T")


class GroupTaken(StateError):
    """Another segment of the group holds its fence (it runs, on this host or another)."""


class GroupFence:
    def __init__(
        self,
        url: str,
        password: Secret | None,
        identity: dict[str, str] | None,
        group: str,
        outage_s: float,
    ) -> None:
        self.url = url
        self.password = password
        self.group = group
        self.outage_s = outage_s
        self.key = lock_key({**(identity or {"url": url}), "group": group}, url)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.lost: str | None = None  # why this segment no longer holds the group, once
        self._using = anyio.Lock()  # one statement at a time on the one session

    def _kwargs(self) -> dict[str, Any]:
        return connection_kwargs(self.password)

    async def _session(self, wait_s: float) -> psycopg.AsyncConnection[Any]:
        """The connection that holds the lock (connected and the lock taken, if need be)."""
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        self._conn = None
        conn = await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, connect_timeout=max(2, int(wait_s)), **self._kwargs()
        )
        try:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
            row = await cur.fetchone()
        except BaseException:
            await conn.close()
            raise
        if not row or not row[0]:
            await conn.close()
            self.lost = f"group {self.group} is being copied by another segment"
            raise GroupTaken(self.lost)
        self._conn = conn
        return conn

    async def take(self) -> bool:
        """The group's lock, waiting for an unreachable server up to ``outage_s``; False
        when another segment holds it (this one must not run)."""
        try:
            await patiently(f"the fence of group {self.group}", self._session, self.outage_s)
        except GroupTaken:
            return False
        except psycopg.Error as exc:
            raise StateError(f"the fence of group {self.group}: {explain(exc)}") from exc
        return True

    async def run(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """``fn`` in one transaction on the session that holds the lock (taken again on a
        new session if the old one was lost); ``GroupTaken`` if another holds it now."""

        async def once(wait_s: float) -> T:
            async with self._using:
                conn = await self._session(wait_s)
                try:
                    async with conn.transaction():
                        return await fn(conn)
                except psycopg.Error:
                    if conn.closed or conn.broken:
                        self._conn = None
                    raise

        return await patiently(f"the fence of group {self.group}", once, self.outage_s)

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await unlock(conn, self.key)
