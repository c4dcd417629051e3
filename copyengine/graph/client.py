"""The typed Graph mailbox client: the engine's one seam to the service.

Every call of the contract as an async method returning typed values (``models.py``). Paging
follows ``@odata.nextLink`` verbatim, but for ``listItems`` paged by ``$skip``: each page
asked from one item back (``skippaging``); delta signals 410 as ``DeltaExpired``; exportItems
results are matched to requests by id. Pacing and retries happen in ``transport.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import msgspec
import orjson
import structlog

from ..errors import Cause, DeltaExpired, Fatal, ItemFailed, NotFound, Transient
from ..pacing.pacer import MailboxPacer, Pacers
from ..timefmt import parse_graph_time
from . import longstrings
from .archive import LOOP, MAX_HOPS, MOVED, REFUSED, export_redirect
from .gone import TRIES, unless_gone
from .models import (
    EXPAND_KEYS,
    DeltaPage,
    Exported,
    Folder,
    FolderNode,
    Imported,
    ImportSession,
    Item,
    MailboxRef,
    Removed,
)
from .skippaging import overlapping
from .transport import Call, Transport

MAX_PAGES = 1_000_000
MAX_EXPORT = 20
# listings of a folder's subfolders that answer 404 while the folder is found (``walk_folders``)
WALK_TRIES = TRIES
log = structlog.get_logger("copyengine.graph")


class _ExportRow(msgspec.Struct):
    itemId: str | None = None
    changeKey: str | None = None
    # The JSON string token of ``data``, quotes included, as a zero-copy slice of the
    # response: it goes into the import body as it came, never decoded.
    data: msgspec.Raw = msgspec.Raw()  # empty when absent (Raw cannot sit in a union)
    error: dict[str, Any] | None = None
    Error: dict[str, Any] | None = None  # the documented example spells it so


class _ExportResponse(msgspec.Struct):
    value: list[_ExportRow] = []


_EXPORT_DECODER = msgspec.json.Decoder(_ExportResponse)


def decode_export(payload: bytes | bytearray) -> list[_ExportRow]:
    """An exportItems answer's rows; the ``data`` strings found at memchr speed
    (``longstrings``), not walked by the decoder, whenever each cut string is a row's data."""
    cut = longstrings.cut(payload)
    if cut is not None:
        rows = _EXPORT_DECODER.decode(cut.rest).value
        restored = 0
        for v in rows:
            token = cut.restore(memoryview(v.data)) if v.data else None
            if token is not None:
                v.data = msgspec.Raw(token)
                restored += 1
        if restored == len(cut.strings):
            return rows
    return _EXPORT_DECODER.decode(payload).value


def seg(value: str) -> str:
    """Percent-encode one path segment (ids contain ``/``, ``+`` and ``=``)."""
    return quote(value, safe="")


