"""``python -m benchmarks soak cutshort --seeds N [--start S] [--budget-s T]``: N runs whose
drain is cut short at a random moment (``tests/cutshort.py``: random drain deadlines, the
quiet cut, a throttled or time-scaled emulator, lost answers, a stop at a random time),
each against a fresh in-process emulator: after each, the report's per-pair counts agree
with the state's (what ``copyengine status`` shows) and the next run finishes the copy
exactly. Writes ``soak-cutshort.{json,md}`` (``results_dir``) and prints one line per seed.
A failing seed is reproduced with ``python -m tests.cutshort SEED``."""

from __future__ import annotations

from typing import Any

from benchmarks.seeded import Soak


def _described(seed: int) -> dict[str, Any]:
    from tests.cutshort import Case

    case = Case.of(seed)
    return {"profile": case.profile, "drain_timeout_s": case.drain_timeout_s}


def _checked(seed: int) -> dict[str, Any]:
    from tests.cutshort import check

    return {"problems": check(seed)}


SOAK = Soak(
    name="soak-cutshort",
    description="runs cut short at random moments (tests/cutshort.py): report and state "
    "agree, the next run is exact",
    reproduce="tests.cutshort",
    described=_described,
    checked=_checked,
    columns=[("profile", "profile"), ("drain deadline s", "drain_timeout_s")],
)


def run(seeds: int, start: int = 1, budget_s: float | None = None) -> dict[str, Any]:
    from tests.histories import quiet

    quiet()
    return SOAK.run(seeds, start, budget_s)


def main(a: Any) -> None:
    from tests.histories import quiet

    quiet()
    SOAK.main(a)
