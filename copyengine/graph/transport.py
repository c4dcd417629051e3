"""The HTTP edge: one request, paced, retried by policy, errors translated.

Everything the engine knows about status codes, error envelopes and aiohttp exceptions lives
here. Callers get parsed JSON or an exception from ``copyengine.errors``.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import aiohttp
import aiohttp.payload
import orjson
import structlog
from aiohttp.abc import AbstractStreamWriter
from yarl import URL

from ..auth import TokenProvider
from ..errors import (
    AuthExpired,
    Cause,
    DeltaExpired,
    Fatal,
    ItemFailed,
    MailboxNotFound,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    ServiceError,
    SessionExpired,
    SessionMoved,
    Throttled,
    Transient,
    Unreachable,
)
from ..network import Proxy, Route, no_connection
from ..pacing.pacer import CONCURRENCY_REASON, MailboxPacer
from ..pacing.policy import RetriesExhausted, RetryPolicy, may_resend, parse_retry_after
from ..pacing.step import UNFIT_REFUSALS, UNFIT_WINDOWS
from ..secrets import redact

log = structlog.get_logger("copyengine.graph")


@dataclass(frozen=True)
class Timeouts:
    """Every HTTP timeout, in one place."""

    connect: float = 15.0
    sock_read: float = 300.0  # an export of 20 large items can take a while
    total: float | None = None

    def client_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self.total, sock_connect=self.connect, sock_read=self.sock_read
        )


INCOMING_BYTES_REASON = "IncomingBytes"
# a MailboxConcurrency 429 with none of our own calls to the mailbox in flight (its slots
# another process's): waited at least this long, and free of the retry budget this long
ALONE_WAIT_S = 0.25
ALONE_FREE_S = 30.0


def _unfit(call: Call, pacer: MailboxPacer, size: int) -> None:
    """After one more ``IncomingBytes`` 429 of a body: raises ``ItemFailed`` once the body
    cannot pass, the service having refused it (or one no larger) ``UNFIT_REFUSALS`` times
    over ``UNFIT_WINDOWS`` of its windows while nothing else of ours was in its upload
    window: another writer leaves less room than it needs (Exchange counts every app's
    uploads to a mailbox together). The item fails with that reason, to be tried again on
    the next pass, instead of holding its pair's slot (the pacer holds such a body between
    the refusals: ``Budgets.alone``)."""
    seen = pacer.refused_alone(size)
    if seen is None:
        return
    n, over, window = seen
    if n >= UNFIT_REFUSALS and over >= UNFIT_WINDOWS * window:
        raise ItemFailed(
            f"the service refused this item's {size / 2**20:,.1f} MB import {n} times over "
            f"{over:,.0f} s for IncomingBytes while nothing else of ours was in the "
            "mailbox's upload window: another app writing to the mailbox leaves less room "
            "than the item needs; it is tried again on the next pass",
            status=429,
            code=INCOMING_BYTES_REASON,
            call=call.name,
        )


def _reason_of(message: str) -> str:
    for reason in ("MailboxConcurrency", "RequestRate", "IncomingBytes", "ApplicationRequestRate"):
        if reason in message:
            return reason
    return "Unknown"


def _unreadable(call: Call, status: int, headers: Any, payload: bytes, crid: str) -> Transient:
    """A success whose body is no JSON (cut short on the way, or a proxy's or gateway's own
    page): the service may have acted (``sent``: a write is settled, never resent blindly),
    a read is tried again, once more only if the same body comes again (``answer``); the
    body itself is never shown (it may hold anything)."""
    kind = headers.get("Content-Type") or "no content type"
    return Transient(
        f"{call.name}: the service answered {status} with a body that is not JSON "
        f"({len(payload):,} bytes, {kind}: cut short on the way, or a proxy's own page)",
        cause=Cause.CONNECTION,  # the answer did not arrive whole, as a connection lost
        sent=True,
        answer=("unreadable", status, kind, len(payload), hash(bytes(payload))),
        status=status,
        code="UnreadableAnswer",
        request_id=headers.get("request-id"),
        client_request_id=crid,
        call=call.name,
    )


def _not_again(err: ServiceError, before: tuple[object, ...] | None) -> tuple[object, ...] | None:
    """What ``err``'s answer looked like, to compare with the next; raises when it is the
    answer ``before`` (the same cut, or the same page that is no JSON, twice in a row):
    something on the way answers so every time, and the retries left would only add their
    waits (up to half a minute a call) before the pair fails the same."""
    answer = getattr(err, "answer", None)
    if answer is not None and answer == before:
        raise Transient(
            f"{err.message}; the same answer came twice in a row: not tried again",
            cause=Cause.CONNECTION,
            sent=True,
            **err.facts(),
        ) from err
    return answer


def _cut_short(call: Call, resp: aiohttp.ClientResponse, crid: str) -> Transient:
    """A success whose body ended before its ``Content-Length`` (the connection closed
    mid-body): a connection lost, as before, with what arrived (``answer``): a drop lands
    anywhere, so a cut at the very byte of the last one is no accident but something on the
    way that cuts every answer there (a middlebox's size limit) and retrying cannot help. A
    cut before any of the body arrived says nothing of where it lands: retried as a drop."""
    got, length = resp.content.total_bytes, resp.content_length
    of = f" of {length:,}" if length is not None else ""
    return Transient(
        f"{call.name}: connection lost mid-answer ({resp.status}, {got:,}{of} bytes of its body)",
        cause=Cause.CONNECTION,
        sent=True,
        answer=("cut", resp.status, length, got) if got else None,
        status=resp.status,
        code="CutShort",
        request_id=resp.headers.get("request-id"),
        client_request_id=crid,
        call=call.name,
    )


def parse_error(status: int, body: bytes) -> tuple[str, str]:
    """(code, message) from a Graph envelope or the import host's ``{"Message": …}``."""
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return f"Http{status}", redact(body[:200].decode("utf-8", "replace"))
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            return str(err.get("code") or f"Http{status}"), str(err.get("message") or "")
        if "Message" in data or "message" in data:
            return f"Http{status}", str(data.get("Message") or data.get("message"))
        if isinstance(err, str):
            return err, str(data.get("error_description", ""))
    return f"Http{status}", ""


@dataclass
class Call:
    """One logical call: what to send and how it may be retried."""

    name: str
    method: str
    url: str  # absolute, already encoded
    pacer: MailboxPacer | None
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] | None = None
    auth: bool = True
    idempotent: bool = True
    import_call: bool = False
    # A body sent as these parts in order (streamed, never joined), and whether to return
    # the raw response bytes instead of parsed JSON.
    parts: tuple[bytes | memoryview, ...] | None = None
    raw: bool = False


