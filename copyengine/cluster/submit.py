"""``copyengine submit``: the job's pass started (or continued), its mailbox groups planned
(``groups.py``) and every unfinished one queued, locked by its key."""

from __future__ import annotations

from typing import Any

import structlog

from ..config import JobConfig
from ..controls.suspend import suspension
from .connect import group_store, store_of
from .groups import mailbox_groups
from .jobqueue import apply_schema, make_app, queue_name
from .tasks import defer

log = structlog.get_logger("copyengine.cluster")


async def current_pass(cfg: JobConfig) -> tuple[int, str]:
    """The pass under way, or a new one (the first, or a delta pass after a finished one)."""
    store = store_of(cfg)
    await store.open()
    try:
        passes = await store.passes()
        current = next((p for p in reversed(passes) if p["finished"] is None), None)
        if current is None:
            kind = "delta" if passes else "first"
            return await store.pass_started(kind), kind
        return int(current["pass"]), str(current["kind"])
    finally:
        await store.close()


async def submit(cfg: JobConfig) -> dict[str, Any]:
    """Create what is missing, plan the groups, queue every unfinished one. A pass whose
    groups are all finished is over: submitting again starts the next pass (deltas)."""
    assert cfg.state_url is not None
    url, pw = cfg.state_url, cfg.state_password
    await apply_schema(url, pw)
    number, kind = await current_pass(cfg)
    groups = mailbox_groups(cfg.pairs)
    app = make_app(url, pw)
    queue = queue_name(cfg.identity(), cfg.name)
    queued = skipped_running = already_done = suspended = 0
    async with app.open_async(), group_store(cfg).session() as table:
        known = await table.known()
        controls = await table.controls()
        for g in groups:
            prev = known.get(g.key)
            if prev is not None and prev[0] == number:
                if prev[1] == "done":
                    already_done += 1
                    continue
                if prev[1] == "running":
                    skipped_running += 1
                    continue
            if all(suspension(p, controls) is not None for p in g.pairs):
                await table.held(g.key, [p.key for p in g.pairs], number)
                suspended += 1  # `copyengine resume` queues it
                continue
            await table.queued(g.key, [p.key for p in g.pairs], number)
            await defer(app, queue, g.key, number)
            queued += 1  # or waiting in the queue already: once is enough
    out = {
        "pass": number,
        "kind": kind,
        "groups": len(groups),
        "queued": queued,
        "running": skipped_running,
        "done": already_done,
        "suspended": suspended,
        "queue": queue,
    }
    log.info("job.submitted", **out)
    return out


async def requeue_resumed(cfg: JobConfig, resumed: set[str]) -> int:
    """After ``copyengine resume``: every group released suspended that holds a pair of
    ``resumed`` (pair keys) queued again, its segment continuing the pass it belongs to;
    how many were."""
    assert cfg.state_url is not None
    table = group_store(cfg)
    app = make_app(cfg.state_url, cfg.state_password)
    queue = queue_name(cfg.identity(), cfg.name)
    released = {g["group"] for g in await table.read() if g["state"] == "suspended"}
    groups = [
        g
        for g in mailbox_groups(cfg.pairs)
        if g.key in released and any(p.key in resumed for p in g.pairs)
    ]
    if not groups:
        return 0
    requeued = 0
    async with app.open_async():
        for g in groups:
            again = await table.unsuspended(g.key)
            if again is not None:
                await defer(app, queue, g.key, again[0], again[1] + 1)
                requeued += 1
                log.info("group.resumed", group=g.key)
    return requeued
