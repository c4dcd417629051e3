"""Owner changes timed to a client's call: ``PUT /_emulator/triggers {"mailbox": upn|id,
"calls": ["itemDelta", "listItems"], "after": N, "ops": [...]}`` applies ``ops`` (``changes.py``)
to the mailbox when the ``N``-th of those calls on it arrives, before that call is answered;
once. ``"folder": id`` counts only the calls on that folder (its id in the call's URL). A test places a change at one moment of a pass (after its folder listing, before its
item rounds), which a churn hits only by chance. ``GET`` lists them (fired ones with what
they applied), ``DELETE`` clears them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from . import changes
from .store import Mailbox


@dataclass
class Trigger:
    mailbox: Mailbox
    calls: frozenset[str]
    after: int
    ops: list[dict[str, Any]]
    folder: str | None = None
    seen: int = 0
    applied: list[dict[str, Any]] | None = None  # None until it fires
    error: str | None = None

    @classmethod
    def parse(cls, body: dict[str, Any], mailbox: Mailbox | None) -> Trigger:
        if mailbox is None:
            raise ValueError("triggers.mailbox: give an existing mailbox (UPN or id)")
        calls = body.get("calls") or ["itemDelta", "listItems"]
        after = body.get("after", 1)
        ops = body.get("ops")
        if not isinstance(after, int) or after < 1:
            raise ValueError("triggers.after: the call's number, 1 or more")
        if not isinstance(ops, list) or not ops or not all(isinstance(o, dict) for o in ops):
            raise ValueError("triggers.ops: a list of changes (see changes.py)")
        folder = body.get("folder")
        return cls(mailbox, frozenset(str(c) for c in calls), after, ops, folder and str(folder))

    def as_dict(self) -> dict[str, Any]:
        return {
            "mailbox": self.mailbox.id,
            "calls": sorted(self.calls),
            "after": self.after,
            "folder": self.folder,
            "seen": self.seen,
            "ops": self.ops,
            "fired": self.applied is not None,
            "applied": self.applied,
            "error": self.error,
        }


@dataclass
class Triggers:
    rules: list[Trigger] = field(default_factory=list)

    def on_call(
        self, call: str, mailbox: Mailbox | None, folder: str | None, rng: random.Random
    ) -> None:
        """A call arrives: fire the triggers it completes (their ops applied in order; one
        refused stops that trigger's, its error kept)."""
        for t in self.rules:
            if t.applied is not None or mailbox is not t.mailbox or call not in t.calls:
                continue
            if t.folder is not None and folder != t.folder:
                continue
            t.seen += 1
            if t.seen < t.after:
                continue
            t.applied = []
            for op in t.ops:
                try:
                    t.applied.append(changes.apply(t.mailbox, op, rng))
                except (changes.ChangeError, KeyError, TypeError, ValueError) as exc:
                    t.error = f"{op.get('op')}: {exc}"
                    break
