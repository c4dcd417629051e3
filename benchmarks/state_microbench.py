"""A microbenchmark of the SQLite state's per-item statements (a diagnostic, not a
scenario): CPU per item of the intent upserts (batches of 40) and the outcome updates
(batches of 100) for 20,000 items of 10 pairs, with Graph-sized ids, in a temporary file.

Layouts: ``v3`` (schema 3: WITHOUT ROWID, a status index, SQLite's default checkpoint),
``v4-default-checkpoint`` (schema 4 with the default checkpoint) and ``v4`` (schema 4 as
the store opens it).

    python -m benchmarks.state_microbench
"""

from __future__ import annotations

import base64
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from copyengine.state.sqlite import ITEMS_TABLE, SCHEMA

INTENT = (
    "INSERT INTO items (pair, source_id, folder_id, search_key, size, target_folder_id, "
    "status, attempts, updated, source_change_key) VALUES (?,?,?,?,?,?,?,1,?,?) "
    "ON CONFLICT(pair, source_id) DO UPDATE SET status=excluded.status, "
    "target_folder_id=excluded.target_folder_id, attempts=items.attempts+1, "
    "updated=excluded.updated, search_key=excluded.search_key, "
    "source_change_key=excluded.source_change_key"
)
OUTCOME = (
    "UPDATE items SET status=?, target_id=COALESCE(?, target_id), "
    "target_change_key=COALESCE(?, target_change_key), error=?, request_id=?, updated=? "
    "WHERE pair=? AND source_id=?"
)
V3_ITEMS = (
    ITEMS_TABLE.replace(
        "UNIQUE (pair, source_id)\n);", "PRIMARY KEY (pair, source_id)\n) WITHOUT ROWID;"
    )
    + "\nCREATE INDEX IF NOT EXISTS items_by_status ON items (pair, status);"
)
N, PAIRS, FOLDERS = 20_000, 10, 10


def _id(rng: random.Random) -> str:
    return "AAMkAG" + base64.urlsafe_b64encode(rng.randbytes(105)).decode()


def run(layout: str, path: Path) -> tuple[float, float]:
    """(intent us per item, outcome us per item)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    if layout == "v4":
        db.execute("PRAGMA wal_autocheckpoint=10000")
    db.executescript(SCHEMA if layout != "v3" else SCHEMA.replace(ITEMS_TABLE, V3_ITEMS))
    rng = random.Random(7)
    pairs = [f"src{i}@contoso.example->dst{i}@fabrikam.example" for i in range(PAIRS)]
    folders = [_id(rng) for _ in range(FOLDERS)]
    items = [(rng.choice(pairs), _id(rng), rng.choice(folders)) for _ in range(N)]
    c0 = time.process_time()
    for s in range(0, N, 40):
        rows = [
            (p, i, f, rng.randbytes(16), 50_000, f, 1, time.time(), "CK" + i[:20])
            for p, i, f in items[s : s + 40]
        ]
        db.execute("BEGIN")
        db.executemany(INTENT, rows)
        db.execute("COMMIT")
    c1 = time.process_time()
    for s in range(0, N, 100):
        rows2 = [
            (2, _id(rng), "ck", None, "req-" + i[:30], time.time(), p, i)
            for p, i, _ in items[s : s + 100]
        ]
        db.execute("BEGIN")
        db.executemany(OUTCOME, rows2)
        db.execute("COMMIT")
    c2 = time.process_time()
    db.close()
    return (c1 - c0) / N * 1e6, (c2 - c1) / N * 1e6


def main() -> None:
    for layout in ("v3", "v4-default-checkpoint", "v4"):
        with tempfile.TemporaryDirectory(prefix="ce-state-") as tmp:
            intent, outcome = run(layout, Path(tmp) / "state.sqlite")
        print(
            f"{layout:22s} intent {intent:6.1f} us/item, outcome {outcome:6.1f} us/item, "
            f"total {intent + outcome:6.1f}"
        )


if __name__ == "__main__":
    main()
