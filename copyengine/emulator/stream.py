"""The emulator's opaque full-fidelity item stream (what ``exportItems`` returns as ``data``).

Clients must treat it as opaque (contract §4); this module is the only code that looks inside.
Layout, before base64::

    b"CEFTS1" | u32 header length | header (JSON) | u32 CRC32 of header | payload

The header carries every property of the item (type, dates, categories, search key, internet
message id, subject) and how to regenerate the payload (``payloadKey``, ``payloadLength``).
The payload is ``payloadLength`` bytes cut from one fixed pseudo-random block at an offset
chosen by ``payloadKey``: generated on demand, so the emulator holds gigabytes of logical
mailbox data in a few hundred bytes per item. On import the header is decoded (CRC-checked)
and the whole ``data`` string is compared with the exact encoding that header implies, so any
change anywhere in the stream is caught and answered 400.

Speed: CPython's base64 runs near 0.4 GB/s, which would make the emulator, not the client,
the bottleneck of every benchmark. The header is padded so that the prefix before the payload
is a multiple of 3 bytes; the base64 of the payload is then a slice of a precomputed encoding
of the block (one per alignment), and validation is a string comparison.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import struct
import zlib
from dataclasses import dataclass, fields

import orjson

MAGIC = b"CEFTS1"
_BLOCK_SIZE = 1 << 20
# One fixed block, doubled so that any slice of up to _BLOCK_SIZE bytes is contiguous.
_BLOCK = random.Random(0x5EED_B10C).randbytes(_BLOCK_SIZE)
_BLOCK2 = _BLOCK + _BLOCK
# base64 of _BLOCK2[r:] for r = 0, 1, 2: any slice of _BLOCK2 starting at an offset o has its
# full 3-byte groups inside _B64[o % 3].
_B64 = tuple(base64.b64encode(_BLOCK2[r:]).decode("ascii") for r in range(3))
_PREFIX = len(MAGIC) + 8  # magic, u32 header length, u32 CRC


class CorruptStream(ValueError):
    """The data is not a stream this service produced, or it was altered."""


@dataclass(frozen=True, slots=True)
class ItemContent:
    """Everything an item carries through export and import (all but id, change key, folder)."""

    type: str
    created: str  # ISO 8601 UTC, seven fractional digits as Exchange writes them
    categories: tuple[str, ...]
    search_key: bytes
    message_id: str | None
    subject: str
    payload_key: int
    size: int
    # Bytes the stream carries beyond the item's size (its properties and the stream's own
    # structure): an export's data is larger than the item's reported size.
    overhead: int = 0

    @property
    def stream_length(self) -> int:
        return self.size + self.overhead

    def __setstate__(self, state: list[object]) -> None:
        """Unpickle by field order; contents saved before ``overhead`` existed get 0 (a demo's
        persisted emulator from an earlier version keeps loading)."""
        values = dict(zip((f.name for f in fields(self)), state, strict=False))
        values.setdefault("overhead", 0)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def header(self) -> bytes:
        extra = {"streamOverhead": self.overhead} if self.overhead else {}
        raw = orjson.dumps(
            {
                **extra,
                "v": 1,
                "type": self.type,
                "createdDateTime": self.created,
                "categories": list(self.categories),
                "searchKey": base64.b64encode(self.search_key).decode(),
                "internetMessageId": self.message_id,
                "subject": self.subject,
                "payloadKey": self.payload_key,
                "payloadLength": self.size,
            },
            option=orjson.OPT_SORT_KEYS,
        )
        return raw + b" " * (-(len(raw) + _PREFIX) % 3)

    def digest(self) -> str:
        """A digest of the whole content. The payload is a pure function of (key, length), and
        import verifies it byte for byte, so hashing the header hashes the content."""
        return hashlib.sha256(self.header()).hexdigest()


def payload(key: int, length: int) -> bytes:
    offset = key % _BLOCK_SIZE
    if length <= _BLOCK_SIZE:
        return _BLOCK2[offset : offset + length]
    head = _BLOCK2[offset : offset + _BLOCK_SIZE]
    whole, rest = divmod(length, _BLOCK_SIZE)
    return head * whole + head[:rest]


def _payload_b64(key: int, length: int) -> str:
    if length > _BLOCK_SIZE:
        return base64.b64encode(payload(key, length)).decode("ascii")
    offset = key % _BLOCK_SIZE
    r = offset % 3
    whole = length // 3
    start = (offset - r) // 3 * 4
    body = _B64[r][start : start + whole * 4]
    rest = length - whole * 3
    if rest:
        tail = _BLOCK2[offset + whole * 3 : offset + length]
        body += base64.b64encode(tail).decode("ascii")
    return body


def data_length(content: ItemContent) -> int:
    """Characters of ``encode(content)``, without building it: the header is padded to a
    whole number of base64 groups, then the payload's base64 follows."""
    prefix = _PREFIX + len(content.header())
    return prefix * 4 // 3 + 4 * -(-content.stream_length // 3)


def encode(content: ItemContent) -> str:
    """The base64 ``data`` string of an item."""
    header = content.header()
    prefix = b"".join(
        (MAGIC, struct.pack(">I", len(header)), header, struct.pack(">I", zlib.crc32(header)))
    )
    return base64.b64encode(prefix).decode("ascii") + _payload_b64(
        content.payload_key, content.stream_length
    )


def decode(data: str | bytes) -> ItemContent:
    """Validate a ``data`` string and return the content it carries; CorruptStream if not."""
    if isinstance(data, bytes):
        try:
            data = data.decode("ascii")
        except UnicodeDecodeError as exc:
            raise CorruptStream("Data is not valid base64") from exc
    try:
        head = base64.b64decode(data[:16], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CorruptStream("Data is not valid base64") from exc
    if len(head) < 12 or not head.startswith(MAGIC):
        raise CorruptStream("Data is not a mailbox item stream")
    (hlen,) = struct.unpack_from(">I", head, len(MAGIC))
    prefix_len = _PREFIX + hlen
    if prefix_len % 3 or hlen > 1 << 20:
        raise CorruptStream("Item stream header is malformed")
    try:
        prefix = base64.b64decode(data[: prefix_len // 3 * 4], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CorruptStream("Data is not valid base64") from exc
    if len(prefix) != prefix_len:
        raise CorruptStream("Item stream is truncated")
    header = prefix[len(MAGIC) + 4 : len(MAGIC) + 4 + hlen]
    (crc,) = struct.unpack_from(">I", prefix, len(MAGIC) + 4 + hlen)
    if zlib.crc32(header) != crc:
        raise CorruptStream("Item stream header checksum mismatch")
    try:
        h = orjson.loads(header)
        content = ItemContent(
            type=str(h["type"]),
            created=str(h["createdDateTime"]),
            categories=tuple(str(c) for c in h["categories"]),
            search_key=base64.b64decode(h["searchKey"], validate=True),
            message_id=None if h["internetMessageId"] is None else str(h["internetMessageId"]),
            subject=str(h["subject"]),
            payload_key=int(h["payloadKey"]),
            size=int(h["payloadLength"]),
            overhead=int(h.get("streamOverhead", 0)),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise CorruptStream("Item stream header is malformed") from exc
    if content.size < 0 or content.overhead < 0 or content.header() != header:
        raise CorruptStream("Item stream header is not canonical")
    expected = _payload_b64(content.payload_key, content.stream_length)
    body = data[prefix_len // 3 * 4 :]
    if len(body) != len(expected):
        raise CorruptStream("Item stream payload length mismatch")
    if body != expected:
        raise CorruptStream("Item stream payload is corrupt")
    return content
