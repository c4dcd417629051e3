"""``copyengine plan``: what a run would do, without doing any of it (nothing is written to the
target or the state). The same enumeration and ``plan/`` decisions as the copy — folder
selection and placement, filters, ``decide`` against the state and the target — so the plan
and the run cannot disagree; then an ETA from the per-mailbox budgets.
"""

from __future__ import annotations

import math
import statistics
import time
from array import array
from collections.abc import AsyncIterator
from dataclasses import astuple, dataclass, field
from typing import Any

import anyio

from .config import JobConfig, Limits, Pair
from .errors import DeltaExpired
from .failures import classify
from .graph import Clients, Item, MailboxApi, Removed
from .plan import (
    Change,
    Decision,
    DeltaRound,
    Skip,
    TargetIndex,
    classify_row,
    decide,
    encoded_size,
    filter_item,
    fingerprint,
)
from .state import FolderRecord, ItemRecord, Store
from .survey import MailboxSide, listed_items, mailboxes, survey

# The data an export carries is larger than the item's size (properties, stream structure);
# the upload budget counts import bodies: base64 of that.
STREAM_OVERHEAD = 1.1


@dataclass
class FolderPlanned:
    source_path: str
    target_path: str
    exists: bool
    items: int = 0
    bytes: int = 0
    copy: int = 0
    copy_bytes: int = 0
    present: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_items: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "full"  # how the next run reads it: full, or delta (only what changed)
    removed: int = 0  # delta: items that left the folder since the last pass
    copy_sizes: array[int] = field(default_factory=lambda: array("q"))  # for the ETA

    def to_copy(self, size: int) -> None:
        self.copy += 1
        self.copy_bytes += size
        self.copy_sizes.append(size)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_path": self.source_path,
            "mode": self.mode,
            "removed": self.removed,
            "target_path": self.target_path,
            "target_exists": self.exists,
            "items": self.items,
            "bytes": self.bytes,
            "copy": self.copy,
            "copy_bytes": self.copy_bytes,
            "already_present": self.present,
            "skipped": self.skipped,
            "skipped_items": self.skipped_items[:100],
        }


@dataclass
class PairPlanned:
    source: str
    target: str
    folders: list[FolderPlanned] = field(default_factory=list)
    error: str | None = None
    eta_s: float = 0.0
    binding: str = ""
    latencies: list[float] = field(default_factory=list)  # of the plan's own requests, s

    def total(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.folders)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "error": self.error,
            "items": self.total("items"),
            "bytes": self.total("bytes"),
            "copy": self.total("copy"),
            "copy_bytes": self.total("copy_bytes"),
            "already_present": self.total("present"),
            "skipped": sum(sum(f.skipped.values()) for f in self.folders),
            "eta_s": round(self.eta_s, 3),
            "binding_limit": self.binding,
            "folders": [f.as_dict() for f in self.folders],
        }


# A pair's survey before its first import, in requests one after the other: each side's
# mailbox and folder tree, and the import session (the folders the target lacks come on top).
SURVEY_REQUESTS = 5


@dataclass(frozen=True)
class Eta:
    """How long a target mailbox takes for its imports, and the limit that binds."""

    seconds: float
    binding: str


def import_body(size: int) -> int:
    """Bytes of the import body of an item of ``size`` (what the upload budget counts)."""
    return encoded_size(int(size * STREAM_OVERHEAD)) if size else 0


