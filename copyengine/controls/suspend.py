"""Suspend and resume (``copyengine suspend|resume job.toml --pair UPN|--wave N|--all``),
like Microsoft's Suspend-MoveRequest / Resume-MoveRequest, recorded in the job's state
(``Store.controls``) without taking the job's lock, so that another shell may give them
while a run or the workers copy.

**Which command decides.** Each command is recorded with its scope (a pair, a wave, the
whole job) and its order; the latest command that names a pair, by itself, by its wave or
by ``--all``, decides whether it is suspended. So ``resume --pair`` of one pair inside a
suspended wave resumes that pair alone (move requests are per mailbox), a later ``suspend
--wave`` of its wave suspends it again, and ``resume --all`` resumes everything.

``SuspendSource`` is the gate's source: ``refresh`` reads the commands from the store (once
a second), ``hold`` says whether one suspends a pair."""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import structlog

from ..config import JobConfig, Pair
from ..errors import StateError
from ..pipeline.gate import Hold, HoldKind
from ..plan import PassKind
from ..report import iso
from ..state import Store
from ..state.records import Control

log = structlog.get_logger("copyengine.controls")

SUSPENDED, RESUMED = "suspended", "resumed"
PAIR, WAVE, ALL = "pair", "wave", "all"
LISTED = 10  # pairs named in a command's answer; the rest are counted
READ_S = 10.0  # the longest a read of the controls may hold up the end of a run


def operator() -> str:
    """Who gives a command: the user and the host (``alice@ops-1``)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def names(c: Control, pair: Pair) -> bool:
    """Whether the command ``c`` names ``pair`` (by its key, its wave, or ``--all``)."""
    if c.scope == ALL:
        return True
    if c.scope == WAVE:
        return bool(pair.wave) and c.target == pair.wave
    return c.scope == PAIR and c.target == pair.key


def suspension(pair: Pair, controls: Sequence[Control]) -> Control | None:
    """The command that suspends ``pair`` (the latest naming it, if it suspends), or None."""
    latest = max((c for c in controls if names(c, pair)), key=lambda c: c.seq, default=None)
    return latest if latest is not None and latest.state == SUSPENDED else None


def resume_flag(c: Control, pair: Pair) -> str:
    """The ``resume`` option that lifts ``c`` for ``pair``."""
    if c.scope == ALL:
        return "--all"
    if c.scope == WAVE:
        return f"--wave {c.target}"
    return f"--pair {pair.source}"


def hold_text(c: Control, pair: Pair, job_file: str) -> str:
    """What the screen, ``status`` and the report say of a suspended pair."""
    why = f": {c.reason}" if c.reason else ""
    return (
        f"suspended by {c.who} at {iso(c.since)}{why} "
        f"(copyengine resume {job_file} {resume_flag(c, pair)})"
    )


class SuspendSource:
    """The gate's source of suspensions: the commands in the job's state, read by
    ``refresh`` (the store must be open; until it is, or while it cannot be read, what was
    read last holds)."""

    def __init__(self, store: Store, job_file: str) -> None:
        self.store = store
        self.job_file = job_file
        self.controls: list[Control] = []
        self._unreadable: str | None = None

    async def refresh(self) -> None:
        try:
            # a read of a few rows, not cut off by the end of the run or segment (a query
            # cancelled midway costs the pool its connection), but bounded
            with anyio.CancelScope(shield=True), anyio.move_on_after(READ_S):
                self.controls = await self.store.controls()
        except StateError as exc:
            if str(exc) != self._unreadable:
                log.warning("controls.unreadable", error=str(exc), kept=len(self.controls))
            self._unreadable = str(exc)
            return
        self._unreadable = None

    def hold(self, pair: Pair, kind: PassKind) -> Hold | None:
        c = suspension(pair, self.controls)
        return None if c is None else Hold(HoldKind.SUSPENDED, hold_text(c, pair, self.job_file))


@dataclass
class Change:
    """What a ``suspend`` or ``resume`` did: the pairs it changed, those already so."""

    verb: str  # "suspend" or "resume"
    scope: str
    targets: tuple[str, ...]
    changed: list[Pair] = field(default_factory=list)
    already: list[Pair] = field(default_factory=list)

    def lines(self) -> list[str]:
        done = "suspended" if self.verb == "suspend" else "resumed"
        where = {ALL: "", WAVE: f" (wave {', '.join(self.targets)})", PAIR: ""}[self.scope]
        out = []
        if self.changed:
            out.append(f"{done} {_count(self.changed)}{where}: {_listed(self.changed)}")
        if self.already:
            state = "already suspended" if self.verb == "suspend" else "not suspended"
            lead = "nothing changed: " if not self.changed else ""
            out.append(f"{lead}{_count(self.already)} {state}: {_listed(self.already)}")
        return out


def _count(pairs: Sequence[Pair]) -> str:
    return f"{len(pairs)} pair" + ("" if len(pairs) == 1 else "s")


def _listed(pairs: Sequence[Pair]) -> str:
    shown = ", ".join(f"{p.source} -> {p.target}" for p in pairs[:LISTED])
    return shown + (f" … and {len(pairs) - LISTED} more" if len(pairs) > LISTED else "")


async def apply(
    store: Store,
    cfg: JobConfig,
    verb: str,
    scope: str,
    targets: tuple[str, ...],
    chosen: Sequence[Pair],
    reason: str | None = None,
) -> Change:
    """``suspend`` or ``resume`` the pairs ``chosen`` (named by ``scope`` and ``targets``:
    pair keys, wave labels, or nothing for ``--all``) in ``store`` (open). Idempotent: a
    command that changes no pair writes nothing (the first suspension's who, when and why
    stay)."""
    want = verb == "suspend"
    before = await store.controls()
    change = Change(verb, scope, targets)
    for p in chosen:
        is_suspended = suspension(p, before) is not None
        (change.already if is_suspended == want else change.changed).append(p)
    if not change.changed:
        return change
    state, who, now = (SUSPENDED if want else RESUMED), operator(), time.time()
    if scope == PAIR:  # a pair already so keeps its own record (who, when, why)
        targets = tuple(p.key for p in change.changed)
    for target in targets or ("",):
        c = Control(scope, target, state, who, now, reason if want else None, 0)
        await store.set_control(c, replace_all=scope == ALL)
    log.info(
        f"controls.{verb}d",
        scope=scope,
        targets=list(targets),
        pairs=[p.key for p in change.changed],
        by=who,
        reason=reason,
    )
    return change


def suspended_pairs(cfg: JobConfig, controls: Sequence[Control]) -> list[dict[str, object]]:
    """The job's suspended pairs, by whom, when and why (``status``)."""
    out: list[dict[str, object]] = []
    for p in cfg.pairs:
        c = suspension(p, controls)
        if c is not None:
            out.append(
                {
                    "pair": p.key,
                    "source": p.source,
                    "target": p.target,
                    "scope": c.scope if c.scope != WAVE else f"wave {c.target}",
                    "by": c.who,
                    "at": iso(c.since),
                    "reason": c.reason,
                    "resume": f"copyengine resume {cfg.path.name} {resume_flag(c, p)}",
                }
            )
    return out
