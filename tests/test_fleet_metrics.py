"""The metrics a fleet's dashboard reads besides the pairs': each mailbox's % of its ceiling
(once per mailbox however many pairs share it) and the shared job's stalled groups (read from
the group table at each scrape, left out when the database does not answer)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from copyengine.cluster.jobqueue import apply_schema
from copyengine.cluster.worker import stalled_groups
from copyengine.config import JobConfig, load_job
from copyengine.console import fleet
from copyengine.console.metrics import serve_metrics
from copyengine.errors import StateError
from copyengine.pacing.learn import Learned
from copyengine.pacing.proof import Evidence
from copyengine.report import JobStats
from copyengine.state.groups import GroupStore

pytestmark = pytest.mark.anyio


class Account:
    """A mailbox's account as the stats read it, with a fixed share of its ceiling."""

    def __init__(self, share: float | None) -> None:
        self.share = share
        self.waiting = self.waiting_on_service = False
        self.inflight = 0

    def throttle_wall_s(self) -> float:
        return 0.0

    def throttled_total(self) -> int:
        return 0

    def throttled_by_reason(self) -> dict[str, int]:
        return {"RequestRate": 3}

    def requests_total(self) -> int:
        return 1

    def ceiling_share(self) -> float | None:
        return self.share

    def limit_share(self) -> float | None:
        return self.share

    def budget_in_effect(self) -> dict[str, Learned]:
        return {}

    def evidence(self) -> dict[str, Evidence]:
        return {}


