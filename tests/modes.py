"""The deletion modes of a replayed script (``tests/histories.py``'s ``replay``) as test
parameters. A replay whose defect is not tied to a deletion mode runs in the mode it was found
in (else mirror) in the default run, and in the other mode with ``pytest -m slow`` (``.ci/run``
runs both tiers); the test ids stay ``...-mirror`` / ``...-keep``. Where what is checked
differs by mode (kept copies, "removed or kept by the policy", a folder deleted whole or
swept) both modes run by default: those tests keep ``["mirror", "keep"]``."""

from __future__ import annotations

from typing import Any

import pytest

MODES = ("mirror", "keep")


def modes(first: str) -> list[Any]:
    """``first`` in the default run, the other mode in the slow tier."""
    assert first in MODES
    return [pytest.param(m, id=m, marks=() if m == first else pytest.mark.slow) for m in MODES]


def by_mode(
    scripts: list[Any], first: str = "mirror", both: frozenset[str] = frozenset()
) -> list[Any]:
    """``(script, mode)`` params of ``pytest.param`` scripts: ``first`` in the default run and
    the other mode with ``-m slow``; both in the default run for the scripts whose ids are in
    ``both`` (a defect found in the other mode)."""
    assert first in MODES and both <= {p.id for p in scripts}
    return [
        pytest.param(
            *p.values,
            m,
            id=f"{p.id}-{m}",
            marks=[*p.marks, *(() if m == first or p.id in both else (pytest.mark.slow,))],
        )
        for p in scripts
        for m in MODES
    ]
