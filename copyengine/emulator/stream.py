"""The emulator's opaque full-fidelity item stream (what ``exportItems`` returns as ``data``).

Clients must treat it as opaque (contract §4); this module is the only code that looks inside.
Layout, before base64::

    b"CEFTS1" | u32 header length | header (JSON) | u32 CRC32 of header | payload

The header carries every property of the item (type, dates, categories, search key, internet
message id, subject) and how to regenerate the payload (``payloadKey``, ``payloadLength``).
The payload is ``payloadLength`` bytes cut from one fixed pseudo-random block at an offset
chosen by ``payloadKey``: generated on demand, so the emulator holds gigabytes of logical
mailbox data in a few hundred bytes per item. On import the payload is compared byte for byte
with what the header says it must be, and the header with its CRC, so any corruption of the
stream is caught and answered 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import struct
import zlib
from dataclasses import dataclass

import orjson

MAGIC = b"CEFTS1"
_BLOCK_SIZE = 1 << 20
# One fixed block, doubled so that any slice of up to _BLOCK_SIZE bytes is contiguous.
_BLOCK = random.Random(0x5EED_B10C).randbytes(_BLOCK_SIZE)
_BLOCK2 = _BLOCK + _BLOCK


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

    def header(self) -> bytes:
        return orjson.dumps(
            {
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


def encode(content: ItemContent) -> str:
    """The base64 ``data`` string of an item."""
    header = content.header()
    raw = b"".join(
        (
            MAGIC,
            struct.pack(">I", len(header)),
            header,
            struct.pack(">I", zlib.crc32(header)),
            payload(content.payload_key, content.size),
        )
    )
    return base64.b64encode(raw).decode("ascii")


def decode(data: str | bytes) -> ItemContent:
    """Validate a ``data`` string and return the content it carries; CorruptStream if not."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CorruptStream("Data is not valid base64") from exc
    if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + 8:
        raise CorruptStream("Data is not a mailbox item stream")
    pos = len(MAGIC)
    (hlen,) = struct.unpack_from(">I", raw, pos)
    pos += 4
    header = raw[pos : pos + hlen]
    pos += hlen
    if len(header) != hlen or len(raw) < pos + 4:
        raise CorruptStream("Item stream is truncated")
    (crc,) = struct.unpack_from(">I", raw, pos)
    pos += 4
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
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise CorruptStream("Item stream header is malformed") from exc
    body = memoryview(raw)[pos:]
    if len(body) != content.size:
        raise CorruptStream("Item stream payload length mismatch")
    if body != payload(content.payload_key, content.size):
        raise CorruptStream("Item stream payload is corrupt")
    return content
