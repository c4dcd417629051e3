"""Accounting apart from logging: per pair and per folder counters from which progress, the
JSON report, the summary table and the exit code are all computed."""

from __future__ import annotations

import glob
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import orjson

from .config import MB
from .exitcodes import ExitCode
from .pacing import learn, remember
from .pacing.accounting import AccountView
from .pacing.proof import NOTHING

if TYPE_CHECKING:
    from .config import JobConfig

MAX_FAILURES_LISTED = 1000
MAX_TIMELINE = 1000


def iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def job_names(cfg: JobConfig) -> dict[str, Any]:
    """Who the report is for: the job (``[job] name``, else the job file's name without its
    suffix) and its two tenants (their ids, and the mail domains of the job's pairs)."""

    def domains(upns: list[str]) -> list[str]:
        return sorted({u.rpartition("@")[2].lower() for u in upns if "@" in u})

    return {
        "name": cfg.name or cfg.path.stem,
        "source_tenant": cfg.source.tenant_id,
        "target_tenant": cfg.target.tenant_id,
        "source_domains": domains([p.source for p in cfg.pairs]),
        "target_domains": domains([p.target for p in cfg.pairs]),
    }


def new_run_id() -> str:
    """Sortable by start time, unique across processes and runs: 20261201T213028.123Z-ab12."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}Z-{os.urandom(2).hex()}"


@dataclass(slots=True)
class FolderStats:
    source_path: str
    target_path: str = ""
    source_items: int = 0
    source_bytes: int = 0
    copied: int = 0
    copied_bytes: int = 0
    already_present: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_items: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    # outcome unknown at the end of the run (an import was sent; whether it landed could not
    # be established): never counted as failed, settled by the next run
    unknown: list[dict[str, Any]] = field(default_factory=list)
    # selected but not attempted in this run (stopped first); the next run copies them
    not_attempted: int = 0
    names: tuple[str, ...] = ()
    # later passes: how the folder was read, and the changes applied to its copy
    mode: str = "full"  # full | delta | expired (the stored link was refused: full)
    updated: int = 0  # changed at the source: updated in place in the target
    moved_in: int = 0  # arrived from another folder (the old copy removed)
    moved_out: int = 0
    deleted: int = 0  # deleted at the source, deleted in the target (deletions = "mirror")
    kept: int = 0  # deleted at the source, kept in the target (deletions = "keep")
    drift: list[dict[str, Any]] = field(default_factory=list)  # the target changed under us
    # a pair continued after a hold may list a folder again in the same pass: the listing's
    # counts start over there, and the items it had already done, seen again as present,
    # are not counted twice (``continued``, ``Ledger.listed``, ``Ledger.present``)
    relist: bool = False
    present_offset: int = 0

    def continued(self) -> None:
        """Its pair was held and continues: if this folder is listed again, what a listing
        counts starts over (``restart_listing``, at its first item); what was done stays
        done, once. A folder the continuation does not list again keeps its counts."""
        self.relist = True
        self.not_attempted = 0
        self.unknown.clear()  # settled again by the continuation

    def restart_listing(self) -> None:
        self.relist = False
        self.present_offset = self.copied + self.updated + self.moved_in
        self.source_items = self.source_bytes = self.already_present = 0
        self.skipped.clear()
        self.skipped_items.clear()
        self.failed.clear()

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_path": self.source_path,
            "source_names": list(self.names),
            "target_path": self.target_path,
            "source_items": self.source_items,
            "source_bytes": self.source_bytes,
            "copied": self.copied,
            "copied_bytes": self.copied_bytes,
            "already_present": self.already_present,
            "skipped": dict(self.skipped),
            "skipped_items": self.skipped_items[:MAX_FAILURES_LISTED],
            "failed": len(self.failed),
            "failures": self.failed[:MAX_FAILURES_LISTED],
            "unknown": len(self.unknown),
            "unknown_items": self.unknown[:MAX_FAILURES_LISTED],
            "not_attempted": self.not_attempted,
            "mode": self.mode,
            "changes": {
                "created": self.copied,
                "updated": self.updated,
                "moved": self.moved_in,
                "deleted": self.deleted,
                "kept": self.kept,
            },
            "drift": len(self.drift),
            "drift_items": self.drift[:MAX_FAILURES_LISTED],
        }


ROLES = ("source", "target", "source archive", "target archive")  # a pair's pacers, in order
NOTES_SAID = 5  # pairs whose archive note the summary and ``job.finished`` say one by one
# a pair's note on a folder deleted at the source while its pass read it
# (``pipeline.produce``, ``PairStats.gone_at_source``), said after the summary's table too
# (``JobStats.gone_notes``)
GONE_AT_SOURCE = "was deleted at the source during the pass"


def hints_said(advice: Iterable[Mapping[str, Any]]) -> list[str]:
    """The hints, once per ``[limits]`` key, from advice as the state keeps it
    (``learn.Advice`` as dicts: ``state.pairpasses.PairPass.hints``)."""
    return learn.say([learn.Advice(**a) for a in advice])


def budget_said(budget: Mapping[str, Mapping[str, float]]) -> str:
    """A pair's budget in effect in words (``PairStats.budget_in_effect``, as the state
    keeps it too): "target upload 76% of [limits]", or "all of [limits]"."""
    cut = [
        f"{role} {limit} {learn.fraction(share)}"
        for role, limits in budget.items()
        for limit, share in limits.items()
    ]
    return f"{', '.join(cut)} of [limits]" if cut else "all of [limits]"


def archive_note(counts: Mapping[str, int]) -> str | None:
    """An auto-expanding archive's redirects in words (a note, not a failure); None: none."""
    if not (counts.get("redirected") or counts.get("sessions_renewed")):
        return None
    n = counts.get("answers_409", 0)
    answered = f" ({n} import request(s) answered 409, retried)" if n else ""
    return (
        f"auto-expanding archive: {counts.get('redirected', 0)} item(s) exported from an "
        f"auxiliary archive where the service redirected them, "
        f"{counts.get('sessions_renewed', 0)} import session(s) made anew on the import "
        f"host's 409{answered}; none is a failure"
    )


