"""An export's body read into one buffer (``transport._read_into``): byte-exact however the
stream splits it, the body itself when one read returns it whole, an error when it ends short."""

from __future__ import annotations

import itertools
import random
from typing import Any

import aiohttp
import pytest

from copyengine.graph.transport import _read_into

pytestmark = pytest.mark.anyio


class _Content:
    """A stream that hands out ``body`` in the given pieces, never more than asked."""

    def __init__(self, body: bytes, pieces: list[int]) -> None:
        self.body, self.pieces, self.at = body, pieces, 0
        self.reads = 0

    async def read(self, n: int) -> bytes:
        self.reads += 1
        if not self.pieces:
            return b""
        want = self.pieces[0]
        take = min(want, n)
        if take == want:
            self.pieces.pop(0)
        else:
            self.pieces[0] = want - take
        out = self.body[self.at : self.at + take]
        self.at += take
        return out


class _Resp:
    def __init__(self, content: _Content) -> None:
        self.content = content


def _cuts(rng: random.Random, length: int) -> list[int]:
    k = rng.randint(1, min(6, length))
    marks = sorted(rng.sample(range(1, length), k - 1)) if k > 1 else []
    edges = [0, *marks, length]
    return [b - a for a, b in itertools.pairwise(edges)]


async def test_body_split_anyhow_is_read_byte_exact() -> None:
    rng = random.Random(2611)
    for _ in range(200):
        length = rng.randint(2, 4096)
        body = rng.randbytes(length)
        pieces = _cuts(rng, length)
        content = _Content(body, list(pieces))
        got = await _read_into(_Resp(content), length)  # type: ignore[arg-type]
        assert bytes(got) == body
        assert content.reads == len(pieces)


async def test_body_read_whole_at_once_is_returned_as_it_came() -> None:
    body = random.Random(7).randbytes(300_000)
    content = _Content(body, [len(body)])
    got: Any = await _read_into(_Resp(content), len(body))  # type: ignore[arg-type]
    # bytes, not a zero-filled buffer it was copied into
    assert type(got) is bytes and got == body


@pytest.mark.parametrize("pieces", [[], [100], [60, 40]], ids=["empty", "one", "two"])
async def test_body_shorter_than_announced_is_a_payload_error(pieces: list[int]) -> None:
    body = bytes(range(256)) * 4
    with pytest.raises(aiohttp.ClientPayloadError, match="shorter than its Content-Length"):
        await _read_into(_Resp(_Content(body, pieces)), 1000)  # type: ignore[arg-type]
