"""The emulator's HTTP basics: the request context, the Graph error envelope, JSON answers,
and the permission and property vocabularies every resource uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from .faults import FaultRule
from .identity import Tenant
from .state import Emulator
from .store import Mailbox

EMU: web.AppKey[Emulator] = web.AppKey("emulator", Emulator)
EARLY_GRACE = 0.02
JSON_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;charset=utf-8"

P_USER = {"User.Read.All"}
P_FOLDER_READ = {"MailboxFolder.Read.All", "MailboxFolder.ReadWrite.All"}
P_FOLDER_WRITE = {"MailboxFolder.ReadWrite.All"}
P_ITEM_READ = {"MailboxItem.Read.All"}
P_EXPORT = {"MailboxItem.Export.All", "MailboxItem.ImportExport.All"}
P_IMPORT = {"MailboxItem.ImportExport.All"}

FOLDER_PROPS = {
    "id",
    "displayName",
    "parentFolderId",
    "childFolderCount",
    "totalItemCount",
    "type",
    "wellKnownName",
    "parentMailboxUrl",
    "isHidden",
}
ITEM_PROPS = {
    "id",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "categories",
    "type",
    "size",
}
ITEM_FILTERS = {
    "createdDateTime": "date",
    "lastModifiedDateTime": "date",
    "type": "str",
    "size": "int",
}
FOLDER_FILTERS = {"type": "str", "displayName": "str", "wellKnownName": "str"}
PROP_SEARCH_KEY = "Binary 0x300B"
PROP_MESSAGE_ID = "String 0x1035"
PROP_SUBJECT = "String 0x0037"


class GraphError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        envelope: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.envelope = envelope


class Dropped(Exception):
    """The connection was closed on purpose (fault)."""


@dataclass
class Ctx:
    request: web.Request
    emu: Emulator
    call: str
    version: str
    tenant: Tenant | None = None
    app: str = ""
    roles: frozenset[str] = frozenset()
    token: str = ""
    mailbox: Mailbox | None = None
    faults: dict[str, FaultRule] = field(default_factory=dict)
    body: bytes = b""

    @property
    def base(self) -> str:
        r = self.request
        return f"{r.scheme}://{r.host}/{self.version}"

    def context(self, tail: str) -> str:
        return f"{self.base}/$metadata#{tail}"

    def mailbox_path(self) -> str:
        assert self.mailbox is not None
        return f"admin/exchange/mailboxes('{self.mailbox.id}')"

    def json_body(self, *canonical: str) -> dict[str, Any]:
        """The request's JSON object, its property names matched to ``canonical`` in any
        casing (Graph reads request property names case-insensitively: Microsoft's
        metadata-generated clients send ``ItemIds`` where the docs write ``itemIds``)."""
        try:
            data = orjson.loads(self.body) if self.body else {}
        except orjson.JSONDecodeError as exc:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc
        if not isinstance(data, dict):
            raise GraphError(400, "BadRequest", "The request payload must be a JSON object.")
        names = {c.lower(): c for c in canonical}
        out: dict[str, Any] = {}
        for k, v in data.items():
            name = names.get(str(k).lower()) or str(k)
            if name in out:
                raise GraphError(400, "BadRequest", f"Property '{name}' is given twice.")
            out[name] = v
        return out


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    resp = web.Response(body=orjson.dumps(data), status=status, headers=headers)
    resp.headers["Content-Type"] = JSON_TYPE
    return resp


def error_response(err: GraphError, request_id: str, client_request_id: str) -> web.Response:
    if err.envelope:
        body: dict[str, Any] = {
            "error": {
                "code": err.code,
                "message": err.message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
    else:
        body = {"Message": err.message}
    return json_response(body, err.status, err.headers)
