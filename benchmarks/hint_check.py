"""Does following the hint make the job slower? (issue 26, the review's finding 4)

The review's job: ``config.example.toml`` (4 pairs, realistic sizes) with the embedded
emulator's time-scaled profile (``exchange-fast``: 2.5 MB per 5 s per mailbox) and ``items =
300`` per source mailbox, ``[limits]`` at their defaults (150 MB per 300 s: the same rate
over a window 60 times longer). Each try runs it once as it is, reads the hint it ends with
(``set upload_window_s = W and upload_mb_per_window = V``), then runs it again from a fresh
state with those two values in ``[limits]``. Both wall times, the 429s, and the share of
the real budget: the shortest time any client could upload the slowest target's bodies
under the service's budget (``harness.upload_bound_s``: whole windows, a body larger than
the budget a window of its own) over the job's time. Talks only to 127.0.0.1 (the engine
starts its own emulator); each run is bounded (``TIMEOUT_S``).

    python -m benchmarks.hint_check [--tries 3]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import upload_bound_s
from copyengine.emulator.store import MailboxSpec, new_mailbox, seed_mailbox
from copyengine.emulator.stream import data_length
from copyengine.emulator.throttle import Limits

ROOT = Path(__file__).resolve().parent.parent
ITEMS = 300
TIMEOUT_S = 600
SET = re.compile(r"set upload_window_s = ([0-9.,]+) and upload_mb_per_window = ([0-9.,]+)")


def config(upload: tuple[str, str] | None = None) -> str:
    """The review's ``strict.toml`` (and ``hint.toml`` with ``upload``: window, MB)."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^profile = "exchange" ', 'profile = "exchange-fast"', text)
    text = re.sub(r"items = \d+,", f"items = {ITEMS},", text)
    text = re.sub(r'(?m)^# state = "\.copyengine/.*$', 'state = "job.sqlite"', text)
    text = re.sub(r'(?m)^# report = "\.copyengine/.*$', 'report = "report.json"', text)
    if upload is not None:
        window, mb = upload
        text = re.sub(r"(?m)^upload_mb_per_window = 150 ", f"upload_mb_per_window = {mb} ", text)
        text = re.sub(r"(?m)^upload_window_s = 300 ", f"upload_window_s = {window} ", text)
    return text


def bound_s() -> float:
    """The slowest target's shortest upload time under the emulator's budget."""
    lim = Limits.profile("exchange-fast", 60.0)
    assert lim.upload_bytes
    worst = 0.0
    for seed in (1, 2, 3, 4):
        mbx = new_mailbox("contoso.example", f"m{seed}@contoso.example")
        raw = {"seed": seed, "items": ITEMS, "sizes": "realistic"}
        seed_mailbox(mbx, MailboxSpec.parse(raw))
        bodies = [
            data_length(it.content) + 120 for f in mbx.folders.values() for it in f.live_items()
        ]
        small = sum(b for b in bodies if b <= lim.upload_bytes)
        over = sum(1 for b in bodies if b > lim.upload_bytes)
        worst = max(worst, upload_bound_s(lim, small, over))
    return worst


def run_once(where: Path, text: str) -> dict[str, Any]:
    """One run of the job in ``where`` (fresh): wall time, exit code, 429s, the hint."""
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    shutil.copytree(ROOT / "examples" / "demo-secrets", where / "examples" / "demo-secrets")
    (where / "job.toml").write_text(text, encoding="utf-8")
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "copyengine", "run", "job.toml"],
        cwd=where,
        capture_output=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    wall = time.monotonic() - t0
    report = json.loads((where / "report.json").read_text(encoding="utf-8"))
    hints = report.get("hints") or []
    found = next((m for h in hints if (m := SET.search(h))), None)
    return {
        "exit_code": done.returncode,
        "wall_s": round(wall, 1),
        "duration_s": report["duration_s"],
        "throttled_429": report["totals"]["throttled_429"],
        "hints": hints,
        "set": None if found is None else (found[1].replace(",", ""), found[2].replace(",", "")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tries", type=int, default=1)
    args = ap.parse_args()
    bound = bound_s()
    print(f"real budget bound (slowest target): {bound:.1f} s")
    with tempfile.TemporaryDirectory(prefix="hint-check-") as tmp:
        for k in range(max(1, min(args.tries, 10))):
            first = run_once(Path(tmp) / f"a{k}", config())
            print(f"try {k + 1}: as configured: {_said(first, bound)}; hint: {first['hints']}")
            if first["set"] is None:
                print("  no window hint to follow")
                continue
            second = run_once(Path(tmp) / f"b{k}", config(first["set"]))
            window, mb = first["set"]
            print(
                f"  hint followed (upload_window_s = {window}, upload_mb_per_window = {mb}): "
                f"{_said(second, bound)}; no slower: {second['duration_s'] <= first['duration_s']}"
                f" (ratio {second['duration_s'] / first['duration_s']:.3f})"
            )


def _said(r: dict[str, Any], bound: float) -> str:
    return (
        f"exit {r['exit_code']}, {r['duration_s']:.1f} s ({r['wall_s']:.1f} s wall), "
        f"{bound / r['duration_s']:.0%} of the real budget, {r['throttled_429']} x 429"
    )


if __name__ == "__main__":
    main()
