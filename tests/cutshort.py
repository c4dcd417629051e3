"""Runs whose drain is cut short at random moments, checked against the state: after a run
that stopped, the report's per-pair counts (copied, failed, unknown, not attempted) say what
the state says (the overview ``copyengine status`` reads), and the next run, left alone,
finishes the copy exactly. One seed decides everything random in a case (the emulator's
throttling and faults, the job's limits, when the stop comes and how long its drain may
take), so a failing case is reproduced with ``python -m tests.cutshort SEED``.

Used by ``tests/test_cut_short.py`` (a few seeds, and every seed that once failed) and by
``python -m benchmarks soak cutshort`` (many)."""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio

from copyengine.config import load_job
from copyengine.emulator.throttle import Limits
from copyengine.exitcodes import ExitCode
from copyengine.pipeline.stop import StopFlag
from copyengine.wiring import read_overview, run_job
from tests.emu import base_config, running
from tests.jobs import assert_exact, write_job

ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
BIANCA, T_BIANCA = "bianca@contoso.example", "bianca@fabrikam.example"
PAIRS = [(ADELE, T_ADELE), (BIANCA, T_BIANCA)]
STOP_WITHIN_S = 20.0  # the stop comes before this, or when the run ends on its own
RUN_WITHIN_S = 120.0  # a whole run, bounded
# the next run, bounded: it starts at the budget the cut-short run ended with
# (``pacing.remember``), which a run stopped within its first seconds of 429s leaves far
# under the service's (1/12 of [limits], seed 911; 1/45, seed 934), and climbs back
# fivefold per window of the service's (``learn.Aimd.probe``; doubling, seed 934's next run
# took 149 s; 291 s at a quarter per window, more over the configured 300 s window)
NEXT_RUN_WITHIN_S = 300.0


@dataclass(frozen=True)
class Case:
    """Everything random in one case, from its seed."""

    seed: int
    profile: str  # the emulator's: "exchange" (its budgets), "exchange-fast" (time-scaled)
    upload_bytes: int | None  # exchange-fast: the upload budget per (scaled) window
    items: int  # in adele's mailbox (bianca's has 30)
    drop_import: float  # probability an import's answer is lost (it may have landed)
    export_503: float  # probability an export answers 503
    import_503: float  # probability an import answers 503
    limits: str  # the job's [limits]
    drain_timeout_s: float
    stop_after: int  # items in adele's target before the stop (0: at a random time)
    stop_at_s: float  # when stop_after is 0

    @classmethod
    def of(cls, seed: int) -> Case:
        r = random.Random(seed)
        profile = r.choice(["exchange", "exchange-fast", "exchange-fast"])
        upload = r.choice([200_000, 500_000, 1_000_000]) if profile == "exchange-fast" else None
        window = r.choice([1, 2, 5])
        limits = (
            "retry_backoff_cap_s = 0.05\n"
            f"in_flight_per_mailbox = {r.choice([1, 2, 4])}\n"
            f"importers_per_pair = {r.choice([1, 3, 6])}\n"
            f"exporters_per_pair = {r.choice([1, 2])}\n"
            f"batch_items = {r.choice([3, 10, 20])}\n"
            f"max_retry_after_s = {r.choice([0.5, 2, 5])}\n"
        )
        if r.random() < 0.5:  # the job paces to a smaller upload budget than the service's
            limits += f"upload_mb_per_window = {r.choice([0.2, 0.5, 1])}\n"
            limits += f"upload_window_s = {window}\n"
        return cls(
            seed=seed,
            profile=profile,
            upload_bytes=upload,
            items=r.choice([120, 200, 300]),
            drop_import=r.choice([0.0, 0.1, 0.3]),
            export_503=r.choice([0.0, 0.1]),
            import_503=r.choice([0.0, 0.1]),
            limits=limits,
            drain_timeout_s=r.choice([0.05, 0.2, 0.5, 1.0, 2.0, 5.0]),
            stop_after=r.choice([0, 1, 5, 20, 60]),
            stop_at_s=r.uniform(0.05, 3.0),
        )

    def emulator(self) -> dict[str, Any]:
        emu: dict[str, Any] = {"profile": self.profile, "seed": self.seed}
        if self.upload_bytes is not None:
            emu["limits"] = {"upload_bytes": self.upload_bytes, "latency_base": 0.01}
        cfg = base_config(**emu)
        cfg["tenants"][0]["users"][0]["mailbox"]["items"] = self.items
        faults: list[dict[str, Any]] = []
        if self.drop_import:
            faults.append(
                {"kind": "drop_after", "calls": ["importItem"], "probability": self.drop_import}
            )
        for call, p in (("exportItems", self.export_503), ("importItem", self.import_503)):
            if p:
                faults.append(
                    {"kind": "http_503", "calls": [call], "probability": p, "retry_after": 0.01}
                )
        if faults:
            cfg["faults"] = faults
        return cfg


