"""Import sessions: one per target mailbox, shared by all of its importers.

Renewed ``margin`` seconds before ``expirationDateTime``, one renewal at a time; an import
refused by the import host (401/403/404: the session died early) renews the session and
retries the item, as often as the retry policy's session budget allows. One renewal serves
every importer that saw the same dead session. The refusal means the server did not act, so
the retry cannot duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import structlog

from ..errors import SessionExpired
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
        self._session: ImportSession | None = None
        self._lock = anyio.Lock()
        self.renewals = 0

    def _fresh(self, s: ImportSession | None) -> bool:
        return s is not None and self._clock() < s.expires - self.margin

    async def get(self) -> ImportSession:
        s = self._session
        if self._fresh(s):
            assert s is not None
            return s
        async with self._lock:
            if self._fresh(self._session):
                assert self._session is not None
                return self._session
            return await self._create()

    async def renew(self, stale: ImportSession) -> ImportSession:
        """Replace ``stale`` unless another importer already did."""
        async with self._lock:
            if self._session is not None and self._session is not stale:
                return self._session
            return await self._create()

    async def _create(self) -> ImportSession:
        self._session = await self.client.create_import_session(self.mailbox_id)
        self.renewals += 1
        log.debug(
            "import_session.created",
            mailbox=self.mailbox_id,
            expires_in_s=round(self._session.expires - self._clock(), 1),
        )
        return self._session

    async def import_item(
        self,
        folder_id: str,
        data: str,
        *,
        item_id: str | None = None,
        change_key: str | None = None,
    ) -> Imported:
        session = await self.get()
        renewals = self.client.session_renewals
        for attempt in range(renewals + 1):
            try:
                return await self.client.import_item(
                    session, folder_id, data, item_id=item_id, change_key=change_key
                )
            except SessionExpired as exc:
                if attempt == renewals:
                    raise
                log.info("import_session.renewing", mailbox=self.mailbox_id, status=exc.status)
                session = await self.renew(session)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
