"""What one of R1b's moments costs on PostgreSQL (a diagnostic, not a scenario):
``PostgresStore.moment`` is a round trip for the next of the sequence every host shares
(``postgres.MOMENTS_FROM``), taken once per folder round and once per page listed. Times
``--calls`` of them after 100 to warm up, in a fresh database of the server
``COPYENGINE_TEST_PG`` names, or of one started for the run on 127.0.0.1 (``tests/pg.py``).

    python -m benchmarks.moment_cost [--calls 2000]
"""

from __future__ import annotations

import argparse
import time
import uuid

import anyio
import psycopg

from copyengine.state.postgres import PostgresStore
from tests import pg


async def _time(url: str, calls: int) -> float:
    store = PostgresStore(url, identity=None, exclusive=False)
    await store.open()
    try:
        for _ in range(100):
            await store.moment()
        start = time.perf_counter()
        for _ in range(calls):
            await store.moment()
        return (time.perf_counter() - start) / calls
    finally:
        await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.moment_cost")
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    with pg.server() as url:
        db = f"ce_moments_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {db}")
        try:
            per = anyio.run(_time, pg.with_db(url, db), args.calls)
        finally:
            pg.drop_database(url, pg.with_db(url, db))
    print(f"{per * 1000:.2f} ms per moment ({args.calls:,} calls)")


if __name__ == "__main__":
    main()
