"""The small part of OData the mailbox API uses: $select, $filter, $orderby, $expand, paging
tokens. Pure functions over plain data."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from .store import parse_iso


class ODataError(ValueError):
    """A query option the service refuses (400 BadRequest)."""


_CLAUSE = re.compile(
    r"""\s*(?P<prop>[A-Za-z]+)\s+(?P<op>eq|ne|ge|gt|le|lt)\s+
        (?:'(?P<str>(?:[^']|'')*)'|(?P<num>-?\d+)(?![\d:T-])|(?P<date>\d{4}-\d{2}-\d{2}[0-9T:.Z+-]*))\s*""",
    re.VERBOSE,
)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "ge": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "le": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
}

Getter = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Clause:
    prop: str
    op: str
    value: Any


def parse_filter(text: str, allowed: dict[str, str]) -> list[Clause]:
    """``prop op value [and ...]``; ``allowed`` maps property name to kind (str|date|int)."""
    clauses = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        m = _CLAUSE.fullmatch(part)
        if m is None:
            raise ODataError(f"Invalid filter clause: '{part}'")
        prop = m["prop"]
        kind = allowed.get(prop)
        if kind is None:
            raise ODataError(f"Could not find a property named '{prop}' for filtering")
        value: Any
        if kind == "str":
            if m["str"] is None:
                raise ODataError(f"'{prop}' must be compared with a quoted string")
            value = m["str"].replace("''", "'")
        elif kind == "date":
            raw = m["date"] or m["str"]
            if raw is None:
                raise ODataError(f"'{prop}' must be compared with a date")
            try:
                value = parse_iso(raw if "T" in raw else raw + "T00:00:00")
            except ValueError as exc:
                raise ODataError(f"Invalid date '{raw}'") from exc
        else:
            if m["num"] is None:
                raise ODataError(f"'{prop}' must be compared with a number")
            value = int(m["num"])
        clauses.append(Clause(prop, m["op"], value))
    return clauses


def matches(clauses: list[Clause], get: Getter, obj: Any) -> bool:
    for c in clauses:
        v = get(obj, c.prop)
        if isinstance(c.value, datetime) and isinstance(v, str):
            v = parse_iso(v)
        if not _OPS[c.op](v, c.value):
            return False
    return True


def parse_select(text: str | None, known: set[str]) -> set[str] | None:
    if not text:
        return None
    props = {p.strip() for p in text.split(",") if p.strip()}
    unknown = props - known
    if unknown:
        raise ODataError(f"Could not find a property named '{sorted(unknown)[0]}'")
    return props | {"id"}


def parse_orderby(text: str | None, known: set[str]) -> tuple[str, bool] | None:
    if not text:
        return None
    parts = text.split()
    if (
        len(parts) > 2
        or parts[0] not in known
        or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc"))
    ):
        raise ODataError(f"Invalid $orderby: '{text}'")
    return parts[0], len(parts) == 2 and parts[1].lower() == "desc"


_EXPAND = re.compile(
    r"singleValueExtendedProperties(?:\(\s*\$filter\s*=\s*(?P<filter>.*)\))?\s*$", re.DOTALL
)


def parse_expand(text: str | None) -> set[str] | None:
    """Which single-value extended property ids to add (empty set: all of them)."""
    if not text:
        return None
    m = _EXPAND.fullmatch(text.strip())
    if m is None:
        raise ODataError(f"Invalid $expand: '{text}'")
    if not m["filter"]:
        return set()
    ids = re.findall(r"id\s+eq\s+'([^']*)'", m["filter"], flags=re.IGNORECASE)
    if not ids:
        raise ODataError(f"Invalid $filter in $expand: '{m['filter']}'")
    return {i.lower() for i in ids}


def page_size(query: Any, prefer: str | None, default: int) -> int:
    size = default
    if prefer:
        m = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer)
        if m:
            size = int(m.group(1))
    top = query.get("$top")
    if top is not None:
        try:
            size = int(top)
        except ValueError as exc:
            raise ODataError(f"Invalid $top: '{top}'") from exc
        if size < 1 or size > 999:
            raise ODataError("$top must be between 1 and 999")
    return max(1, min(size, 999))


def pack_token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def unpack_token(token: str) -> dict[str, Any] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
