"""Operator files (job TOML, pairs CSV) decoded the way spreadsheets and editors save them.

UTF-8 with or without a byte-order mark, and UTF-16 with a byte-order mark (Excel's "Unicode
text"), are read; anything else is refused with the file, the line and what to do, never
guessed (a cp1252 file read as latin-1 would silently change mailbox names).
"""

from __future__ import annotations

import codecs

from .errors import ConfigError


def decode_text(raw: bytes, where: str) -> str:
    """The text of ``raw`` (a file named ``where`` in messages)."""
    if raw.startswith(codecs.BOM_UTF8):
        encoding, body = "utf-8", raw[len(codecs.BOM_UTF8) :]
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, body = "utf-16", raw
    else:
        encoding, body = "utf-8", raw
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1 if encoding == "utf-8" else None
        at = f" at line {line}" if line else ""
        bad = body[exc.start : exc.start + 1].hex().upper()
        raise ConfigError(
            where,
            f"is not {encoding.upper()} text (byte 0x{bad}{at}); it was probably saved as "
            "Windows-1252 or Latin-1: save it as UTF-8 (or UTF-16 with a byte-order mark) "
            "and run again",
        ) from None
