"""``stricter``: the service gives less than the job's ``[limits]`` say.

The emulator runs the time-scaled Exchange profile (x60: a 2.5 MB upload budget per 5 s
window, 167 requests per 10 s, per mailbox) while the job is configured with budgets 2, 10
and 60 times larger (the service gives 1/2, 1/10, 1/60 of them), first alone, then with
another writer in every target mailbox taking half of its upload budget (the emulator's
``background_upload``). Per variant, one run of ``PAIRS`` pairs; against the real budget:

- items/s as a share of what the real budget allows: the shortest job time any client could
  reach with the upload budget left to it (``upload_bound_s``: whole windows, an item larger
  than the budget a window of its own), over the time the job took (target >= 80%);
- the share of requests answered 429 (target < 5%);
- the longest span with no import answered while the job ran, from its first import to its
  last, in service time (x60). A sliding window gives its budget back when what filled it
  leaves it, so pairs that start together fill their windows together and wait together: the
  reference run (the service giving what is configured, ``1/1``, with the same other writer)
  shows that rhythm of the window itself; a stall is a span more than 30 s (service time)
  longer than the reference's.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from benchmarks.common import stamp
from benchmarks.harness import TIME_SCALED_LIMITS, Control, Scenario, run_scenario, upload_bound_s
from copyengine.emulator.throttle import Limits

RATIOS = (1, 2, 10, 60)  # 1: the reference, the service giving what is configured
BACKGROUND = (0.0, 0.5)
PAIRS = 8
ITEMS = 250
# items well under the service's budget (the largest a twelfth of it, as a 12 MB item is of
# Exchange's 150 MB): with another writer always in the window, a body larger than what is
# left could never pass
SIZES: dict[str, Any] = {"distribution": "realistic", "max": 200_000}
TIME_SCALE = 60.0
SPAN_S = 30.0  # service time
TARGET = (
    "with the service giving 1/2, 1/10 and 1/60 of the configured budgets, alone and with "
    "another writer taking half of each target's upload budget: items/s >= 80% of what the "
    "real budget allows, 429 share < 5%, no span without an import 30 s (service time) "
    "longer than the window's own rhythm (the 1/1 reference)"
)


def scenario(ratio: int, background: float) -> Scenario:
    base = TIME_SCALED_LIMITS
    return Scenario(
        "stricter",
        f"the service gives 1/{ratio} of the configured budgets"
        + (f", another writer takes {background:.0%} of each upload budget" if background else ""),
        pairs=PAIRS,
        items_per_mailbox=ITEMS,
        sizes=SIZES,
        profile="exchange-fast",
        time_scale=TIME_SCALE,
        repeats=1,
        warmup=False,
        limits={
            **base,
            "requests_per_window": base["requests_per_window"] * ratio,
            "upload_mb_per_window": base["upload_mb_per_window"] * ratio,
        },
        background_upload=background,
        timeout=900,
    )


def bound_seconds(s: Scenario, ctl: Control) -> float:
    """The shortest job time any client could reach with the upload budget the other
    writer leaves it (as ``__main__.ceiling_seconds``: the slowest target mailbox)."""
    lim = Limits.profile(s.profile, s.time_scale)
    assert lim.upload_bytes
    left = replace(lim, upload_bytes=int(lim.upload_bytes * (1 - s.background_upload)))
    assert left.upload_bytes
    worst = 0.0
    for i in range(1, s.pairs + 1):
        snap = ctl.snapshot(f"src{i:04d}@source.example")
        bodies = [row["dataLength"] + 120 for row in snap["items"]]
        small = sum(b for b in bodies if b <= left.upload_bytes)
        over = sum(1 for b in bodies if b > left.upload_bytes)
        worst = max(worst, upload_bound_s(left, small, over))
    return worst


def longest_idle(samples: list[list[float]] | list[tuple[float, float, int, int]]) -> float:
    """Seconds (wall) of the longest span without a new import, from the first to the last."""
    points = [(float(t), int(n)) for t, _, n, _ in samples]
    started = [i for i, (_, n) in enumerate(points) if n > 0]
    if not started:
        return 0.0
    last_n = points[-1][1]
    ended = next(i for i, (_, n) in enumerate(points) if n == last_n)
    longest = 0.0
    since, seen = points[started[0]][0], points[started[0]][1]
    for t, n in points[started[0] : ended + 1]:
        if n > seen:
            longest = max(longest, t - since)
            since, seen = t, n
    return longest


def run(repeats: int | None = None) -> dict[str, Any]:
    t_start = time.time()
    variants = []
    for bg in BACKGROUND:
        for ratio in RATIOS:
            s = scenario(ratio, bg)
            print(f"== stricter: {s.description}", flush=True)
            res = run_scenario(s, repeats or 1, ceiling=bound_seconds)
            runs = res["runs"]["copyengine"]
            duration = min(r["duration_s"] for r in runs)
            bound = res["extra"]["ceiling_s"]
            idle = longest_idle(res["samples"]["copyengine"]) * TIME_SCALE
            variants.append(
                {
                    "ratio": ratio,
                    "background": bg,
                    "items_per_s": max(r["items_per_s"] for r in runs),
                    "duration_s": duration,
                    "bound_s": bound,
                    "share_of_real_budget": round(bound / duration, 3),
                    "share_429": max(r["share_429"] for r in runs),
                    "throttled_429": max(r["throttled_429"] for r in runs),
                    "longest_idle_service_s": round(idle, 1),
                    "integrity": res["integrity"],
                    "command_parameters": {"limits": s.limits, "background_upload": bg},
                }
            )
            print(f"  {variants[-1]}", flush=True)
    return {
        "scenario": "stricter",
        "description": "the service gives less than the configured [limits] (emulator "
        f"exchange-fast x{TIME_SCALE:g}); {PAIRS} pairs of {ITEMS} items (realistic sizes "
        f"up to {SIZES['max'] // 1000} KB) per variant",
        "command": "python -m benchmarks run stricter",
        **stamp(t_start),
        "variants": variants,
        "verdict": verdicts(variants),
    }


def verdicts(variants: list[dict[str, Any]]) -> list[str]:
    out = []
    for v in variants:
        # the window's own rhythm: the reference run with the same other writer
        ref = next(
            (r for r in variants if r["ratio"] == 1 and r["background"] == v["background"]), None
        )
        rhythm = ref["longest_idle_service_s"] if ref else 0.0
        ok = (
            v["share_of_real_budget"] >= 0.8
            and v["share_429"] < 0.05
            and v["longest_idle_service_s"] < rhythm + SPAN_S
            and v["integrity"]["lost"] == 0
            and v["integrity"]["duplicated"] == 0
        )
        out.append(
            f"1/{v['ratio']}{' + another writer' if v['background'] else ''}: "
            f"{v['share_of_real_budget']:.0%} of the real budget, 429 share "
            f"{v['share_429']:.2%}, longest span without an import "
            f"{v['longest_idle_service_s']:.0f} s (the reference's {rhythm:.0f} s): "
            f"{'met' if ok else 'MISSED'}"
        )
    return out


def table(res: dict[str, Any]) -> str:
    m = res["machine"]
    head = (
        "| service gives | other writer | items/s | job s | bound s | % of real budget "
        "| 429 share | longest idle (service s) | lost / dup |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = [
        f"| 1/{v['ratio']} | {v['background']:.0%} | {v['items_per_s']} | "
        f"{v['duration_s']:.1f} | {v['bound_s']:.1f} | {v['share_of_real_budget']:.0%} | "
        f"{v['share_429']:.2%} | {v['longest_idle_service_s']:.0f} | "
        f"{v['integrity']['lost']} / {v['integrity']['duplicated']} |"
        for v in res["variants"]
    ]
    verdict = "\n".join(f"- {v}" for v in res["verdict"])
    return (
        f"### stricter\n\n{res['description']}. Command: `{res['command']}` "
        f"({res['date']} UTC, {m['cores']} cores, {m['cpu']}, Python {m['python']}).\n\n"
        f"{head}" + "\n".join(rows) + f"\n\nTarget: {TARGET}.\n\n{verdict}\n"
    )