CHUNK = 1 << 20
# A body of parts up to this size is joined as it is written, in one write; larger ones are
# streamed (no copy of a large item is ever made).
JOIN_MAX = 256 << 10


class Health:
    """Whether the service answers at all, from the fate of every request: any HTTP answer
    (even an error) means it is reachable; refused, reset or timed-out connections with no
    answer since mean it is down. Read by the drain, which must not wait on a dead service.
    ``reached``: the hosts (``host:port``) that have answered once; a host that never did and
    refuses is not worth a minute of retries."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.down_since: float | None = None
        self.last_error = ""
        self.reached: set[str] = set()
        self.sending = 0  # requests on the wire now (a drain ends once none is)

    def answered(self, host: str = "") -> None:
        self.down_since = None
        if host and host not in self.reached:
            self.reached.add(host)

    def failed(self, message: str) -> None:
        if self.down_since is None:
            self.down_since = self._clock()
        self.last_error = message

    def down_for(self) -> float:
        return 0.0 if self.down_since is None else self._clock() - self.down_since


def _request_id() -> str:
    """A random GUID for ``client-request-id`` (a correlation id, not a secret: drawn from
    ``random`` rather than ``os.urandom``, a system call per request)."""
    n = (random.getrandbits(128) & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


class _Parts(aiohttp.payload.Payload):
    """A request body sent as its parts, never held joined: a small body is joined only for
    the moment it is written (one write, with the headers: cheaper than streaming it), a
    large one is streamed in slices of at most 1 MiB, so the socket buffer never holds a copy
    of a whole large item. Nothing is copied while the request waits for a connection."""

    def __init__(self, parts: tuple[bytes | memoryview, ...]) -> None:
        super().__init__(parts, content_type="application/json")
        self._size = self._total = sum(len(p) for p in parts)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self._value).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        if self._total <= JOIN_MAX:
            await writer.write(b"".join(self._value))
            return
        for part in self._value:
            view = memoryview(part)
            for k in range(0, len(view), CHUNK):
                await writer.write(view[k : k + CHUNK])


async def _read_into(resp: aiohttp.ClientResponse, length: int) -> Any:
    """Read a large body straight into one buffer of its announced length. ``read()`` would
    hold every chunk and then join them: two copies of a multi-megabyte export at once.

    Each ``read(n)`` asks for all that is left: the stream then buffers up to that much
    instead of pausing the socket every 128 KiB (``iter_any`` at the default buffer size
    paused and resumed it eight times a megabyte, two ``epoll_ctl`` calls each).

    A body the first ``read`` returns whole is returned as it came (``bytes``): the buffer
    would only zero-fill its length and copy it in again."""
    content = resp.content
    first = await content.read(length)
    pos = len(first)
    if pos == length:
        return first
    buf = bytearray(length)
    view = memoryview(buf)
    view[:pos] = first
    del first
    while 0 < pos < length:
        chunk = await content.read(length - pos)
        if not chunk:
            break
        end = pos + len(chunk)
        view[pos:end] = chunk
        pos = end
    if pos != length:
        raise aiohttp.ClientPayloadError("response shorter than its Content-Length")
    return buf


class Transport:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        tokens: TokenProvider | None,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        health: Health | None = None,
        route: Route | None = None,
    ) -> None:
        self.health = health or Health()
        self.http = http
        self.tokens = tokens
        self.route = route or Route()
        self._proxies: dict[tuple[str, str, int | None], Proxy | None] = {}
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rand = rand
        self.requests = 0

    async def request(self, call: Call) -> Any:
        """Send ``call`` until it succeeds or the policy says stop. Returns parsed JSON (or
        None for an empty body)."""
        policy, body = self.retry, call.body
        if body is None and call.json is not None:
            body = orjson.dumps(call.json)
        if call.parts is not None:
            size = sum(len(p) for p in call.parts)
        else:
            size = len(body) if body is not None and call.method != "GET" else 0
        alone_since: float | None = None  # the first concurrency 429 with none of ours in flight
        answered: tuple[object, ...] | None = None  # the last answer that came unreadable
        for _ in range(1000):
            try:
                return await self._once(call, body, size)
            except Throttled as exc:
                cause, retry_after, sent = Cause.THROTTLED, exc.retry_after, False
                err: ServiceError = exc
                if call.pacer is not None:
                    call.pacer.on_throttled(exc.reason, exc.retry_after, size)
                    if exc.reason == CONCURRENCY_REASON:
                        # none of our own calls to the mailbox in flight to wait for: its
                        # slots are held by another process's (a run killed just before
                        # this one, its requests still served). Retried at once, the 50
                        # retries were spent within a second and the pass failed (soak
                        # seeds 11004, 11007, 11010): such a 429 waits its Retry-After (at
                        # least ALONE_WAIT_S) and counts against the budget only once
                        # ALONE_FREE_S have gone by since the call's first one
                        if call.pacer.inflight == 0:
                            now = time.monotonic()
                            alone_since = alone_since if alone_since is not None else now
                            if now - alone_since >= ALONE_FREE_S:
                                policy = self._next(policy, cause, exc)
                            await self._sleep(max(exc.retry_after or 0.0, ALONE_WAIT_S))
                            continue
                        policy = self._next(policy, cause, exc)
                        await call.pacer.wait_for_release()
                        continue
                    if exc.reason == INCOMING_BYTES_REASON:
                        _unfit(call, call.pacer, size)
                    # The pacer now holds the whole mailbox until Retry-After.
                    policy = self._next(policy, cause, exc)
                    continue
            except Transient as exc:
                cause, retry_after, sent, err = exc.cause, exc.retry_after, exc.sent, exc
            except AuthExpired as exc:
                if self.tokens is None:
                    raise
                cause, retry_after, sent, err = Cause.AUTH, 0.0, False, exc
            if not may_resend(cause, call.idempotent, sent):
                raise OutcomeUnknown(
                    f"{call.name}: the outcome is unknown ({err.message})",
                    call=call.name,
                    status=err.status,
                    code=err.code,
                    request_id=err.request_id,
                    client_request_id=err.client_request_id,
                ) from err
            answered = _not_again(err, answered)
            policy = self._next(policy, cause, err)
            wait = policy.wait(cause, retry_after, self._rand())
            if retry_after is not None and wait < retry_after:
                log.warning(
                    "graph.retry_after_capped",
                    call=call.name,
                    asked_s=round(retry_after, 3),
                    used_s=round(wait, 3),
                )
            log.debug(
                "graph.retry",
                call=call.name,
                cause=cause.value,
                attempt=policy.attempts(cause),
                wait_s=round(wait, 3),
            )
            if wait > 0:
                await self._sleep(wait)
        raise Fatal(f"{call.name}: retry loop did not end", call=call.name)  # pragma: no cover

    @staticmethod
    def _next(policy: RetryPolicy, cause: Cause, err: ServiceError) -> RetryPolicy:
        try:
            return policy.increment(cause)
        except RetriesExhausted as exc:
            if cause is Cause.AUTH:
                raise Fatal(
                    f"{err.call}: the service keeps refusing fresh tokens ({err.code})",
                    call=err.call,
                    status=err.status,
                    code=err.code,
                    request_id=err.request_id,
                ) from err
            raise err from exc

    async def _once(self, call: Call, body: bytes | None, size: int) -> Any:
        headers = dict(call.headers or {})
        crid = _request_id()
        headers["client-request-id"] = crid
        if body is not None or call.parts is not None:
            headers.setdefault("Content-Type", "application/json")
        token = None
        if call.auth and self.tokens is not None:
            token = await self.tokens.token()
            headers["Authorization"] = f"Bearer {token}"
        url = URL(call.url, encoded=True)
        slot = call.pacer.slot(size) if call.pacer is not None else nullcontext()
        async with slot:
            self.health.sending += 1
            try:
                status, resp_headers, payload = await self._send(call, url, headers, body, crid)
            finally:
                self.health.sending -= 1
        if status < 300:
            if call.pacer is not None:
                call.pacer.on_success(size)
            if call.raw:
                return payload
            try:
                return orjson.loads(payload) if payload else None
            except orjson.JSONDecodeError:
                raise _unreadable(call, status, resp_headers, payload, crid) from None
        err = classify_response(call, status, resp_headers, payload, crid, time.time())
        if isinstance(err, AuthExpired) and token is not None and self.tokens is not None:
            self.tokens.invalidate(token)
        raise err

    def _proxy(self, url: URL) -> Proxy | None:
        key = (url.scheme, url.host or "", url.port)
        try:
            return self._proxies[key]
        except KeyError:
            found = self._proxies[key] = self.route.for_url(*key)
            return found

    async def _send(
        self, call: Call, url: URL, headers: dict[str, str], body: bytes | None, crid: str
    ) -> tuple[int, Any, bytes]:
        self.requests += 1
        data: Any = body
        if call.parts is not None:
            data = _Parts(call.parts)
        proxy = self._proxy(url)
        kw: dict[str, Any] = {}
        if proxy is not None:
            kw["proxy"] = proxy.url
            auth = proxy.authorization()
            if auth is not None:
                # a tunnel (https) carries it in CONNECT; a plain request in its own headers
                if url.scheme == "https":
                    kw["proxy_headers"] = {"Proxy-Authorization": auth}
                else:
                    headers["Proxy-Authorization"] = auth
        host = f"{url.host}:{url.port}"
        try:
            async with self.http.request(
                call.method, url, data=data, headers=headers, **kw
            ) as resp:
                try:
                    if call.raw and resp.status < 300 and (resp.content_length or 0) > CHUNK:
                        payload = await _read_into(resp, resp.content_length or 0)
                    else:
                        payload = await resp.read()
                except aiohttp.ClientPayloadError as exc:
                    cut = _cut_short(call, resp, crid)
                    self.health.failed(cut.message)
                    raise cut from exc
                self.health.answered(host)
                return resp.status, resp.headers, payload
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            err = classify_exception(
                call.name, exc, crid, host, proxy, reached=host in self.health.reached
            )
            self.health.failed(err.message)
            raise err from exc


# The least permission each call needs (contract §7), named in an access-denied message.
PERMISSION_FOR = {
    "resolveMailbox": "User.Read.All",
    "listFolders": "MailboxFolder.Read.All",
    "listChildFolders": "MailboxFolder.Read.All",
    "getFolder": "MailboxFolder.Read.All",
    "folderDelta": "MailboxFolder.Read.All",
    "createFolder": "MailboxFolder.ReadWrite.All",
    "updateFolder": "MailboxFolder.ReadWrite.All",
    "deleteFolder": "MailboxFolder.ReadWrite.All",
    "listItems": "MailboxItem.Read.All",
    "getItem": "MailboxItem.Read.All",
    "itemDelta": "MailboxItem.Read.All",
    "exportItems": "MailboxItem.Export.All (or MailboxItem.ImportExport.All)",
    "createImportSession": "MailboxItem.ImportExport.All",
    "deleteItem": "MailboxItem.ImportExport.All",
}
_MAILBOX_IN_URL = re.compile(r"/mailboxes/([^/?]+)")
# "The target session is expected in mailbox MBX:f10964a6-…@4d2e-….": the id, without the
# sentence's full stop
_MAILBOX_IN_TEXT = re.compile(r"\bMBX:[\w-]+@[\w-]+(?:\.[\w-]+)*")


def mailbox_named(message: str) -> str | None:
    """The mailbox id an import host's 409 names (an auto-expanding archive), if any."""
    m = _MAILBOX_IN_TEXT.search(message)
    return m.group(0) if m else None


