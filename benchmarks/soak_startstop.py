"""``python -m benchmarks soak startstop --seeds N [--start S] [--budget-s T]``: N real
``copyengine run`` processes on their embedded emulator, each stopped (SIGINT or SIGTERM) at
a random moment of its start (``tests/startstop.py``: 0-4 s after spawn, or 0-400 ms after
the emulator is up, the job started or a pair started): the exit code documented, no
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
    said = {"sent_ms": found.sent_ms, "stage": found.stage, "exit_code": found.code}
    return {**said, "problems": found.problems}


SOAK = Soak(
    name="soak-startstop",
    description="a stop at a random moment of a run's start on its embedded emulator "
    "(tests/startstop.py): said alike everywhere, the next run exact",
    reproduce="tests.startstop",
    described=_described,
    checked=_checked,
    columns=[
        ("signal", "signal"),
        ("sent ms", "sent_ms"),
        ("stage", "stage"),
        ("exit", "exit_code"),
    ],
)


def _exit_codes(res: dict[str, Any]) -> str:
    codes = dict(Counter(str(r.get("exit_code")) for r in res["rows"]))
    return f"; exit codes {codes}; stages {dict(Counter(r.get('stage') for r in res['rows']))}"


def main(a: Any) -> None:
    SOAK.main(a, _exit_codes)