def disagreements(report: dict[str, Any], status: dict[str, Any]) -> list[str]:
    """Where the report of a first run (a fresh state and an empty target) and the state's
    overview disagree, per pair; empty when they agree."""
    out: list[str] = []
    for rp in report["pairs"]:
        # a pair the state has nothing of (the run stopped before it began: soak seed 1436,
        # stopped at 0.65 s, every pair "pending") is one with nothing recorded
        sp = next((p for p in status["pairs"] if p["source"] == rp["source"]), None)
        items = sp["items"] if sp is not None else {}
        pair = f"{rp['source']}: "
        not_attempted = sum(f["not_attempted"] for f in rp["folders"])
        said = {
            "copied": rp["copied"] + rp["already_present"],
            "failed": rp["failed"],
            "unknown": rp["unknown"],
        }
        kept = {
            "copied": items.get("copied", 0) + items.get("already present", 0),
            "failed": items.get("failed", 0),
            "unknown": items.get("unknown", 0),
        }
        for k, n in said.items():
            if n != kept[k]:
                out.append(f"{pair}{k}: the report says {n}, the state {kept[k]}")
        pending = items.get("not attempted", 0)
        # every item the state has as not sent, the report counts as not attempted (the
        # report's count also has items exported or listed but never given an intent)
        if pending > not_attempted:
            out.append(f"{pair}not attempted: the report says {not_attempted}, the state {pending}")
        if rp["unknown"] + not_attempted > rp["not_done"]:
            out.append(
                f"{pair}unknown {rp['unknown']} + not attempted {not_attempted} > "
                f"not done {rp['not_done']}"
            )
    return out


async def _stop_when(case: Case, stop: StopFlag, server: Any, deadline: float) -> None:
    target = server.emulator.require_mailbox(T_ADELE)
    if case.stop_after:
        for _ in range(int(STOP_WITHIN_S / 0.01)):  # bounded: the run may end first
            if len(target.items) >= case.stop_after or time.monotonic() >= deadline:
                break
            await anyio.sleep(0.01)
    else:
        await anyio.sleep(case.stop_at_s)
    stop.drain()


async def run_case(case: Case, tmp: Path) -> list[str]:
    """The case's first run, stopped; the report checked against the state; then a run
    left alone, which must finish exactly. What went wrong, if anything."""
    async with running(case.emulator()) as (server, ep, _):
        path = write_job(tmp, ep, PAIRS, limits=case.limits)
        cfg = load_job(path)
        cfg = replace(cfg, limits=replace(cfg.limits, drain_timeout_s=case.drain_timeout_s))
        stop = StopFlag()
        box: list[Any] = []

        async def go() -> None:
            box.append(await run_job(cfg, stop))
            stop.drain()  # finished on its own: nothing more to stop

        with anyio.fail_after(RUN_WITHIN_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(go)
                await _stop_when(case, stop, server, time.monotonic() + STOP_WITHIN_S)
        report = json.loads(cfg.report_path.read_text())
        status = (await read_overview(cfg)).report()
        problems = disagreements(report, status)
        code = box[0].exit_code()
        if code not in (ExitCode.OK, ExitCode.INTERRUPTED, ExitCode.ITEMS_FAILED):
            problems.append(f"first run: exit code {code.name}: {report.get('fatal')}")
        # the next run, left alone (the service no longer throttled, its faults kept),
        # finishes the target exactly
        server.emulator.set_limits(Limits.profile("unlimited"))
        path = write_job(tmp, ep, PAIRS, limits="retry_backoff_cap_s = 0.05\n")
        with anyio.fail_after(NEXT_RUN_WITHIN_S):
            again = await run_job(load_job(path))
        if again.exit_code() != ExitCode.OK:
            problems.append(f"next run: exit code {again.exit_code().name}")
        else:
            try:
                assert_exact(server.emulator, PAIRS)
            except AssertionError as exc:
                problems.append(f"next run: the target is not exact: {exc}")
        return problems


def check(seed: int) -> list[str]:
    """``run_case`` for ``seed`` in a temporary folder, on its own event loop."""
    with tempfile.TemporaryDirectory(prefix=f"cutshort-{seed}-") as tmp:
        return anyio.run(run_case, Case.of(seed), Path(tmp))


if __name__ == "__main__":  # python -m tests.cutshort SEED...
    from tests.histories import quiet

    quiet()
    bad = 0
    for arg in sys.argv[1:]:
        found = check(int(arg))
        bad += bool(found)
        print(arg, Case.of(int(arg)), *found, sep="\n  ")
    sys.exit(1 if bad else 0)
