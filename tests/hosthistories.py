"""Randomized owner histories on several hosts, checked against ground truth.

The single-host histories (``tests/histories.py``) run each pass in-process; here one job is
shared through PostgreSQL by worker processes (``copyengine submit`` / ``copyengine worker
--until-done``), as on several hosts (docs/several-hosts.md). A *host history* is: two or
three pairs (standard source layouts, 25-60 items, empty targets; each source its owner's
``Generator`` from ``tests/histories.py``), then K rounds of (owner operations on every
source, sometimes target drift and then a ``--full`` pass, sometimes transient service
faults; ``submit``; two or three workers; one *event* while they copy; every worker waited
for), then a pass with no event, then ``submit --cutover`` and ``copyengine verify``. Every
choice comes from ``random.Random(seed)`` (``python -m tests.hosthistories SEED``); when an
event lands in the pass depends on timing, which the log records.

Events (one per round at most, drawn from the seed): a worker killed with **SIGKILL** once
the targets changed (its groups queued again by another worker's reaper after
``stalled_after_s``), **SIGTERM** or **SIGINT** (it drains: exit 130, or 0 if the pass ended
first), sometimes replaced by a new worker; a worker **paused** with SIGSTOP past
``stalled_after_s`` and continued (its group queued again while it still runs: the fence
keeps one segment sending); the **PostgreSQL server restarted** (fast shutdown, every
session cut; back after 1-4 s) during the pass, or between rounds. Transient faults (503s,
imports dropped before they are sent or their answers lost) are armed for some rounds with a
seed of their own.

After every completed pass, checked (``HostPass.failures``):
- the oracle (``tests.histories.oracle``) for every pair: exact, a copy the target's user
  edited excused after a delta pass (it cannot see the target);
- no copy of a live item removed (``tests.histories.removed_live``);
- every worker's exit code what its signal makes it (none: 0; SIGTERM/SIGINT: 130 or 0;
  SIGKILL: -9), none left running past the round's limit, no traceback in any worker's log;
- the state's report of the pass: finished, status ``ok``, nothing failed or unknown, and
  every worker that said ``worker.all_done`` said ``failed=0``;
- at the cutover: every pair signed off, and ``verify``'s exit code 0 exactly when the
  oracle finds the targets exact.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from copyengine.config import load_job
from tests import pg
from tests.emu import SRC_APP, SRC_SECRET, Api, base_config, running
from tests.histories import Generator, live_keys, oracle, removed_live, wrong
from tests.jobs import write_job

# the histories' reason: histories check passes, not pacing
UNPACED = "upload_mb_per_window = 1000000\nrequests_per_window = 10000000"
HEARTBEAT_S = 1
STALLED_AFTER_S = 3
WORKERS = f"heartbeat_s = {HEARTBEAT_S}\nstalled_after_s = {STALLED_AFTER_S}\ndrain_timeout_s = 5\n"
# the contract's transient faults (§6): a 503 with Retry-After, an import's answer lost after
# it was made, a request dropped before it was processed
FAULTS: list[dict[str, Any]] = [
    {"kind": "http_503", "probability": 0.02, "retry_after": 0.2},
    {"kind": "drop_after", "calls": ["importItem"], "probability": 0.01},
    {"kind": "drop_before", "probability": 0.005},
]
EVENTS = ("none", "sigkill", "sigterm", "sigint", "pause", "pg_restart")


@dataclass
class HostOptions:
    rounds: tuple[int, int] = (3, 5)
    pairs: tuple[int, int] = (2, 3)
    items: tuple[int, int] = (25, 60)
    ops: tuple[int, int] = (2, 8)
    workers: tuple[int, int] = (2, 3)
    p_drift: float = 0.25  # target drift (then a --full pass)
    p_full: float = 0.15  # a --full pass without drift
    p_faults: float = 0.5
    p_between: float = 0.2  # a PostgreSQL restart between rounds
    p_quirk: float = 0.4  # the contract's quirks armed for a round (``host_quirks``)
    p_replace: float = 0.6  # a killed worker replaced by a new one
    # each round's event, drawn with these weights (``EVENTS``); a PostgreSQL restart only
    # where the harness runs the server itself (``Server.restartable``)
    weights: tuple[float, ...] = (1.0, 1.5, 1.0, 0.5, 1.0, 1.0)
    round_limit_s: float = 150.0  # a round's workers must all have left by then
    limit_s: float = 600.0  # the whole history
    # events (``EVENTS``), "faults", "quirk", "drift", "between", "cutover" (its events)
    exclude: frozenset[str] = frozenset()


# -- the PostgreSQL server -------------------------------------------------------------------------
class Server:
    """A PostgreSQL server on 127.0.0.1 that this harness may stop (by the postmaster's PID,
    fast shutdown: every session cut) and start again on the same port and data directory
    (``pg.OwnServer``); or one given (``url``), never restarted."""

    def __init__(self, url: str | None = None) -> None:
        self.restartable = url is None
        self.own = pg.OwnServer() if url is None else None
        self.url = self.own.url if self.own is not None else url or ""

    def start(self) -> None:
        if self.own is not None:
            self.own.start()

    async def stop(self) -> None:
        assert self.own is not None
        await anyio.to_thread.run_sync(self.own.stop)

    async def restart(self, down_s: float) -> None:
        await self.stop()
        await anyio.sleep(down_s)
        await anyio.to_thread.run_sync(self.start)

    def close(self) -> None:
        if self.own is not None:
            self.own.close()


# every worker process a history started and has not yet seen end, whatever ``Procs`` it
# belongs to: what ``interruptible`` kills by PID when the harness is stopped
_LIVE: set[subprocess.Popen[bytes]] = set()


def _kill_left() -> None:
    """SIGKILL, by PID, every worker of ours still running (``_LIVE``), a paused one too."""
    for p in list(_LIVE):
        if p.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(p.pid, sig)
                except OSError:
                    pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        _LIVE.discard(p)


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C (SIGINT) or SIGTERM stops the harness (``soak hosts``, ``python -m
    tests.hosthistories``) as a ``KeyboardInterrupt``, once: SIGINT even where it came in
    ignored (a background job of a non-interactive shell: the workers and the PostgreSQL
    server, which set their own handlers, took it and the history went on without them),
    SIGTERM as SIGINT (by default it ended the harness alone, its workers and server left
    running). On the way out, the workers still running are killed by PID (``_LIVE``; the
    history's own ``Procs.kill_all`` may not have run: a second Ctrl-C) and the server is
    stopped by ``own_server`` (by its postmaster's PID)."""

    def as_sigint(signum: int, frame: Any) -> None:
        handler = signal.getsignal(signal.SIGINT)  # asyncio.Runner's within anyio.run
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, as_sigint)
    try:
        yield
    finally:
        _kill_left()
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextmanager
def own_server() -> Iterator[Server]:
    """A restartable server of the harness's own, the template database loaded."""
    srv = Server()
    try:
        srv.start()
        pg.make_template(srv.url)
        yield srv
    finally:
        srv.close()