class PairStatus(StrEnum):
    PENDING = "pending"  # not started (yet)
    RUNNING = "running"
    DONE = "done"  # every listed item has its outcome (see failed/unknown per item)
    FAILED = "failed"  # the pair stopped on an error (``error``, ``error_code``)
    INTERRUPTED = "interrupted"  # a drain or an abort stopped it; run again to finish
    SUSPENDED = "suspended"  # the operator suspended it (``copyengine resume`` continues it)
    WAITING = "waiting"  # held by its schedule, start_after or complete_after (``hold``)
    PAUSED = "paused"  # stopped by the run's cap (``run --max-items/--max-mb``: ``hold``)


# held by the operator's controls at the end of a run: neither failed nor done
HELD = (PairStatus.SUSPENDED, PairStatus.WAITING)
# a pair in one of these changes no more in this run
FINAL = (PairStatus.DONE, PairStatus.FAILED)
T = TypeVar("T")


class FolderCounts(NamedTuple):
    """A pair's counts summed over its folders (``PairStats.counts``)."""

    source_items: int
    source_bytes: int
    copied: int
    copied_bytes: int
    already_present: int
    skipped: int
    failed: int
    unknown: int
    done: int  # items with a final outcome (``PairStats.done_items``)


@dataclass
class PairStats:
    source: str
    target: str
    status: PairStatus = PairStatus.PENDING
    error: str | None = None
    error_code: str | None = None
    started: float | None = None
    finished: float | None = None
    folders: dict[str, FolderStats] = field(default_factory=dict)
    enumerated_all: bool = False
    # the accounts of the pair's mailboxes' pacers (source, target; then the archives'), read
    # live; frozen values at the end
    pacers: list[AccountView] = field(default_factory=list, repr=False)
    # each account's counts when the pair took it (``watch``): a worker's pacers outlive a
    # segment, and the pair's figures are what happened since
    pacer_base: dict[int, tuple[int, float, int, dict[str, int]]] = field(
        default_factory=dict, repr=False
    )
    policy: dict[str, Any] = field(default_factory=dict)  # large items, bad-item limit
    # later passes: folders created, renamed, moved, deleted in the target; and notes on
    # what the pass found (rules changed, target folders deleted under us)
    folder_changes: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    # the folders deleted at the source while the pass read them (``pipeline.produce``), by
    # source path: their note (one of ``notes``), said after the summary's table too
    # (``JobStats.gone_notes``), never picked out of the notes by their words
    gone_at_source: dict[str, str] = field(default_factory=dict)
    # the budget in effect a later pass started at, remembered from its last pass
    # (``pipeline.remember``): per role and limit, the share it started at
    remembered: dict[str, dict[str, float]] | None = None
    # why it is suspended or waiting (``pipeline.gate.Hold.text``), or paused (the cap)
    hold: str | None = None
    # auto-expanding archives (not failures): items exported from an auxiliary archive after
    # a redirect ("redirected"), import sessions made anew on the import host's 409
    # ("sessions_renewed"), target folders found to import through an auxiliary archive
    # ("folders_moved")
    archive_redirects: Counter[str] = field(default_factory=Counter)
    # the accounts of auxiliary archives the pair reached (their own budgets): in the pair's
    # requests and 429s, not in its ceiling (that is its target mailboxes')
    aux_pacers: list[AccountView] = field(default_factory=list, repr=False)
    _final: tuple[int, float, int, float | None, float | None] | None = None
    # the budget in effect, the advice, the windows shorter than configured the service
    # showed and those tried in its place, frozen at the pair's end (``freeze_pacing``)
    _final_budget: (
        tuple[
            dict[str, dict[str, float]],
            list[learn.Advice],
            dict[str, dict[str, float]],
            dict[str, dict[str, float]],
        ]
        | None
    ) = None
    # ``total``'s sums of a finished pair, with what they were summed under
    _sums: tuple[tuple[str, float, int], dict[str, Any]] | None = field(
        default=None, repr=False, compare=False
    )

    def folder(self, path: str, names: tuple[str, ...] = ()) -> FolderStats:
        fs = self.folders.get(path)
        if fs is None:
            fs = self.folders[path] = FolderStats(path, names=names)
        return fs

    def watch(self, account: AccountView) -> None:
        """A mailbox's account read from now on (its counts so far are not the pair's)."""
        self.pacers.append(account)
        self.pacer_base[id(account)] = (
            account.throttled_total(),
            account.throttle_wall_s(),
            account.requests_total(),
            account.throttled_by_reason(),
        )

    def _accounts(self) -> tuple[AccountView, ...]:
        return (*self.pacers, *self.aux_pacers)

    def _base(self, account: AccountView) -> tuple[int, float, int, dict[str, int]]:
        return self.pacer_base.get(id(account), (0, 0.0, 0, {}))

    @property
    def throttled(self) -> int:
        """429s answered to this pair's requests so far."""
        if self._final is not None:
            return self._final[0]
        return sum(p.throttled_total() - self._base(p)[0] for p in self._accounts())

    @property
    def throttle_wait_s(self) -> float:
        """Wall-clock seconds the pair was held back by throttling: the larger of its two
        mailboxes' (each a union over tasks, so never more than the pair lasted)."""
        if self._final is not None:
            return self._final[1]
        return max((p.throttle_wall_s() - self._base(p)[1] for p in self._accounts()), default=0.0)

    @property
    def requests(self) -> int:
        if self._final is not None:
            return self._final[2]
        return sum(p.requests_total() - self._base(p)[2] for p in self._accounts())

    def throttled_by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self._accounts():
            before = self._base(p)[3]
            for reason, n in p.throttled_by_reason().items():
                if n - before.get(reason, 0):
                    out[reason] = out.get(reason, 0) + n - before.get(reason, 0)
        return out

    @property
    def throttled_now(self) -> bool:
        """Requests of the pair wait on a budget or the service's Retry-After right now."""
        return self._final is None and any(p.waiting for p in self._live())

    @property
    def service_throttled_now(self) -> bool:
        """Of them, some on the service's Retry-After (a 429)."""
        return self._final is None and any(p.waiting_on_service for p in self._live())

    @property
    def pacing_now(self) -> bool:
        """Requests of the pair wait on the job's own budget alone right now (``[limits]``,
        or what the service's 429s left of it), none on the service's Retry-After."""
        return self.throttled_now and not self.service_throttled_now

    def _live(self) -> tuple[AccountView, ...]:
        return (*self.pacers, *self.aux_pacers)

    @property
    def ceiling_pct(self) -> float | None:
        """% of the ceiling while active, of the pair's busiest target mailbox (the import
        side is what Exchange's budgets bind): of the budget in effect, what the service let
        the pair have (``[limits]`` unless its 429s cut them; ``limit_pct``: of
        ``[limits]``)."""
        if self._final is not None:
            return self._final[3]
        shares = [s for s in (p.ceiling_share() for p in self.pacers[1::2]) if s is not None]
        return round(100 * max(shares), 1) if shares else None

    @property
    def limit_pct(self) -> float | None:
        """``ceiling_pct`` against the configured ``[limits]`` (Exchange's documented
        limits by default): the same while the service gave them; a pair the service gave
        a tenth reads about a tenth here, and near 100% in ``ceiling_pct``."""
        if self._final is not None:
            return self._final[4]
        shares = [s for s in (p.limit_share() for p in self.pacers[1::2]) if s is not None]
        return round(100 * max(shares), 1) if shares else None

    def continued(self) -> None:
        """It was held (suspended, its window closed) and continues in this run."""
        self._final, self.hold, self._sums = None, None, None
        for f in self.folders.values():
            f.continued()

    def freeze_pacing(self) -> None:
        self._final_budget = (
            self.budget_in_effect(),
            self.budget_advice(),
            self.budget_windows(),
            self.budget_windows(tried=True),
        )
        self._final = (
            self.throttled,
            self.throttle_wait_s,
            self.requests,
            self.ceiling_pct,
            self.limit_pct,
        )

    def _mailboxes(self) -> list[tuple[str, str, AccountView]]:
        """(role, name, account) of the pair's mailboxes, in the order of ``pacers``."""
        names = (self.source, self.target)
        return [
            (ROLES[i], names[i % 2] + (" (archive)" if i >= 2 else ""), p)
            for i, p in enumerate(self.pacers[: len(ROLES)])
        ]

    def budget_in_effect(self) -> dict[str, dict[str, float]]:
        """Per mailbox of the pair (``ROLES``), the limits whose budget the service's 429s
        cut, as the share of ``[limits]`` the pacer allows itself now."""
        if self._final_budget is not None:
            return self._final_budget[0]
        out: dict[str, dict[str, float]] = {}
        for role, _, p in self._mailboxes():
            cut = {k: round(v.share, 4) for k, v in p.budget_in_effect().items() if v.cuts}
            if cut:
                out[role] = cut
        return out

    def budget_windows(self, tried: bool = False) -> dict[str, dict[str, float]]:
        """Per mailbox of the pair, the limits whose cut budget is kept over a window
        shorter than the configured one (the service's 429s showed it), in seconds: with
        the budget in effect, where a later pass of the pair starts (``pacing.remember``).
        ``tried``: those kept over a window the pacer tried in place of the configured one
        instead (``remember.window_of``)."""
        if self._final_budget is not None:
            return self._final_budget[3] if tried else self._final_budget[2]
        out: dict[str, dict[str, float]] = {}
        for role, _, p in self._mailboxes():
            short = {
                k: round(w, 3)
                for k, v in p.budget_in_effect().items()
                if (w := remember.window_of(v, tried)) is not None
            }
            if short:
                out[role] = short
        return out

    def budget_hints(self) -> list[str]:
        """Where the configured limits are clearly above what the service gives. Not the
        upload budget of a source mailbox: nothing is imported there (its bodies are
        exportItems' lists of ids), so a cut there (another writer filled its window) says
        nothing about ``upload_mb_per_window`` for the copy."""
        return learn.say(self.budget_advice())

    def budget_advice(self) -> list[learn.Advice]:
        """``budget_hints`` before they are said (the job says them once per key)."""
        if self._final_budget is not None:
            return self._final_budget[1]
        out = []
        for role, name, p in self._mailboxes():
            evidence = p.evidence()  # what the service's answers proved (``pacing.proof``)
            for limit, lim in p.budget_in_effect().items():
                if limit == "upload" and role.startswith("source"):
                    continue
                ev = evidence.get(limit, NOTHING)
                if (a := learn.advice(name, limit, lim, ev)) is not None:
                    out.append(a)
        return out

    @property
    def budget_cell(self) -> str:
        """The live table's word on it: the smallest budget in effect, or "-" (all of it)."""
        least = min(
            (
                (share, limit)
                for cut in self.budget_in_effect().values()
                for limit, share in cut.items()
            ),
            default=None,
        )
        if least is None or least[0] >= 1.0:
            return "-"
        return f"{learn.fraction(least[0])} {least[1]}"

    @property
    def unknown(self) -> int:
        return sum(len(f.unknown) for f in self.folders.values())

    def total(self, attr: str) -> int:
        """The sum of one count over the pair's folders. A pair that is done or failed
        changes no more in this run: its sums are kept (the job's progress and timeline ask
        for them every second, for every pair, a thousand pairs of twenty folders each)."""
        return self._kept(attr, partial(self._sum, attr))

    def _sum(self, attr: str) -> int:
        n: int = sum(map(attrgetter(attr), self.folders.values()))
        return n

    def copied_totals(self) -> tuple[int, int]:
        """``total("copied")`` and ``total("copied_bytes")`` in one pass over the folders."""
        if self.status in FINAL and self.finished is not None:
            c = self.counts()  # kept
            return c.copied, c.copied_bytes
        n = nbytes = 0
        for f in self.folders.values():
            n += f.copied
            nbytes += f.copied_bytes
        return n, nbytes

    def counts(self) -> FolderCounts:
        """The folders' counts the job's totals add up, in one pass over them (the progress
        line asks for every pair's every 10 s: a pass per count was the fleet's largest
        periodic cost), kept once the pair is final."""
        return self._kept("counts", self._counts)

    def _counts(self) -> FolderCounts:
        items = nbytes = copied = copied_bytes = present = skipped = failed = unknown = done = 0
        for f in self.folders.values():
            items += f.source_items
            nbytes += f.source_bytes
            copied += f.copied
            copied_bytes += f.copied_bytes
            present += f.already_present
            failed += len(f.failed)
            unknown += len(f.unknown)
            if f.skipped:
                skipped += sum(f.skipped.values())
            done += f.moved_in + f.updated
        done += copied + present + skipped + failed
        return FolderCounts(
            items, nbytes, copied, copied_bytes, present, skipped, failed, unknown, done
        )

    def _kept(self, name: str, count: Callable[[], T]) -> T:
        """``count()``, kept for a pair that is done or failed (its folders change no more)."""
        if self.status not in FINAL or self.finished is None:
            return count()
        key = (self.status, self.finished, len(self.folders))
        if self._sums is None or self._sums[0] != key:
            self._sums = (key, {})
        sums = self._sums[1]
        value: T | None = sums.get(name)
        if value is None:
            value = sums[name] = count()
        return value

    @property
    def failed(self) -> int:
        return sum(len(f.failed) for f in self.folders.values())

    @property
    def skipped(self) -> int:
        return sum(sum(f.skipped.values()) for f in self.folders.values())

    @property
    def done_items(self) -> int:
        """Items with a final outcome: copied, moved in, updated, already present, skipped or
        failed (one pass over the folders: the progress line asks for every pair's)."""
        return self.counts().done

    @property
    def not_done(self) -> int:
        """Listed items with no final outcome in this run (unknown, not attempted, or left
        behind when the pair stopped)."""
        return max(0, self.total("source_items") - self.done_items)

    def duration(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "status": self.status,
            "error": self.error,
            "error_code": self.error_code,
            "hold": self.hold,
            "source_items": self.total("source_items"),
            "source_bytes": self.total("source_bytes"),
            "copied": self.total("copied"),
            "copied_bytes": self.total("copied_bytes"),
            "already_present": self.total("already_present"),
            "skipped": self.skipped,
            "failed": self.failed,
            "unknown": self.unknown,
            "not_done": self.not_done,
            "throttled_429": self.throttled,
            "throttle_wait_s": round(self.throttle_wait_s, 3),
            "requests": self.requests,
            "ceiling_pct": self.ceiling_pct,
            "limit_pct": self.limit_pct,
            "budget_in_effect": self.budget_in_effect(),
            "hints": self.budget_hints(),
            "enumerated_all": self.enumerated_all,
            "policy": self.policy,
            "changes": {
                "created": self.total("copied"),
                "updated": self.total("updated"),
                "moved": self.total("moved_in"),
                "deleted": self.total("deleted"),
                "kept": self.total("kept"),
                "folders": dict(self.folder_changes),
            },
            "drift": sum(len(f.drift) for f in self.folders.values()),
            "notes": self.notes,
            "gone_at_source": list(self.gone_at_source),
            "archive_redirects": dict(self.archive_redirects),
            "duration_s": round(self.duration(), 3),
            "folders": [f.as_dict() for f in self.folders.values()],
        }


