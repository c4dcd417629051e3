"""``status --pair UPN`` (issue 25, parity): one pair's statistics across passes, like
Exchange's Get-MoveRequestStatistics, recorded in the state at the end of each pair's pass,
in both stores; the numbers are those of the passes' reports; a name no pair has is refused
with the names most like it (exit 3); an older SQLite state gets the table in place."""

from __future__ import annotations

import io
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from rich.console import Console

from copyengine.config import load_job
from copyengine.console.pairstats import print_pair_statistics
from copyengine.emulator.store import Mailbox
from copyengine.exitcodes import ExitCode
from copyengine.state import SQLiteStore
from copyengine.state.pairpasses import PairPass, pass_lines, totals
from copyengine.state.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA
from copyengine.wiring import read_pair_statistics, run_job
from tests.emu import base_config, running
from tests.jobs import write_job

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
BIANCA, T_BIANCA = "bianca@contoso.example", "bianca@fabrikam.example"
JOB = {"name": "", "source": "contoso/app1", "target": "fabrikam/app2"}
COMPARED = ("copied", "copied_bytes", "skipped", "failed", "unknown", "already_present")


async def _cli(*args: str) -> tuple[int, str, str]:
    done = await anyio.run_process([sys.executable, "-m", "copyengine", *args], check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def _add_items(box: Mailbox, n: int) -> None:
    live = [i for i in box.items.values() if not i.deleted and i.folder is not None]
    for it in live[:n]:
        assert it.folder is not None
        box.add_item(it.folder, it.content)


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: Any) -> str | None:
    """Where the job's state is: a file beside it, or a PostgreSQL database of its own."""
    return str(request.getfixturevalue("pg_url")) if request.param == "postgres" else None


async def test_status_pair_shows_each_pass_as_its_report_counted_it(
    tmp_path: Path, state_url: str | None
) -> None:
    async with running(base_config()) as (server, ep, _):
        job = write_job(tmp_path, ep, [(ADELE, T_ADELE), (BIANCA, T_BIANCA)])
        if state_url is not None:
            url = state_url
            job.write_text(job.read_text().replace('state = "state.sqlite"', f'state = "{url}"'))
        cfg = load_job(job)
        first = await run_job(cfg)
        assert first.exit_code() == ExitCode.OK
        _add_items(server.emulator.require_mailbox(ADELE), 7)
        second = await run_job(cfg)
        assert second.exit_code() == ExitCode.OK

        code, out, err = await _cli("status", str(job), "--pair", ADELE.upper(), "--json")
        assert code == 0, err
        (entry,) = json.loads(out)["pairs"]
        assert (entry["source"], entry["target"], entry["status"]) == (ADELE, T_ADELE, "done")
        reports = [s.as_dict() for s in (first, second)]
        assert [p["pass"] for p in entry["passes"]] == [r["pass"]["number"] for r in reports]
        assert [p["kind"] for p in entry["passes"]] == ["first", "delta"]
        for line, report in zip(entry["passes"], reports, strict=True):
            (pair,) = [p for p in report["pairs"] if p["source"] == ADELE]
            assert {k: line[k] for k in COMPARED} == {k: pair[k] for k in COMPARED}
            assert line["status"] == "done" and line["runs"] == 1 and line["started"]
            assert line["duration_s"] == pytest.approx(pair["duration_s"], abs=0.05)
            assert line["throttled"] == pair["throttled_429"]
            assert line["throttle_wait_s"] == pytest.approx(pair["throttle_wait_s"], abs=0.01)
        assert entry["passes"][1]["copied"] == 7 and entry["passes"][0]["copied"] > 7
        tot = entry["totals"]
        assert tot["passes"] == 2
        assert tot["copied"] == sum(p["copied"] for p in entry["passes"])
        assert tot["copied_bytes"] == sum(p["copied_bytes"] for p in entry["passes"])
        assert entry["now"]["copied"] == tot["copied"]

        # on the screen: a table in a pipe, the same numbers
        code, out, err = await _cli("status", str(job), "--pair", ADELE)
        assert code == 0, err
        assert f"{ADELE} -> {T_ADELE}: done" in out
        assert "1 first" in out and "2 delta" in out and "2 passes" in out
        assert f"{tot['copied']:,}" in out

        # a name no pair has: refused, naming it and the names most like it
        code, out, err = await _cli("status", str(job), "--pair", "adel@contoso.example")
        assert code == ExitCode.CONFIG, (out, err)
        assert "--pair adel@contoso.example" in err and f"did you mean {ADELE}" in err


