"""A mailbox group's fence (``state.fence``): one segment of a group at a time, and intents
written only on the session that holds it (``tests/test_hosts_paused.py`` runs real workers)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from copyengine.state.fence import GroupFence, GroupTaken

pytestmark = pytest.mark.anyio


def _fence(url: str, group: str = "g-1") -> GroupFence:
    return GroupFence(url, None, {"job": "j"}, group, outage_s=2.0)


async def _write(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT 1")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_a_second_segment_of_a_group_does_not_take_it_while_the_first_holds_it(
    pg_url: str,
) -> None:
    first, second, other = _fence(pg_url), _fence(pg_url), _fence(pg_url, "g-2")
    try:
        assert await first.take()
        assert not await second.take()
        assert await other.take()  # another group: its own fence
        await first.release()
        assert await second.take()
    finally:
        for f in (first, second, other):
            await f.release()


async def test_a_lost_session_takes_the_fence_again_before_the_next_write(pg_url: str) -> None:
    first, second = _fence(pg_url), _fence(pg_url)
    try:
        assert await first.take()
        await _kill_sessions(pg_url)  # what a server restart does to the session
        assert await first.run(_write) == 1  # reconnected, the lock taken again
        assert not await second.take()
    finally:
        await first.release()
        await second.release()


async def test_a_fence_taken_over_meanwhile_refuses_the_write(pg_url: str) -> None:
    first, second = _fence(pg_url), _fence(pg_url)
    try:
        assert await first.take()
        await _kill_sessions(pg_url)
        assert await second.take()  # another segment got the group meanwhile
        with pytest.raises(GroupTaken):
            await first.run(_write)
        assert first.lost is not None
    finally:
        await first.release()
        await second.release()


async def _kill_sessions(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