@dataclass
class JobStats:
    pairs: dict[str, PairStats] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    finished: float | None = None
    interrupted: bool = False
    fatal: str | None = None
    fatal_code: ExitCode = ExitCode.FATAL
    refused: bool = False  # refused before it started (lock, another job's state): no report
    # this run's own copy of the report (``write_report``), beside the latest at the
    # configured path: the screen's last lines and ``job.finished`` name both
    report_own: Path | None = None
    # why a drain ended early (e.g. "service unreachable: …"), said in the report and log
    stop_reason: str | None = None
    # why the operator's own controls stopped the run before its end (``run --max-items``
    # reached): exit 8 unless something failed
    paused: str | None = None
    # the bandwidth cap (MB/s, 1 MB = 1 MiB) as it last was; None: none
    bwlimit_mb_s: float | None = None
    run_id: str = field(default_factory=new_run_id)
    # (seconds since start, items copied, bytes copied, 429s): for the report's charts
    timeline: list[tuple[float, int, int, int]] = field(default_factory=list)
    # this run as a pass of the job: number, kind (first, delta, full, cutover, retry), start
    pass_info: dict[str, Any] = field(default_factory=dict)
    # ``run --cutover``: per pair, every source item accounted for (see ``signoff.py``)
    sign_off: dict[str, Any] | None = None
    # the job and its tenants (``job_names``)
    job: dict[str, Any] = field(default_factory=dict)
    # the job across every pass, read from the state at the end of the run
    # (``state.overview.migration``): what the customer's report leads with
    migration: dict[str, Any] | None = None

    def changes(self) -> dict[str, int]:
        """This pass's changes applied to the targets, by kind."""
        out = {
            "created": self.total("copied"),
            "updated": self.total("updated"),
            "moved": self.total("moved_in"),
            "deleted": self.total("deleted"),
            "kept": self.total("kept"),
            "failed": sum(p.failed for p in self.pairs.values()),
            "unknown": sum(p.unknown for p in self.pairs.values()),
        }
        for p in self.pairs.values():
            for k, n in p.folder_changes.items():
                out[f"folders_{k}"] = out.get(f"folders_{k}", 0) + n
        return out

    def bytes_per_s(self, window: float = 10.0) -> float:
        """Bytes copied per second over the last ``window`` seconds of the timeline."""
        tl = self.timeline
        if len(tl) < 2:
            return 0.0
        last = tl[-1]
        first = next((s for s in tl if s[0] >= last[0] - window), tl[0])
        return (last[2] - first[2]) / (last[0] - first[0]) if last[0] > first[0] else 0.0

    def sample(self) -> None:
        copied = copied_bytes = throttled = 0
        for p in self.pairs.values():  # every second, every pair: one pass over each
            n, nbytes = p.copied_totals()
            copied += n
            copied_bytes += nbytes
            throttled += p.throttled
        self.timeline.append((round(self.duration(), 2), copied, copied_bytes, throttled))
        if len(self.timeline) > 2 * MAX_TIMELINE:  # keep it bounded: every other sample
            self.timeline = self.timeline[::2]

    def pair(self, key: str, source: str, target: str) -> PairStats:
        p = self.pairs.get(key)
        if p is None:
            p = self.pairs[key] = PairStats(source, target)
        return p

    def total(self, attr: str) -> int:
        return sum(p.total(attr) for p in self.pairs.values())

    def duration(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def exit_code(self) -> ExitCode:
        if self.fatal:
            return self.fatal_code
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.paused and not any(
            p.failed or p.unknown or p.status == "failed" for p in self.pairs.values()
        ):
            # stopped at a cap: what was not reached is not a failure (an item or a pair
            # that failed still says 1 or 5, below)
            return ExitCode.PAUSED
        auth = [
            p
            for p in self.pairs.values()
            if p.status == "failed" and p.error_code in ("AuthFailed", "PermissionDenied")
        ]
        if auth and len(auth) == len(self.pairs):
            return ExitCode.AUTH
        if any(p.status == "failed" for p in self.pairs.values()):
            return (
                ExitCode.FATAL
                if not any(p.status == "done" for p in self.pairs.values())
                else ExitCode.ITEMS_FAILED
            )
        held = [p for p in self.pairs.values() if p.status in HELD]
        if any(p.failed for p in held) or any(
            p.failed or p.unknown or p.not_done for p in self.pairs.values() if p not in held
        ):
            return ExitCode.ITEMS_FAILED
        if held:  # nothing failed; the operator's controls hold these pairs: run again
            return ExitCode.PAUSED
        if self.sign_off is not None and not self.sign_off.get("complete"):
            return ExitCode.ITEMS_FAILED
        return ExitCode.OK

    def held_said(self) -> str:
        """The pairs the operator's controls hold, by why: ``1 suspended (copyengine
        resume), 2 waiting for their schedule``; empty when none is."""
        held = [p for p in self.pairs.values() if p.status in HELD]
        suspended = sum(p.status is PairStatus.SUSPENDED for p in held)
        parts = [f"{suspended} suspended (copyengine resume)"] if suspended else []
        if len(held) > suspended:
            parts.append(f"{len(held) - suspended} waiting for their schedule")
        return ", ".join(parts)

    def pause_said(self) -> str | None:
        """Why the run paused (exit 8), as the report and ``job.finished`` say it: the run's
        cap, else the pairs the operator's controls hold (all that was left)."""
        if self.paused or self.exit_code() is not ExitCode.PAUSED:
            return self.paused
        return "pairs held by the operator's controls: " + self.held_said()

    def archive_notes(self) -> list[str]:
        """The pairs an auto-expanding archive redirected, one line each (``NOTES_SAID`` at
        most, then how many more): what the summary and ``job.finished`` say after the
        table, as the report's pairs say it (``archive_redirects``, ``notes``)."""
        said = [
            f"{p.source} → {p.target}: {note}"
            for p in self.pairs.values()
            if (note := archive_note(p.archive_redirects)) is not None
        ]
        return _capped(said, "pair(s) with archive redirects")

    def gone_notes(self) -> list[str]:
        """The folders deleted at the source while a pass read them (not failures: the next
        pass deals with their copies), one line each (``NOTES_SAID`` at most, then how many
        more): said after the summary's table and in ``job.finished``, as the pairs' notes
        in the report say them."""
        said = [
            f"{p.source} → {p.target}: {note}"
            for p in self.pairs.values()
            for note in p.gone_at_source.values()
        ]
        return _capped(said, "folder(s) deleted at the source during the pass")

    def remembered_note(self) -> str | None:
        """One line for the pairs that started under a budget remembered from their last
        pass (``pipeline.remember``; each pair's notes say its own), or None: what the
        summary and ``job.finished`` say after the table, so a later pass that runs slower
        than the first from its start says why."""
        started = [p.remembered for p in self.pairs.values() if p.remembered is not None]
        if not started:
            return None
        # each pair's says at least one limit (``pipeline.remember`` sets it only then)
        v, role, limit = min(
            (v, role, limit) for b in started for role, c in b.items() for limit, v in c.items()
        )
        return (
            f"{len(started)} pair(s) started at the budget in effect their last pass ended "
            f"with (the least: {budget_said({role: {limit: v}})}), not at [limits]; it climbs "
            "back while the service lets it: see the pairs' notes in the report"
        )

    def hints(self) -> list[str]:
        """What the operator should change, once per ``[limits]`` key: the limits above what
        the service gave the job's mailboxes (the strictest one's value)."""
        return learn.say([a for p in self.pairs.values() for a in p.budget_advice()])

    def totals(self) -> dict[str, Any]:
        """The job's totals (the report's ``totals``), without building every pair's and
        folder's entry: the progress line asks for them every few seconds."""
        d = self.duration()
        c = [0] * len(FolderCounts._fields)
        not_done = 0
        for p in self.pairs.values():  # one pass over each pair's folders
            counts = p.counts()
            for i, v in enumerate(counts):
                c[i] += v
            not_done += max(0, counts.source_items - counts.done)
        t = FolderCounts(*c)
        copied, copied_bytes = t.copied, t.copied_bytes
        return {
            "pairs": len(self.pairs),
            "pairs_failed": sum(p.status == "failed" for p in self.pairs.values()),
            "source_items": t.source_items,
            "source_bytes": t.source_bytes,
            "copied": copied,
            "copied_bytes": copied_bytes,
            "already_present": t.already_present,
            "skipped": t.skipped,
            "failed": t.failed,
            "unknown": t.unknown,
            "not_done": not_done,
            "throttled_429": sum(p.throttled for p in self.pairs.values()),
            "throttle_wait_s": round(sum(p.throttle_wait_s for p in self.pairs.values()), 3),
            "requests": sum(p.requests for p in self.pairs.values()),
            "items_per_s": round(copied / d, 1) if d > 0 else 0.0,
            "mb_per_s": round(copied_bytes / d / MB, 2) if d > 0 else 0.0,
        }

    def as_dict(self) -> dict[str, Any]:
        d = self.duration()
        return {
            "run_id": self.run_id,
            "started": iso(self.started_wall),
            "finished": iso(self.started_wall + d) if self.finished is not None else None,
            "duration_s": round(d, 3),
            "exit_code": int(self.exit_code()),
            "interrupted": self.interrupted,
            "stop_reason": self.stop_reason,
            "paused": self.pause_said(),
            "bwlimit_mb_s": self.bwlimit_mb_s,
            "fatal": self.fatal,
            "pass": self.pass_info,
            "changes": self.changes(),
            "sign_off": self.sign_off,
            "job": self.job,
            "migration": self.migration,
            "totals": self.totals(),
            "hints": self.hints(),
            "archive_notes": self.archive_notes(),
            "gone_notes": self.gone_notes(),
            "remembered_note": self.remembered_note(),
            "pairs": [p.as_dict() for p in self.pairs.values()],
            "timeline": [
                {"t": t, "copied": c, "copied_bytes": b, "throttled_429": k}
                for t, c, b, k in self.timeline
            ],
        }


def check_writable(path: Path) -> None:
    """Raise OSError now if the report could not be written at the end of the run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
    with probe.open("w", encoding="utf-8") as fh:
        fh.write("probe")
    probe.unlink()


def history_path(path: Path, run_id: str) -> Path:
    return path.with_name(f"{path.stem}.{run_id}{path.suffix}")


def write_atomically(target: Path, data: bytes) -> None:
    """``target`` replaced whole (a reader never sees half of it), its bytes on disk."""
    tmp = target.with_name(target.name + ".tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(target)
    except OSError:  # a full disk: no half file left behind
        tmp.unlink(missing_ok=True)
        raise


def report_paths(output: Path) -> tuple[Path, Path]:
    """Where ``copyengine report --output`` writes: (the JSON file, the stem its renderings
    take their names from). ``report.html`` or ``report.json`` -> ``report.json`` beside
    ``report.html``, ``report.pairs.csv``, ...; any other name is the JSON file's."""
    if output.suffix.lower() in (".html", ".json"):
        stem = output.with_suffix("")
        return stem.with_name(stem.name + ".json"), stem
    return output, output.with_suffix("")


# The report's other files, rendered from its JSON form: suffix -> bytes (the console's
# HTML page and CSV exports, handed to the job by ``wiring``).
Renderings = Callable[[dict[str, Any]], Mapping[str, bytes]]


def report_json(report: dict[str, Any]) -> bytes:
    """The report as JSON text: ``json.dumps(report, indent=2, ensure_ascii=False)``'s layout
    and values, encoded by orjson (C) instead of json's pure-Python indenting encoder, which
    cost 3-4% of the engine's CPU in ``fleet`` at 200 pairs (a report of every pair's
    folders, written once). What orjson refuses (a key that is not a string, an integer past
    64 bits) falls back to json; a float may be spelled differently (``0.00001`` for
    ``1e-05``: the same number), and a NaN is null where json wrote the non-JSON ``NaN``."""
    try:
        return orjson.dumps(report, option=orjson.OPT_INDENT_2)
    except TypeError:
        return json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8")


def write_report(
    path: Path, stats: JobStats, keep: int = 20, render: Renderings | None = None
) -> Path:
    """Write this run's report as ``<stem>.<run id><suffix>`` beside ``path`` with its
    renderings (``render``: the HTML page, CSV exports of failed, unknown and skipped items),
    keep the newest ``keep`` runs, and make ``path`` (and ``<stem>.html``, …) the latest —
    copies replaced atomically: a reader never sees half a report. Returns this run's own JSON
    file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    report = stats.as_dict()
    files = {path.suffix: report_json(report)}
    if render is not None:
        files.update(render(report))
    own = history_path(path, stats.run_id)
    for suffix, data in files.items():
        write_atomically(own.with_name(f"{path.stem}.{stats.run_id}{suffix}"), data)
        write_atomically(path.with_name(f"{path.stem}{suffix}"), data)
    runs = sorted(
        r
        for r in path.parent.glob(f"{path.stem}.*{path.suffix}")
        if r != path and not r.name.endswith(".tmp")
    )
    for old in runs[: max(0, len(runs) - keep)]:
        run_id = old.name[len(path.stem) + 1 : -len(path.suffix)]
        # every file of that run, whichever renderings wrote it (run ids are unique)
        for f in path.parent.glob(f"{glob.escape(path.stem)}.{glob.escape(run_id)}.*"):
            try:
                f.unlink()
            except OSError:
                pass
    return own


def _capped(said: list[str], what: str) -> list[str]:
    """``said``, ``NOTES_SAID`` lines at most, then how many more ``what``."""
    if len(said) <= NOTES_SAID:
        return said
    return [*said[:NOTES_SAID], f"{len(said) - NOTES_SAID} more {what}: see the report"]
