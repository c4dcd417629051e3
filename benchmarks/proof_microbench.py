"""A microbenchmark of the hint proof's cost per accepted answer (a diagnostic, not a
scenario): ``fleet``'s target mailboxes' imports as ``benchmarks.pacetrace`` recorded them
(sent, answered, bytes per import), fed to one ``Proof`` per mailbox and limit as the
account feeds it; CPU microseconds per answer, and the evidence each mailbox ends with
(the same before and after a change that only makes it cheaper).

    python -m benchmarks.proof_microbench TRACE.json [--repeat 3]

Without a trace: a synthetic fleet, 400 mailboxes of 100 log-normal bodies, each sent as
the 5 s window allows (answers 40 ms after their send), then one refusal each so that the
evidence is read; and the same never refused (``fleet``'s case: no evidence is ever read).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

from copyengine.pacing.proof import Proof

WINDOW = 5.0


def synthetic(
    mailboxes: int = 400, items: int = 100, seed: int = 1
) -> list[list[tuple[float, float, int]]]:
    rng = random.Random(seed)
    out = []
    budget = int(2.5 * 1024 * 1024)
    for _ in range(mailboxes):
        t = rng.uniform(0, 3)
        used = 0
        rows = []
        for _ in range(items):
            n = max(300, min(int(24_000 * math.exp(rng.gauss(0, 1.6))), 625_000)) * 4 // 3
            if used + n > budget:
                t += WINDOW
                used = 0
            used += n
            t += rng.uniform(0.002, 0.03)
            rows.append((t, t + 0.04 + rng.uniform(0, 0.02), n))
        out.append(rows)
    return out


def from_trace(path: Path) -> list[list[tuple[float, float, int]]]:
    d = json.loads(path.read_text())
    boxes = (
        [(u[1], u[2], u[3]) for u in ups if u[1] is not None and u[2] is not None]
        for ups in d["uploads"].values()
    )
    return [rows for rows in boxes if rows]  # a mailbox none of whose uploads was answered: none


def run(
    mailboxes: list[list[tuple[float, float, int]]], refuse: bool = True
) -> tuple[float, int, list[tuple[float, ...]]]:
    n = 0
    ends: list[tuple[float, ...]] = []
    t0 = time.process_time()
    for rows in mailboxes:
        rows = sorted(rows, key=lambda r: r[1])  # answers come in the order answered
        up, req = Proof(WINDOW), Proof(10.0)
        for sent, answered, amount in rows:
            up.accepted(sent, answered, amount)
            req.accepted(sent, answered, 1)
            n += 2
        if not refuse:
            continue
        last = rows[-1]
        up.refused(last[0], last[1], 600_000, 1.0)
        e = up.evidence()
        ends.append((round(e.amount, 3), e.lo, e.hi) if e else ())
    return time.process_time() - t0, n, ends


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("trace", nargs="?")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    boxes = from_trace(Path(a.trace)) if a.trace else synthetic()
    for refuse in (True, False):
        best = math.inf
        for _ in range(a.repeat):
            cpu, n, ends = run(boxes, refuse)
            best = min(best, cpu)
        digest = hash(tuple(ends))
        print(
            f"{len(boxes)} mailboxes, {n} answers{'' if refuse else ', never refused'}: "
            f"{1e6 * best / n:.1f} us CPU per answer (best of {a.repeat}: {best:.3f} s)"
            + (f"; evidence digest {digest}" if refuse else "")
        )


if __name__ == "__main__":
    main()
