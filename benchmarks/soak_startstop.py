"""``python -m benchmarks soak startstop --seeds N [--start S] [--budget-s T]``: N real
``copyengine run`` processes on their embedded emulator, each stopped (SIGINT or SIGTERM) at
a random moment of its first 4 s (``tests/startstop.py``): the exit code documented, no
traceback, the report, ``job.finished`` and the screen agreeing, ``status`` reading the
state, and the next run exact (``verify``). Writes ``soak-startstop.{json,md}``
(``results_dir``) and prints one line per seed. A failing seed is reproduced with
``python -m tests.startstop SEED``."""

from __future__ import annotations

from collections import Counter
from typing import Any

from benchmarks.seeded import Soak


def _described(seed: int) -> dict[str, Any]:
    from tests.startstop import Case

    return {"signal": Case.of(seed).sig.name}


def _checked(seed: int) -> dict[str, Any]:
    from tests.startstop import check

    found = check(seed)
    return {"sent_ms": found.sent_ms, "exit_code": found.code, "problems": found.problems}


SOAK = Soak(
    name="soak-startstop",
    description="a stop at a random moment of a run's first 4 s on its embedded emulator "
    "(tests/startstop.py): said alike everywhere, the next run exact",
    reproduce="tests.startstop",
    described=_described,
    checked=_checked,
    columns=[("signal", "signal"), ("sent ms", "sent_ms"), ("exit", "exit_code")],
)


def _exit_codes(res: dict[str, Any]) -> str:
    return f"; exit codes {dict(Counter(str(r.get('exit_code')) for r in res['rows']))}"


def main(a: Any) -> None:
    SOAK.main(a, _exit_codes)
