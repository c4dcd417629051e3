"""A scripted, in-memory ``MailboxApi`` for stage tests: no sockets, no emulator.

Mailboxes hold folders and items; an export's ``data`` names its source item, and an import
creates a target item with the source's search key and size. ``script(call, outcomes)``
makes the next calls of ``call`` raise (an exception), apply-then-raise (``Applied(exc)``:
the service acted, the answer was lost), or run (None); ``gate(call)`` blocks calls until
released."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import anyio
import anyio.lowlevel
import msgspec

from copyengine.errors import NotFound
from copyengine.graph.models import (
    DeltaPage,
    Exported,
    Folder,
    FolderNode,
    Imported,
    ImportSession,
    Item,
    MailboxRef,
)
from copyengine.pacing.learn import Learned
from copyengine.pacing.proof import Evidence

WELL_KNOWN = (("Inbox", "inbox"), ("Sent Items", "sentitems"), ("Archive", "archive"))


@dataclass
class Applied:
    """Do the call, then raise ``exc`` (the service acted; its answer was lost)."""

    exc: Exception


class FakeAccount:
    waiting = waiting_on_service = False
    inflight = 0

    def throttle_wall_s(self) -> float:
        return 0.0

    def throttled_total(self) -> int:
        return 0

    def throttled_by_reason(self) -> dict[str, int]:
        return {}

    def ceiling_share(self) -> float | None:
        return None

    def limit_share(self) -> float | None:
        return None

    def budget_in_effect(self) -> dict[str, Learned]:
        return {}

    def requests_total(self) -> int:
        return 0

    def evidence(self) -> dict[str, Evidence]:
        return {}


class FakeBudgets:
    def remember(
        self,
        limit: str,
        share: float,
        of: tuple[float, float],
        cut: bool,
        window: float | None = None,
        tried: bool = False,
    ) -> float:
        return 0.0


class FakePacer:
    account = FakeAccount()
    budgets = FakeBudgets()

    def upload_room(self) -> float:
        return float("inf")

    def in_order(self) -> bool:
        return False

    def follow(self, backlog: Callable[[], float | None]) -> Callable[[], None]:
        self.backlog = backlog
        return lambda: None

    def slot_open(self) -> bool:
        return True

    def on_free(self, wake: Callable[[], None]) -> Callable[[], None]:
        return lambda: None


@dataclass
class FakeMailbox:
    id: str
    upn: str
    folders: dict[str, Folder] = field(default_factory=dict)
    items: dict[str, dict[str, Item]] = field(default_factory=lambda: defaultdict(dict))


class FakeApi:
    session_renewals = 3

    def __init__(self) -> None:
        self.mailboxes: dict[str, FakeMailbox] = {}
        self._ids = itertools.count(1)
        self._script: dict[str, list[Any]] = defaultdict(list)
        self._gates: dict[str, anyio.Event] = {}
        self.calls: dict[str, int] = defaultdict(int)

    # -- set-up ----------------------------------------------------------------------------
    def mailbox(self, upn: str) -> FakeMailbox:
        m = self.mailboxes.get(upn)
        if m is None:
            m = self.mailboxes[upn] = FakeMailbox(f"MBX:{upn}", upn)
            for name, wk in WELL_KNOWN:
                fid = f"{m.id}/{wk}"
                m.folders[fid] = Folder(fid, name, None, "IPF.Note", wk, 0, 0)
        return m

    def add_items(self, upn: str, folder: str, n: int, size: int = 1000) -> list[Item]:
        m = self.mailbox(upn)
        fid = f"{m.id}/{folder}"
        out = []
        for _ in range(n):
            k = next(self._ids)
            it = Item(
                f"i{k}",
                "ck1",
                "IPM.Note",
                size,
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:00:00Z",
                (),
                k.to_bytes(16, "big"),
            )
            m.items[fid][it.id] = it
            out.append(it)
        return out

    def script(self, call: str, outcomes: list[Any]) -> None:
        self._script[call].extend(outcomes)

    def gate(self, call: str) -> anyio.Event:
        self._gates[call] = ev = anyio.Event()
        return ev

    async def _enter(self, call: str) -> Any:
        self.calls[call] += 1
        gate = self._gates.get(call)
        if gate is not None:
            await gate.wait()
        await anyio.lowlevel.checkpoint()
        plan = self._script[call]
        return plan.pop(0) if plan else None

    def keys(self, upn: str) -> list[bytes]:
        m = self.mailbox(upn)
        return sorted(i.search_key or b"" for f in m.items.values() for i in f.values())

    # -- MailboxApi ------------------------------------------------------------------------
    def pacer(self, mailbox_id: str) -> FakePacer:
        return FakePacer()

    async def resolve_mailbox(self, upn: str) -> MailboxRef:
        await self._enter("resolve_mailbox")
        return MailboxRef(upn, self.mailbox(upn).id)

    def _box(self, mailbox_id: str) -> FakeMailbox:
        return next(m for m in self.mailboxes.values() if m.id == mailbox_id)

    async def walk_folders(self, mailbox_id: str, max_folders: int = 100_000) -> list[FolderNode]:
        m = self._box(mailbox_id)
        out: list[FolderNode] = []

        def walk(parent: str | None, names: tuple[str, ...]) -> None:
            for f in m.folders.values():
                if f.parent_id == parent:
                    node = FolderNode(self._counted(m, f), (*names, f.name), len(names) + 1)
                    out.append(node)
                    walk(f.id, node.names)

        walk(None, ())
        return out

    async def list_folders(self, mailbox_id: str, parent_id: str | None = None) -> list[Folder]:
        m = self._box(mailbox_id)
        return [self._counted(m, f) for f in m.folders.values() if f.parent_id == parent_id]

    @staticmethod
    def _counted(m: Any, f: Folder) -> Folder:
        """The folder as the service tells it: its item count now (a pass compares what a
        round returned with it: ``pipeline/reread.py``)."""
        return replace(f, item_count=len(m.items.get(f.id, ())))

    async def get_folder(self, mailbox_id: str, ref: str) -> Folder:
        for f in self._box(mailbox_id).folders.values():
            if ref in (f.id, f.well_known):
                return self._counted(self._box(mailbox_id), f)
        raise NotFound(f"getFolder: {ref} not found", status=404, code="ErrorItemNotFound")

    async def create_folder(
        self, mailbox_id: str, parent_id: str | None, name: str, folder_type: str = "IPF.Note"
    ) -> Folder:
        m = self._box(mailbox_id)
        fid = f"{m.id}/f{next(self._ids)}"
        m.folders[fid] = f = Folder(fid, name, parent_id, folder_type, None, 0, 0)
        return f

    async def list_items(
        self,
        mailbox_id: str,
        folder_id: str,
        *,
        select: tuple[str, ...] | None = None,
        created_from: datetime | None = None,
        created_before: datetime | None = None,
        with_keys: bool = False,
        page_size: int = 250,
    ) -> AsyncIterator[list[Item]]:
        outcome = await self._enter("list_items")
        if isinstance(outcome, Exception):
            raise outcome
        items = list(self._box(mailbox_id).items[folder_id].values())
        for k in range(0, len(items), page_size):
            yield items[k : k + page_size]

    async def item_delta(
        self,
        mailbox_id: str,
        folder_id: str,
        delta_link: str | None = None,
        page_size: int = 200,
        *,
        with_keys: bool = True,
    ) -> AsyncIterator[DeltaPage]:
        """A first round lists every item (scripted like ``list_items``); a later round
        from its link brings nothing (this fake does not change)."""
        if delta_link is not None:
            yield DeltaPage([], None, delta_link)
            return
        outcome = await self._enter("list_items")
        if isinstance(outcome, Exception):
            raise outcome
        items = list(self._box(mailbox_id).items[folder_id].values())
        for k in range(0, len(items), page_size):
            last = k + page_size >= len(items)
            yield DeltaPage(
                list(items[k : k + page_size]), None, f"fake://{folder_id}/delta" if last else None
            )
        if not items:
            yield DeltaPage([], None, f"fake://{folder_id}/delta")

    async def folder_delta(
        self, mailbox_id: str, delta_link: str | None = None, page_size: int = 200
    ) -> AsyncIterator[DeltaPage]:
        m = self._box(mailbox_id)
        rows = [] if delta_link else [self._counted(m, f) for f in m.folders.values()]
        yield DeltaPage(list(rows), None, f"fake://{mailbox_id}/folders/delta")

    async def get_item(
        self, mailbox_id: str, folder_id: str, item_id: str, with_keys: bool = False
    ) -> Item:
        raise NotImplementedError

    async def delete_item(
        self, mailbox_id: str, folder_id: str, item_id: str, hard: bool = False
    ) -> None:
        raise NotImplementedError

    async def rename_folder(self, mailbox_id: str, folder_id: str, name: str) -> Folder:
        raise NotImplementedError

    async def delete_folder(self, mailbox_id: str, folder_id: str) -> None:
        raise NotImplementedError

    async def export_items(self, mailbox_id: str, item_ids: list[str]) -> list[Exported]:
        outcome = await self._enter("export_items")
        if isinstance(outcome, Exception):
            raise outcome
        m = self._box(mailbox_id)
        found = {i.id: i for f in m.items.values() for i in f.values()}
        out = []
        for i in item_ids:
            it = found.get(i)
            if it is None:
                out.append(Exported(i, None, None, "ErrorItemNotFound", "gone"))
            else:
                out.append(Exported(i, it.change_key, msgspec.Raw(f'"{m.upn}|{i}"'.encode())))
        return out

    async def create_import_session(self, mailbox_id: str) -> ImportSession:
        await self._enter("create_import_session")
        return ImportSession(f"fake://{mailbox_id}", time.time() + 3600, mailbox_id)

    async def import_item(
        self,
        session: ImportSession,
        folder_id: str,
        data: msgspec.Raw | str,
        *,
        item_id: str | None = None,
        change_key: str | None = None,
    ) -> Imported:
        outcome = await self._enter("import_item")
        if isinstance(outcome, Exception):
            raise outcome
        upn, src_id = bytes(data)[1:-1].decode().split("|")[:2]  # type: ignore[arg-type]
        src = self.mailbox(upn)
        it = next(i for f in src.items.values() for i in f.values() if i.id == src_id)
        m = self._box(session.mailbox_id)
        new = Item(
            f"t{next(self._ids)}",
            "tck",
            it.type,
            it.size,
            it.created,
            it.modified,
            it.categories,
            it.search_key,
        )
        m.items[folder_id][new.id] = new
        if isinstance(outcome, Applied):
            raise outcome.exc
        return Imported(new.id, new.change_key)