async def test_a_pair_s_statistics_fit_80_columns(tmp_path: Path) -> None:
    async with running(base_config()) as (_, ep, _session):
        cfg = load_job(write_job(tmp_path, ep, [(ADELE, T_ADELE)]))
        assert (await run_job(cfg)).exit_code() == ExitCode.OK
        assert (await run_job(cfg, full=True)).exit_code() == ExitCode.OK
        entries = await read_pair_statistics(cfg, cfg.pairs)
    for width, stacked in ((80, True), (200, False)):
        buf = io.StringIO()
        print_pair_statistics(entries, Console(file=buf, width=width, force_terminal=False))
        lines = buf.getvalue().splitlines()
        assert max(len(line) for line in lines) <= width, buf.getvalue()
        text = buf.getvalue()
        assert f"{ADELE} -> {T_ADELE}" in text and "2 full" in text
        # 80 columns: a block per pass, every heading beside its value; else one table
        assert ("skipped 0" in text and "throttled 0 s" in text) == stacked, text
        assert ("┃ skipped ┃" in text) != stacked, text


def test_runs_of_one_pass_add_up_and_the_last_says_what_is_unknown() -> None:
    """A worker's segments: a row each; counters add up, the status and the unknown items
    are the last segment's, failures are listed once."""
    f = {"folder": "Inbox", "id": "x1", "outcome": "failed", "reason": "too big"}
    rows = [
        PairPass(3, "p", "r1", "delta", "interrupted", 10.0, 5.0, copied=4, unknown=2,
                 failed=1, throttle_wait_s=1.5, failures=(f,)),
        PairPass(3, "p", "r2", "delta", "done", 20.0, 3.0, copied=6, unknown=0,
                 failed=0, throttle_wait_s=0.5, failures=(f,)),
        PairPass(4, "p", "r3", "cutover", "done", 30.0, 1.0, copied=1, unknown=1),
    ]  # fmt: skip
    lines = pass_lines(rows)
    assert [(x.pass_number, x.kind, x.status, x.runs) for x in lines] == [
        (3, "delta", "done", 2),
        (4, "cutover", "done", 1),
    ]
    one = lines[0]
    assert (one.counts["copied"], one.counts["unknown"], one.counts["failed"]) == (10, 0, 1)
    assert (one.started, one.duration_s, one.throttle_wait_s) == (10.0, 8.0, 2.0)
    assert one.failures == [f]
    tot = totals(lines)
    assert (tot["copied"], tot["unknown"], tot["duration_s"], tot["passes"]) == (11, 1, 9.0, 2)


def test_an_older_sqlite_state_gets_the_statistics_table_in_place(tmp_path: Path) -> None:
    """A schema-6 state (before the pair statistics): opened by a run, it is migrated in
    place, keeps its records and passes, and takes the pair's statistics."""
    path = tmp_path / "state.sqlite"

    async def make() -> None:
        async with SQLiteStore(path, identity=JOB) as st:
            await st.pass_started("first")
            await st.pair_started("p", "a@x", "a@y")

    anyio.run(make)
    db = sqlite3.connect(path)
    db.execute("DROP TABLE pair_passes")
    db.execute("UPDATE meta SET value = '6' WHERE key = 'schema'")
    db.commit()
    db.close()

    async def check() -> None:
        async with SQLiteStore(path, identity=JOB) as st:
            assert [p["kind"] for p in await st.passes()] == ["first"]
            assert [p["pair"] for p in await st.pairs()] == ["p"]
            assert await st.pair_passes("p") == []
            row = PairPass(1, "p", "run1", "first", "done", 1.0, 2.0, copied=3, recorded=5.0)
            await st.record_pair_pass(row)
            await st.record_pair_sign_off(1, "p", {"complete": True, "selected": 3})
            await st.record_pair_pass(row)  # written again by the same run: replaced
            (back,) = await st.pair_passes("p")
            assert back.copied == 3 and back.sign_off == {"complete": True, "selected": 3}

    anyio.run(check)
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == (SQLITE_SCHEMA,)
    db.close()
