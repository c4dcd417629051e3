"""Many concurrent tasks against one mailbox: the pacer keeps the service's limits."""

from __future__ import annotations

import time

import anyio
import pytest

from copyengine.graph import ImportSessionPool
from copyengine.pacing import PacerLimits
from tests.clients import clients
from tests.emu import base_config, running

pytestmark = pytest.mark.anyio
ADELE = "adele@contoso.example"
T_ADELE = "adele@fabrikam.example"


async def test_exchange_profile_in_flight_cap_holds_under_many_tasks() -> None:
    async with running(base_config(profile="exchange")) as (server, ep, _), clients(ep) as c:
        m = (await c.src.resolve_mailbox(ADELE)).primary_id
        ids = list(server.emulator.require_mailbox(ADELE).items)
        done = 0

        async def worker(w: int) -> None:
            nonlocal done
            for k in range(6):
                if (w + k) % 3 == 0:
                    res = await c.src.export_items(m, ids[(w * 7 + k) % 100 :][:5])
                    assert all(r.ok for r in res)
                elif (w + k) % 3 == 1:
                    await c.src.get_folder(m, "inbox")
                else:
                    await c.src.list_folders(m)
                done += 1

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for w in range(40):
                    tg.start_soon(worker, w)
        stats = server.emulator.stats.as_dict()
        assert done == 240
        assert stats["max_inflight"][m] == 4  # the cap is reached and never exceeded
        assert stats["throttled_total"] == 0
        assert stats["early_requests"] == {}


async def test_request_and_byte_windows_paced_at_the_ceiling_with_rare_429s() -> None:
    # exchange-fast with a large scale: the request window is 2 s / 34 requests and the upload
    # window 1 s / 512 KiB, so the windows fill many times within a few seconds.
    scale = 300.0
    cfg = base_config(profile="exchange-fast", time_scale=scale)
    limits = PacerLimits(
        requests=34, request_window=2.0, upload_bytes=524_288, upload_window=1.0, window_slack=0.05
    )
    async with running(cfg) as (server, ep, _), clients(ep, limits) as c:
        src = (await c.src.resolve_mailbox(ADELE)).primary_id
        dst = (await c.dst.resolve_mailbox(T_ADELE)).primary_id
        box = server.emulator.require_mailbox(ADELE)
        small = [i.id for i in box.items.values() if i.content.size < 40_000][:60]
        exported = [
            e for k in range(0, 40, 20) for e in await c.src.export_items(src, small[k : k + 20])
        ]
        pool = ImportSessionPool(c.dst, dst)
        await pool.get()
        server.emulator.stats.reset()
        stop = time.monotonic() + 5.0
        n = 0

        async def importer(w: int) -> None:
            nonlocal n
            k = w
            while time.monotonic() < stop:
                e = exported[k % len(exported)]
                assert e.data is not None
                await pool.import_item("inbox", e.data)
                n += 1
                k += 16

        async def reader() -> None:
            while time.monotonic() < stop:
                await c.dst.get_folder(dst, "inbox")

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for w in range(16):
                    tg.start_soon(importer, w)
                for _ in range(8):
                    tg.start_soon(reader)
        stats = server.emulator.stats.as_dict()
        total = stats["status_by_mailbox"][dst]
        requests = sum(total.values())
        throttled = total.get("429", 0)
        assert stats["early_requests"] == {}  # nothing sent before its Retry-After elapsed
        assert stats["max_inflight"][dst] <= 4
        assert throttled / requests < 0.01, stats["throttled"]
        # and the pacer used the budget: at least 80% of the 17 requests/s ceiling
        assert requests / 5.0 >= 0.8 * 34 / 2.0, requests
