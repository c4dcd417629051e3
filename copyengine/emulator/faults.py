"""Fault injection: rules matched per call, by probability and/or scripted counts.

A rule is a table such as ``{"kind": "drop_after", "calls": ["importItem"], "count": 2}`` or
``{"kind": "http_503", "probability": 0.02, "retry_after": 1.5}``. Kinds:

``http_503`` / ``http_504``   answer the error (``retry_after`` seconds, optional)
``drop_before``               close the connection without processing the request
``drop_after``                process the request (an import is committed), then drop
``slow``                      add ``delay`` seconds before answering
``export_drop``               in a multi-item exportItems, the 200 answer silently omits one
                              requested item: no row and no error row (seen in production)
``export_item_error``         in exportItems, one listed item was deleted meanwhile: it comes
                              back as a per-item ``ErrorItemNotFound``
``session_expire``            the import session dies before this import (401, or ``status``)
``import_reject``             the import host refuses this item for good (400 ErrorCorruptData)
``token_revoke``              the caller's access token is revoked (401)
``delta_expire``              the delta token is gone (410 ``syncStateNotFound``)
``delta_duplicate``           an item delta page repeats one of its rows: the same item twice
                              in one round (seen in production)
``mailbox_not_found``         the mailbox does not exist (404)
``not_found``                 a transient 404 ``ErrorItemNotFound`` for a folder (or item) that
                              is there: the next call finds it (a replica behind, seen as
                              one 404 in a long soak); a client must confirm a folder gone
                              (``getFolder``) before it acts on its absence

Matching fields: ``calls`` (call names, default all), ``mailbox`` (id or UPN), ``after``
(skip the first N matches), ``count`` (fire at most N times), ``probability`` (default 1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

KINDS = frozenset(
    {
        "http_503",
        "http_504",
        "drop_before",
        "drop_after",
        "slow",
        "export_item_error",
        "export_drop",
        "session_expire",
        "import_reject",
        "token_revoke",
        "delta_expire",
        "delta_duplicate",
        "mailbox_not_found",
        "not_found",
    }
)

CALLS = frozenset(
    {
        "resolveMailbox",
        "listFolders",
        "getFolder",
        "listChildFolders",
        "folderDelta",
        "createFolder",
        "updateFolder",
        "deleteFolder",
        "listItems",
        "getItem",
        "itemDelta",
        "deleteItem",
        "exportItems",
        "createImportSession",
        "importItem",
    }
)


# Kinds that only make sense for some calls never fire (or count) on others.
APPLIES_TO: dict[str, frozenset[str]] = {
    "session_expire": frozenset({"importItem"}),
    "import_reject": frozenset({"importItem"}),
    "export_item_error": frozenset({"exportItems"}),
    "export_drop": frozenset({"exportItems"}),
    "delta_expire": frozenset({"itemDelta", "folderDelta"}),
    "delta_duplicate": frozenset({"itemDelta"}),
    "not_found": frozenset({"listItems", "itemDelta", "getItem", "getFolder", "listChildFolders"}),
}


@dataclass
class FaultRule:
    kind: str
    calls: frozenset[str] = field(default_factory=frozenset)
    mailbox: str | None = None
    after: int = 0
    count: int | None = None
    probability: float = 1.0
    retry_after: float | None = None
    delay: float = 1.0
    status: int = 401
    seen: int = 0
    fired: int = 0

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> FaultRule:
        raw = dict(raw)
        kind = raw.pop("kind", None)
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(KINDS)}")
        calls = frozenset(raw.pop("calls", ()) or ())
        unknown = calls - CALLS
        if unknown:
            raise ValueError(f"unknown call names in fault rule: {sorted(unknown)}")
        allowed = {"mailbox", "after", "count", "probability", "retry_after", "delay", "status"}
        extra = set(raw) - allowed
        if extra:
            raise ValueError(f"unknown fault rule keys: {sorted(extra)}")
        rule = cls(kind=kind, calls=calls, **raw)
        if not 0.0 <= rule.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        return rule

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "calls": sorted(self.calls),
            "mailbox": self.mailbox,
            "after": self.after,
            "count": self.count,
            "probability": self.probability,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "status": self.status,
            "seen": self.seen,
            "fired": self.fired,
        }


class Faults:
    """The active rules; ``pick`` decides which fire for one call (at most one per kind)."""

    def __init__(self, rules: list[FaultRule] | None = None, seed: int = 0) -> None:
        self.rules = rules or []
        self._rng = random.Random(seed)

    def replace(self, rules: list[FaultRule], seed: int = 0) -> None:
        self.rules = rules
        self._rng = random.Random(seed)

    def add(self, rules: list[FaultRule]) -> None:
        """``rules`` beside those in force, whose counts (``seen``, ``fired``) stay."""
        self.rules = [*self.rules, *rules]

    def pick(self, call: str, mailbox_ids: tuple[str, ...]) -> dict[str, FaultRule]:
        fired: dict[str, FaultRule] = {}
        if not self.rules:
            return fired
        for rule in self.rules:
            if rule.kind in fired:
                continue
            if rule.calls and call not in rule.calls:
                continue
            if rule.kind in APPLIES_TO and call not in APPLIES_TO[rule.kind]:
                continue
            if rule.mailbox and rule.mailbox.lower() not in mailbox_ids:
                continue
            if rule.count is not None and rule.fired >= rule.count:
                continue
            rule.seen += 1
            if rule.seen <= rule.after:
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            rule.fired += 1
            fired[rule.kind] = rule
        return fired
