"""``MailboxApi``: the engine's one seam to the mailbox service, as a protocol.

The pipeline, the target tree and ``verify`` are typed against it. ``GraphClient`` speaks
HTTP to Graph (or the emulator); tests may pass a scripted in-memory fake
(``tests/fake_api.py``) to drive pipeline stages without sockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import msgspec

from .models import (
    DeltaPage,
    Exported,
    Folder,
    FolderNode,
    Imported,
    ImportSession,
    Item,
    MailboxRef,
)

if TYPE_CHECKING:  # the transport (aiohttp) and the pacer load with the clients
    from ..pacing.accounting import AccountView
    from .transport import Health


@dataclass
class Clients:
    """The built clients a job runs with (``wiring`` builds them): one per tenant (the same
    object when both tenants are one app) and the service's health, read by the drain."""

    src: MailboxApi
    dst: MailboxApi
    health: Health


class Remembering(Protocol):
    """A pacer's budgets, as a later pass of a pair starts them (``pacing.remember``)."""

    def remember(
        self,
        limit: str,
        share: float,
        of: tuple[float, float],
        cut: bool,
        window: float | None = None,
        tried: bool = False,
    ) -> float:
        """Start ``limit`` at ``share`` of the [limits] ``of`` (amount, window seconds) an
        earlier pass ended with (``cut``: it was refused; ``window``: the shorter window
        the service showed it was kept over, or, ``tried``, the one the pacer tried in
        place of the configured one); the share of [limits] it starts at, 0: not."""
        ...


class PacerView(Protocol):
    """What the pipeline reads from a mailbox's pacer: the upload room (to choose what to
    send next) and the account the stats read, live."""

    @property
    def account(self) -> AccountView: ...

    def upload_room(self) -> float: ...

    def in_order(self) -> bool:
        """Whether the order of the ready items leaves what is sent the same (a cut budget
        spent at its even rate): ``ReadyItems.choose`` then takes them oldest first while
        more are to come, the largest first once all are ready, not by the room."""
        ...

    def follow(self, backlog: Callable[[], float | None]) -> Callable[[], None]:
        """The bytes a pair still has to upload to this mailbox (None: not known yet), read
        when the pacer shapes its upload window; the call returned stops reading it."""
        ...

    def slot_open(self) -> bool:
        """Whether a request could take one of the mailbox's slots now: ``ReadyItems``
        lets an importer take a body only then."""
        ...

    def on_free(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` whenever a slot may have come free; the call returned stops it."""
        ...

    @property
    def budgets(self) -> Remembering: ...


class MailboxApi(Protocol):
    # how often an item's import may renew a dead import session (the retry policy's budget)
    session_renewals: int

    def pacer(self, mailbox_id: str) -> PacerView: ...

    async def resolve_mailbox(self, upn: str) -> MailboxRef: ...
    async def walk_folders(
        self, mailbox_id: str, max_folders: int = 100_000
    ) -> list[FolderNode]: ...
    async def list_folders(self, mailbox_id: str, parent_id: str | None = None) -> list[Folder]:
        """The child folders of ``parent_id`` (of the root when None)."""
        ...

    async def get_folder(self, mailbox_id: str, ref: str) -> Folder: ...
    async def create_folder(
        self, mailbox_id: str, parent_id: str | None, name: str, folder_type: str = "IPF.Note"
    ) -> Folder: ...

    def list_items(
        self,
        mailbox_id: str,
        folder_id: str,
        *,
        select: tuple[str, ...] | None = None,
        created_from: datetime | None = None,
        created_before: datetime | None = None,
        with_keys: bool = False,
        page_size: int = 250,
    ) -> AsyncIterator[list[Item]]: ...

    def item_delta(
        self,
        mailbox_id: str,
        folder_id: str,
        delta_link: str | None = None,
        page_size: int = 200,
        *,
        with_keys: bool = True,
    ) -> AsyncIterator[DeltaPage]: ...

    def folder_delta(
        self, mailbox_id: str, delta_link: str | None = None, page_size: int = 200
    ) -> AsyncIterator[DeltaPage]: ...

    async def get_item(
        self, mailbox_id: str, folder_id: str, item_id: str, with_keys: bool = False
    ) -> Item: ...
    async def delete_item(
        self, mailbox_id: str, folder_id: str, item_id: str, hard: bool = False
    ) -> None: ...
    async def rename_folder(self, mailbox_id: str, folder_id: str, name: str) -> Folder: ...
    async def delete_folder(self, mailbox_id: str, folder_id: str) -> None: ...

    async def export_items(self, mailbox_id: str, item_ids: list[str]) -> list[Exported]: ...
    async def create_import_session(self, mailbox_id: str) -> ImportSession: ...
    async def import_item(
        self,
        session: ImportSession,
        folder_id: str,
        data: msgspec.Raw | str,
        *,
        item_id: str | None = None,
        change_key: str | None = None,
    ) -> Imported: ...
