"""A service stricter than the job's limits, and another writer in the same mailbox.

Importers against the emulator's time-scaled profile (x300: an upload window of 1 s and 512
KiB) with pacer limits ten times larger: the pacer learns the budget the service gives from
its 429s and reaches at least 80% of it with few 429s; with another writer spending half of
the mailbox's upload budget, the same of what is left. Then the other writer itself
(``emulator.throttle.Background``), as a table of admissions."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from copyengine.config import load_job
from copyengine.emulator.config import EmulatorConfigError, parse_config
from copyengine.emulator.throttle import Background, Limits, Throttle
from copyengine.errors import ConfigError, ItemFailed
from copyengine.exitcodes import ExitCode
from copyengine.graph import ImportSessionPool
from copyengine.pacing import PacerLimits
from copyengine.pacing.learn import Learned
from copyengine.report import PairStats
from tests.clients import clients
from tests.emu import base_config, running
from tests.fake_api import FakeAccount
from tests.jobs import cli, demo_job

ADELE = "adele@contoso.example"
T_ADELE = "adele@fabrikam.example"
SCALE = 300.0
BUDGET = math.ceil(150 * 1024 * 1024 / SCALE)  # 512 KiB per 1 s window
WINDOW = 300.0 / SCALE
RUN_S = 12.0


TENFOLD = PacerLimits(
    requests=340,
    request_window=2.0,
    upload_bytes=10 * BUDGET,
    upload_window=WINDOW,
    window_slack=0.02,
)


async def _import_for(
    cfg: dict[str, Any], seconds: float, limits: PacerLimits = TENFOLD
) -> tuple[dict[str, Any], str]:
    """16 importers into T_ADELE for ``seconds``, paced to ``limits`` (by default ten times
    the service's budgets); the emulator's stats after, and the target mailbox's id."""
    async with running(cfg) as (server, ep, _), clients(ep, limits) as c:
        src = (await c.src.resolve_mailbox(ADELE)).primary_id
        dst = (await c.dst.resolve_mailbox(T_ADELE)).primary_id
        box = server.emulator.require_mailbox(ADELE)
        small = [i.id for i in box.items.values() if 10_000 < i.content.size < 80_000][:40]
        exported = [
            e for k in range(0, 40, 20) for e in await c.src.export_items(src, small[k : k + 20])
        ]
        pool = ImportSessionPool(c.dst, dst)
        await pool.get()
        server.emulator.stats.reset()
        stop = time.monotonic() + seconds

        async def importer(w: int) -> None:
            k = w
            while time.monotonic() < stop:
                e = exported[k % len(exported)]
                assert e.data is not None
                await pool.import_item("inbox", e.data)
                k += 16

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for w in range(16):
                    tg.start_soon(importer, w)
        stats = server.emulator.stats.as_dict()
        stats["background"] = server.emulator.throttle.background_bytes()
        return stats, dst


def _share_of_budget(stats: dict[str, Any], budget: float) -> float:
    """The shortest time any client could take to upload what the mailbox took (whole
    windows, the last sent at the start of the last one) over the time it took."""
    up = stats["uploads_by_mailbox"][T_ADELE]
    windows = math.ceil(up["bytes"] / budget)
    return float((windows - 1) * WINDOW / up["span_s"])


def _share_429(stats: dict[str, Any], dst: str) -> float:
    total = stats["status_by_mailbox"][dst]
    return float(total.get("429", 0) / sum(total.values()))


@pytest.mark.anyio
async def test_a_service_giving_a_tenth_of_the_limits_is_learned_with_few_429s() -> None:
    stats, dst = await _import_for(base_config(profile="exchange-fast", time_scale=SCALE), RUN_S)
    # nothing sent before its Retry-After elapsed, but what was already on its way (the
    # requests in flight when the 429 was answered, on a loaded machine)
    assert sum(stats["early_requests"].values()) <= 4
    # the learning's 429s (an episode or two, each the requests then in flight), then few
    assert _share_429(stats, dst) < 0.1, stats["throttled"]
    share = _share_of_budget(stats, BUDGET)
    # no stall (a learned window the service does not keep, a Retry-After waited twice):
    # 1 s windows, so a loaded machine's late event loop alone costs a tenth or two (0.70 at
    # load 15); the 80% target over 5 s windows is the benchmark's (benchmarks/stricter.py)
    assert share >= 0.6, (share, stats["throttled"])


@pytest.mark.anyio
async def test_another_writer_taking_half_the_upload_budget_is_adapted_to() -> None:
    cfg = base_config(profile="exchange-fast", time_scale=SCALE, background_upload=0.5)
    stats, dst = await _import_for(cfg, RUN_S)
    assert stats["background"][dst] > 0.4 * BUDGET * RUN_S  # it did write its share
    assert sum(stats["early_requests"].values()) <= 4
    # the learning's 429s (an episode or two, each the requests then in flight), then few
    # (0.111 once at load 15, 0.150 once beside the suite and benchmarks: the other writer's
    # bytes and ours race in 1 s windows; 0.056-0.096 quiet, the session base 0.070-0.095;
    # the benchmark holds the 5%: benchmarks/stricter.py)
    assert _share_429(stats, dst) < 0.2, stats["throttled"]
    share = _share_of_budget(stats, BUDGET / 2)
    # no stall: most of what the other writer leaves (0.56 once at load 16; the 80% target
    # over a longer run, with 5 s windows, is the benchmark's: benchmarks/stricter.py)
    assert share >= 0.45, (share, stats["throttled"])


@pytest.mark.anyio
async def test_a_service_window_far_shorter_than_the_configured_one_is_learned() -> None:
    # the issue's own case (the emulator's x60 profile under Exchange's documented limits):
    # the configured budget over a window 60 times longer than the service's, at its rate
    documented = PacerLimits(
        requests=60 * 34,
        request_window=60 * 2.0,
        upload_bytes=60 * BUDGET,
        upload_window=60 * WINDOW,
        window_slack=0.02,
    )
    cfg = base_config(profile="exchange-fast", time_scale=SCALE)
    stats, dst = await _import_for(cfg, RUN_S, documented)
    assert sum(stats["early_requests"].values()) <= 4
    assert _share_429(stats, dst) < 0.1, stats["throttled"]
    # paced over the window the service's answers show, in even parts of it: most of the
    # service's rate (0.65-0.82 alone on a quiet machine, 0.50 once under the whole suite's
    # load, 0.8-0.85 in benchmarks.learn_model; 0.43 before the window was taken from the
    # first send, kept and spread): the bound is the load's, the benchmark measures it
    share = _share_of_budget(stats, BUDGET)
    assert share >= 0.47, (share, stats["throttled"])


# -- the other writer, as the throttle applies it ----------------------------------------------
def _throttle(share: float, boxes: tuple[str, ...] | None = None) -> Throttle:
    th = Throttle(Limits(requests=None, app_requests=None, upload_bytes=1000, upload_window=10.0))
    th.background = Background(share, boxes)
    return th


def test_the_other_writer_starts_with_its_share_and_takes_what_it_is_owed_first() -> None:
    th = _throttle(0.5)
    assert th.admit(0.0, "app", "m", 500).reason is None  # 500 of its own + 500 of ours
    th.release("app", "m")
    assert th.admit(0.1, "app", "m", 100).reason == "IncomingBytes"  # the window is full
    # 4 s later, its writes a window old have left and its new ones (25 every 0.5 s, on
    # its own clock) took their place: still full
    assert th.admit(4.0, "app", "m", 1).reason == "IncomingBytes"
    # once ours left (t = 10), it has written 500 more over the window (its share) and
    # holds 500, and ours fits beside it
    assert th.admit(10.0, "app", "m", 400).reason is None
    assert th.background_bytes() == {"m": 500 + 500}
    th.release("app", "m")
    assert th.admit(10.5, "app", "m", 200).reason == "IncomingBytes"  # 900 + 25 owed: full


def test_the_other_writer_only_in_the_mailboxes_named() -> None:
    th = _throttle(0.5, ("m",))
    th.background = Background(0.5, ("m",), {"m": 0.5})
    assert th.admit(0.0, "app", "other", 1000).reason is None
    assert th.background_bytes() == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (1.5, "share: a share of the upload budget, from 0 to below 1"),
        (True, "give a share of the upload budget"),
        ({"share": 0.5, "boxes": []}, "unknown keys ['boxes']"),
        ({"share": 0.5, "mailboxes": "anna"}, "mailboxes: a list of UPNs or mailbox ids"),
    ],
)
def test_a_wrong_background_upload_is_a_configuration_error(raw: Any, message: str) -> None:
    with pytest.raises(EmulatorConfigError) as info:
        parse_config({"emulator": {"background_upload": raw}})
    assert str(info.value).startswith("emulator.background_upload: ")
    assert message in str(info.value)


