"""The randomized host histories' fast tier (``tests/hosthistories.py``): a few seeds of the
soak (``python -m benchmarks soak hosts``) run in full, one job shared through PostgreSQL by
worker processes, every pass checked by the oracle, the workers' exit codes, the state's
report and, at the cutover, ``verify``. The seeds are chosen for their events: a worker
killed with SIGKILL, drained with SIGTERM or SIGINT, paused past ``stalled_after_s``, the
PostgreSQL server restarted during a pass and between rounds. On the suite's shared server
(``pg_server``: the CI's, or one ``tests/pg.py`` starts) a history leaves its restarts out
(said in its log; the rest of it is the soak's); the restarts run on a server of the test's
own, which it may stop. Neither is skipped under ``.ci/run`` (``COPYENGINE_REQUIRE_PG``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hosthistories import HostOptions, Server, own_server, run_host_history

# above the history's own limit (``HostOptions.limit_s``, 600 s), which fails it with its op log
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(900)]


@pytest.fixture
def restartable() -> Iterator[Server]:
    try:
        ctx = own_server()
        srv = ctx.__enter__()
    except RuntimeError as exc:
        if os.environ.get("COPYENGINE_REQUIRE_PG"):
            raise
        pytest.skip(f"PostgreSQL: {exc}")
    try:
        yield srv
    finally:
        ctx.__exit__(None, None, None)


def _events(h: object) -> set[str]:
    return {p.event for p in h.passes}  # type: ignore[attr-defined]


# (seed, the events its history must have had): soak seeds chosen for their events
SHARED = [
    # keep, 2 pairs: a worker killed with SIGKILL (r0), one paused past the heartbeat (r1),
    # one drained with SIGTERM (r2; its restart between rounds left out here)
    pytest.param(38, {"sigkill", "pause", "sigterm"}, id="38-keep-sigkill-pause-sigterm"),
]
OWN = [
    # mirror, 2 pairs: SIGTERM (r0), SIGKILL (r1, r4), the server restarted between rounds
    # and during the pass (r2, a --full pass after target drift); the cutover's worker
    # taking the sign-off killed with SIGKILL, under transient faults
    pytest.param(20, {"sigkill", "sigterm", "pg_restart"}, id="20-mirror-restarts-kills"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "events"), SHARED)
async def test_host_history(tmp_path: Path, pg_server: str, seed: int, events: set[str]) -> None:
    h = await run_host_history(seed, tmp_path, Server(pg_server), HostOptions())
    assert h.error is None and not h.failures(), h.text()
    assert events <= _events(h), h.text()


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "events"), OWN)
async def test_host_history_with_restarts(
    tmp_path: Path, restartable: Server, seed: int, events: set[str]
) -> None:
    h = await run_host_history(seed, tmp_path, restartable, HostOptions())
    assert h.error is None and not h.failures(), h.text()
    assert events <= _events(h), h.text()
    for said in (" PGRESTART during ", " PGRESTART between "):
        assert any(said in o for o in h.ops), h.text()


# -- found by the host soak --------------------------------------------------------------------
# seed 21 (the cutover's events, ``--exclude sigkill,sigterm,sigint,pause,pg_restart,between``):
# the worker taking the cutover's sign-off killed with SIGKILL. A pass's sign-off may be
# queued twice (the worker that ended the last group, and a reaper that saw every group done
# before that worker queued it): the second waits while the first runs. The reaper put the
# dead one back with ``retry_job``, which the queueing lock refused while the second waited
# ("A unique constraint is violated", every second), and the second could not start while
# the dead one held the lock: the pass never ended, every ``worker --until-done`` waited.
# The same for a group's segment queued again (``submit`` run again) beside a dead one.
@pytest.mark.parametrize("what", ["sign-off", "group"])
async def test_a_dead_job_beside_a_waiting_one_gives_way(pg_url: str, what: str) -> None:
    import psycopg

    from copyengine.cluster.jobqueue import make_app
    from copyengine.cluster.tasks import defer, defer_sign_off
    from copyengine.cluster.worker import retry_stalled

    q, lock = "copyengine-soak21", "sign-off-5" if what == "sign-off" else "g1"

    async def queue_it() -> bool:
        if what == "sign-off":
            return await defer_sign_off(app, q, 5)
        return await defer(app, q, "g1", 5, 2)

    app = make_app(pg_url, None)
    async with app.open_async():
        assert await queue_it()
        dead = await app.job_manager.register_worker()
        running = await app.job_manager.fetch_job(queues=[q], worker_id=dead)
        assert running is not None
        assert await queue_it()  # the second, waiting behind the first one's lock
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            await conn.execute(
                "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour' "
                "WHERE id = %s",
                (dead,),
            )
            (stalled,) = await app.job_manager.get_stalled_jobs(queue=q, seconds_since_heartbeat=3)
            await retry_stalled(app, stalled)
            cur = await conn.execute(
                "SELECT status::text, count(*) FROM procrastinate_jobs WHERE lock = %s "
                "GROUP BY status ORDER BY status",
                (lock,),
            )
            by_status: dict[str, int] = dict(await cur.fetchall())
        assert by_status.get("todo") == 1 and "doing" not in by_status, by_status
        alive = await app.job_manager.register_worker()
        taken = await app.job_manager.fetch_job(queues=[q], worker_id=alive)
        assert taken is not None and taken.lock == lock
