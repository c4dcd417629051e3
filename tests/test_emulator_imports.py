"""The emulator's record of each import answered (``/_emulator/stats/imports``): per target
mailbox, when it was answered and its body's bytes, for benchmarks that measure spans
without an import exactly (issue 26: ``stricter``); cleared with the stats, bounded."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from copyengine.emulator.state import Stats
from copyengine.graph import ImportSessionPool
from copyengine.pacing.policy import Backoff, RetryPolicy
from tests.clients import Clients, clients

pytestmark = pytest.mark.anyio
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"


@pytest.fixture
async def cl(emu: Any) -> AsyncIterator[Clients]:
    async with clients(emu.ep) as c:
        c.dst.transport.retry = RetryPolicy(backoff=Backoff(base=0.01, cap=0.05))
        yield c


async def test_each_import_answered_is_recorded_with_its_time_and_bytes(
    emu: Any, cl: Clients
) -> None:
    src = (await cl.src.resolve_mailbox(ADELE)).primary_id
    dst = (await cl.dst.resolve_mailbox(T_ADELE)).primary_id
    items = list(emu.state.require_mailbox(ADELE).items.values())[:3]
    exported = await cl.src.export_items(src, [it.id for it in items])
    assert (await emu.src.control("POST", "/stats/reset")).status == 204
    pool = ImportSessionPool(cl.dst, dst)
    before = time.monotonic() - emu.state.stats.t0
    for e in exported:
        assert e.data is not None
        await pool.import_item("inbox", e.data)
    after = time.monotonic() - emu.state.stats.t0
    r = await emu.src.control("GET", "/stats/imports")
    assert r.status == 200
    rows = r.body["imports"][T_ADELE]
    assert list(r.body["imports"]) == [T_ADELE] and r.body["dropped"] == 0
    # the request's body as the upload budget counts it: the item's data in its envelope
    assert len(rows) == 3
    assert all(0 < n - len(e.data or b"") < 200 for (_, n), e in zip(rows, exported, strict=True))
    times = [t for t, _ in rows]
    assert times == sorted(times) and before <= times[0] and times[-1] <= after
    assert (await emu.src.control("POST", "/stats/reset")).status == 204
    assert (await emu.src.control("GET", "/stats/imports")).body == {"imports": {}, "dropped": 0}


def test_the_record_is_bounded_and_counts_what_it_dropped() -> None:
    st = Stats()
    st.answers = type(st.answers)(maxlen=3)
    for i in range(5):
        st.answered(f"m{i % 2}@t", 100 + i)
    got = st.answers_dict()
    assert got["dropped"] == 2
    assert {m: [n for _, n in rows] for m, rows in got["imports"].items()} == {
        "m0@t": [102, 104],
        "m1@t": [103],
    }