def classify_exception(
    name: str,
    exc: BaseException,
    crid: str,
    host: str = "",
    proxy: Proxy | None = None,
    *,
    reached: bool = True,
) -> Transient:
    """A request that got no HTTP answer: whether it may have reached the service (``sent``)
    decides whether a non-idempotent request may be resent.

    No connection at all names the host and why (``network.no_connection``). To a host that
    has never answered, a name that does not resolve, a refused port, an untrusted
    certificate or a refusing proxy is a fault of the site, not a blip: a short budget
    (``Cause.UNREACHABLE``) tells the operator in seconds. Once a host has answered, the same
    failures are a drop mid-run and get the server budget, as before (an untrusted
    certificate excepted: it never fixes itself). See ``NoConnection.not_worth_waiting``."""
    no_answer = (
        aiohttp.ClientConnectorError,
        aiohttp.ClientHttpProxyError,
        aiohttp.ConnectionTimeoutError,
    )
    if isinstance(exc, no_answer):
        why = no_connection(exc)
        via = f" through the proxy {proxy.where}" if proxy is not None else ""
        if why.not_worth_waiting(reached):
            cause = Cause.UNREACHABLE
        else:
            cause = Cause.TIMEOUT if why.kind == "timeout" else Cause.SERVER
        # Nothing reached the server: always safe to resend.
        return Unreachable(
            f"{name}: cannot connect to {host or 'the host'}{via}: {why.detail}",
            host=host,
            kind=why.kind,
            advice=why.advice_when(reached),
            cause=cause,
            sent=False,
            call=name,
            client_request_id=crid,
        )
    if isinstance(exc, TimeoutError):
        return Transient(
            f"{name}: timed out", cause=Cause.TIMEOUT, sent=True, call=name, client_request_id=crid
        )
    return Transient(
        f"{name}: connection lost ({type(exc).__name__})",
        cause=Cause.CONNECTION,
        sent=True,
        call=name,
        client_request_id=crid,
    )


