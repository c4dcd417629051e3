"""The numbers docs/emulator.md gives an operator who sets up a stricter service (review,
"confusing in the docs" 1, 2 and 6): ``[emulator] limits`` are absolute (set after the
profile's scaling; ``app_requests`` and ``app_window`` are never scaled), and an import body,
which is what the upload budget counts, is about 1.47 times the item's reported size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from copyengine.config import load_job
from copyengine.emulator import parse_config
from copyengine.exitcodes import ExitCode
from copyengine.wiring import run_job
from tests.jobs import selected_by_default, write_job

ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
MB = 1024 * 1024


def _limits(**emulator: Any) -> Any:
    return parse_config({"emulator": emulator}).make_limits()


def test_limits_under_exchange_fast_are_absolute_and_the_app_window_is_not_scaled() -> None:
    fast = _limits(profile="exchange-fast", time_scale=60)
    assert fast.upload_window == 5.0 and fast.upload_bytes == 150 * MB // 60  # 2.5 MB / 5 s
    assert fast.request_window == 10.0 and fast.requests == 167
    assert (fast.app_requests, fast.app_window) == (130_000, 10.0)  # never scaled
    # the worked example: a service giving a tenth of the rate, 256 KB per (scaled) 5 s
    tenth = _limits(profile="exchange-fast", time_scale=60, limits={"upload_bytes": 262144})
    assert tenth.upload_bytes == 262144 and tenth.upload_window == 5.0  # as written
    assert tenth.upload_bytes / tenth.upload_window == pytest.approx(
        fast.upload_bytes / fast.upload_window / 10
    )
    # a window given is taken as written too, never divided by time_scale again
    assert _limits(profile="exchange-fast", limits={"upload_window": 30}).upload_window == 30


@pytest.mark.anyio
async def test_an_import_body_is_about_1_47_times_the_items_size(emu: Any, tmp_path: Path) -> None:
    """``data_ratio`` 1.1 (the export stream is larger than the size Graph reports), then
    base64 (4/3): what the target's upload budget counts per item."""
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)]))
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    items = [
        r for r in emu.state.require_mailbox(ADELE).snapshot()["items"] if selected_by_default(r)
    ]
    reported = sum(r["reportedSize"] for r in items)
    counted = emu.state.stats.uploads[T_ADELE].nbytes
    assert 1.44 <= counted / reported <= 1.50, counted / reported


def test_a_body_larger_than_the_whole_budget_passes_only_into_an_empty_window() -> None:
    from copyengine.emulator.throttle import INCOMING_BYTES, Throttle

    tenth = _limits(profile="exchange-fast", limits={"upload_bytes": 262144})
    th = Throttle(tenth)
    assert th.admit(0.0, "app", "m", 400_000).reason is None  # alone in its window
    assert th.admit(0.1, "app", "m", 1000).reason == INCOMING_BYTES  # the window is full
    assert th.admit(5.2, "app", "m", 400_000).reason is None  # the next window, empty again
