"""A shared cutover's end, as ``run --cutover`` ends: once every group of the pass is done or
failed, one worker takes the pass's sign-off (a task of its own, queued by the worker that
ended the last group, or by any worker's reaper or by ``submit`` if that one died): every
pair of the pass judged from the target as it is, the drifted ones listed in full again and
judged again (``pipeline.job.sign_off_pass``, the same code a local run uses), each pair's
entry kept with its statistics of the pass; then the pass is finished with what the
sign-off found."""

from __future__ import annotations

from typing import Any

import anyio
import structlog
from procrastinate import JobContext

from ..failures import classify
from ..pipeline.job import sign_off_pass
from ..pipeline.stop import StopFlag
from ..report import JobStats, iso
from ..state.postgres import StoreUnavailable
from .connect import store_of
from .tasks import RUNTIME, Runtime

log = structlog.get_logger("copyengine.cluster")


def signed_off(sign_off: dict[str, Any]) -> dict[str, int]:
    """What the pass's counters keep of its sign-off (pure)."""
    entries = sign_off.get("pairs", [])
    return {
        "pairs_signed_off": sum(bool(e.get("complete")) for e in entries),
        "pairs_not_signed_off": sum(not e.get("complete") for e in entries),
        "pairs_repaired": len(sign_off.get("repaired", [])),
    }


async def sign_off_task(context: JobContext, pass_number: int) -> None:
    """Pass ``pass_number``'s sign-off (nothing when it is finished already: a task queued
    twice runs once in effect). One that fails finishes the pass as not signed off, with
    the reason in the log (as a local cutover's failure ends its run); the database gone
    past the limit makes the worker leave (the pass's sign-off is queued again)."""
    rt = context.additional_context.get(RUNTIME)
    if not isinstance(rt, Runtime):
        raise RuntimeError("the sign-off runs only inside `copyengine worker`")
    try:
        await _sign_off(rt, pass_number)
    except StoreUnavailable as exc:
        rt.give_up(str(exc))
    except Exception as exc:
        verdict = classify(exc)
        log.error("cutover.sign_off_failed", pass_number=pass_number, error=verdict.message)
        keys = await rt.table.pass_pairs(pass_number)
        failed = {"pairs_signed_off": 0, "pairs_not_signed_off": len(keys), "sign_off_failed": 1}
        summary = await rt.table.finish_pass_if_done(pass_number, failed)
        if summary is not None:
            rt.notices.shared_pass_finished(summary)


async def _sign_off(rt: Runtime, pass_number: int) -> None:
    state = await rt.table.pass_state(pass_number)
    if state is None or state[1]:
        return
    keys = set(await rt.table.pass_pairs(pass_number))
    pairs = tuple(p for p in rt.cfg.pairs if p.key in keys)
    if rt.sign_off is None or not pairs:
        raise RuntimeError(f"pass {pass_number}: no pair of this job file to sign off")
    stats = JobStats()
    for p in pairs:
        stats.pair(p.key, p.source, p.target)
    stats.pass_info = {"number": pass_number, "kind": "cutover", "started": iso(None)}
    stop = StopFlag()
    log.info("cutover.signing_off", pass_number=pass_number, pairs=len(pairs))
    store = store_of(rt.cfg, pass_number=pass_number)
    async with store, anyio.create_task_group() as tg:

        async def follow() -> None:
            await rt.stop.wait()
            stop.reason = rt.stop.reason or "the worker is stopping"
            stop.drain()

        tg.start_soon(follow)
        passes = {p["pass"]: p for p in await store.passes()}
        stats.pass_info["started"] = iso(passes.get(pass_number, {}).get("started"))
        await sign_off_pass(rt.cfg, rt.clients, store, pairs, stats, stop, rt.sign_off, rt.budget)
        tg.cancel_scope.cancel()
    if stop.draining or stats.sign_off is None:
        # the worker stops: the pass stays open, and any worker's reaper queues its
        # sign-off again
        log.warning("cutover.sign_off_interrupted", pass_number=pass_number)
        return
    found = signed_off(stats.sign_off)
    rt.notices.signed_off(stats)
    summary = await rt.table.finish_pass_if_done(pass_number, found)
    log.info("cutover.signed_off", pass_number=pass_number, **found)
    if summary is not None:  # the pass ended here: announced once
        rt.notices.shared_pass_finished(summary)