def pair_eta(
    items: int,
    body_bytes: int,
    lim: Limits,
    latency_s: float = 0.0,
    alone: int = 0,
    setup: int = 0,
) -> Eta:
    """Seconds to import ``items`` into one target mailbox (``body_bytes``: the import bodies
    of those that fit the upload budget; ``alone``: how many are each larger than it), starting from
    empty windows, when each import takes ``latency_s`` and ``in_flight_per_mailbox`` go at
    once. Three bounds, the largest binds:

    - latency: ``items * latency_s / in_flight`` (no window waits at all);
    - upload window: a window carries at most the budget, so the bytes need
      ``ceil(bytes / budget)`` whole windows (an item larger than the budget one of its
      own); the first window's bytes go at once, each later one when the window slides;
      then the last window's share of the imports still takes its latency;
    - request window: the same with ``requests_per_window`` imports a window;

    plus ``setup`` requests made one after the other before the first import (the pair's
    survey: its mailboxes, each side's folder tree, each folder the target lacks created).

    A rate (bytes / budget * window) charged the first window's bytes too: a job that fits
    one window was told minutes for what takes seconds."""
    if items <= 0:
        return Eta(0.0, "")
    before = max(0, setup) * max(0.0, latency_s)
    work = items * max(0.0, latency_s) / max(1, lim.in_flight_per_mailbox)
    small = max(0, body_bytes)
    uploads = math.ceil(small / lim.upload_bytes_per_window) + max(0, alone)
    requests = math.ceil(items / lim.requests_per_window)
    up_span = max(0, uploads - 1) * lim.upload_window_s
    req_span = max(0, requests - 1) * lim.request_window_s
    budget_mb = lim.upload_bytes_per_window / 2**20
    if up_span >= req_span:
        span, windows = up_span, uploads
        name = f"upload budget ({budget_mb:g} MB / {lim.upload_window_s:g} s)"
    else:
        span, windows = req_span, requests
        name = f"request budget ({lim.requests_per_window} / {lim.request_window_s:g} s)"
    windowed = span + work / max(1, windows)
    if windowed > work:
        return Eta(before + windowed, name)
    ms = latency_s * 1000
    return Eta(
        before + work, f"latency ({ms:.0f} ms a request, {lim.in_flight_per_mailbox} at once)"
    )


def pair_work_eta(p: PairPlanned, lim: Limits, latency_s: float) -> Eta:
    """``pair_eta`` for what the plan of ``p`` found to copy."""
    budget = lim.upload_bytes_per_window
    bodies = [import_body(n) for f in p.folders for n in f.copy_sizes]
    alone = sum(b > budget for b in bodies)
    fits = sum(b for b in bodies if b <= budget)
    new_folders = sum(not f.exists for f in p.folders)
    return pair_eta(len(bodies), fits, lim, latency_s, alone, SURVEY_REQUESTS + new_folders)


async def plan_pair(
    src: MailboxApi, dst: MailboxApi, pair: Pair, store: Store | None, lim: Limits
) -> PairPlanned:
    out = PairPlanned(pair.source, pair.target)
    try:
        for side in await mailboxes(src, dst, pair):
            await _plan_mailbox(src, dst, pair, side, store, out)
        latency = statistics.median(out.latencies or [0.0])
        out.eta_s, out.binding = astuple(pair_work_eta(out, lim, latency))
    except Exception as exc:  # one pair's failure is that pair's verdict
        verdict = classify(exc)
        if verdict.job_wide:
            raise
        out.error = verdict.message
    return out


async def _plan_mailbox(
    src: MailboxApi,
    dst: MailboxApi,
    pair: Pair,
    side: MailboxSide,
    store: Store | None,
    out: PairPlanned,
) -> None:
    """One mailbox of the pair planned, folder by folder, into ``out``."""
    plans, tree = await survey(src, dst, pair, side)
    s, d = side.source_id, side.target_id
    # folders with a stored link, made under the job's current rules, are read by delta
    # by the next run: the plan reads the same rounds (reading one changes nothing)
    links: dict[str, FolderRecord] = {}
    if store is not None:
        sync = await store.sync_state(pair.key, side.scope)
        if sync is not None and sync.fingerprint == fingerprint(pair):
            links = {r.source_folder_id: r for r in await store.folders(pair.key)}
    for plan in plans:
        where = await tree.find(plan.target, plan.source.names[0])
        fp = FolderPlanned(
            side.label + plan.source.path, side.label + plan.target.path, where.existing is not None
        )
        records: dict[str, ItemRecord] = (
            await store.items_in_folder(pair.key, plan.source.folder.id) if store else {}
        )
        rec = links.get(plan.source.folder.id)
        if (
            rec is not None
            and rec.delta_link
            and where.existing == rec.target_folder_id
            and await _plan_delta(src, s, rec.delta_link, pair, records, fp)
        ):
            out.folders.append(fp)
            continue
        index = TargetIndex()
        if where.existing is not None:
            index = TargetIndex.of(await listed_items(dst, d, where.existing))
        asked = time.monotonic()
        async for page in src.list_items(s, plan.source.folder.id, with_keys=True):
            out.latencies.append(time.monotonic() - asked)
            for it in page:
                fp.items += 1
                fp.bytes += it.size
                skip = filter_item(it, pair.items)
                if skip is not None:
                    fp.skipped[skip.value] = fp.skipped.get(skip.value, 0) + 1
                    if skip is Skip.TOO_LARGE:
                        fp.skipped_items.append({"id": it.id, "size": it.size})
                    continue
                what = decide(it, records.get(it.id), index, where.existing or "")
                if what.decision in (Decision.COPY, Decision.UPDATE):
                    fp.to_copy(it.size)
                else:
                    fp.present += 1
            asked = time.monotonic()
        out.folders.append(fp)


