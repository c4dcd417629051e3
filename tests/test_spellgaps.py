"""``python -m benchmarks.spellgaps DIR``: a budget-bound spell's lost time split into the
packing of whole bodies, the count at the answer and the engine's own."""

from __future__ import annotations

import pytest

from benchmarks import spellgaps


def test_replay_waits_for_room_for_the_whole_body() -> None:
    # a 2.5 MB window: two bodies of 1.5 MB cannot share it; the second goes when the
    # first leaves (5 s after its send, or after its answer when counted there)
    mb = spellgaps.MB
    sends = [(0.0, int(1.5 * mb), 0.2), (0.0, int(1.5 * mb), 0.2)]
    assert spellgaps.replay(sends, [], 0.0, at_answer=False) == pytest.approx(5.0)
    assert spellgaps.replay(sends, [], 0.0, at_answer=True) == pytest.approx(5.2)


def test_replay_goes_through_the_slots_and_waits_for_readiness() -> None:
    # five small bodies, four slots: the fifth when the first answer comes; one ready late
    sends = [(0.0, 10, 0.3)] * 5
    assert spellgaps.replay(sends, [], 0.0, at_answer=False) == pytest.approx(0.3)
    assert spellgaps.replay([(0.0, 10, 0.1), (2.0, 10, 0.1)], [], 0.0, False) == 2.0


def test_gaps_splits_a_budget_bound_spell() -> None:
    mb = spellgaps.MB
    n = int(1.5 * mb)
    # uploads: [asked, sent, answered, bytes, kind, binds, steps, pooled at]
    ups = [[0.0, 0.0, 0.2, n, "go", "", [], 0.0], [0.0, 5.3, 5.5, n, "go", "", [], 0.0]]
    # spell: [since, last send, bytes, shortest, taken, ..., [budget, slots, ready, n,
    # mean, schedule, exact]]; the account's shortest 5.0 (a fluid 3 MB over 2.5 MB windows)
    spell = [0.0, 5.3, 2 * n, 5.0, 5.3, 5.0, [5.0, 0.2, 0.0, 1, 0.2, 0.2, True]]
    d = {"spells": {"MBX:aaaa": [spell]}, "uploads": {"MBX:aaaa": ups}, "sleeps": {}}
    t = spellgaps.gaps(d)
    assert t["spells"] == 1
    assert t["at_send"] == pytest.approx(5.0)
    assert t["at_answer"] == pytest.approx(5.2)
    assert t["taken"] - t["at_answer"] == pytest.approx(0.1)  # the engine's own
