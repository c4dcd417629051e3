"""The throughput scenario's verdict (``benchmarks/__main__.py``): the naive ratio is stated
as the emulator's, never as a target missed (issue 26: the "10x naive" target is
``latency``'s), and a --base run is compared per repeat."""

from __future__ import annotations

from typing import Any

from benchmarks.__main__ import SCENARIOS, TARGETS, verdicts


def _runs(items_per_s: list[float], cpu: list[float]) -> list[dict[str, Any]]:
    return [
        {"items_per_s": a, "cpu_s_per_1000_items": b} for a, b in zip(items_per_s, cpu, strict=True)
    ]


def _res(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def med(xs: list[float]) -> dict[str, float]:
        return {"median": sorted(xs)[len(xs) // 2]}

    return {
        "runs": runs,
        "summary": {
            c: {m: med([r[m] for r in rs]) for m in ("items_per_s", "cpu_s_per_1000_items")}
            for c, rs in runs.items()
        },
    }


def test_throughput_states_the_naive_ratio_as_the_emulators_and_compares_the_base() -> None:
    res = _res(
        {
            "copyengine": _runs([1000, 900, 1100], [0.60, 0.62, 0.64]),
            "minimal": _runs([1000, 1000, 1000], [0.50, 0.50, 0.50]),
            "naive": _runs([250, 250, 250], [1.0, 1.0, 1.0]),
            "copyengine@main": _runs([1000, 1000, 1000], [0.70, 0.70, 0.70]),
        }
    )
    out = verdicts(SCENARIOS["throughput"], res, {})
    naive = next(v for v in out if v.startswith("copyengine / naive"))
    assert naive.startswith("copyengine / naive = 4.0x")
    assert "measures the emulator, not the client" in naive and "MISSED" not in naive
    assert "`latency`'s" in naive
    cpu = next(v for v in out if v.startswith("CPU per 1,000 items"))
    assert "1.24x (target 1.2x: MISSED)" in cpu and "1.20x, 1.24x, 1.28x" in cpu
    base = next(v for v in out if v.startswith("against copyengine@main"))
    assert "items/s 100%" in base and "CPU per item 0.89x" in base
    assert "items/s 100%, 90%, 110%" in base
    assert "10x naive" not in TARGETS["throughput"].split("(")[0]
    assert "10x naive" in TARGETS["latency"]


def test_fleet_judges_its_cpu_per_item_against_the_throughput_job_of_the_same_run() -> None:
    from benchmarks.fleet import verdict_of

    def step(pairs: int, cpu: float) -> dict[str, Any]:
        return {
            "contender": "copyengine",
            "pairs": pairs,
            "ceiling_pct_worst": 99.0,
            "ceiling_95_share": 1.0,
            "engine_cpu_share": 0.5,
            "emulator_cpu_share": 0.4,
            "engine_cpu_s_per_gb": 15.0,
            "cpu_s_per_1000_items": cpu,
            "wall_s": 10.0,
        }

    met = verdict_of([step(50, 1.5), step(200, 1.2), step(400, 1.0)], [], {}, None, 0.0, [1.0, 0.9])
    said = met["verdict"][-1]
    assert "50: 1.58x, 200: 1.26x, 400: 1.05x" in said and "met" in said, said
    assert met["throughput_cpu_s_per_1000_items"] == [1.0, 0.9]
    missed = verdict_of([step(200, 1.3), step(400, 1.0)], [], {}, None, 0.0, [0.95])
    assert "200: 1.37x" in missed["verdict"][-1] and "MISSED" in missed["verdict"][-1]