class _Cut(FakeAccount):
    """A mailbox whose upload budget the service's 429s cut to a tenth."""

    def budget_in_effect(self) -> dict[str, Learned]:
        lim = Learned.of(150 * 1024 * 1024, 300.0)
        return {"upload": dataclasses.replace(lim, cap=lim.cap / 10, cuts=1)}


def test_no_upload_hint_for_a_source_mailbox_nothing_is_imported_into() -> None:
    """An upload cut on the source (another writer filled its window while only exportItems'
    lists of ids went there) must not tell the operator to lower upload_mb_per_window."""
    pair = PairStats("anna@contoso.example", "anna@fabrikam.example")
    pair.pacers = [_Cut(), FakeAccount()]
    assert pair.budget_hints() == []
    pair.pacers = [FakeAccount(), _Cut()]
    assert pair.budget_hints() == [
        "the service gave mailbox anna@fabrikam.example 1/10 of [limits] "
        "upload_mb_per_window; lower it (to about 15)"
    ]


def test_another_writer_in_a_mailbox_the_job_does_not_emulate_is_refused_at_load(
    tmp_path: Path,
) -> None:
    job = demo_job(tmp_path)
    text = job.read_text(encoding="utf-8").replace(
        "[emulator]\n",
        '[emulator]\nbackground_upload = { share = 0.5, mailboxes = ["adele@fabrikam.example",'
        ' "nobody@fabrikam.example"] }\n',
    )
    job.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_job(job)
    assert info.value.where == "emulator.background_upload.mailboxes[1]"
    assert "'nobody@fabrikam.example'" in str(info.value)
    done = cli("run", job.name, "--no-progress", cwd=tmp_path, timeout=60)
    assert done.returncode == ExitCode.CONFIG, done.stderr[-2000:]
    assert "emulator.background_upload.mailboxes[1]" in done.stderr
    assert not (tmp_path / ".copyengine").exists()  # nothing written


