"""What each event says, and how it is written for each kind of receiver (pure).

An ``Event`` is its name, the job's name, its time and its fields (plain JSON values). The
generic format is exactly that, as one JSON object; Teams gets an Adaptive Card in the
message shape Teams' incoming webhooks and Workflows take; Slack gets ``text`` (what a
notification shows) and ``blocks``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .schema import (
    BAD_ITEM_LIMIT,
    JOB_STALLED,
    PAIR_FAILED,
    PASS_FINISHED,
    SIGNOFF_COMPLETE,
    SIGNOFF_INCOMPLETE,
)

# Slack: a section holds at most 10 fields, a field's text at most 2000 characters, a header
# at most 150; Teams has no small limits, the same facts are shown for both.
MAX_FACTS = 10
MAX_TEXT = 1900
MAX_HEADER = 150


@dataclass(frozen=True)
class Event:
    name: str
    job: str
    time: str  # ISO 8601, UTC
    fields: dict[str, Any] = field(default_factory=dict)


def generic(e: Event) -> dict[str, Any]:
    """``{"event", "job", "time", ...fields}``: the fields never shadow the first three."""
    return {**e.fields, "event": e.name, "job": e.job, "time": e.time}


def title(e: Event) -> str:
    """One line a person reads first."""
    f = e.fields
    if e.name == PASS_FINISHED:
        return f"{e.job}: pass {f.get('pass')} ({f.get('kind')}) finished: {f.get('outcome')}"
    if e.name == PAIR_FAILED:
        return f"{e.job}: pair {f.get('pair')} failed"
    if e.name == BAD_ITEM_LIMIT:
        return (
            f"{e.job}: pair {f.get('pair')} stopped at the bad-item limit "
            f"({f.get('failed')} failed, limit {f.get('limit')})"
        )
    if e.name == SIGNOFF_COMPLETE:
        return f"{e.job}: cutover signed off: every source item accounted for"
    if e.name == SIGNOFF_INCOMPLETE:
        return f"{e.job}: cutover sign-off incomplete ({f.get('pairs_incomplete')} pairs)"
    if e.name == JOB_STALLED:
        return f"{e.job}: no progress for {f.get('stalled_min')} minutes"
    return f"{e.job}: {e.name}"


def facts(e: Event) -> list[tuple[str, str]]:
    """The fields as (label, text) pairs a person reads, at most ``MAX_FACTS``; lists (a
    sign-off's pairs) one line each."""
    out: list[tuple[str, str]] = []
    for k, v in e.fields.items():
        if isinstance(v, list):
            text = "\n".join(_line(x) for x in v[:20]) + (
                f"\n… and {len(v) - 20} more" if len(v) > 20 else ""
            )
        elif isinstance(v, dict):
            text = _line(v)
        else:
            text = "" if v is None else str(v)
        if text:
            out.append((k.replace("_", " "), text[:MAX_TEXT]))
    return out[:MAX_FACTS]


def _line(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k.replace('_', ' ')} {x}" for k, x in v.items() if x not in (None, ""))
    return str(v)


def teams(e: Event) -> dict[str, Any]:
    """The message Teams documents for an Adaptive Card through an incoming webhook (and a
    Workflows "post to a channel when a webhook request is received" flow)."""
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": [
            {
                "type": "TextBlock",
                "text": title(e),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
            },
            {
                "type": "TextBlock",
                "text": f"{e.name} · {e.time}",
                "isSubtle": True,
                "spacing": "None",
                "wrap": True,
            },
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts(e)]},
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def slack_escaped(text: str) -> str:
    """Slack's mrkdwn takes ``&``, ``<`` and ``>`` as markup (a pair is ``a->b``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(e: Event) -> dict[str, Any]:
    """``text`` (the notification's words and the fallback) and ``blocks``."""
    head = title(e)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:MAX_HEADER]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"`{e.name}` · {e.time}"}]},
    ]
    fs = [(k, slack_escaped(v)[:MAX_TEXT]) for k, v in facts(e)]
    if fs:
        blocks.append(
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fs],
            }
        )
    return {"text": slack_escaped(head), "blocks": blocks}


FORMATTERS = {"generic": generic, "teams": teams, "slack": slack}


def body(e: Event, fmt: str) -> dict[str, Any]:
    return FORMATTERS[fmt](e)
