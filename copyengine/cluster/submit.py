"""``copyengine submit``: the job's pass started (or continued), its mailbox groups planned
(``groups.py``) and every unfinished one queued, locked by its key.

``submit`` takes what ``run`` takes, with the same meaning: ``--full``, ``--cutover`` and
``--retry-failed`` say the kind of pass it starts (its segments copy that way on every
worker; a cutover is signed off once every group is done, ``signoff.py``); ``--pair`` and
``--wave`` the pairs it covers (their groups: the pairs of a group that were not asked for
are left out of it). A pass is started once: submitting again continues the pass under way
(queues its unfinished groups); options that ask for another pass while one is under way
are refused, nothing queued."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from ..config import JobConfig, Pair
from ..controls import env_clock, job_gate
from ..controls.suspend import suspension
from ..errors import ConfigError
from ..pipeline.gate import Gate
from ..plan import PassKind
from ..state.groups import GroupStore
from ..state.records import Control
from .connect import group_store, store_of
from .groups import Group, mailbox_groups
from .jobqueue import apply_schema, make_app, queue_name
from .tasks import defer, defer_sign_off, end_late

log = structlog.get_logger("copyengine.cluster")


@dataclass(frozen=True)
class Asked:
    """What ``submit`` was asked for: the pairs (None: every pair of the job; ``--pair``,
    ``--wave``) and the kind of pass (``--full``, ``--cutover``, ``--retry-failed``)."""

    pairs: tuple[Pair, ...] | None = None
    full: bool = False
    cutover: bool = False
    retry_failed: bool = False

    def __post_init__(self) -> None:
        if sum((self.full, self.cutover, self.retry_failed)) > 1:
            raise ConfigError(
                "--retry-failed, --full, --cutover", "separate kinds of pass; give one"
            )

    @property
    def option(self) -> str | None:
        """The option that says the kind of pass, if one was given."""
        for flag, name in (
            (self.cutover, "--cutover"),
            (self.full, "--full"),
            (self.retry_failed, "--retry-failed"),
        ):
            if flag:
                return name
        return None

    def kind(self, earlier: bool) -> str:
        return PassKind.of(
            cutover=self.cutover, full=self.full, retry=self.retry_failed, earlier=earlier
        ).value


async def current_pass(cfg: JobConfig, asked: Asked = Asked()) -> tuple[int, str, bool]:
    """The pass under way, or a new one of the kind ``asked`` says (the first, or a delta
    pass after a finished one): (its number, its kind, whether it starts now). Asking for
    another kind of pass while one is under way is refused."""
    store = store_of(cfg)
    await store.open()  # the state's tables made first (a new database)
    try:
        await end_passes_due(cfg)
        passes = await store.passes()
        current = next((p for p in reversed(passes) if p["finished"] is None), None)
        if current is None:
            kind = asked.kind(earlier=bool(passes))
            return await store.pass_started(kind), kind, True
        number, kind = int(current["pass"]), str(current["kind"])
        if asked.option is not None and asked.kind(earlier=True) != kind:
            raise ConfigError(
                asked.option,
                f"pass {number} ({kind}) is under way; a pass of another kind starts once "
                "it is finished (`copyengine status` shows its groups; `submit` without "
                "options queues its unfinished ones again)",
            )
        return number, kind, False
    finally:
        await store.close()


def _groups_of_pass(
    cfg: JobConfig, number: int, members: dict[str, tuple[int, str, list[str]]]
) -> list[Group]:
    """The groups recorded for pass ``number``, as the job file has their pairs."""
    by_key = {p.key: p for p in cfg.pairs}
    out = []
    for key, (n, _, pairs) in sorted(members.items()):
        if n == number and all(k in by_key for k in pairs):
            out.append(Group(key, tuple(by_key[k] for k in pairs)))
    return out


def _chosen(
    cfg: JobConfig,
    asked: Asked,
    number: int,
    new: bool,
    members: dict[str, tuple[int, str, list[str]]],
) -> list[Group]:
    """The groups this submit queues (pure): the asked pairs' for a new pass; for the pass
    under way, its own (or, when it has none recorded yet, the asked ones), and asked pairs
    outside it refused."""
    wanted = mailbox_groups(asked.pairs if asked.pairs is not None else cfg.pairs)
    if new:
        return wanted
    recorded = _groups_of_pass(cfg, number, members)
    if not recorded:
        return wanted
    if asked.pairs is not None:
        keys = {g.key for g in recorded}
        outside = [p.key for g in wanted if g.key not in keys for p in g.pairs]
        if outside:
            raise ConfigError(
                "--pair, --wave",
                f"pass {number} is under way without {outside[0]}: it joins the next pass "
                "(submit again once this one is finished)",
            )
        return [g for g in recorded if g.key in {w.key for w in wanted}]
    return recorded


def superseded(
    groups: list[Group], number: int, members: dict[str, tuple[int, str, list[str]]]
) -> list[str]:
    """Rows of earlier passes whose pairs are now in another group (pure)."""
    mine = {g.key for g in groups}
    pairs = {p.key for g in groups for p in g.pairs}
    return [
        key
        for key, (n, state, ps) in members.items()
        if key not in mine and n < number and state != "running" and pairs & set(ps)
    ]


async def submit(cfg: JobConfig, asked: Asked = Asked()) -> dict[str, Any]:
    """Create what is missing, plan the groups, queue every unfinished one. A pass whose
    groups are all finished is over: submitting again starts the next pass (deltas, or the
    kind ``asked`` says)."""
    assert cfg.state_url is not None
    url, pw = cfg.state_url, cfg.state_password
    await apply_schema(url, pw)
    number, kind, new = await current_pass(cfg, asked)
    app = make_app(url, pw)
    queue = queue_name(cfg.identity(), cfg.name)
    async with app.open_async(), group_store(cfg).session() as table:
        members = await table.members()
        groups = _chosen(cfg, asked, number, new, members)
        await table.forget(superseded(groups, number, members))
        controls = await table.controls()
        clock = env_clock()
        gate = job_gate(cfg, clock)
        waits = {g.key: held_until(gate, g, PassKind(kind)) for g in groups}
        at = {k: (clock.real(w[0]), w[1]) for k, w in waits.items() if w is not None}
        counts = await _queue(app, queue, table, groups, number, members, controls, at)
        due = await table.finish_pass_if_done(number) if kind == "cutover" else None
        if due is not None and due.get("sign_off_due"):
            await defer_sign_off(app, queue, number)  # its groups are done: the sign-off
    out = {"pass": number, "kind": kind, "groups": len(groups), **counts, "queue": queue}
    log.info("job.submitted", **out)
    return out


async def end_passes_due(cfg: JobConfig) -> None:
    """A pass (not a cutover) whose groups all ended while its end was never written (the
    worker that ended its last group died between the two writes, and no worker was left to
    see it): ended now, so that this submit starts the next pass rather than refusing
    another kind as "under way" (host soak seed 107)."""
    table = group_store(cfg)
    for number in await table.passes_due():
        await end_late(table, number, "its last group's worker left; ended by submit")


async def requeue_resumed(cfg: JobConfig, resumed: set[str]) -> int:
    """After ``copyengine resume``: every group released suspended that holds a pair of
    ``resumed`` (pair keys) queued again, its segment continuing the pass it belongs to;
    how many were."""
    assert cfg.state_url is not None
    table = group_store(cfg)
    app = make_app(cfg.state_url, cfg.state_password)
    queue = queue_name(cfg.identity(), cfg.name)
    released = {g["group"] for g in await table.read() if g["state"] == "suspended"}
    by_key = {p.key: p for p in cfg.pairs}
    groups = [  # the groups as the table has them (``submit --pair`` makes groups of its own)
        Group(key, tuple(by_key[k] for k in pairs))
        for key, (_, _, pairs) in (await table.members()).items()
        if key in released and all(k in by_key for k in pairs) and any(k in resumed for k in pairs)
    ]
    if not groups:
        return 0
    requeued = 0
    async with app.open_async():
        for g in groups:
            again = await table.unsuspended(g.key)
            if again is not None:
                await defer(app, queue, g.key, again[0], again[1] + 1, g.priority)
                requeued += 1
                log.info("group.resumed", group=g.key)
    return requeued


async def _queue(
    app: Any,
    queue: str,
    table: GroupStore,
    groups: list[Group],
    number: int,
    members: dict[str, tuple[int, str, list[str]]],
    controls: list[Control],
    waits: dict[str, tuple[datetime, str]],
) -> dict[str, int]:
    """Each group of the pass queued unless done or running in it, or released suspended
    when every pair of it is suspended (``copyengine resume`` queues it); a group in
    ``waits`` (every pair held by the clock) queued for then (the system's clock), why."""
    queued = skipped_running = already_done = suspended = waiting = 0
    for g in groups:
        prev = members.get(g.key)
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
        at, why = waits.get(g.key, (None, None))
        await table.queued(g.key, [p.key for p in g.pairs], number, why)
        await defer(app, queue, g.key, number, priority=g.priority, at=at)
        queued += 1  # or waiting in the queue already: once is enough
        waiting += at is not None
    return {
        "queued": queued,
        "running": skipped_running,
        "done": already_done,
        "suspended": suspended,
        "waiting": waiting,
    }


def held_until(gate: Gate, g: Group, kind: PassKind) -> tuple[datetime, str] | None:
    """When a group whose every pair is held by the clock may start (the first of its pairs'
    holds to lift) and why it waits; None when a pair may run now, or one is held only
    by the operator (a suspension: its group is queued on resume)."""
    holds = [gate.hold(p, kind) for p in g.pairs]
    timed = [(h.until, h.text) for h in holds if h is not None and h.until is not None]
    if len(timed) < len(holds):
        return None
    return min(u for u, _ in timed), "; ".join(dict.fromkeys(t for _, t in timed))
