"""The ``stricter`` benchmark's spans without an import (issue 26), measured from each
import's answer time (the emulator's ``/stats/imports``), with the target mailboxes left in
each span and the longest wait an even client would have had there."""

from __future__ import annotations

import random
from typing import Any

from benchmarks.stricter import Span, longest, longest_spans, spans

RATE = 2_500_000 / 2 / 5.0  # bytes per wall second: exchange-fast x60, half to another writer


def _series(rnd: random.Random) -> dict[str, list[list[float]]]:
    """Per mailbox, imports answered at random distinct times with random bodies."""
    out = {}
    for m in range(rnd.randint(1, 8)):
        times = sorted(rnd.uniform(0.0, 30.0) for _ in range(rnd.randint(1, 40)))
        out[f"t{m}@target.example"] = [[t, rnd.randint(200, 200_000)] for t in times]
    return out


def _truth(imports: dict[str, list[list[float]]]) -> list[tuple[float, float, int, int, float]]:
    """Spans by brute force: every pair of consecutive answers; the mailboxes whose last
    import comes after the span's start; each one's next body after the start."""
    times = sorted(t for rows in imports.values() for t, _ in rows)
    out = []
    for k in range(1, len(times)):
        start, end = times[k - 1], times[k]
        nexts = [
            next(n for t, n in rows if t > start)
            for rows in imports.values()
            if max(t for t, _ in rows) > start
        ]
        out.append((end - start, start - times[0], k, len(nexts), min(nexts) / RATE))
    return out


def test_spans_are_the_exact_gaps_with_the_mailboxes_left_and_the_even_bound() -> None:
    rnd = random.Random(26)
    for _ in range(200):
        imports = _series(rnd)
        got = spans(imports, RATE)
        want = _truth(imports)
        assert len(got) == len(want)
        for g, (d, at, k, left, even) in zip(got, want, strict=True):
            assert (g.answered, g.left) == (k, left)
            assert abs(g.seconds - d) < 1e-9 and abs(g.at - at) < 1e-9
            assert abs(g.even_s - even) < 1e-9
            assert g.physical == (d <= even)
        for after in (0.0, 5.0):
            later = [w for w in want if w[1] >= after]
            assert longest(got, after) == max((w[0] for w in later), default=0.0)
            engine = [w[0] for w in later if w[0] > w[4]]
            assert longest(got, after, engine=True) == max(engine, default=0.0)
            top = longest_spans(got, after, n=3)
            assert [x.seconds for x in top] == sorted((w[0] for w in later), reverse=True)[:3]


def test_a_span_is_not_rounded_to_a_sampling_period() -> None:
    # the harness's counters, sampled every 0.25 s, read a 0.3 s span as 0.5 s (issue 26)
    imports = {"a@t": [[1.0, 1000], [1.3, 1000], [1.4, 1000]]}
    assert abs(longest(spans(imports, RATE)) - 0.3) < 1e-9


def test_the_tail_is_physical_and_a_stall_with_every_mailbox_left_is_the_engines() -> None:
    body = 200_000
    even = body / RATE  # 0.8 s wall (48 service s): one mailbox's gap at an even rate
    # eight mailboxes import every 0.1 s together up to 2 s, one of them stalls 1 s
    # meanwhile; then one mailbox is left and imports a 200 KB body every 0.75 s
    imports: dict[str, list[list[float]]] = {
        f"m{i}@t": [[0.1 * j + 0.01 * i, body] for j in range(1, 20)] for i in range(8)
    }
    for rows in imports.values():
        rows[10:] = [[t + 1.0, n] for t, n in rows[10:]]
    imports["m0@t"] += [[2.97 + 0.75 * j, body] for j in range(1, 4)]
    got = spans(imports, RATE)
    stall = max((s for s in got if s.left == 8), key=lambda s: s.seconds)
    assert abs(stall.seconds - (1.0 + 0.1 - 0.07)) < 1e-9 and not stall.physical
    tail = [s for s in got if s.left == 1]
    assert len(tail) == 3 and all(s.physical for s in tail)
    assert all(abs(s.seconds - 0.75) < 1e-9 and abs(s.even_s - even) < 1e-9 for s in tail)
    assert longest(got, engine=True) == stall.seconds
    assert isinstance(stall, Span) and stall.answered == 80


def _variant(ratio: int, idle: float, span: dict[str, Any]) -> dict[str, Any]:
    figures = {
        "share_of_real_budget": 0.9,
        "share_429": 0.01,
        "longest_idle_service_s": idle,
        "longest_idle_after_first_window_s": idle,
        "longest_engine_idle_after_first_window_s": 0.0 if span["physical"] else idle,
        "longest_spans_after_first_window": [span],
    }
    return {
        "ratio": ratio,
        "background": 0.5,
        "integrity": {"lost": 0, "duplicated": 0},
        **figures,
        "base": dict(figures),
    }


def test_the_verdict_says_where_the_longest_span_falls_and_whose_it_is() -> None:
    from benchmarks.stricter import verdicts

    tail = {"service_s": 40.0, "at_wall_s": 50.0, "answered": 1999, "mailboxes_left": 1,
            "even_service_s": 48.0, "physical": True}  # fmt: skip
    mid = {"service_s": 262.0, "at_wall_s": 21.0, "answered": 583, "mailboxes_left": 8,
           "even_service_s": 2.0, "physical": False}  # fmt: skip
    (alone,) = verdicts([_variant(2, 40.0, tail)])
    assert "reference" not in alone  # no 1/1 reference run: none quoted
    assert "at 1999 imports with 1 target mailbox left" in alone and "48 s: physical" in alone
    assert "does not explain 0 s (met)" in alone
    _, cut = verdicts([_variant(1, 255.0, mid), _variant(2, 262.0, mid)])
    assert "the 1/1 reference's 255 s" in cut
    assert "with 8 target mailboxes left" in cut and "2 s: the engine's" in cut
    assert cut.count("does not explain 262 s (MISSED)") == 2  # this engine's, and the base's
