"""``status --pair UPN``: that pair's statistics across passes (``console.pairstats``), or,
with ``--json``, the same as JSON. A name no pair of the job has is refused (exit 3) with
the names most like it."""

from __future__ import annotations

import json

import anyio

from ..config import JobConfig, select_pairs
from ..console.pairstats import print_pair_statistics
from ..wiring import read_pair_statistics, state_exists
from .options import show


def show_pair_statistics(cfg: JobConfig, only: tuple[str, ...], as_json: bool) -> None:
    pairs = select_pairs(cfg, only) or ()
    where = cfg.state_url or str(cfg.state_path)
    entries = anyio.run(read_pair_statistics, cfg, pairs) if state_exists(cfg) else []
    if as_json:
        show(json.dumps({"state": where, "pairs": entries}, indent=2, default=str))
    elif not entries:
        show(f"no state yet at {where}")
    else:
        show(render=lambda: print_pair_statistics(entries))
