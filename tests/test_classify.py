"""The transport's classification: one pure function per kind of answer, typed fields."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from copyengine.errors import (
    AuthExpired,
    Cause,
    DeltaExpired,
    Fatal,
    ItemFailed,
    MailboxNotFound,
    NotFound,
    PermissionDenied,
    SessionExpired,
    SessionMoved,
    Throttled,
    Transient,
)
from copyengine.graph.transport import Call, classify_exception, classify_response


def _body(code: str, message: str = "m") -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message}})


GRAPH = Call("listItems", "GET", "https://x/y", None)
IMPORT = Call("importItem", "POST", "https://x/import?authtoken=secret", None, import_call=True)


@pytest.mark.parametrize(
    ("call", "status", "body", "headers", "kind", "fields"),
    [
        (
            IMPORT,
            429,
            _body("ApplicationThrottled", "Application is over its IncomingBytes limit."),
            {"Retry-After": "2.5"},
            Throttled,
            {"reason": "IncomingBytes", "retry_after": 2.5},
        ),
        (
            GRAPH,
            429,
            _body("ApplicationThrottled", "Application is over its MailboxConcurrency limit."),
            {},
            Throttled,
            {"reason": "MailboxConcurrency", "retry_after": None},
        ),
        (
            GRAPH,
            503,
            _body("ErrorServerBusy"),
            {"Retry-After": "1"},
            Transient,
            {"cause": Cause.SERVER, "sent": False, "retry_after": 1.0},
        ),
        (GRAPH, 504, b"", {}, Transient, {"cause": Cause.GATEWAY, "sent": False}),
        (GRAPH, 401, _body("InvalidAuthenticationToken"), {}, AuthExpired, {}),
        (IMPORT, 401, _body("InvalidAuthenticationToken"), {}, SessionExpired, {}),
        (IMPORT, 404, _body("ErrorItemNotFound"), {}, SessionExpired, {}),
        (GRAPH, 403, _body("ErrorAccessDenied"), {}, PermissionDenied, {}),
        (GRAPH, 404, _body("ErrorNonExistentMailbox"), {}, MailboxNotFound, {}),
        (GRAPH, 404, _body("ErrorItemNotFound"), {}, NotFound, {}),
        (GRAPH, 410, _body("syncStateNotFound"), {}, DeltaExpired, {}),
        (IMPORT, 400, _body("ErrorCorruptData"), {}, ItemFailed, {}),
        # the import host's archive answer (issue 26): a new session, never a failure
        (
            IMPORT,
            409,
            orjson.dumps(
                {
                    "Message": "Invalid import session. The target session is expected in "
                    "mailbox MBX:f10964a6-4fd0-4f74-8@4d2e-9e48-109351d094ab."
                }
            ),
            {},
            SessionMoved,
            {"mailbox_id": "MBX:f10964a6-4fd0-4f74-8@4d2e-9e48-109351d094ab"},
        ),
        (IMPORT, 409, orjson.dumps({"Message": "archive moved"}), {}, SessionMoved, {}),
        # a stale change key in update mode has a Graph envelope: the item's failure
        (IMPORT, 409, _body("ErrorIrresolvableConflict"), {}, ItemFailed, {}),
        (GRAPH, 400, _body("ErrorInvalidRequest"), {}, Fatal, {}),
    ],
)
def test_answers(
    call: Call,
    status: int,
    body: bytes,
    headers: dict[str, str],
    kind: type,
    fields: dict[str, object],
) -> None:
    err = classify_response(call, status, {"request-id": "r1", **headers}, body, "c1", 0.0)
    assert type(err) is kind
    assert err.status == status and err.request_id == "r1" and err.call == call.name
    for name, value in fields.items():
        assert getattr(err, name) == value, name
    assert "secret" not in str(err)


def test_no_answer_says_whether_the_request_went_out() -> None:
    refused = classify_exception(
        "importItem",
        aiohttp.ClientConnectorError(None, OSError(111, "refused")),  # type: ignore[arg-type]
        "c",
    )
    assert (refused.cause, refused.sent) == (Cause.SERVER, False)
    reset = classify_exception("importItem", aiohttp.ServerDisconnectedError(), "c")
    assert (reset.cause, reset.sent) == (Cause.CONNECTION, True)
    timeout = classify_exception("importItem", TimeoutError(), "c")
    assert (timeout.cause, timeout.sent) == (Cause.TIMEOUT, True)
