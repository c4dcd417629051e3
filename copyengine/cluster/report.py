"""``copyengine report``: the job's JSON report built from its state store (and, for a shared
job, its group table), not from one process's memory: what every host did."""

from __future__ import annotations

import time
from typing import Any

from ..config import JobConfig
from ..plan import retired_source
from ..report import iso
from ..wiring import store


async def build_report(cfg: JobConfig) -> dict[str, Any]:
    st = store(cfg, exclusive=False)
    await st.open()
    try:
        pairs = []
        for p in await st.pairs():
            counts = await st.summary(p["pair"])
            every = await st.folders(p["pair"])
            folders = [f for f in every if retired_source(f.source_folder_id) is None]
            pairs.append(
                {
                    **p,
                    "started": iso(p["started"]),
                    "finished": iso(p["finished"]),
                    "items": counts,
                    "folders": len(folders),
                    "folders_with_delta_link": sum(f.delta_link is not None for f in folders),
                }
            )
        passes = await st.passes()
    finally:
        await st.close()
    groups: list[dict[str, Any]] = []
    if cfg.state_url is not None:
        from .app import read_groups

        groups = await read_groups(cfg)
        for g in groups:
            for k in ("started", "heartbeat", "finished"):
                g[k] = iso(g[k])
    for ps in passes:
        ps["started"], ps["finished"] = iso(ps["started"]), iso(ps["finished"])

    def total(name: str) -> int:
        return sum(int(p["items"].get(name, 0)) for p in pairs)

    return {
        "generated": iso(time.time()),
        "state": cfg.state_url or str(cfg.state_path),
        "passes": passes,
        "totals": {
            "pairs": len(pairs),
            "pairs_failed": sum(p["status"] == "failed" for p in pairs),
            "copied": total("copied"),
            "already_present": total("already present"),
            "failed": total("failed"),
            "unknown": total("unknown"),
            "not_attempted": total("not attempted"),
            "deleted_at_source_kept": total("deleted at source (kept)"),
            "groups": len(groups),
            "groups_done": sum(g["state"] == "done" for g in groups),
            "groups_failed": sum(g["state"] == "failed" for g in groups),
        },
        "groups": groups,
        "pairs": pairs,
    }