async def _big_and_small(
    server: Any, c: Any, n: int
) -> tuple[str, list[str], dict[str, Any], ImportSessionPool, str]:
    """adele's item whose body is 1.2-1.9 times the room a half writer leaves (~1.47 bytes
    of body per byte of item) and ``n`` small ones, exported; an import session to her
    target mailbox: (big, small, exports by id, the pool, the target's id)."""
    src = (await c.src.resolve_mailbox(ADELE)).primary_id
    dst = (await c.dst.resolve_mailbox(T_ADELE)).primary_id
    items = server.emulator.require_mailbox(ADELE).items.values()
    big = next(i.id for i in items if 220_000 < i.content.size < 340_000)
    small = [i.id for i in items if 10_000 < i.content.size < 40_000][:n]
    by_id = {e.item_id: e for e in await c.src.export_items(src, [big, *small])}
    pool = ImportSessionPool(c.dst, dst)
    await pool.get()
    return big, small, by_id, pool, dst


@pytest.mark.anyio
async def test_a_body_larger_than_the_room_another_writer_leaves_fails_with_its_reason() -> None:
    """Review, issue 26: with another writer taking half of the upload budget, an item whose
    import body is larger than the half it leaves was refused for good, and its pair sat at
    0 MB/s with "ETA 0s" until Ctrl-C. Now it fails with the reason after a bounded number
    of refusals over a few of the service's windows, and the mailbox goes on."""
    cfg = base_config(profile="exchange-fast", time_scale=SCALE, background_upload=0.5)
    async with running(cfg) as (server, ep, _), clients(ep, TENFOLD) as c:
        big, [small], by_id, pool, _ = await _big_and_small(server, c, 1)
        assert by_id[small].data is not None and by_id[big].data is not None
        await pool.import_item("inbox", by_id[small].data)
        t0 = time.monotonic()
        with anyio.fail_after(60), pytest.raises(ItemFailed) as info:
            await pool.import_item("inbox", by_id[big].data)
        assert time.monotonic() - t0 >= 2 * WINDOW  # two of the service's windows at least
        assert info.value.code == "IncomingBytes"
        assert "another app writing to the mailbox leaves less room" in info.value.message
        await pool.import_item("inbox", by_id[small].data)  # and the mailbox goes on


# Exchange's documented upload limits (150 MB per 300 s) against the x300 service's 1 s window
DOCUMENTED = dataclasses.replace(
    TENFOLD, upload_bytes=150 * 1024 * 1024, upload_window=300.0, window_slack=0.02
)


