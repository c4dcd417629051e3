"""The emulator's own record of what Graph calls removed from mailboxes (``deleteItem``, soft
or hard, and ``deleteFolder`` with everything under it): what a client such as the engine
deleted, apart from the owner's changes made through the control API (``/changes``, churn),
which never pass through here. Bounded; served at ``GET /_emulator/removals`` and cleared by
``DELETE /_emulator/removals`` (tests check that a pass removed no copy of a live item)."""

from __future__ import annotations

import base64
from collections import deque
from typing import Any

from .store import Folder, Item, Mailbox

MAX_ENTRIES = 20_000  # the oldest dropped first, and counted


class Removals:
    def __init__(self, limit: int = MAX_ENTRIES) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=limit)
        self.dropped = 0

    def _add(self, entry: dict[str, Any]) -> None:
        if len(self.entries) == self.entries.maxlen:
            self.dropped += 1
        self.entries.append(entry)

    def item(self, mailbox: str, it: Item, call: str, disposal: str) -> None:
        """One item removed by ``call`` (before the removal: its folder is where it was)."""
        self._add(
            {
                "mailboxId": mailbox,
                "call": call,
                "disposal": disposal,
                "folderPath": it.folder.path(),
                "searchKey": base64.b64encode(it.content.search_key).decode(),
            }
        )

    def folder(self, mbx: Mailbox, folder: Folder) -> None:
        """A folder deleted whole: every live item under it, as removed by ``deleteFolder``."""
        for f in mbx.walk(folder):
            for it in f.live_items():
                self.item(mbx.id, it, "deleteFolder", "hardDelete")

    def as_dict(self, mailbox: str | None = None) -> dict[str, Any]:
        rows = [e for e in self.entries if mailbox is None or e["mailboxId"] == mailbox]
        return {"removals": rows, "dropped": self.dropped}

    def reset(self) -> None:
        self.entries.clear()
        self.dropped = 0