def host_quirks(
    rng: random.Random, pairs: list[tuple[str, str]], emit: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Fault rules, one to three of the histories' ``QUIRKS`` (the contract's quirks: a
    delta row twice, an export that omits an item, a session dead before an import, a
    request dropped before or after it is processed, a 504), each at one pair's source or
    target, firing once or twice after a few calls of its kind; and sometimes the delta
    links expired (``delta_expire``), said in the op log."""
    from tests.histories import QUIRKS

    out: list[dict[str, Any]] = []
    for kind, calls, side, most, what in rng.sample(QUIRKS, rng.randint(1, 3)):
        s, t = rng.choice(pairs)
        rule: dict[str, Any] = {
            "kind": kind,
            "calls": calls,
            "mailbox": s if side == "source" else t,
            "count": rng.choice((1, 1, 2)),
            "after": rng.randint(0, most),
        }
        if kind == "http_504":
            rule["retry_after"] = 0.2
        out.append(rule)
        emit(f"QUIRK {rule['mailbox']} {'/'.join(calls)} {kind} x{rule['count']} "
             f"after {rule['after']}: {what}")  # fmt: skip
    if rng.random() < 0.3:
        s, _ = rng.choice(pairs)
        out.append({"kind": "delta_expire", "mailbox": s, "count": 1})
        emit(f"QUIRK {s} delta links expired once")
    return out


CUTOVER_EVENTS = ("none", "sigkill", "sigterm", "pause", "pg_restart")


async def _cutover_events(
    rng: random.Random,
    pairs: list[tuple[str, str]],
    api: Api,
    opts: HostOptions,
    emit: Callable[[int, str], None],
    rnd: int,
) -> tuple[str, bool]:
    """The cutover's event and faults, from a stream of their own (``crng``: the first
    stream's history is what it was before them): an event of ``CUTOVER_EVENTS``, often timed
    to the worker that takes the sign-off (``cutover.signing_off`` in its log: that worker is
    the one killed or paused), and sometimes the transient faults or quirks a round may have."""
    event = rng.choices(CUTOVER_EVENTS, weights=(1.0, 1.5, 1.0, 1.0, 1.0))[0]
    at_signoff = rng.random() < 0.6
    rules: list[dict[str, Any]] = []
    if rng.random() < opts.p_faults and "faults" not in opts.exclude:
        rules += [dict(r) for r in FAULTS]
        emit(rnd, "FAULTS transient 503s, imports' answers lost, requests dropped")
    if rng.random() < opts.p_quirk and "quirk" not in opts.exclude:
        rules += host_quirks(rng, pairs, functools.partial(emit, rnd))
    if rules:
        await api.control("PUT", "/faults", {"rules": rules, "seed": rng.getrandbits(32)})
    emit(
        rnd, f"CUTOVER event {event}{' at the sign-off' if at_signoff and event != 'none' else ''}"
    )
    return event, at_signoff


# -- records -----------------------------------------------------------------------------------
@dataclass
class HostPass:
    round: int
    kind: str  # delta, full, final, cutover
    event: str
    seconds: float = 0.0
    submit: int | None = None
    # each worker: its name, the signal sent to it (or ""), its exit code (None: still
    # running at the limit, then killed)
    workers: list[tuple[str, str, int | None]] = field(default_factory=list)
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)  # per pair
    report: dict[str, Any] = field(default_factory=dict)  # the pass's entry of the report
    all_done: list[dict[str, Any]] = field(default_factory=list)  # worker.all_done events
    live_removed: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    verify: int | None = None
    note: str = ""

    def failures(self) -> list[str]:
        out: list[str] = []
        for c in self.counts.values():
            out += wrong(c)
        if self.live_removed:
            out.append("removed_live")
        if self.submit not in (0, None):
            out.append("submit_nonzero")
        for _, sig, rc in self.workers:
            if rc is None:
                out.append("worker_hung")
            elif sig == "SIGKILL":
                if rc not in (-signal.SIGKILL, 0):
                    out.append("worker_exit_after_sigkill")
            elif sig in ("SIGTERM", "SIGINT"):
                if rc not in (130, 0):
                    out.append("worker_exit_after_drain")
            elif rc != 0:
                out.append(f"worker_exit_{rc}")
        if self.tracebacks:
            out.append("traceback")
        rep = self.report
        if not rep:
            out.append("no_pass_in_report")
        else:
            if not rep.get("finished"):
                out.append("pass_not_finished")
            if rep.get("status") != "ok":
                out.append(f"pass_status_{rep.get('status')}")
            ch = rep.get("changes") or {}
            if ch.get("failed") or ch.get("unknown"):
                out.append("pass_failed_or_unknown")
            if self.kind == "cutover" and (
                ch.get("pairs_not_signed_off") or ch.get("pairs_signed_off") != len(self.counts)
            ):
                out.append("cutover_not_signed_off")
        if any(d.get("failed") for d in self.all_done):
            out.append("all_done_failed")
        exact = not any(wrong(c) for c in self.counts.values())
        if self.verify is not None and (self.verify == 0) != exact:
            out.append("verify_disagrees")
        return sorted(set(out))

    def line(self) -> str:
        bad = {p: {k: c[k] for k in wrong(c)} for p, c in self.counts.items() if wrong(c)}
        src = sum(c.get("source_items", 0) for c in self.counts.values())
        dst = sum(c.get("target_items", 0) for c in self.counts.values())
        ws = " ".join(f"{n}{'/' + s if s else ''}={rc}" for n, s, rc in self.workers)
        ver = "" if self.verify is None else f" verify={self.verify}"
        rep = self.report
        return (
            f"r{self.round} {self.kind:<7} {self.event:<10} {self.seconds:5.1f}s submit={self.submit} "
            f"[{ws}] src={src} dst={dst} pass={rep.get('status')}"
            f"{'' if rep.get('finished') else '(unfinished)'}{ver} "
            f"{bad or 'ok'} {self.failures() or ''}{(' ' + self.note) if self.note else ''}"
        )


@dataclass
class HostHistory:
    seed: int
    deletions: str = "mirror"
    pairs: int = 0
    ops: list[str] = field(default_factory=list)
    passes: list[HostPass] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    timed_out: bool = False

    def failures(self) -> list[str]:
        out = [k for p in self.passes for k in p.failures()]
        if self.timed_out:
            out.append("timeout")
        elif self.error:
            out.append("error")
        return sorted(set(out))

    def first_failure(self) -> HostPass | None:
        return next((p for p in self.passes if p.failures()), None)

    def text(self) -> str:
        lines = [
            f"host history seed {self.seed} deletions={self.deletions} pairs={self.pairs} "
            f"{self.seconds:.1f}s failures={self.failures() or 'none'}"
        ]
        by_round: dict[int, list[str]] = {}
        for o in self.ops:
            by_round.setdefault(int(o.split(" ", 1)[0][1:]), []).append(o)
        for p in self.passes:
            for o in by_round.pop(p.round, []):
                lines.append("   " + o)
            lines.append(" = " + p.line())
            for pair, c in p.counts.items():
                for k in wrong(c):
                    lines.append(f"     {pair} {k}: {c['samples'].get(k)}")
            for t in p.tracebacks[:2]:
                lines.append("     traceback: " + t[-600:].replace("\n", " | "))
        for r in sorted(by_round):
            lines += ["   " + o for o in by_round[r]]
        if self.error:
            lines.append(" ! " + self.error)
        return "\n".join(lines)


# -- processes ---------------------------------------------------------------------------------
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "copyengine", *args]


class Procs:
    """The worker processes of a history, each its own log file; killed by PID."""

    def __init__(self, workdir: Path, job: Path) -> None:
        self.workdir, self.job = workdir, job
        self.n = 0
        self.all: list[subprocess.Popen[bytes]] = []

    def worker(self) -> tuple[str, subprocess.Popen[bytes]]:
        self.n += 1
        name = f"w{self.n}"
        log = (self.workdir / f"{name}.log").open("wb")
        p = subprocess.Popen(
            _cli("worker", str(self.job), "--until-done", "--concurrency", "2"),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()
        self.all.append(p)
        _LIVE.add(p)
        return name, p

    def log(self, name: str) -> str:
        f = self.workdir / f"{name}.log"
        return f.read_text(errors="replace") if f.exists() else ""

    def kill_all(self) -> None:
        for p in self.all:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                except OSError:
                    pass
                p.kill()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    pass
            if p.poll() is not None:
                _LIVE.discard(p)


async def _run(cmd: list[str], cwd: Path, limit_s: float = 120.0) -> tuple[int, str]:
    """A short command (``submit``, ``verify``), its exit code and output; the event loop
    (the emulator's) stays free while it runs."""
    with anyio.fail_after(limit_s):
        r = await anyio.run_process(cmd, cwd=cwd, check=False, stderr=subprocess.STDOUT)
    return r.returncode, r.stdout.decode(errors="replace")


async def _wait(procs: list[subprocess.Popen[bytes]], limit_s: float) -> bool:
    for _ in range(int(limit_s / 0.1)):
        if all(p.poll() is not None for p in procs):
            return True
        await anyio.sleep(0.1)
    return False


def _events(text: str, name: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if name in line and line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


# -- one history -------------------------------------------------------------------------------
async def run_host_history(
    seed: int, workdir: Path, server: Server, opts: HostOptions | None = None
) -> HostHistory:
    opts = opts or HostOptions()
    rng = random.Random(f"{seed}/hosts")
    hist = HostHistory(seed)
    hist.deletions = rng.choice(("mirror", "keep"))
    hist.pairs = rng.randint(*opts.pairs)
    cfg = base_config(seed=seed % 1000 + 1)
    src, dst = cfg["tenants"][0], cfg["tenants"][1]
    src["users"] = [
        {
            "upn": f"s{i}@contoso.example",
            "mailbox": {"seed": seed * 10 + i, "items": rng.randint(*opts.items)},
        }
        for i in range(hist.pairs)
    ]
    dst["users"] = [
        {"upn": f"t{i}@fabrikam.example", "mailbox": {"layout": "empty"}} for i in range(hist.pairs)
    ]
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        async with running(cfg) as (emu_server, ep, session):
            with anyio.move_on_after(opts.limit_s) as scope:
                await _host_history(emu_server, ep, session, rng, hist, workdir, server, opts)
            if scope.cancelled_caught:
                hist.timed_out = True
                hist.error = f"timeout: not ended within {opts.limit_s:.0f} s"
    except Exception as exc:  # recorded: a history that breaks is a finding too
        import traceback

        hist.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}"
    hist.seconds = time.monotonic() - t0
    return hist


async def _host_history(
    emu_server: Any,
    ep: Any,
    session: Any,
    rng: random.Random,
    hist: HostHistory,
    workdir: Path,
    server: Server,
    opts: HostOptions,
) -> None:
    emu = emu_server.emulator
    api = Api(ep, session, "contoso", SRC_APP, SRC_SECRET)
    pairs = [(f"s{i}@contoso.example", f"t{i}@fabrikam.example") for i in range(hist.pairs)]
    gens: list[Generator] = []
    for i, (s, t) in enumerate(pairs):
        g = Generator(random.Random(f"{hist.seed}/hosts/{i}"), emu.require_mailbox(s),
                      emu.require_mailbox(t), hist.ops)  # fmt: skip
        g.tag = f"{s.split('@')[0]} "
        gens.append(g)
    db = pg.new_database(server.url)
    segment = rng.choice((0.05, 0.2, 15))
    job = write_job(
        workdir,
        ep,
        pairs,
        extra=f'[sync]\ndeletions = "{hist.deletions}"\n[workers]\n{WORKERS}'
        f"segment_minutes = {segment}\n",
        limits=UNPACED,
    )
    text = job.read_text().replace('state = "state.sqlite"', f'state = "{db}"')
    # info: each worker's ``worker.all_done`` (what ``--until-done`` found) in its log
    job.write_text(text.replace('log_level = "warning"', 'log_level = "info"'))
    cfg = load_job(job)
    procs = Procs(workdir, job)
    qrng = random.Random(f"{hist.seed}/hosts/quirks")
    crng = random.Random(f"{hist.seed}/hosts/cutover")

    def emit(rnd: int, text: str) -> None:
        hist.ops.append(f"r{rnd} {text}")

    emit(0, f"job: {hist.pairs} pairs, deletions={hist.deletions}, segment_minutes={segment}")
    try:
        rounds = rng.randint(*opts.rounds)
        for rnd in range(rounds + 2):
            final, cutover = rnd == rounds, rnd == rounds + 1
            for g in gens:
                g.round = rnd
            args: list[str] = []
            drifted: set[int] = set()
            event = "none"
            at_signoff = False
            if not (final or cutover):
                if rnd > 0:
                    for g in gens:
                        g.round_ops(g.rng.randint(*opts.ops))
                    if rng.random() < opts.p_drift and "drift" not in opts.exclude:
                        for i, g in enumerate(gens):
                            if rng.random() < 0.6:
                                g.drift()
                                drifted.add(i)
                if drifted or rng.random() < opts.p_full:
                    args = ["--full"]
                rules: list[dict[str, Any]] = []
                if rng.random() < opts.p_faults and "faults" not in opts.exclude:
                    rules += [dict(r) for r in FAULTS]
                    emit(rnd, "FAULTS transient 503s, imports' answers lost, requests dropped")
                # the service's documented quirks, from a stream of their own (so that the
                # first stream's history is what it was before them)
                if qrng.random() < opts.p_quirk and "quirk" not in opts.exclude:
                    rules += host_quirks(qrng, pairs, functools.partial(emit, rnd))
                if rules:
                    await api.control(
                        "PUT", "/faults", {"rules": rules, "seed": hist.seed * 100 + rnd}
                    )
                else:
                    await api.control("DELETE", "/faults")
                weights = [
                    0.0 if e in opts.exclude else w
                    for e, w in zip(EVENTS, opts.weights, strict=True)
                ]
                event = rng.choices(EVENTS, weights=weights)[0]
                if rnd > 0 and rng.random() < opts.p_between and "between" not in opts.exclude:
                    down = round(rng.uniform(0.5, 3.0), 1)
                    if server.restartable:
                        emit(rnd, f"PGRESTART between rounds, down {down} s")
                        await server.restart(down)
                    else:
                        emit(rnd, "PGRESTART between rounds left out: not the harness's server")
            else:
                await api.control("DELETE", "/faults")
                if cutover:
                    args = ["--cutover"]
                    if "cutover" not in opts.exclude:
                        event, at_signoff = await _cutover_events(crng, pairs, api, opts, emit, rnd)
            kind = "cutover" if cutover else "final" if final else ("full" if args else "delta")
            rec = await _a_pass(
                rnd, kind, args, event, rng, hist, gens, api, cfg, procs, server, opts, workdir,
                at_signoff,
            )  # fmt: skip
            if cutover:
                await api.control("DELETE", "/faults")  # verify reads a quiet service
            # a copy the target's user edited: excused after a delta pass (it cannot see the
            # target), stale after a pass that listed the target in full
            strict = bool(args)
            for (s, _), g in zip(pairs, gens, strict=True):
                rec.counts[s.split("@")[0]] = oracle(
                    g.box.snapshot(),
                    g.tbox.snapshot(),
                    hist.deletions,
                    set() if strict else g.drift_edited,
                )
                if strict:
                    g.drift_edited.clear()
            if cutover:
                rc, out = await _run(_cli("verify", str(job)), workdir)
                rec.verify = rc
                if rc and rc != 6:
                    rec.note += f" verify said: {out[-300:]!r}"
            hist.passes.append(rec)
    finally:
        procs.kill_all()


async def _a_pass(
    rnd: int,
    kind: str,
    args: list[str],
    event: str,
    rng: random.Random,
    hist: HostHistory,
    gens: list[Generator],
    api: Api,
    cfg: Any,
    procs: Procs,
    server: Server,
    opts: HostOptions,
    workdir: Path,
    at_signoff: bool = False,
) -> HostPass:
    from copyengine.wiring import read_overview

    rec = HostPass(rnd, kind, event)
    t = time.monotonic()
    await api.control("DELETE", "/removals")
    before = live_keys(*(g.box.snapshot() for g in gens))
    rc, out = await _run(_cli("submit", str(procs.job), *args), workdir)
    rec.submit = rc
    if rc:
        rec.note += f" submit said: {out[-300:]!r}"
    n = rng.randint(*opts.workers)
    running_ = [(*procs.worker(), "") for _ in range(n)]
    ws: list[tuple[str, subprocess.Popen[bytes], str]] = list(running_)
    if event != "none":
        # the event once the targets changed (the workers copying), after a few more
        # changes drawn from the seed; bounded: the pass may end first
        start = sum(g.tbox.seq for g in gens)
        want = rng.randint(1, 40)
        signing: list[str] = []  # the worker whose log says it is taking the sign-off
        for _ in range(1200 if at_signoff else 300):
            if at_signoff:
                signing = [n for n, p, _ in ws if "cutover.signing_off" in procs.log(n)]
                if signing:
                    break
            elif sum(g.tbox.seq for g in gens) - start >= want:
                break
            if all(p.poll() is not None for _, p, _ in ws):
                break
            await anyio.sleep(0.05)
        alive = [w for w in ws if w[1].poll() is None]
        if signing:
            hist.ops.append(f"r{rnd} SIGNOFF {signing[0]} is taking the cutover's sign-off")
            alive = [w for w in alive if w[0] == signing[0]] or alive
        moved = sum(g.tbox.seq for g in gens) - start
        # every draw made whatever happens, so that the stream does not depend on timing
        # (which workers are still there) nor on the server (restartable or not)
        down = round(rng.uniform(1.0, 4.0), 1)
        pick = rng.random()
        held = round(STALLED_AFTER_S + 2 * HEARTBEAT_S + rng.uniform(1.0, 4.0), 1)
        replace = rng.random() < opts.p_replace
        if event == "pg_restart" and not server.restartable:
            # the suite's shared server is not the harness's to stop: the history is the
            # same otherwise (the same draws), without the restart
            hist.ops.append(f"r{rnd} PGRESTART left out: the server is not the harness's")
        elif event == "pg_restart":
            hist.ops.append(
                f"r{rnd} PGRESTART during the pass after {moved} target changes, down {down} s"
            )
            await server.restart(down)
        elif alive:
            name, p, _ = alive[int(pick * len(alive))]
            if event == "pause":
                hist.ops.append(
                    f"r{rnd} PAUSE {name} (SIGSTOP) after {moved} target changes for {held} s"
                )
                os.kill(p.pid, signal.SIGSTOP)
                try:
                    await anyio.sleep(held)
                finally:
                    os.kill(p.pid, signal.SIGCONT)
            else:
                sig = {
                    "sigkill": signal.SIGKILL,
                    "sigterm": signal.SIGTERM,
                    "sigint": signal.SIGINT,
                }[event]
                hist.ops.append(f"r{rnd} {sig.name} {name} after {moved} target changes")
                os.kill(p.pid, sig)
                ws = [(nm, pp, sig.name if pp is p else s) for nm, pp, s in ws]
                if replace:
                    name2, p2 = procs.worker()
                    hist.ops.append(f"r{rnd} REPLACE {name} by {name2}")
                    ws.append((name2, p2, ""))
        else:
            hist.ops.append(f"r{rnd} {event.upper()} not sent: every worker had left")
    await _wait([p for _, p, _ in ws], max(1.0, opts.round_limit_s - (time.monotonic() - t)))
    hung = {name for name, p, _ in ws if p.poll() is None}
    for name, p, _ in ws:
        if name in hung:  # still running at the limit: a failure (worker_hung)
            p.kill()
            p.wait(20)
    # what each worker said, and whether the pass ended
    for name, p, sent in ws:
        rec.workers.append((name, sent, None if name in hung else p.returncode))
        text = procs.log(name)
        if "Traceback" in text:
            rec.tracebacks.append(f"{name}: " + text[text.index("Traceback") :][:1500])
        rec.all_done += _events(text, "worker.all_done")
    report = (await read_overview(cfg)).report()
    mine = [ps for ps in report.get("passes", [])]
    rec.report = mine[-1] if mine else {}
    r = await api.control("GET", "/removals")
    after = live_keys(*(g.box.snapshot() for g in gens))
    for g in gens:
        rows = [e for e in r.body["removals"] if e["mailboxId"] == g.tbox.id]
        rec.live_removed += removed_live(rows, before, after, live_keys(g.tbox.snapshot()))
    rec.seconds = time.monotonic() - t
    return rec


def run_one(
    seed: int, workdir: Path, server: Server, opts: HostOptions | None = None
) -> HostHistory:
    return anyio.run(run_host_history, seed, workdir, server, opts)


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.hosthistories SEED [--exclude a,b]``: one host history against a
    PostgreSQL server of its own, its op log
    and every pass's findings printed. The server is started here (restartable), on a free
    port of 127.0.0.1, and stopped by its PID at the end."""
    import argparse
    import tempfile

    from tests.histories import quiet

    ap = argparse.ArgumentParser(prog="python -m tests.hosthistories")
    ap.add_argument("seed", type=int)
    ap.add_argument("--exclude", default="")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (worker logs)")
    a = ap.parse_args(argv)
    quiet()
    opts = HostOptions(exclude=frozenset(x for x in a.exclude.split(",") if x))
    tmp = Path(tempfile.mkdtemp(prefix=f"hosts-{a.seed}-"))
    try:
        with interruptible(), own_server() as srv:
            h = run_one(a.seed, tmp, srv, opts)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: workers killed, the server stopped
        print("interrupted: the workers and the PostgreSQL server stopped")
        if a.keep:
            print(f"work folder: {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        raise SystemExit(130) from None
    print(h.text())
    if a.keep:
        print(f"work folder: {tmp}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    raise SystemExit(1 if h.failures() else 0)


if __name__ == "__main__":
    main()
