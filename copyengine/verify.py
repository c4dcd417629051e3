"""``copyengine verify``: compare source and target per folder by search key."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import structlog

from .config import JobConfig, Pair
from .failures import classify
from .graph import Clients, Item, MailboxApi
from .graph.tree import survey
from .plan import TargetIndex, filter_item, surplus

log = structlog.get_logger("copyengine.verify")
MAX_LISTED = 100


@dataclass
class FolderCheck:
    source_path: str
    target_path: str
    expected: int = 0
    found: int = 0
    missing: list[str] = field(default_factory=list)  # source ids
    extra: list[str] = field(default_factory=list)  # target ids
    source_folder_id: str = ""
    skipped: Counter[str] = field(default_factory=Counter)  # not selected, by reason

    @property
    def ok(self) -> bool:
        return not self.missing and not self.extra

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_path": self.source_path,
            "target_path": self.target_path,
            "expected": self.expected,
            "found": self.found,
            "missing": len(self.missing),
            "extra": len(self.extra),
            "missing_ids": self.missing[:MAX_LISTED],
            "extra_ids": self.extra[:MAX_LISTED],
        }


@dataclass
class PairCheck:
    source: str
    target: str
    folders: list[FolderCheck] = field(default_factory=list)
    error: str | None = None
    error_code: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(f.ok for f in self.folders)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "ok": self.ok,
            "error": self.error,
            "error_code": self.error_code,
            "folders": [f.as_dict() for f in self.folders],
        }


async def _index(
    client: MailboxApi,
    mbx: str,
    folder_id: str,
    pair: Pair | None,
    skipped: Counter[str] | None = None,
) -> TargetIndex:
    """A folder's items by search key (selected items only when ``pair`` is given; the
    others counted by reason in ``skipped``)."""
    items: list[Item] = []
    async for page in client.list_items(mbx, folder_id, with_keys=True):
        for it in page:
            why = filter_item(it, pair.items) if pair is not None else None
            if why is None:
                items.append(it)
            elif skipped is not None:
                skipped[why.value] += 1
    return TargetIndex.of(items)


async def verify_pair(src: MailboxApi, dst: MailboxApi, pair: Pair) -> PairCheck:
    check = PairCheck(pair.source, pair.target)
    try:
        s, d, plans, tree = await survey(src, dst, pair)
        for plan in plans:
            fc = FolderCheck(plan.source.path, plan.target.path)
            fc.source_folder_id = plan.source.folder.id
            want = await _index(src, s, plan.source.folder.id, pair, fc.skipped)
            target_id = (await tree.find(plan.target, plan.source.names[0])).existing
            have = await _index(dst, d, target_id, None) if target_id else TargetIndex()
            fc.expected, fc.found = want.count(), have.count()
            fc.missing = surplus(want, have)
            fc.extra = surplus(have, want)
            check.folders.append(fc)
    except Exception as exc:  # one pair's failure is that pair's verdict
        verdict = classify(exc)
        if verdict.job_wide:
            raise
        check.error, check.error_code = verdict.message, verdict.error_type
    return check


async def verify_pairs(cfg: JobConfig, c: Clients) -> list[PairCheck]:
    out: list[PairCheck] = []
    for pair in cfg.pairs:
        out.append(await verify_pair(c.src, c.dst, pair))
        log.info("verify.pair", pair=pair.key, ok=out[-1].ok)
    return out
