"""``work.Listed``: what a full listing returned, kept for the pass (``delta = false``),
compact, and what a listing again tells from it (``reread.Relisting``)."""

from __future__ import annotations

import random
import sys

from copyengine.pipeline.work import Listed


def _ids(rng: random.Random, n: int) -> list[str]:
    # Graph-like ids: ~150 characters
    return ["AAMkAD" + "".join(rng.choices("abcdef0123456789", k=146)) for _ in range(n)]


def test_membership_and_departures_against_sets() -> None:
    rng = random.Random(7)
    for _ in range(50):
        pool = _ids(rng, rng.randint(0, 60))
        first = rng.sample(pool, rng.randint(0, len(pool)))
        later = rng.sample(pool, rng.randint(0, len(pool)))
        a, b = Listed(hash(i) for i in first), Listed(hash(i) for i in later + later[:3])
        assert len(a) == len(set(first)) and len(b) == len(set(later))  # repeats once
        assert all((i in a) == (i in set(first)) for i in pool)
        assert a.gone(b) == {hash(i) for i in set(first) - set(later)}


def test_a_listing_is_kept_in_8_bytes_an_item() -> None:
    ids = _ids(random.Random(1), 5000)
    listed = Listed(hash(i) for i in ids)
    assert listed.nbytes() == 8 * 5000
    # the ids themselves, as a set, would hold 25 times that and more
    assert sum(sys.getsizeof(i) for i in ids) > 20 * listed.nbytes()
