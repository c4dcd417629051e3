"""The pacer's hints (``[limits]`` above what the service gave a mailbox, issue 26) are kept
in the state with each pair's statistics for its pass, so ``copyengine report`` and
``copyengine status`` of a job run elsewhere (another host, a PostgreSQL state; or a
finished local job read again) say them as the run's own report did; a later pass in
which the service gave the whole budget says none. Both stores; an older state gets the
column in place."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from copyengine.config import load_job
from copyengine.emulator.server import Endpoints
from copyengine.pacing.learn import Learned
from copyengine.pipeline.pairpass import record_pair_pass
from copyengine.report import JobStats, PairStats, PairStatus
from copyengine.state import SQLiteStore
from copyengine.state.pairpasses import PairPass, latest_hints
from copyengine.state.postgres import SCHEMA_VERSION as PG_SCHEMA
from copyengine.state.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA
from copyengine.wiring import store
from tests.fake_api import FakeAccount
from tests.jobs import write_job

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
BIANCA, T_BIANCA = "bianca@contoso.example", "bianca@fabrikam.example"
JOB = {"name": "", "source": "contoso/app1", "target": "fabrikam/app2"}
NOWHERE = Endpoints("https://127.0.0.1:9", "ca.pem", {})  # status and report never call it


class _Cut(FakeAccount):
    """A mailbox whose budgets the service's 429s cut: ``upload`` to a tenth, ``requests``
    to a fifth when asked."""

    def __init__(self, requests: bool = False) -> None:
        self.requests = requests

    def budget_in_effect(self) -> dict[str, Learned]:
        up = Learned.of(150 * 1024 * 1024, 300.0)
        out = {"upload": dataclasses.replace(up, cap=up.cap / 10, cuts=1)}
        if self.requests:
            req = Learned.of(10_000, 600.0)
            out["requests"] = dataclasses.replace(req, cap=req.cap / 5, cuts=2)
        return out


def _pair(source: str, target: str, *accounts: Any) -> PairStats:
    st = PairStats(source, target, status=PairStatus.DONE)
    st.started, st.finished = time.monotonic() - 5, time.monotonic()
    st.pacers = list(accounts)
    return st


async def _cli(*args: str) -> tuple[int, str, str]:
    done = await anyio.run_process([sys.executable, "-m", "copyengine", *args], check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def state_url(request: Any) -> str | None:
    return str(request.getfixturevalue("pg_url")) if request.param == "postgres" else None


async def test_report_and_status_say_the_hints_a_run_elsewhere_ended_with(
    tmp_path: Path, state_url: str | None
) -> None:
    (tmp_path / "ca.pem").write_text("")
    job = write_job(tmp_path, NOWHERE, [(ADELE, T_ADELE), (BIANCA, T_BIANCA)])
    if state_url is not None:
        job.write_text(job.read_text().replace('state = "state.sqlite"', f'state = "{state_url}"'))
    cfg = load_job(job)
    adele = _pair(ADELE, T_ADELE, FakeAccount(), _Cut(requests=True))
    bianca = _pair(BIANCA, T_BIANCA, _Cut(), _Cut())  # the source's upload: no hint
    # what the run said (``JobStats.hints``: once per key, the strictest)
    run = JobStats()
    run.pairs = {"a": adele, "b": bianca}
    said = run.hints()
    assert len(said) == 2 and any("upload_mb_per_window" in h for h in said)
    assert "2 mailboxes" in said[0] or "2 mailboxes" in said[1]

    async with store(cfg) as st:  # what a run (or a worker's segment) records
        await st.pass_started("first")
        for p, pair in ((cfg.pairs[0], adele), (cfg.pairs[1], bianca)):
            await st.pair_started(p.key, p.source, p.target)
            await record_pair_pass(st, pair, p.key, "first", "run1")

    out = tmp_path / "out" / "again.json"
    out.parent.mkdir()  # --output's folder is not made (report's refusal: test_operator_round)
    code, _, err = await _cli("report", str(job), "--output", str(out))
    assert code == 0, err
    report = json.loads(out.read_text())
    assert report["hints"] == said
    page = out.with_suffix(".html").read_text()
    assert all(f"Hint: {h}".replace("'", "&#x27;") in page for h in said), page[:3000]
    code, text, err = await _cli("status", str(job))
    assert code == 0, err
    assert all(f"hint: {h}" in text for h in said), text
    code, text, err = await _cli("status", str(job), "--json")
    assert json.loads(text)["hints"] == said
    code, text, err = await _cli("status", str(job), "--pair", ADELE, "--json")
    (entry,) = json.loads(text)["pairs"]
    assert entry["hints"] == adele.budget_hints()
    code, text, err = await _cli("status", str(job), "--pair", ADELE)
    assert all(f"hint: {h}" in " ".join(text.split()) for h in adele.budget_hints()), text

    # a later pass in which the service gave adele's target the whole budget: no hint for
    # it any more; bianca's (not in that pass) still stands
    async with store(cfg) as st:
        await st.pass_started("delta")
        whole = _pair(ADELE, T_ADELE, FakeAccount(), FakeAccount())
        await record_pair_pass(st, whole, cfg.pairs[0].key, "delta", "run2")
    code, _, err = await _cli("report", str(job), "--output", str(out))
    assert code == 0, err
    assert json.loads(out.read_text())["hints"] == bianca.budget_hints()


def test_a_pairs_hints_are_those_of_its_latest_pass_that_said() -> None:
    a, b = {"mailbox": "x", "limit": "upload"}, {"mailbox": "y", "limit": "requests"}
    assert latest_hints([]) == []
    assert latest_hints([(1, [a]), (2, None)]) == [a]  # an older engine's row says nothing
    assert latest_hints([(1, [a]), (2, [])]) == []  # the latest pass: the whole budget
    # a pass in segments (several hosts): each segment's, once
    assert latest_hints([(1, [b]), (2, [a]), (2, [a, b])]) == [a, b]


def test_a_schema_7_sqlite_state_gets_the_hints_column_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    row = PairPass(1, "p", "run1", "first", "done", 1.0, 2.0, copied=3, recorded=5.0)

    async def make() -> None:
        async with SQLiteStore(path, identity=JOB) as st:
            await st.pass_started("first")
            await st.record_pair_pass(row)

    anyio.run(make)
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE pair_passes DROP COLUMN hints")  # as schema 7 made it
    db.execute("UPDATE meta SET value = '7' WHERE key = 'schema'")
    db.commit()
    db.close()

    async def check() -> None:
        async with SQLiteStore(path, identity=JOB) as st:
            (old,) = await st.pair_passes("p")
            assert old.copied == 3 and old.hints is None and await st.pair_hints() == {}
            advice = ({"mailbox": "m", "limit": "upload", "share": 0.1, "value": 15.0},)
            await st.record_pair_pass(dataclasses.replace(row, run="run2", hints=advice))
            assert await st.pair_hints() == {"p": list(advice)}

    anyio.run(check)
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == (SQLITE_SCHEMA,)
    db.close()


async def test_a_schema_6_postgres_database_gets_the_hints_column_in_place(pg_url: str) -> None:
    import psycopg

    from copyengine.state.postgres import PostgresStore

    row = PairPass(1, "p", "run1", "first", "done", 1.0, 2.0, copied=3, recorded=5.0)
    async with PostgresStore(pg_url, identity=JOB) as st:
        await st.record_pair_pass(row)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute("ALTER TABLE ce_pair_passes DROP COLUMN hints")
        await conn.execute("UPDATE ce_meta SET value = '6' WHERE key = 'schema'")
    reader = PostgresStore(pg_url, identity=JOB, exclusive=False)
    await reader.open()
    try:
        (old,) = await reader.pair_passes("p")
        assert old.copied == 3 and old.hints is None
    finally:
        await reader.close()
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT value FROM ce_meta WHERE key = 'schema'")
        assert await cur.fetchone() == (PG_SCHEMA,)