async def _plan_delta(
    src: MailboxApi,
    mailbox_id: str,
    link: str,
    pair: Pair,
    records: dict[str, ItemRecord],
    fp: FolderPlanned,
) -> bool:
    """Count what the folder's delta round holds, as the run would apply it; False when the
    link has expired (the run lists the folder in full then, and so does the plan)."""
    rows: list[Item | Removed] = []
    try:
        pages: AsyncIterator[Any] = src.item_delta(mailbox_id, "", link, with_keys=True)
        async for page in pages:
            rows.extend(page.items)
    except DeltaExpired:
        return False
    fp.mode = "delta"
    for row in DeltaRound.end_state(rows):  # an item seen twice in a round is one change
        if isinstance(row, Removed):
            fp.removed += int(row.id in records)
            continue
        fp.items += 1
        fp.bytes += row.size
        skip = filter_item(row, pair.items)
        if skip is not None:
            fp.skipped[skip.value] = fp.skipped.get(skip.value, 0) + 1
            continue
        if classify_row(row, records.get(row.id)) is Change.UNCHANGED:
            fp.present += 1
        else:
            fp.to_copy(row.size)
    return True


async def plan_pairs(
    cfg: JobConfig, clients: Clients, store: Store | None
) -> tuple[list[PairPlanned], dict[str, Any]]:
    """Every pair's plan (``pairs_in_parallel`` at once), and the job's: its ETA with as many
    pairs at once (pairs are paced per mailbox, so the job is bounded by its longest pair and by the sum
    over pairs shared out over the parallel slots)."""
    lim = cfg.limits
    out = [PairPlanned(p.source, p.target) for p in cfg.pairs]
    slots = anyio.Semaphore(max(1, lim.pairs_in_parallel))

    async def one(i: int, pair: Pair) -> None:  # as many at once as the run: the latency
        async with slots:  # measured is the one the run's requests see
            out[i] = await plan_pair(clients.src, clients.dst, pair, store, lim)

    async with anyio.create_task_group() as tg:
        for i, pair in enumerate(cfg.pairs):
            tg.start_soon(one, i, pair)
    latency = statistics.median([t for p in out for t in p.latencies] or [0.0])
    for p in out:
        if p.error is None:
            p.eta_s, p.binding = astuple(pair_work_eta(p, lim, latency))
    etas = [p.eta_s for p in out if p.error is None]
    parallel = cfg.limits.pairs_in_parallel
    job_eta = max(max(etas, default=0.0), sum(etas) / parallel)
    binding = {p.binding for p in out if p.binding}
    summary = {
        "pairs": len(out),
        "pairs_failing": sum(p.error is not None for p in out),
        "items": sum(p.total("items") for p in out),
        "copy": sum(p.total("copy") for p in out),
        "copy_bytes": sum(p.total("copy_bytes") for p in out),
        "already_present": sum(p.total("present") for p in out),
        "eta_s": round(job_eta, 3),
        "request_latency_ms": round(latency * 1000, 1),
        "pairs_in_parallel": parallel,
        "binding_limits": sorted(binding),
    }
    return out, summary
