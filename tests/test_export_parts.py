"""Export parts when many pairs share the byte budget (issue 26): a folder's items are cut
in parts of half the pair's share (at most 20) over the folder's pages, packed while the
share sets their size, and joined into batches of at most 20 an exporter cuts in no more
parts; not batch of 20 by batch of 20 cut in order, each batch's tail a part, an export
request, of its own."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from copyengine.config import load_job
from copyengine.plan import encoded_size
from copyengine.wiring import run_job
from tests.emu import base_config
from tests.jobs import check_copy, write_job

pytestmark = pytest.mark.anyio
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"


@pytest.fixture
def emu_config() -> dict[str, Any]:
    cfg = base_config()
    adele = cfg["tenants"][0]["users"][0]
    assert adele["upn"] == ADELE
    adele["mailbox"] = {
        "seed": 1,
        "items": 160,
        "sizes": {"distribution": "realistic", "max": 300_000},
        "layout": "flat",
    }
    return cfg


async def test_a_folders_items_go_in_as_few_export_requests_as_its_parts_bytes_need(
    emu: Any, tmp_path: Path
) -> None:
    """One pair, 160 items in its Inbox, a 1 MB budget: parts of 512 kB. As many export
    requests as the items' bytes need in such parts, and a few more where an item does not
    fit the room its part has left; not a request more per batch of 20 for its tail."""
    limits = "bytes_in_flight_mb = 1\n"
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)], limits=limits))
    src = emu.state.require_mailbox(ADELE).snapshot()
    sizes = [encoded_size(r["reportedSize"]) for r in src["items"] if _selected(r)]
    emu.state.stats.reset()
    await run_job(cfg)
    st = emu.state.stats
    exports = sum(n for (call, _), n in st.requests.items() if call == "exportItems")
    # parts of at most 512 kB and 20 ids: at least this many, whatever the order
    least = max(math.ceil(sum(sizes) / (512 * 1024)), math.ceil(len(sizes) / 20))
    assert least <= exports <= least + len(sizes) // 40
    dst = emu.state.require_mailbox(T_ADELE).snapshot()
    assert check_copy(src, dst, selected=_selected) == (0, 0, 0)
    assert len(dst["items"]) == len(sizes)


def _selected(row: dict[str, Any]) -> bool:
    return not row["folderPath"].startswith(("/Recoverable Items", "/Journal"))


def test_parts_are_fewer_than_cut_in_order_and_move_no_item_far() -> None:
    """``plan.parts`` against cutting in order, over seeded random sizes (large items spread
    among small ones, as ``upload_order`` leaves them): every item once, each part within
    the bytes (or one item alone) and the count, no more parts than in order, and an item
    exported at most ``LOOKBACK - 1`` parts ahead of where its order put it."""
    import random

    from copyengine.plan import parts
    from copyengine.plan.items import LOOKBACK

    rng = random.Random(2026)
    fewer = 0
    for _ in range(300):
        n = rng.randint(1, 120)
        most = rng.choice([512 * 1024, 640 * 1024, 2 * 1024 * 1024])
        sizes = [
            rng.randint(500_000, 900_000) if rng.random() < 0.1 else rng.randint(2_000, 150_000)
            for _ in range(n)
        ]
        cap = rng.choice([20, 20, 5])
        got = parts(list(range(n)), sizes, most, cap)
        assert sorted(i for p in got for i in p) == list(range(n))
        for p in got:
            assert len(p) <= cap
            assert len(p) == 1 or sum(sizes[i] for i in p) <= most
            assert p == sorted(p)  # the order kept within a part
        in_order = _in_order(sizes, most, cap)
        assert parts(list(range(n)), sizes, most, cap, lookback=1) == in_order
        assert len(got) <= len(in_order)
        fewer += len(got) < len(in_order)
        where = {i: k for k, p in enumerate(got) for i in p}
        opened = 0  # parts opened before the item came (none of them ahead of it)
        for i in range(n):
            assert where[i] >= opened - LOOKBACK
            opened = max(opened, where[i] + 1)
    assert fewer > 150  # and usually fewer


def _in_order(sizes: list[int], most: float, cap: int) -> list[list[int]]:
    out: list[list[int]] = []
    held = 0
    for i, n in enumerate(sizes):
        if not out or held + n > most or len(out[-1]) >= cap:
            out.append([])
            held = 0
        out[-1].append(i)
        held += n
    return out


def test_batches_joined_from_parts_are_cut_in_no_more_parts_by_an_exporter() -> None:
    """``plan.join_parts`` over ``plan.parts`` (seeded random sizes): batches of at most the
    count and listed bytes, every item once and in the packed order, and an exporter's cut
    in order (``ByteShares.split``: by bytes) makes no more parts than were packed."""
    import random

    from copyengine.graph import Item
    from copyengine.pipeline.budget import ByteBudget
    from copyengine.pipeline.work import ByteShares
    from copyengine.plan import encoded_size, join_parts, parts

    rng = random.Random(26)
    for _ in range(200):
        n = rng.randint(1, 150)
        sizes = [
            rng.randint(400_000, 700_000) if rng.random() < 0.1 else rng.randint(2_000, 120_000)
            for _ in range(n)
        ]
        items = [Item(str(i), "", "", sizes[i], "", "", ()) for i in range(n)]
        shares = ByteShares(ByteBudget(rng.choice([100, 256, 400]) * 1024 * 1024))
        shares.budget.expected = rng.choice([200, 400, 1000])
        most = shares.part_bytes()
        cap, max_bytes = 20, rng.choice([32 * 1024 * 1024, 1_500_000])
        packed = parts(items, [encoded_size(it.size) for it in items], most, cap)
        joined = join_parts(packed, cap, max_bytes)
        assert [it for b in joined for it in b] == [it for p in packed for it in p]
        for b in joined:
            assert len(b) <= cap
            assert len(b) == 1 or sum(it.size for it in b) <= max_bytes
        cut = [p for b in joined for p in shares.split(b, [encoded_size(it.size) for it in b])]
        assert len(cut) <= len(packed)


def test_parts_are_packed_only_while_half_the_share_sets_their_size() -> None:
    """256 MB over 200 pairs at once: parts of half a share (640 kB), packed. Over 1,000
    (``scale``): half a share is 128 kB, parts are ``min_part`` (512 kB), more than the
    share already, and cut in order (packed fuller, peak RSS rose 15-20 MB to 290-293)."""
    from copyengine.pipeline.budget import ByteBudget
    from copyengine.pipeline.work import MIN_PART, ByteShares

    shares = ByteShares(ByteBudget(256 * 1024 * 1024))
    shares.budget.expected = 200
    assert shares.part_bytes() == 256 * 1024 * 1024 / 200 / 2 and shares.packs()
    shares.budget.expected = 1000
    assert shares.part_bytes() == MIN_PART and not shares.packs()


def test_batches_over_a_folders_pages_hand_on_every_item_once_within_the_bounds() -> None:
    """``Producer._full_batches`` page by page (seeded random pages and sizes, items larger
    than a part and than ``batch_bytes`` among them, packed and in order): every item handed
    on exactly once by the folder's end, each batch at most ``batch_items`` and
    ``batch_bytes`` (or one item alone), and what is kept for the next page never more than
    one batch (review of 773648c)."""
    import random
    from types import SimpleNamespace

    from copyengine.graph import Item
    from copyengine.pipeline.budget import ByteBudget
    from copyengine.pipeline.produce import Producer
    from copyengine.pipeline.work import ByteShares

    rng = random.Random(773)
    for _ in range(150):
        shares = ByteShares(ByteBudget(rng.choice([8, 100, 256]) * 1024 * 1024))
        shares.budget.expected = rng.choice([1, 20, 200, 1000])
        cap = rng.choice([20, 20, 7])
        max_bytes = rng.choice([32 * 1024 * 1024, 1_500_000, 300_000])
        prod: Any = SimpleNamespace(
            limits=SimpleNamespace(batch_items=cap, batch_bytes=max_bytes),
            ctx=SimpleNamespace(shares=shares),
        )
        items: list[Item] = []
        pending: list[Item] = []
        out: list[list[Item]] = []
        for _page in range(rng.randint(1, 8)):
            page = [
                Item(
                    str(len(items) + k),
                    "",
                    "",
                    rng.randint(400_000, 3_000_000)
                    if rng.random() < 0.1
                    else rng.randint(1, 120_000),
                    "",
                    "",
                    (),
                )
                for k in range(rng.randint(0, 60))
            ]
            items += page
            pending += page
            ready, pending = Producer._full_batches(prod, pending)
            out += ready
            assert len(pending) <= cap
        out += Producer._full_batches(prod, pending, final=True)[0]
        assert sorted(int(it.id) for b in out for it in b) == list(range(len(items)))
        for b in out:
            assert 1 <= len(b) <= cap
            assert len(b) == 1 or sum(it.size for it in b) <= max_bytes