def classify_response(
    call: Call, status: int, headers: Any, payload: bytes, crid: str, now_wall: float
) -> ServiceError:
    """What an HTTP error answer means for the engine, decided on status and error code
    (the message is read only for the throttling reason, which Graph gives nowhere else)."""
    code, message = parse_error(status, payload)
    message = redact(message)
    kw: dict[str, Any] = {
        "status": status,
        "code": code,
        "call": call.name,
        "request_id": headers.get("request-id"),
        "client_request_id": crid,
    }
    text = f"{call.name}: {message or code}"
    retry_after = parse_retry_after(headers.get("Retry-After"), now_wall)
    if status == 429:
        return Throttled(text, retry_after=retry_after, reason=_reason_of(message), **kw)
    if call.import_call and status == 404 and code == "ErrorFolderNotFound":
        # the import host found the session but not the target folder (deleted in the
        # target): renewing the session would not help
        return NotFound(text, **kw)
    if call.import_call and status == 409 and code == f"Http{status}":
        # no Graph envelope: the import host's archive answer (a stale change key in update
        # mode has one, ErrorIrresolvableConflict, and stays an item failure)
        return SessionMoved(text, mailbox_id=mailbox_named(message), **kw)
    if call.import_call and status in (401, 403, 404):
        return SessionExpired(text, **kw)
    if status == 401:
        return AuthExpired(text, **kw)
    if status in (500, 503):
        return Transient(text, retry_after=retry_after, cause=Cause.SERVER, **kw)
    if status in (502, 504):
        return Transient(text, retry_after=retry_after, cause=Cause.GATEWAY, **kw)
    if status == 403:
        m = _MAILBOX_IN_URL.search(call.url)
        where = f" to mailbox {unquote(m.group(1))}" if m else ""
        need = PERMISSION_FOR.get(call.name, "a permission for this call")
        return PermissionDenied(
            f"{call.name}: access denied{where} ({code}): the app needs {need} there; check "
            "its Graph application permissions and any Exchange RBAC for Applications scope",
            **kw,
        )
    if status == 410:
        return DeltaExpired(text, **kw)
    if status == 404:
        if code in (
            "ErrorNonExistentMailbox",
            "Request_ResourceNotFound",
            "MailboxNotEnabledForRESTAPI",
            "ErrorInvalidUser",
        ):
            return MailboxNotFound(text, **kw)
        return NotFound(text, **kw)
    if (status in (400, 409, 413) and call.import_call) or status == 409:
        return ItemFailed(text, **kw)
    return Fatal(text, **kw)
