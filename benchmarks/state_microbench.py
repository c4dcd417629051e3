"""A microbenchmark of the SQLite state's per-item statements (a diagnostic, not a
scenario): CPU per item of the store's own intent upserts (``sqlite.INTENTS_SQL``) and
outcome updates (``sqlite.OUTCOMES_SQL``) for 20,000 items of 10 pairs, with the emulator's
ids, in a temporary file opened with the store's pragmas.

The items arrive as the engine writes them: each pair exports its folders one after the
other, 20 items a batch (an export), the pairs' batches interleaved, one commit per batch
(``--group``: several batches per commit, as the store's group commit makes of batches that
wait for one); the outcomes are committed 100 at a time. Each layout runs ``--repeats``
times, the layouts in turn within a repeat (the machine's load moves all alike); the
medians are printed.

Layouts: ``stored`` (the schema as the store makes it), ``no-key`` (without the
``items_by_key`` index), ``no-folder`` (without ``items_by_folder``), ``no-index`` (without
both: what the table and its unique key cost).

    python -m benchmarks.state_microbench [--repeats 5] [--group 1]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from copyengine.emulator.store import opaque_id
from copyengine.state.records import Status
from copyengine.state.sqlite import INTENTS_SQL, OUTCOMES_SQL, SCHEMA

N, PAIRS, FOLDERS, BATCH, OUTCOMES = 20_000, 10, 10, 20, 100
KEY_INDEX = "CREATE INDEX IF NOT EXISTS items_by_key ON items (pair, search_key);"
FOLDER_INDEX = "CREATE INDEX IF NOT EXISTS items_by_folder ON items (pair, folder_id);"
LAYOUTS = {
    "stored": SCHEMA,
    "no-key": SCHEMA.replace(KEY_INDEX, ""),
    "no-folder": SCHEMA.replace(FOLDER_INDEX, ""),
    "no-index": SCHEMA.replace(KEY_INDEX, "").replace(FOLDER_INDEX, ""),
}
assert all(v != SCHEMA for k, v in LAYOUTS.items() if k != "stored"), "the indexes were renamed"


def _items(seed: int) -> list[tuple[str, str, str]]:
    """(pair, source id, folder id) in the order the engine writes their intents."""
    pairs = [f"src{p:04d}@source.example->dst{p:04d}@target.example" for p in range(PAIRS)]
    folders = [opaque_id(f"folder/{f}".encode()) for f in range(FOLDERS)]
    per = N // PAIRS
    each = [
        [
            (pairs[p], opaque_id(f"{seed}/{p}/{k}".encode()), folders[k * FOLDERS // per])
            for k in range(per)
        ]
        for p in range(PAIRS)
    ]
    return [x for b in range(0, per, BATCH) for p in range(PAIRS) for x in each[p][b : b + BATCH]]


def run(schema: str, path: Path, seed: int, group: int) -> tuple[float, float]:
    """(intent us per item, outcome us per item)."""
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "wal_autocheckpoint=10000",
        "journal_size_limit=67108864",
    ):
        db.execute(f"PRAGMA {pragma}")
    db.executescript(schema)
    rng = random.Random(seed)
    items = _items(seed)
    now, step, intent, done = time.time(), BATCH * group, int(Status.INTENT), int(Status.DONE)
    intents = [
        [
            (p, i, f, rng.randbytes(16), 50_000, f, intent, now, "CK" + i[4:20], 1, 7, 1_700_000)
            for p, i, f in items[s : s + step]
        ]
        for s in range(0, N, step)
    ]
    outcomes = [
        [
            (done, opaque_id(b"t" + i.encode()), "CK" + i[4:20], None, "req", now, 1, 7, p, i, 2)
            for p, i, _ in items[s : s + OUTCOMES]
        ]
        for s in range(0, N, OUTCOMES)
    ]
    c0 = time.process_time()
    for rows in intents:
        db.execute("BEGIN")
        db.executemany(INTENTS_SQL, rows)
        db.execute("COMMIT")
    c1 = time.process_time()
    for batch in outcomes:
        db.execute("BEGIN")
        db.executemany(OUTCOMES_SQL, batch)
        db.execute("COMMIT")
    c2 = time.process_time()
    db.close()
    return (c1 - c0) / N * 1e6, (c2 - c1) / N * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.state_microbench")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--group", type=int, default=1, help="batches of 20 per intent commit")
    args = ap.parse_args()
    got: dict[str, list[tuple[float, float]]] = {k: [] for k in LAYOUTS}
    for rep in range(args.repeats):
        seed = int.from_bytes(hashlib.sha256(str(rep).encode()).digest()[:4], "big")
        for name, schema in LAYOUTS.items():
            with tempfile.TemporaryDirectory(prefix="ce-state-") as tmp:
                got[name].append(run(schema, Path(tmp) / "state.sqlite", seed, args.group))
    for name, res in got.items():
        intent = statistics.median(a for a, _ in res)
        outcome = statistics.median(b for _, b in res)
        print(
            f"{name:10s} intent {intent:5.1f} us/item (per repeat "
            f"{', '.join(f'{a:.1f}' for a, _ in res)}), outcome {outcome:5.1f} us/item"
        )


if __name__ == "__main__":
    main()
