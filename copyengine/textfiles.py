"""Operator files (job TOML, pairs CSV): decoded the way spreadsheets and editors save them,
and read as typed tables whose errors name the key path.

UTF-8 with or without a byte-order mark, UTF-16 with a byte-order mark (Excel's "Unicode
text") and, for the pairs file, an encoding the job declares, are read; anything else is
refused with the file, the line and what to do, never guessed (a cp1252 file read as
latin-1 would silently change mailbox names).
"""

from __future__ import annotations

import codecs
import difflib
import math
import re
from typing import Any

from .errors import ConfigError


def decode_text(
    raw: bytes, where: str, declared: str | None = None, advice: str | None = None
) -> str:
    """The text of ``raw`` (a file named ``where`` in messages). A byte-order mark decides
    the encoding; without one, ``declared`` (an operator's ``pairs_encoding``) or UTF-8.
    Undecodable bytes are a ConfigError at ``where:line`` ending in ``advice``."""
    if raw.startswith(codecs.BOM_UTF8):
        encoding, body = "utf-8", raw[len(codecs.BOM_UTF8) :]
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, body = "utf-16", raw
    else:
        encoding, body = declared or "utf-8", raw
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        bad = body[exc.start : exc.start + 1].hex().upper()
        if encoding == "utf-16":
            raise ConfigError(
                where,
                f"is not valid UTF-16 text (broken at byte {exc.start}): the file is cut "
                "short or damaged; save it again (as UTF-8) and run again",
            ) from None
        start = body.rfind(b"\n", 0, exc.start) + 1
        line = body[: exc.start].count(b"\n") + 1
        column = len(body[start : exc.start].decode(encoding, errors="replace")) + 1
        name = codecs.lookup(encoding).name.upper()
        default = (
            "it was probably saved as Windows-1252 or Latin-1: save it as UTF-8 (or UTF-16 "
            "with a byte-order mark) and run again"
        )
        raise ConfigError(
            f"{where}:{line}",
            f"is not {name} text (byte 0x{bad} at line {line}, column {column}); "
            + (advice or default),
        ) from None


# the job file's own keys, outside any table: written below a [table] they land in it
TOP_LEVEL_KEYS = ("pairs_csv", "pairs_encoding")


class Table:
    """A TOML table being read: typed getters that name the key path, and a check that
    nothing unknown is left over."""

    def __init__(self, raw: Any, where: str) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(where, f"must be a table, not {type(raw).__name__}")
        self.raw = raw
        self.where = where
        self.used: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(
        self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False
    ) -> Any:
        self.used.add(key)
        if key not in self.raw:
            if required:
                raise ConfigError(self.path(key), "is required")
            return default
        value = self.raw[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (
            isinstance(value, bool)
            and kind is not bool
            and bool not in (kind if isinstance(kind, tuple) else (kind,))
        ):
            raise ConfigError(self.path(key), f"must be {kind_name(kind)}, not a boolean")
        if not isinstance(value, kind):
            hint = ""
            if isinstance(value, dict) and not self.where and kind is list:
                hint = f" (each entry is its own [[{key}]] table, with double brackets)"
            raise ConfigError(
                self.path(key), f"must be {kind_name(kind)}, not {kind_name(type(value))}{hint}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(self.path(key), f"must be a finite number, not {value}")
        return value

    def table(self, key: str) -> Table:
        self.used.add(key)
        return Table(self.raw.get(key, {}), self.path(key))

    def positive(self, key: str, kind: type, default: Any) -> Any:
        v = self.get(key, kind, default)
        if v <= 0:
            raise ConfigError(self.path(key), "must be greater than 0")
        return v

    def done(self) -> None:
        extra = sorted(set(self.raw) - self.used)
        if extra:
            # every key this table knows has been asked for by now: a typo is named with
            # the key it is most like
            near = difflib.get_close_matches(str(extra[0]), sorted(self.used), n=1, cutoff=0.75)
            hint = f"; did you mean {near[0]}?" if near else ""
            if self.where and extra[0] in TOP_LEVEL_KEYS:
                hint = (
                    f"; {extra[0]} goes at the top of the job file, before the first [table] "
                    "(TOML puts a key in the table written above it)"
                )
            raise ConfigError(self.path(extra[0]), "unknown key" + hint)


def kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds:  # a number: an integer is one too
        kinds = tuple(k for k in kinds if k is not int)
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


# A user principal name: one @, a non-empty local part, a domain of dot-separated labels.
UPN = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


def upn(value: str, where: str) -> str:
    """``value`` if it is a user principal name, else a ConfigError at ``where``."""
    if value[:7].lower() == "mailto:":  # a hyperlink's address, pasted from Excel or Outlook
        raise ConfigError(
            where,
            f"{value!r} is a mail link, not a user principal name: remove {value[:7]!r} "
            "(expected name@domain.tld)",
        )
    if not UPN.match(value):
        raise ConfigError(
            where, f"{value!r} is not a user principal name (expected name@domain.tld)"
        )
    return value
