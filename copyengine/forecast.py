"""``copyengine plan``: what a run would do, without doing any of it (nothing is written to the
target or the state). The same enumeration and ``plan/`` decisions as the copy — folder
selection and placement, filters, ``decide`` against the state and the target — so the plan
and the run cannot disagree; then an ETA from the per-mailbox budgets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

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
            "eta_s": round(self.eta_s, 1),
            "binding_limit": self.binding,
            "folders": [f.as_dict() for f in self.folders],
        }


def pair_eta(items: int, nbytes: int, lim: Limits) -> tuple[float, str]:
    """Seconds to import ``items`` of ``nbytes`` into one target mailbox at its ceiling, and
    the limit that binds: the upload window (bytes of import bodies) or the request window
    (one import per item, plus the source's exports, 20 a call, on its own budget)."""
    upload = (encoded_size(int(nbytes * STREAM_OVERHEAD)) if nbytes else 0) * (
        lim.upload_window_s / lim.upload_bytes_per_window
    )
    requests = items * (lim.request_window_s / lim.requests_per_window)
    if upload >= requests:
        return (
            upload,
            f"upload budget ({lim.upload_bytes_per_window // 2**20} MB / {lim.upload_window_s:g} s)",
        )
    return requests, f"request budget ({lim.requests_per_window} / {lim.request_window_s:g} s)"


async def plan_pair(
    src: MailboxApi, dst: MailboxApi, pair: Pair, store: Store | None, lim: Limits
) -> PairPlanned:
    out = PairPlanned(pair.source, pair.target)
    try:
        for side in await mailboxes(src, dst, pair):
            await _plan_mailbox(src, dst, pair, side, store, out)
        out.eta_s, out.binding = pair_eta(out.total("copy"), out.total("copy_bytes"), lim)
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
        async for page in src.list_items(s, plan.source.folder.id, with_keys=True):
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
                    fp.copy += 1
                    fp.copy_bytes += it.size
                else:
                    fp.present += 1
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
            fp.copy += 1
            fp.copy_bytes += row.size
    return True


async def plan_pairs(
    cfg: JobConfig, clients: Clients, store: Store | None
) -> tuple[list[PairPlanned], dict[str, Any]]:
    """Every pair's plan, and the job's: its ETA with ``pairs_in_parallel`` pairs at once
    (pairs are paced per mailbox, so the job is bounded by its longest pair and by the sum
    over pairs shared out over the parallel slots)."""
    out = [await plan_pair(clients.src, clients.dst, p, store, cfg.limits) for p in cfg.pairs]
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
        "eta_s": round(job_eta, 1),
        "pairs_in_parallel": parallel,
        "binding_limits": sorted(binding),
    }
    return out, summary
