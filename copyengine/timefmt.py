"""Graph's timestamps: ISO 8601 UTC with up to seven fractional digits."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_graph_datetime(value: str) -> datetime:
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    if "." in v:
        head, rest = v.split(".", 1)
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        v = f"{head}.{(digits + '000000')[:6]}{rest[i:]}"
    dt = datetime.fromisoformat(v)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_graph_time(value: str) -> float:
    """Epoch seconds of a Graph timestamp such as ``2024-10-17T19:00:48.1052906Z``."""
    return parse_graph_datetime(value).timestamp()