class GraphClient:
    """Talks to one Graph endpoint as one app (one tenant)."""

    def __init__(
        self,
        graph_url: str,
        transport: Transport,
        pacers: Pacers,
        *,
        app_key: str | None = None,
    ) -> None:
        self.graph_url = graph_url.rstrip("/")
        self.transport = transport
        self.pacers = pacers
        if transport.tokens is None:
            raise ValueError("a GraphClient needs a transport with a token provider")
        self.tokens = transport.tokens
        self.app_key = app_key or self.tokens.client_id
        self.session_renewals = transport.retry.budget(Cause.SESSION)

    # -- plumbing ----------------------------------------------------------------------------
    def pacer(self, mailbox_id: str) -> MailboxPacer:
        return self.pacers.get(self.app_key, mailbox_id)

    def _m(self, mailbox_id: str) -> str:
        return f"{self.graph_url}/admin/exchange/mailboxes/{quote(mailbox_id, safe=':@')}"

    async def _get(
        self, name: str, url: str, mailbox_id: str | None, headers: dict[str, str] | None = None
    ) -> Any:
        pacer = self.pacer(mailbox_id) if mailbox_id else None
        return await self.transport.request(Call(name, "GET", url, pacer, headers=headers))

    async def _pages(
        self, name: str, url: str, mailbox_id: str, headers: dict[str, str] | None = None
    ) -> AsyncIterator[list[Any]]:
        next_url: str | None = url
        for _ in range(MAX_PAGES):
            if next_url is None:
                return
            body = await self._get(name, next_url, mailbox_id, headers)
            yield body.get("value", [])
            next_url = body.get("@odata.nextLink")
        raise Fatal(f"{name}: paging did not end after {MAX_PAGES} pages", call=name)

    @staticmethod
    def _query(**params: Any) -> str:
        clean = {k: v for k, v in params.items() if v is not None}
        return ("?" + urlencode(clean, quote_via=quote, safe="$,'()=")) if clean else ""

    # -- mailboxes and folders -------------------------------------------------------------
    async def resolve_mailbox(self, upn: str) -> MailboxRef:
        body = await self._get(
            "resolveMailbox", f"{self.graph_url}/users/{seg(upn)}/settings/exchange", None
        )
        return MailboxRef(
            upn=upn,
            primary_id=body["primaryMailboxId"],
            archive_id=body.get("inPlaceArchiveMailboxId"),
        )

    async def list_folders(self, mailbox_id: str, parent_id: str | None = None) -> list[Folder]:
        base = self._m(mailbox_id) + "/folders"
        url = base if parent_id is None else f"{base}/{seg(parent_id)}/childFolders"
        out: list[Folder] = []
        async for page in self._pages("listFolders", url + "?$top=250", mailbox_id):
            out.extend(Folder.from_json(f) for f in page)
        return out

    async def get_folder(self, mailbox_id: str, ref: str) -> Folder:
        body = await self._get("getFolder", f"{self._m(mailbox_id)}/folders/{seg(ref)}", mailbox_id)
        return Folder.from_json(body)

    async def walk_folders(self, mailbox_id: str, max_folders: int = 100_000) -> list[FolderNode]:
        """The whole folder tree under the root, parents before children. A folder deleted
        after its parent listed it (its children's listing answers 404, and so does the
        folder itself: one ``getFolder``) is left out with its subtree, as if it had gone
        before the walk. A 404 from a folder that is still found is a transient one: its
        children are listed again (``WALK_TRIES`` in all), then a ``ServiceError`` is raised
        (one such 404 failed the pair, exit 5)."""
        out: list[FolderNode] = []
        stack: list[tuple[str | None, tuple[str, ...], int]] = [(None, (), 0)]
        while stack:
            parent, prefix, depth = stack.pop()
            children = await self._children_unless_gone(mailbox_id, parent)
            if children is None:
                out = [n for n in out if n.folder.id != parent]
                continue
            for f in children:
                node = FolderNode(f, (*prefix, f.name), depth + 1)
                out.append(node)
                if len(out) > max_folders:
                    raise Fatal(f"more than {max_folders} folders in {mailbox_id}")
                if f.child_count > 0:
                    stack.append((f.id, node.names, depth + 1))
        return out

    async def _children_unless_gone(
        self, mailbox_id: str, parent: str | None
    ) -> list[Folder] | None:
        """``parent``'s subfolders (the root's: None); None when it is gone (its listing and
        its ``getFolder`` answer 404: ``gone.unless_gone``)."""
        if parent is None:
            return await self.list_folders(mailbox_id, None)
        return await unless_gone(
            self.get_folder,
            mailbox_id,
            parent,
            lambda: self.list_folders(mailbox_id, parent),
            WALK_TRIES,
            "its subfolders' listing",
        )

    async def create_folder(
        self, mailbox_id: str, parent_id: str | None, name: str, folder_type: str = "IPF.Note"
    ) -> Folder:
        """Create a folder; if the name exists under the parent (409), return that folder."""
        base = self._m(mailbox_id) + "/folders"
        url = base if parent_id is None else f"{base}/{seg(parent_id)}/childFolders"
        call = Call(
            "createFolder",
            "POST",
            url,
            self.pacer(mailbox_id),
            json={"displayName": name, "type": folder_type},
        )
        try:
            return Folder.from_json(await self.transport.request(call))
        except ItemFailed as exc:
            if exc.code != "ErrorFolderExists":
                raise
        for f in await self.list_folders(mailbox_id, parent_id):
            if f.name.casefold() == name.casefold():
                return f
        raise NotFound(
            f"createFolder: '{name}' exists but was not found by listing", call="createFolder"
        )

    async def rename_folder(self, mailbox_id: str, folder_id: str, name: str) -> Folder:
        call = Call(
            "updateFolder",
            "PATCH",
            f"{self._m(mailbox_id)}/folders/{seg(folder_id)}",
            self.pacer(mailbox_id),
            json={"displayName": name},
        )
        return Folder.from_json(await self.transport.request(call))

    async def delete_folder(self, mailbox_id: str, folder_id: str) -> None:
        call = Call(
            "deleteFolder",
            "DELETE",
            f"{self._m(mailbox_id)}/folders/{seg(folder_id)}/$ref",
            self.pacer(mailbox_id),
        )
        await self.transport.request(call)

    # -- items ---------------------------------------------------------------------------------
    def _items_url(self, mailbox_id: str, folder_id: str) -> str:
        return f"{self._m(mailbox_id)}/folders/{seg(folder_id)}/items"

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
        """Items of a folder, page by page (``with_keys`` adds search key and message id)."""
        flt = []
        if created_from is not None:
            flt.append(f"createdDateTime ge {created_from.strftime('%Y-%m-%dT%H:%M:%SZ')}")
        if created_before is not None:
            flt.append(f"createdDateTime lt {created_before.strftime('%Y-%m-%dT%H:%M:%SZ')}")
        base = self._items_url(mailbox_id, folder_id)

        def url_for(skip: int, top: int) -> str:
            return base + self._query(
                **{
                    "$top": top,
                    "$skip": skip or None,
                    "$select": ",".join(select) if select else None,
                    "$filter": " and ".join(flt) if flt else None,
                    "$expand": EXPAND_KEYS if with_keys else None,
                }
            )

        async def get(url: str) -> Any:
            return await self._get("listItems", url, mailbox_id)

        # paged by ``$skip``: each page asked from one item back, so that an item leaving a
        # page already read costs no item (``skippaging``)
        async for page in overlapping("listItems", url_for, get, page_size, MAX_PAGES):
            yield [Item.from_json(i) for i in page]

    async def get_item(
        self, mailbox_id: str, folder_id: str, item_id: str, with_keys: bool = False
    ) -> Item:
        url = f"{self._items_url(mailbox_id, folder_id)}/{seg(item_id)}"
        if with_keys:
            url += self._query(**{"$expand": EXPAND_KEYS})
        return Item.from_json(await self._get("getItem", url, mailbox_id))

    async def delete_item(
        self, mailbox_id: str, folder_id: str, item_id: str, hard: bool = False
    ) -> None:
        url = (
            f"{self._items_url(mailbox_id, folder_id)}/{seg(item_id)}"
            f"?disposalType={'hardDelete' if hard else 'softDelete'}"
        )
        await self.transport.request(Call("deleteItem", "DELETE", url, self.pacer(mailbox_id)))

    async def _delta(
        self, name: str, url: str, mailbox_id: str, page_size: int, kind: str
    ) -> AsyncIterator[DeltaPage]:
        headers = {"Prefer": f"odata.maxpagesize={page_size}"}
        next_url: str | None = url
        for _ in range(MAX_PAGES):
            if next_url is None:
                return
            body = await self._get(name, next_url, mailbox_id, headers)
            rows: list[Any] = []
            for v in body.get("value", []):
                if "@removed" in v:
                    rows.append(Removed(v["id"], str(v["@removed"].get("reason", "deleted"))))
                elif kind == "items":
                    rows.append(Item.from_json(v))
                else:
                    rows.append(Folder.from_json(v))
            next_url = body.get("@odata.nextLink")
            delta_link = body.get("@odata.deltaLink")
            yield DeltaPage(rows, next_url, self._stored_link(delta_link) if delta_link else None)
        raise Fatal(f"{name}: delta paging did not end", call=name)

    def _stored_link(self, link: str) -> str:
        """A delta link as the state keeps it: relative to ``graph_url`` (the job's endpoint
        decides where it goes, and a bearer token is never sent to a host that is not it)."""
        if link.startswith(self.graph_url + "/"):
            return link[len(self.graph_url) :]
        raise Fatal(
            f"the service returned a delta link outside {self.graph_url}; refusing to follow it",
            call="delta",
        )

    def _link_url(self, stored: str) -> str:
        if stored.startswith("/"):
            return self.graph_url + stored
        if stored.startswith(self.graph_url + "/"):
            return stored
        # made against another endpoint: unusable here, as if it had expired
        raise DeltaExpired(f"delta: the stored link is not under {self.graph_url}", call="delta")

    def item_delta(
        self,
        mailbox_id: str,
        folder_id: str,
        delta_link: str | None = None,
        page_size: int = 200,
        *,
        with_keys: bool = True,
    ) -> AsyncIterator[DeltaPage]:
        """Item changes: from ``delta_link`` (a previous round) or a full first round. The
        last page carries the new delta link. Raises DeltaExpired (410) when the link is dead.
        Query options go on the first call only (``with_keys``: search key and message id,
        through ``$expand``, which message delta supports); the links carry them on. Never
        ``$filter``: a filtered round stops at 5,000 rows."""
        url = (
            self._link_url(delta_link)
            if delta_link
            else self._items_url(mailbox_id, folder_id)
            + "/delta"
            + (self._query(**{"$expand": EXPAND_KEYS}) if with_keys else "")
        )
        return self._delta("itemDelta", url, mailbox_id, page_size, "items")

    def folder_delta(
        self, mailbox_id: str, delta_link: str | None = None, page_size: int = 200
    ) -> AsyncIterator[DeltaPage]:
        url = self._link_url(delta_link) if delta_link else self._m(mailbox_id) + "/folders/delta"
        return self._delta("folderDelta", url, mailbox_id, page_size, "folders")

    # -- export and import ---------------------------------------------------------------------
    async def export_items(
        self, mailbox_id: str, item_ids: list[str], *, hops: int = 0
    ) -> list[Exported]:
        """Export up to 20 items. One result per requested id, matched by id: a per-item
        error (``error`` or ``Error``) or an id missing from the answer is a failed result.
        An item of an auto-expanding archive's expanded folder is exported again from the
        mailbox its ``ErrorArchiveFolderMovedPermanently`` names (``archive``), on that
        mailbox's pacer; its result says where (``Exported.mailbox_id``)."""
        results = await self._export_once(mailbox_id, item_ids)
        moved: dict[str, list[str]] = {}
        for r in results:
            if r.error_code == MOVED:
                moved.setdefault(r.error_message or "", []).append(r.item_id)
        if not moved:
            return results
        out = {r.item_id: r for r in results}
        for url, ids in moved.items():
            for r in await self._follow(mailbox_id, url, ids, hops):
                out[r.item_id] = r
        return [out[i] for i in item_ids]

    async def _follow(self, mailbox_id: str, url: str, ids: list[str], hops: int) -> list[Exported]:
        where = export_redirect(url, self.graph_url)
        if where.mailbox_id is None:
            log.warning("export.redirect_refused", mailbox=mailbox_id, items=len(ids))
            return [Exported(i, None, None, REFUSED, where.why) for i in ids]
        if hops >= MAX_HOPS or where.mailbox_id == mailbox_id:
            why = f"redirected {hops + 1} times (last to {where.mailbox_id}): not followed"
            return [Exported(i, None, None, LOOP, why) for i in ids]
        log.info("export.redirected", mailbox=mailbox_id, to=where.mailbox_id, items=len(ids))
        again = await self.export_items(where.mailbox_id, ids, hops=hops + 1)
        return [
            r if r.mailbox_id is not None else dataclasses.replace(r, mailbox_id=where.mailbox_id)
            for r in again
        ]

    async def _export_once(self, mailbox_id: str, item_ids: list[str]) -> list[Exported]:
        if not 1 <= len(item_ids) <= MAX_EXPORT:
            raise ValueError(f"exportItems takes 1 to {MAX_EXPORT} ids, not {len(item_ids)}")
        call = Call(
            "exportItems",
            "POST",
            self._m(mailbox_id) + "/exportItems",
            self.pacer(mailbox_id),
            json={"itemIds": item_ids},
            raw=True,
        )
        payload = await self.transport.request(call)
        try:
            rows = decode_export(payload)
        except msgspec.DecodeError as exc:
            raise Transient(
                f"exportItems: the response is not valid JSON ({exc})",
                call="exportItems",
                cause=Cause.SERVER,
            ) from None
        by_id: dict[str, Exported] = {}
        for v in rows:
            if not v.itemId:
                continue
            err = v.error or v.Error
            token = memoryview(v.data)
            if err is not None or len(token) < 2 or token[0] != 0x22:  # not a JSON string
                err = err or {}
                by_id[v.itemId] = Exported(
                    v.itemId,
                    None,
                    None,
                    str(err.get("code") or "ExportFailed"),
                    str(err.get("message") or "no data returned"),
                )
            else:
                by_id[v.itemId] = Exported(v.itemId, v.changeKey, v.data)
        return [
            by_id.get(i)
            or Exported(
                i, None, None, "MissingFromResponse", "the service returned no result for this id"
            )
            for i in item_ids
        ]

    async def create_import_session(self, mailbox_id: str) -> ImportSession:
        call = Call(
            "createImportSession",
            "POST",
            self._m(mailbox_id) + "/createImportSession",
            self.pacer(mailbox_id),
        )
        body = await self.transport.request(call)
        return ImportSession(
            url=body["importUrl"],
            expires=parse_graph_time(body["expirationDateTime"]),
            mailbox_id=mailbox_id,
        )

    async def import_item(
        self,
        session: ImportSession,
        folder_id: str,
        data: msgspec.Raw | str,
        *,
        item_id: str | None = None,
        change_key: str | None = None,
    ) -> Imported:
        """POST one item to the session's import URL (no Authorization header; the URL is
        pre-authenticated and used verbatim). ``data`` goes into the body untouched. Create
        mode is not idempotent: a lost response raises OutcomeUnknown, never a resend."""
        if (item_id is None) != (change_key is None):
            raise ValueError("update mode needs both item_id and change_key")
        head: dict[str, str] = {"FolderId": folder_id, "Mode": "update" if item_id else "create"}
        if item_id is not None and change_key is not None:
            head["ItemId"], head["ChangeKey"] = item_id, change_key
        # {"FolderId":…,"Mode":…,"Data":<the export's JSON string token, untouched>}
        token = data if isinstance(data, msgspec.Raw) else orjson.dumps(data)
        prefix = orjson.dumps(head)[:-1] + b',"Data":'
        call = Call(
            "importItem",
            "POST",
            session.url,
            self.pacer(session.mailbox_id),
            parts=(prefix, memoryview(token), b"}"),
            auth=False,
            idempotent=item_id is not None,
            import_call=True,
        )
        resp = await self.transport.request(call)
        return Imported(resp["itemId"], resp["changeKey"])
