"""A mailbox changing under its owner's hands, for incremental passes to be tested against:
the operations a user (or their mail flow) performs, applied to the store so that item and
folder delta report them exactly as Graph does, and a seeded churn that applies a mix of them
at a steady rate while a copy runs.

Operations (``POST /_emulator/mailboxes/{mailbox}/changes``, body ``{"ops": [...]}``):

``{"op": "add", "folder": F, "count": N, "size": S}``        new items (new search keys)
``{"op": "modify", "id": I}``        same id and search key, new change key, new content
``{"op": "delete", "id": I, "hard": false}``   soft: into Recoverable Items/Deletions
``{"op": "move", "id": I, "to": F}``   new id in the new folder, same search key
``{"op": "copy", "id": I, "to": F}``   a second item in ``F`` (may be the item's own folder):
    new id and change key, same content and search key (MAPI CopyTo, Outlook's "Copy to
    folder": PidTagSearchKey is kept), the original untouched
``{"op": "createFolder", "parent": F|null, "name": N, "type": T}``
``{"op": "renameFolder", "id": F, "name": N}``
``{"op": "moveFolder", "id": F, "to": F2}``
``{"op": "deleteFolder", "id": F}``

``F`` is a folder id or a well-known name. Every answer row says what became of the op.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import anyio

from .store import Folder, Mailbox, MailboxSpec, iso
from .stream import ItemContent


class ChangeError(ValueError):
    pass


def _folder(mbx: Mailbox, ref: Any) -> Folder:
    f = mbx.find_folder(str(ref)) if ref is not None else None
    if f is None or f.deleted:
        raise ChangeError(f"no folder {ref!r}")
    return f


def new_content(rng: random.Random, like: ItemContent | None, size: int | None) -> ItemContent:
    base = like or ItemContent("IPM.Note", iso(datetime.now(UTC)), (), b"", None, "", 0, 1000)
    s = size if size is not None else base.size
    return replace(
        base,
        created=iso(datetime.now(UTC)),
        search_key=rng.randbytes(16),
        message_id=f"<{rng.getrandbits(64):016x}@churn.example>",
        subject=f"new {rng.getrandbits(32):08x}",
        payload_key=rng.getrandbits(48),
        size=s,
        overhead=round(s * (MailboxSpec.data_ratio - 1.0)),
    )


def apply(mbx: Mailbox, op: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Apply one owner-side operation; the result row names what it made."""
    kind = op.get("op")
    if kind == "add":
        folder = _folder(mbx, op.get("folder", "inbox"))
        like = next(iter(mbx.items.values()), None)
        ids = [
            mbx.add_item(
                folder, new_content(rng, like.content if like else None, op.get("size"))
            ).id
            for _ in range(int(op.get("count", 1)))
        ]
        return {"op": kind, "ids": ids}
    if kind in ("modify", "delete", "move", "copy"):
        it = mbx.items.get(str(op.get("id")))
        if it is None:
            raise ChangeError(f"no item {op.get('id')!r}")
        if kind == "modify":
            content = replace(
                it.content,
                subject=it.content.subject + " (edited)",
                payload_key=rng.getrandbits(48),
            )
            mbx.update_item(it, content)
            return {"op": kind, "id": it.id, "changeKey": it.change_key}
        if kind == "move":
            moved = mbx.move_item(it, _folder(mbx, op.get("to")))
            return {"op": kind, "id": it.id, "newId": moved.id}
        if kind == "copy":
            made = mbx.copy_item(it, _folder(mbx, op.get("to", it.folder.id)))
            return {"op": kind, "id": it.id, "newId": made.id}
        if op.get("hard"):
            mbx.delete_item(it)
            return {"op": kind, "id": it.id, "hard": True}
        moved = mbx.move_item(it, mbx.well_known["recoverableitemsdeletions"])
        return {"op": kind, "id": it.id, "hard": False, "newId": moved.id}
    if kind == "createFolder":
        parent = _folder(mbx, op["parent"]) if op.get("parent") else mbx.root
        name = str(op.get("name", ""))
        if not name.strip() or mbx.child_named(parent, name) is not None:
            raise ChangeError(f"cannot create folder {name!r} there")
        f = mbx.create_folder(parent, name, str(op.get("type", "IPF.Note")))
        return {"op": kind, "id": f.id}
    if kind in ("renameFolder", "moveFolder", "deleteFolder"):
        f = _folder(mbx, op.get("id"))
        if f.well_known:
            raise ChangeError("well-known folders cannot be changed")
        if kind == "renameFolder":
            mbx.rename_folder(f, str(op["name"]))
        elif kind == "moveFolder":
            mbx.move_folder(f, _folder(mbx, op.get("to")))
        else:
            mbx.delete_folder(f)
        return {"op": kind, "id": f.id}
    raise ChangeError(f"unknown op {kind!r}")


MOVED_KEPT = 100_000


@dataclass
class Churn:
    """``rate`` changes per second over ``mailboxes``, drawn from ``mix`` (weights of add,
    modify, delete, move), seeded: the same seed makes the same sequence of choices."""

    mailboxes: list[Mailbox]
    rate: float
    mix: dict[str, float] = field(
        default_factory=lambda: {"add": 0.4, "modify": 0.3, "delete": 0.15, "move": 0.15}
    )
    seed: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    # where each item it moved went, as the snapshot's rows say (``folderPath``,
    # ``searchKey``, ``type``, ``createdDateTime``): a test's oracle tells from it that an
    # item passed through a folder it selects between two snapshots (in-process only; the
    # first ``MOVED_KEPT`` moves: a churn the service starts with may run for hours)
    moved: list[dict[str, Any]] = field(default_factory=list)

    def step(self, rng: random.Random) -> None:
        mbx = rng.choice(self.mailboxes)
        ops, weights = zip(*self.mix.items(), strict=True)
        kind = rng.choices(ops, weights=weights)[0]
        user = [
            f
            for f in mbx.walk()
            if f is not mbx.root and not f.hidden and f.type in ("IPF.Note", "")
        ]
        if not user:
            return
        if kind == "add":
            op: dict[str, Any] = {"op": "add", "folder": rng.choice(user).id}
        else:
            live = [i for i in mbx.items.values() if not i.folder.hidden]
            if not live:
                return
            it = rng.choice(live)
            op = {"op": kind, "id": it.id}
            if kind == "move":
                others = [f for f in user if f is not it.folder]
                if not others:
                    return
                op["to"] = rng.choice(others).id
        done = apply(mbx, op, rng)
        self.applied[kind] = self.applied.get(kind, 0) + 1
        went = mbx.items.get(str(done.get("newId"))) if kind == "move" else None
        if went is not None and len(self.moved) < MOVED_KEPT:
            self.moved.append(
                {
                    "folderPath": went.folder.path(),
                    "searchKey": base64.b64encode(went.content.search_key).decode(),
                    "type": went.content.type,
                    "createdDateTime": went.api_created,
                }
            )

    async def run(self) -> None:
        """Until cancelled: one change every 1/rate seconds."""
        rng = random.Random(self.seed)
        interval = 1.0 / self.rate
        while True:
            self.step(rng)
            await anyio.sleep(interval)