@pytest.mark.anyio
async def test_a_body_the_writer_leaves_no_room_for_fails_in_few_429s_beside_ours() -> None:
    """Issue 26, the demo job under the documented ``[limits]`` beside another writer: with
    our own bytes in the configured 300 s window (never "alone" there in a pair with work),
    a body larger than the room the writer leaves was refused at each Retry-After (the
    writer's next write taking the room its oldest left) until its 50 retries ran out, a
    slot of its pair held the while. Now alone is over the window the service's answers
    showed, the body is held between refusals, and it fails with the reason after two,
    two of the service's windows apart; the mailbox goes on."""
    cfg = base_config(profile="exchange-fast", time_scale=SCALE, background_upload=0.5)
    async with running(cfg) as (server, ep, _), clients(ep, DOCUMENTED) as c:
        big, small, by_id, pool, dst = await _big_and_small(server, c, 19)

        async def importer(k: int) -> None:  # a burst: the service's window shown
            for n in range(k, len(small), 4):
                data = by_id[small[n]].data
                assert data is not None
                await pool.import_item("inbox", data)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for k in range(4):
                    tg.start_soon(importer, k)
        before = server.emulator.stats.throttled_by_mailbox[dst]
        data = by_id[big].data
        assert data is not None
        t0 = time.monotonic()
        with anyio.fail_after(30), pytest.raises(ItemFailed) as info:
            await pool.import_item("inbox", data)
        assert time.monotonic() - t0 >= 2 * WINDOW
        assert "another app writing to the mailbox leaves less room" in info.value.message
        refused = server.emulator.stats.throttled_by_mailbox[dst] - before
        assert refused <= 4, refused  # its refusals, and those of ours in the window then
        small_data = by_id[small[0]].data
        assert small_data is not None
        await pool.import_item("inbox", small_data)  # and the mailbox goes on


@pytest.mark.parametrize(("ratio", "share"), [(2, 0.0), (10, 0.0), (60, 0.0), (1, 0.5), (10, 0.5)])
def test_the_first_window_is_idle_for_a_client_that_sends_it_evenly_at_the_configured_rate(
    ratio: int, share: float
) -> None:
    """The first window's span at 0 MB/s sent evenly (``stricter.even_first_window_s``) against
    the emulator's own throttle: 10 KB bodies at ``ratio`` times the service's rate, evenly
    from the first, are refused when the window holds the budget, and, retried at each
    Retry-After (the other writer's old writes leave, its new ones take their place), pass
    again when the first bytes leave, ``W (1 - (1 - b) / k)``."""
    from benchmarks.stricter import TIME_SCALE, even_first_window_s

    lim = Limits.profile("exchange-fast", TIME_SCALE, app_requests=None)
    budget = lim.upload_bytes
    assert budget
    lim = dataclasses.replace(lim, requests=None, concurrency=None)
    th = Throttle(lim)
    th.background = Background(share)
    body = 10_000
    every = body * lim.upload_window / (ratio * budget)
    for n in range(100_000):
        v = th.admit(n * every, "app", "m", body)
        if v.reason is not None:
            break
        th.release("app", "m")
    else:
        raise AssertionError("never refused")
    refused_at = now = n * every
    for _ in range(100_000):
        now += v.retry_after
        v = th.admit(now, "app", "m", body)
        if v.reason is None:
            break
    else:
        raise AssertionError("never admitted again")
    idle = (now - refused_at) * TIME_SCALE
    assert idle == pytest.approx(even_first_window_s(ratio, share), abs=2 * every * TIME_SCALE)
    assert idle > 30.0  # the benchmark's span: not a target any such client can meet


def test_stricter_runs_the_variants_chosen_and_refuses_an_unknown_one() -> None:
    from benchmarks.stricter import DOCUMENTED, VARIANTS, chosen, even_first_window_s

    assert chosen("") == VARIANTS
    assert chosen("2, 10:0.5,documented") == [(2, 0.0), (10, 0.5), (DOCUMENTED, 0.0)]
    # the documented [limits] beside the other writer (issue 26's learning trap)
    assert chosen("documented:0.5,60:0.5") == [(DOCUMENTED, 0.5), (60, 0.5)]
    with pytest.raises(SystemExit, match="no variant '3'"):
        chosen("3")
    with pytest.raises(SystemExit, match="no variant 'x:y'"):
        chosen("x:y")
    # the documented [limits] give the service's own rate: no idle first window that way
    assert even_first_window_s(DOCUMENTED, 0.0) == 0.0
    assert even_first_window_s(1, 0.0) == 0.0
