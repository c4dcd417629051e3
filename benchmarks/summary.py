"""The summary table of ``benchmarks/results/README.md``, from ``benchmarks/results/*.json``:
``python -m benchmarks.summary``."""

from __future__ import annotations

import json
from typing import Any

from benchmarks.__main__ import SCENARIOS, TARGETS
from benchmarks.common import RESULTS


def _m(res: dict[str, Any], c: str, k: str) -> float:
    return float(res["summary"][c][k]["median"])


def incremental_row(res: dict[str, Any]) -> str:
    a, b = res["first_pass"], res["second_pass"]
    figures = (
        f"first pass {a['copied']:,} items in {a['duration_s']:.1f} s; second pass "
        f"{res['changes_made']:,} changes in {b['duration_s']:.2f} s, {b['requests']:,} requests"
    )
    verdict = "; ".join(v for v in res["verdict"] if not v.startswith("snapshots"))
    integ = res["verdict"][0].removeprefix("snapshots ")
    return f"| incremental | {figures} | {verdict} | {integ} | {res['date']} |"


def hosts_row(res: dict[str, Any]) -> str:
    h = {x["workers"]: x for x in res["hosts"]}
    figures = ", ".join(f"{n} worker(s) {x['items_per_s']:.1f} items/s" for n, x in h.items())
    verdict = "; ".join(v for v in res["verdict"] if not v.startswith("snapshots"))
    integ = res["verdict"][0].removeprefix("snapshots: ")
    return f"| hosts | {figures} | {verdict} | {integ} | {res['date']} |"


def fleet_row(res: dict[str, Any]) -> str:
    figures = ", ".join(
        f"{x['pairs']} pairs: {x['mb_per_s']:.1f} MB/s, worst mailbox {x['ceiling_pct_worst']}%"
        for x in res["steps"]
        if x.get("contender", "copyengine") == "copyengine"
    )
    return f"| fleet | {figures} | {'; '.join(res['verdict'])} | - | {res['date']} |"


def row(name: str, res: dict[str, Any]) -> str:
    contenders = list(res["summary"])
    main = contenders[0]
    s = res["summary"][main]
    figures = (
        f"{_m(res, main, 'items_per_s'):,.0f} items/s, {_m(res, main, 'mb_per_s'):.1f} "
        f"MB/s, peak RSS {s['peak_rss_mb']['max']:.0f} MB, 429 share "
        f"{_m(res, main, 'share_429'):.2%}"
    )
    verdict = "; ".join(v for v in res.get("verdict", []) if not v.startswith("integrity"))
    integ = res.get("integrity") or {}
    lost = (
        f"{integ.get('lost', '-')} lost / {integ.get('duplicated', '-')} dup of "
        f"{integ.get('items_checked', '-')}"
    )
    return f"| {name} | {figures} | {verdict} | {lost} | {res['date']} |"


def main() -> None:
    print("| scenario | copyengine (median) | against target | integrity | run (UTC) |")
    print("|---|---|---|---|---|")
    for name in SCENARIOS:
        path = RESULTS / f"{name}.json"
        if path.exists():
            print(row(name, json.loads(path.read_text())))
    inc = RESULTS / "incremental.json"
    if inc.exists():
        print(incremental_row(json.loads(inc.read_text())))
    hosts = RESULTS / "hosts.json"
    if hosts.exists():
        print(hosts_row(json.loads(hosts.read_text())))
    fleet = RESULTS / "fleet.json"
    if fleet.exists():
        print(fleet_row(json.loads(fleet.read_text())))
    print()
    for name in [*SCENARIOS, "incremental", "hosts", "fleet"]:
        print(f"- `{name}` target: {TARGETS[name]}")


if __name__ == "__main__":
    main()
