"""``python -m benchmarks.pacetrace refusals DIR``: per upload refused, its Retry-After, the
mailbox's next body and the refused body's own next send, in service seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import pacetrace


def test_refusals_reads_the_waits_after_each_429(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # uploads: [asked, sent, answered, bytes, ...]; caps: [t, reason, retry_after, bytes, ...]
    ups = [
        [9.0, 9.5, 9.6, 500],
        [9.9, 10.0, 10.0, 700],  # refused at 10.0
        [9.9, 10.5, 10.6, 300],  # the next body: 0.5 s later
        [10.0, 12.0, 12.1, 700],  # the refused body again: 2 s later
    ]
    caps = [
        [3.0, "IncomingBytes", 1.0, 100],  # before ``after``: not counted
        [10.0, "IncomingBytes", 0.1, 700],
        [10.6, "answered", 0.0, 300],
        [10.8, "RequestRate", 2.0, 0],  # no body: not an upload (a listing's, a GET's)
    ]
    (tmp_path / "1.json").write_text(json.dumps({"uploads": {"m": ups}, "caps": {"m": caps}}))
    pacetrace.refusals(tmp_path)
    out = capsys.readouterr().out
    assert "1 refused after 6 s" in out
    assert "Retry-After median 6.0 s" in out
    assert "next body median 30 s" in out
    assert "again median 120 s" in out
