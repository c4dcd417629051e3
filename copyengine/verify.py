"""``copyengine verify``: compare source and target per folder by search key."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import structlog

from .config import JobConfig, Pair
from .failures import classify
from .graph import GraphClient
from .pipeline.job import open_clients
from .pipeline.pair import TargetTree
from .pipeline.plan import TargetRef, filter_item, plan_folders

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


def _find(tree: TargetTree, ref: TargetRef, fallback_top: str) -> str | None:
    parent: str | None = None
    parts = ref.parts
    if ref.anchor:
        wk = tree.well_known.get(ref.anchor)
        if wk is None:
            parts = (fallback_top, *parts)
        else:
            parent = wk.id
    for name in parts:
        child = tree.children[parent].get(name.casefold())
        if child is None:
            return None
        parent = child.id
    return parent


async def _keys(
    client: GraphClient, mbx: str, folder_id: str, pair: Pair | None
) -> dict[bytes | str, list[str]]:
    """Item ids of a folder by search key (selected items only when ``pair`` is given)."""
    keys: dict[bytes | str, list[str]] = defaultdict(list)
    async for page in client.list_items(mbx, folder_id, with_keys=True):
        for it in page:
            if pair is not None and filter_item(it, pair.items) is not None:
                continue
            keys[it.search_key if it.search_key is not None else f"id:{it.id}"].append(it.id)
    return keys


def _surplus(a: dict[bytes | str, list[str]], b: dict[bytes | str, list[str]]) -> list[str]:
    """Ids in ``a`` beyond what ``b`` holds under the same key."""
    return [i for k, ids in a.items() for i in ids[len(b.get(k, ())) :]]


async def verify_pair(src: GraphClient, dst: GraphClient, pair: Pair) -> PairCheck:
    check = PairCheck(pair.source, pair.target)
    try:
        s = (await src.resolve_mailbox(pair.source)).primary_id
        d = (await dst.resolve_mailbox(pair.target)).primary_id
        plans = plan_folders(await src.walk_folders(s), pair.folders, pair.source, pair.target)
        tree = TargetTree(dst, d)
        await tree.load()
        for plan in plans:
            fc = FolderCheck(plan.source.path, plan.target.path)
            want = await _keys(src, s, plan.source.folder.id, pair)
            target_id = _find(tree, plan.target, plan.source.names[0])
            have = await _keys(dst, d, target_id, None) if target_id is not None else {}
            fc.expected = sum(map(len, want.values()))
            fc.found = sum(map(len, have.values()))
            fc.missing = _surplus(want, have)
            fc.extra = _surplus(have, want)
            check.folders.append(fc)
    except Exception as exc:  # one pair's failure is that pair's verdict
        verdict = classify(exc)
        if verdict.job_wide:
            raise
        check.error, check.error_code = verdict.message, verdict.error_type
    return check


async def verify_job(cfg: JobConfig) -> list[PairCheck]:
    out: list[PairCheck] = []
    async with open_clients(cfg) as c:
        for pair in cfg.pairs:
            out.append(await verify_pair(c.src, c.dst, pair))
            log.info("verify.pair", pair=pair.key, ok=out[-1].ok)
    return out
