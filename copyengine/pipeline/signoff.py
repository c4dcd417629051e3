"""The cutover's sign-off: after the last pass, every selected source item of every pair is
accounted for: in the target (by search key), not selected (skipped, with the reason), or
failed (with the reason the state recorded). Anything else is listed as unaccounted, and the
sign-off is not complete."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..config import JobConfig, Pair
from ..graph import Clients
from ..report import JobStats, iso
from ..state import Status, Store
from ..verify import verify_pair

MAX_LISTED = 100


async def sign_off(
    cfg: JobConfig, clients: Clients, store: Store, pairs: tuple[Pair, ...], stats: JobStats
) -> dict[str, Any]:
    await store.flush()
    out: list[dict[str, Any]] = []
    for pair in pairs:
        check = await verify_pair(clients.src, clients.dst, pair)
        skipped: Counter[str] = Counter()
        failed: list[dict[str, Any]] = []
        unaccounted: list[dict[str, Any]] = []
        selected = in_target = extra = 0
        for fc in check.folders:
            skipped.update(fc.skipped)
            selected += fc.expected
            in_target += fc.expected - len(fc.missing)
            extra += len(fc.extra)
            if not fc.missing:
                continue
            records = await store.items_in_folder(pair.key, fc.source_folder_id)
            for sid in fc.missing:
                r = records.get(sid)
                row = {"id": sid, "folder": fc.source_path}
                if r is not None and r.status is Status.FAILED:
                    failed.append({**row, "reason": r.error or "failed"})
                else:
                    why = "no record: never seen by a pass" if r is None else r.status.name.lower()
                    unaccounted.append({**row, "state": why})
        kept = (await store.summary(pair.key)).get("deleted at source (kept)", 0)
        entry = {
            "pair": pair.key,
            "source": pair.source,
            "target": pair.target,
            "error": check.error,
            "selected": selected,
            "in_target": in_target,
            "skipped": dict(skipped),
            "failed": len(failed),
            "failed_items": failed[:MAX_LISTED],
            "unaccounted": len(unaccounted),
            "unaccounted_items": unaccounted[:MAX_LISTED],
            # copies with no selected source item: items deleted at the source and kept
            # (``deletions = "keep"``), or put in the target by someone else
            "extra_in_target": extra,
            "kept_deleted_at_source": kept,
            "complete": check.error is None and not unaccounted,
        }
        out.append(entry)
    return {
        # every change made at the source before this time was read by the last pass
        "changes_captured_until": stats.pass_info.get("started") or iso(stats.started_wall),
        "complete": all(e["complete"] for e in out),
        "pairs": out,
    }
