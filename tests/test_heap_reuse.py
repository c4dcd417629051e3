"""A copying process reuses the heap its export buffers freed (``wiring.tune_for_copying``):
with glibc's top trimmed beyond 1 MiB and buffers over 4 MiB mmapped, nearly every
export's buffer came from pages just given back to the OS, faulted in and zeroed again by
the kernel (a fifth of the engine's CPU in ``throughput`` was system time). Run in a child process: the tuning is process-wide."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = r"""
import resource
from copyengine.wiring import tune_for_copying

tune_for_copying()
MIB = 1 << 20


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def burst() -> None:
    # export-sized buffers alive at once, then all freed (their items imported): six of
    # 2 MiB (the typical export) and one of 8 MiB (one of large items)
    held = [bytearray(2 * MIB) for _ in range(6)] + [bytearray(8 * MIB)]
    del held


burst()  # the first burst grows the heap: its faults are due
before = faults()
for _ in range(20):
    burst()
print(faults() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_export_buffers_are_reused_not_faulted_in_again() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    refaulted = int(out.stdout.strip().splitlines()[-1])
    # 20 bursts of 20 MiB are 102,400 pages: given back (the heap's top trimmed beyond
    # 1 MiB) or unmapped (buffers over 4 MiB mmapped) and faulted in again each time
    # before; a few hundred at most now (the interpreter's own allocations)
    assert refaulted < 2_000, refaulted
