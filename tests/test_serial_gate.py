"""The test run's own lock (``tests/serial.py``): a test marked ``serial`` never runs beside
another, the others run side by side, and the serial tests are collected first in a worker."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests import serial


def _hold(directory: str, alone: bool, name: str, out: str, rounds: int) -> None:
    gate = serial.Gate(Path(directory))
    try:
        for _ in range(rounds):
            with gate.held(alone=alone):
                start = time.monotonic()
                time.sleep(0.02)
                with open(out, "a") as f:
                    f.write(f"{name} {int(alone)} {start} {time.monotonic()}\n")
    finally:
        gate.close()


def test_a_serial_holder_never_overlaps_another_and_the_others_share(tmp_path: Path) -> None:
    out = tmp_path / "spans"
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_hold, args=(str(tmp_path / "lock"), i < 2, f"p{i}", str(out), 8))
        for i in range(5)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    spans = [line.split() for line in out.read_text().splitlines()]
    assert len(spans) == 40
    held = [(name, alone == "1", float(a), float(b)) for name, alone, a, b in spans]
    for name, alone, a, b in held:
        if not alone:
            continue
        beside = [o for o in held if o[0] != name and o[2] < b and a < o[3]]
        assert not beside, (name, a, b, beside)


class _Item:
    def __init__(self, name: str, is_serial: bool) -> None:
        self.name = name
        self.is_serial = is_serial

    def get_closest_marker(self, name: str) -> Any:
        return object() if name == "serial" and self.is_serial else None


def test_a_worker_collects_its_serial_tests_first_and_keeps_the_rest_in_order() -> None:
    made = [_Item("a", False), _Item("b", True), _Item("c", False), _Item("d", True)]
    items = cast(list[pytest.Item], list(made))
    serial.serial_first(cast(pytest.Config, SimpleNamespace(workerinput={})), items)
    assert [cast(_Item, i).name for i in items] == ["b", "d", "a", "c"]
    alone = cast(list[pytest.Item], list(made))
    serial.serial_first(cast(pytest.Config, SimpleNamespace()), alone)  # one process: as is
    assert [cast(_Item, i).name for i in alone] == ["a", "b", "c", "d"]
