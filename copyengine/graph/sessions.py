"""Import sessions: one per target mailbox, shared by all of its importers.

Renewed ``margin`` seconds before ``expirationDateTime``, one renewal at a time; an import
refused by the import host (401/403/404: the session died early) renews the session and
retries the item, as often as the retry policy's session budget allows. One renewal serves
every importer that saw the same dead session. The refusal means the server did not act, so
the retry cannot duplicate.

An auto-expanding archive (``archive``): the import host answers 409 ``{"Message"}`` naming
the mailbox the session is expected in (``SessionMoved``). Nothing was imported: a new
session is made on that mailbox (an auxiliary archive: its own session, its own pacer) and
the item retried there; the folder is then imported through that mailbox's session from
then on. A 409 naming the session's own mailbox (or none) renews it in place. Several
importers refused by one session make one new session: the log says ``import_session.moved``
once per session made (as many as the report's ``sessions_renewed``); each 409 answer is a
debug ``import_session.refused``, and ``refusals`` counts them (the report's ``answers_409``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import structlog

from ..errors import SessionExpired, SessionMoved
from .api import MailboxApi
from .models import Imported, ImportSession

log = structlog.get_logger("copyengine.sessions")


class ImportSessionPool:
    def __init__(
        self,
        client: MailboxApi,
        mailbox_id: str,
        margin: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.mailbox_id = mailbox_id
        self.margin = margin
        self._clock = clock
        self._sessions: dict[str, ImportSession] = {}  # by mailbox id
        self._locks: dict[str, anyio.Lock] = {}
        # target folder id -> the mailbox its imports go to (an auxiliary archive's), learned
        # from the import host's 409s
        self.homes: dict[str, str] = {}
        self.moved_folders: set[str] = set()  # every folder a 409 sent elsewhere
        self.renewals = 0  # sessions made
        self.moved = 0  # sessions made because the import host answered 409
        self.refusals = 0  # the import host's 409 answers (several importers, one session)

    def _fresh(self, s: ImportSession | None) -> bool:
        return s is not None and self._clock() < s.expires - self.margin

    def _lock(self, mailbox_id: str) -> anyio.Lock:
        lock = self._locks.get(mailbox_id)
        if lock is None:
            lock = self._locks[mailbox_id] = anyio.Lock()
        return lock

    async def get(self, mailbox_id: str | None = None, *, moved: bool = False) -> ImportSession:
        mailbox_id = mailbox_id or self.mailbox_id
        s = self._sessions.get(mailbox_id)
        if self._fresh(s):
            assert s is not None
            return s
        async with self._lock(mailbox_id):
            s = self._sessions.get(mailbox_id)
            if self._fresh(s):
                assert s is not None
                return s
            return await self._create(mailbox_id, moved)

    async def renew(self, stale: ImportSession, *, moved: bool = False) -> ImportSession:
        """Replace ``stale`` unless another importer already did."""
        mailbox_id = stale.mailbox_id
        async with self._lock(mailbox_id):
            s = self._sessions.get(mailbox_id)
            if s is not None and s is not stale:
                return s
            return await self._create(mailbox_id, moved)

    async def _create(self, mailbox_id: str, moved: bool = False) -> ImportSession:
        s = self._sessions[mailbox_id] = await self.client.create_import_session(mailbox_id)
        self.renewals += 1
        self.moved += moved
        if moved:  # once per session made, however many importers the 409 refused
            log.info("import_session.moved", mailbox=mailbox_id, status=409)
        log.debug(
            "import_session.created",
            mailbox=mailbox_id,
            expires_in_s=round(s.expires - self._clock(), 1),
        )
        return s

    def _moved(self, folder_id: str, session: ImportSession, exc: SessionMoved) -> None:
        """Where the import host wants this folder's imports from now on."""
        home = exc.mailbox_id or session.mailbox_id
        if home == self.mailbox_id:
            self.homes.pop(folder_id, None)
        else:
            self.homes[folder_id] = home
            self.moved_folders.add(folder_id)
        log.debug(
            "import_session.refused",
            mailbox=session.mailbox_id,
            to=home,
            folder=folder_id,
            status=exc.status,
        )

    async def import_item(
        self,
        folder_id: str,
        data: str,
        *,
        item_id: str | None = None,
        change_key: str | None = None,
    ) -> Imported:
        session = await self.get(self.homes.get(folder_id))
        renewals = self.client.session_renewals
        for attempt in range(renewals + 1):
            try:
                return await self.client.import_item(
                    session, folder_id, data, item_id=item_id, change_key=change_key
                )
            except SessionExpired as exc:
                moved = isinstance(exc, SessionMoved)
                self.refusals += moved
                if attempt == renewals:
                    raise
                if isinstance(exc, SessionMoved):
                    self._moved(folder_id, session, exc)
                    home = self.homes.get(folder_id, self.mailbox_id)
                    if home != session.mailbox_id:
                        session = await self.get(home, moved=True)
                        continue
                else:
                    log.info(
                        "import_session.renewing", mailbox=session.mailbox_id, status=exc.status
                    )
                session = await self.renew(session, moved=moved)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
