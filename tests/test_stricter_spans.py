"""The ``stricter`` benchmark's diagnostic of where its longest spans without an import fall
(issue 26: after the first window they are at the job's tail)."""

from __future__ import annotations

import random

from benchmarks.stricter import longest_idle, longest_spans


def _samples(times: list[float], step: float = 0.25) -> list[tuple[float, float, int, int]]:
    """Counters sampled every ``step`` seconds as the harness samples them."""
    end = max(times) + 2 * step
    out, t = [], 0.0
    while t <= end:
        out.append((t, 0.0, sum(1 for x in times if x <= t), 0))
        t += step
    return out


def test_the_longest_spans_agree_with_longest_idle_and_say_where() -> None:
    rnd = random.Random(26)
    for _ in range(50):
        times = sorted(rnd.uniform(0.1, 20.0) for _ in range(rnd.randint(2, 60)))
        samples = _samples(times)
        for after in (0.0, 5.0):
            spans = longest_spans(samples, after, n=100)
            assert [d for d, _, _ in spans] == sorted((d for d, _, _ in spans), reverse=True)
            assert (spans[0][0] if spans else 0.0) == longest_idle(samples, after)
            first = next(t for t, _, k, _ in samples if k > 0)
            counts = {round(t - first, 6): k for t, _, k, _ in samples}
            for d, at, k in spans:
                assert at > after and d > 0
                assert counts[round(at, 6)] == k  # the imports answered when it began


def test_a_tail_span_is_seen_as_the_tail() -> None:
    # imports every 0.2 s up to 10 s, then the last one 1.5 s later: the tail
    times = [0.2 * i for i in range(1, 51)] + [11.5]
    spans = longest_spans(_samples(times), 5.0)
    d, at, k = spans[0]
    assert d >= 1.25 and k == 50 and at >= 9.5