async def scrape(
    stats: JobStats, count: Callable[[], Awaitable[int]] | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with (
        serve_metrics(stats, "127.0.0.1", 0, stalled_groups=count) as port,
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as r,
    ):
        assert r.status == 200
        body = await r.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


async def test_each_mailbox_s_ceiling_once_however_many_pairs_share_it() -> None:
    stats = JobStats()
    shared_target = Account(0.9)
    # two sources consolidated into one target: one pacer, shared
    stats.pair("a->t", "a@x", "t@y").pacers = [Account(0.5), shared_target]
    stats.pair("b->t", "b@x", "t@y").pacers = [Account(None), shared_target]
    # a pair with archives: four mailboxes
    stats.pair("c->d", "c@x", "d@y").pacers = [
        Account(0.25),
        Account(1.0),
        Account(0.125),
        Account(0.75),
    ]
    samples = await scrape(stats)
    ceilings = {
        labels: v
        for (name, labels), v in samples.items()
        if name.endswith("mailbox_ceiling_percent")
    }
    assert ceilings == {
        (("mailbox", "a@x"), ("role", "source")): 50.0,
        (("mailbox", "t@y"), ("role", "target")): 90.0,
        # b@x sent nothing yet: no sample rather than 0
        (("mailbox", "c@x"), ("role", "source")): 25.0,
        (("mailbox", "d@y"), ("role", "target")): 100.0,
        (("mailbox", "c@x"), ("role", "source-archive")): 12.5,
        (("mailbox", "d@y"), ("role", "target-archive")): 75.0,
    }
    # every documented throttling reason from the start, 0 until seen
    throttled = {
        dict(labels)["reason"]: v
        for (name, labels), v in samples.items()
        if name == "copyengine_throttled_total" and dict(labels)["pair"] == "a->t"
    }
    assert throttled == {
        "MailboxConcurrency": 0,
        "RequestRate": 6,
        "IncomingBytes": 0,
        "ApplicationRequestRate": 0,
    }
    # a local run: no group of it can be stalled
    assert samples[("copyengine_stalled_groups", ())] == 0


async def test_stalled_groups_is_left_out_when_the_database_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def four() -> int:
        return 4

    async def failing() -> int:
        raise StateError("state store postgresql://db/x: connection refused")

    async def hanging() -> int:
        await anyio.sleep(30)
        return 1

    assert (await scrape(JobStats(), four))[("copyengine_stalled_groups", ())] == 4
    assert ("copyengine_stalled_groups", ()) not in await scrape(JobStats(), failing)
    monkeypatch.setattr(fleet, "STALLED_READ_S", 0.2)
    t0 = time.monotonic()
    samples = await scrape(JobStats(), hanging)
    assert ("copyengine_stalled_groups", ()) not in samples
    assert time.monotonic() - t0 < 10
    assert ("copyengine_job_duration_seconds", ()) in samples  # the rest of the scrape stands


def shared_job(tmp: Path, url: str) -> JobConfig:
    (tmp / "secret").write_text("s3cret")
    tenants = "".join(
        f'[tenants.{side}]\ngraph_url = "https://graph.microsoft.com/beta"\n'
        f'tenant_id = "{side}.example"\nclient_id = "{n * 8}-{n * 4}-4{n * 3}-8{n * 3}-{n * 12}"\n'
        'client_secret = "file:secret"\n'
        for side, n in (("source", "1"), ("target", "2"))
    )
    (tmp / "job.toml").write_text(
        f'[job]\nname = "fleet"\nstate = "{url}"\n{tenants}'
        '[[pairs]]\nsource = "a@source.example"\ntarget = "a@target.example"\n'
    )
    return load_job(tmp / "job.toml")


async def test_a_worker_counts_running_groups_whose_heartbeat_is_stale(
    tmp_path: Path, pg_url: str
) -> None:
    await apply_schema(pg_url, None)
    table = GroupStore(pg_url, None)
    for key in ("g1", "g2", "g3"):
        await table.queued(key, [f"{key}-a->{key}-b"], 1)
    await table.segment_started("g1", "host-a:1", None)
    await table.segment_started("g2", "host-b:2", None)
    await table.segment_ended("g2", ["g2-a->g2-b"], 1, "done", None, {})
    # g1 runs, g2 is done, g3 waits in the queue: only g1 can be stalled
    await anyio.sleep(0.05)
    assert await table.stalled(3600) == 0  # its heartbeat is recent enough
    assert await table.stalled(0.0) == 1
    cfg = shared_job(tmp_path, pg_url)
    assert cfg.workers.stalled_after_s == 30
    assert await stalled_groups(cfg)() == 0  # silent less than 30 s: not stalled yet
    quick = replace(cfg, workers=replace(cfg.workers, stalled_after_s=0.01))
    samples = await scrape(JobStats(), stalled_groups(quick))
    assert samples[("copyengine_stalled_groups", ())] == 1
    # a later pass: the earlier pass's groups are not counted
    await table.queued("g3", ["g3-a->g3-b"], 2)
    assert await table.stalled(0.0) == 0


async def test_a_running_group_s_counters_are_its_records_so_far(pg_url: str) -> None:
    """``status`` on a shared job: a group's counters are written when its segment ends, and
    a running group said "copied 0, 0.0 items/s" while its pair had copied hundreds (seen
    running two workers on the demo beside another writer). Read while it runs, they are
    its pairs' item records of the pass so far; once ended, what the segment wrote."""
    from copyengine.state import Intent, Outcome, Status
    from copyengine.state.postgres import PostgresStore

    pair, other = "g1-a->g1-b", "g2-a->g2-b"
    ident = {"name": "", "source": "contoso/app1", "target": "fabrikam/app2"}
    async with PostgresStore(pg_url, identity=ident, flush_interval=0.02) as st:
        first = await st.pass_started("first")
        await apply_schema(pg_url, None)
        table = GroupStore(pg_url, None)
        await table.queued("g1", [pair], first)
        await table.queued("g2", [other], first)
        await table.segment_started("g1", "host-a:1", None)
        await table.segment_started("g2", "host-b:2", None)
        for p, n in ((pair, 5), (other, 2)):
            await st.record_intents(
                p, [Intent(f"s{i}", "F1", b"k" + bytes([i]), 100, "T1", f"ck{i}") for i in range(n)]
            )
        for i in range(3):
            st.record_outcome(pair, Outcome(f"s{i}", Status.DONE, f"t{i}", "c"))
        st.record_outcome(pair, Outcome("s3", Status.FAILED, error="refused"))
        st.record_outcome(other, Outcome("s0", Status.DONE, "t0", "c"))
        await st.flush()
        groups = {g["group"]: g for g in await table.read()}
        g1 = groups["g1"]
        assert (g1["state"], g1["copied"], g1["failed"], g1["unknown"]) == ("running", 3, 1, 1)
        assert g1["items_per_s"] > 0
        assert groups["g2"]["copied"] == 1
        # ended: the segment's own counters, as before
        await table.segment_ended("g2", [other], first, "done", None, {})
        groups = {g["group"]: g for g in await table.read()}
        assert (groups["g2"]["state"], groups["g2"]["copied"]) == ("done", 1)


async def test_status_says_a_group_between_segments_is_at_work_with_its_counts(
    pg_url: str,
) -> None:
    """``status`` on a shared job, one truth: a group whose segment ended with its next one
    queued is at work in its pass (its state "queued": the groups counted "running" dropped
    at every segment's end while work remained), its counters its item records' so far
    (it said "unknown 0" with an item to settle); a group queued for the next pass starts
    at 0 (it kept the last pass's failed and unknown); and the screen says what each
    "copied" counts."""
    from copyengine.console.text import COUNTED, status_lines
    from copyengine.state import Intent, Outcome, Status
    from copyengine.state.postgres import PostgresStore

    a, b, c = "a1->a2", "b1->b2", "c1->c2"
    ident = {"name": "", "source": "contoso/app1", "target": "fabrikam/app2"}
    async with PostgresStore(pg_url, identity=ident, flush_interval=0.02) as st:
        first = await st.pass_started("first")
        await apply_schema(pg_url, None)
        table = GroupStore(pg_url, None)
        for key, pair in (("ga", a), ("gb", b), ("gc", c)):
            await table.queued(key, [pair], first)
        await table.segment_started("ga", "host-a:1", None)
        await table.segment_started("gb", "host-b:2", None)
        for p in (a, b):
            await st.record_intents(
                p, [Intent(f"s{i}", "F1", b"k" + bytes([i]), 100, "T1", f"ck{i}") for i in range(3)]
            )
            st.record_outcome(p, Outcome("s0", Status.DONE, "t0", "c"))
            st.record_outcome(p, Outcome("s1", Status.FAILED, error="refused"))
        await st.flush()  # s2: its intent (unknown: the next segment settles it)
        await table.segment_ended("gb", [b], first, "queued", None, {})  # its next queued
        groups = {g["group"]: g for g in await table.read()}
        gb = groups["gb"]
        assert (gb["state"], gb["at_work"]) == ("queued", True)
        assert (gb["copied"], gb["failed"], gb["unknown"]) == (1, 1, 1)
        assert groups["ga"]["at_work"] and not groups["gc"]["at_work"]
        known = {"groups": list(groups.values()), "passes": [], "pairs": []}
        lines = status_lines(known, time.time())
        assert lines[0] == (
            "mailbox groups of pass 1: 3; at work 2 (1 running, 1 between segments), 1 queued"
        ), lines
        said = next(line for line in lines if line.startswith("group gb "))
        assert "between segments (its next one queued)" in said
        assert "pass 1: copied 1, failed 1, unknown 1" in said
        # the pass ends with the failed item; the next pass queues the group afresh
        await table.segment_ended("gb", [b], first, "done", None, {})
        second = await st.pass_started("delta")
        await table.queued("gb", [b], second)
        gb = {g["group"]: g for g in await table.read()}["gb"]
        assert (gb["pass"], gb["copied"], gb["failed"], gb["unknown"]) == (second, 0, 0, 0)
        assert not gb["at_work"]
    passes = [
        {
            "pass": 1,
            "kind": "first",
            "started": "t",
            "finished": "t",
            "status": "ok",
            "changes": {"created": 5, "updated": 0},
        }
    ]
    lines = status_lines({"groups": [], "passes": passes, "pairs": []}, 0.0)
    assert lines == ["pass 1 (first): t to t ok (copied 5)", COUNTED]
    # a pass under way has no changes recorded yet: not "no changes" beside groups copying
    passes[0].update(finished=None, status="running", changes={})
    lines = status_lines({"groups": [], "passes": passes, "pairs": []}, 0.0)
    assert lines[0] == "pass 1 (first): t to … running (its changes are counted when it ends)"
