"""What went wrong, classified by what the engine does next (one hierarchy, one place).

CopyEngineError
├── ConfigError             bad configuration: nothing was sent
├── StateError              the state store cannot be used (disk full, corrupt)
│   ├── JobLocked               another run of the same job holds the job's lock
│   └── ForeignState            the state store belongs to another job
└── ServiceError            anything the service (or the way to it) answered
    ├── Throttled           429: wait ``retry_after`` (the pacer does), then retry
    ├── Transient           503/504, connection or timeout before the server acted: back off
    │   └── Unreachable         no connection to a host (DNS, refused, TLS, proxy, timeout)
    ├── AuthExpired         401 on a Graph call: renew the token once, retry
    ├── SessionExpired      401/403/404 from an import URL: renew the session once, retry
    │   └── SessionMoved        409 ``{"Message"}`` from the import host (an auto-expanding
    │                           archive): a new session (on the mailbox it names), retry
    ├── ItemFailed          this item cannot be copied (export error, corrupt data): record
    ├── OutcomeUnknown      an import may or may not have happened: reconcile first
    ├── DeltaExpired        410: the delta link is dead; enumerate in full
    ├── NotFound            404 on a folder or item
    └── Fatal               stop this mailbox pair (or the job)
        ├── AuthFailed          the identity platform refuses the credential
        ├── PermissionDenied    403 ErrorAccessDenied: a permission is missing
        ├── MailboxNotFound     the user or mailbox does not exist
        └── BadItemLimit        a pair's failed items passed max_failed_items_per_pair
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class Cause(Enum):
    """Why a request may be retried (each has its own budget in the retry policy)."""

    THROTTLED = "throttled"
    SERVER = "server"  # 500/503, or nothing answered at all (refused before sending)
    GATEWAY = "gateway"  # 502/504
    CONNECTION = "connection"  # reset or dropped after the request went out
    TIMEOUT = "timeout"
    # no connection to a host that has not answered yet (the name does not resolve, the port
    # refuses, its certificate is not trusted, the proxy refuses): a short budget, the
    # operator hears of it in seconds
    UNREACHABLE = "unreachable"
    AUTH = "auth"  # token renewal
    SESSION = "session"  # import-session renewal


class CopyEngineError(Exception):
    pass


class ConfigError(CopyEngineError):
    """``where`` is the key path (``tenants.source.client_id``) or file."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


class StateError(CopyEngineError):
    pass


class JobLocked(StateError):
    pass


class SchemaBehind(StateError):
    """A state of an earlier schema opened without the job's lock: only the lock's holder
    (a run, or a command that takes it while no run does) migrates it."""


class ForeignState(StateError):
    pass


class ServiceError(CopyEngineError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        client_request_id: str | None = None,
        call: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.call = call

    def facts(self) -> dict[str, Any]:
        """What identifies the answer (status, code, request ids, call): kept by an error
        raised in its place with a message that says more."""
        return {
            "status": self.status,
            "code": self.code,
            "request_id": self.request_id,
            "client_request_id": self.client_request_id,
            "call": self.call,
        }

    def __str__(self) -> str:
        parts = [self.message]
        if self.call:
            parts.append(f"call={self.call}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.code:
            parts.append(f"code={self.code}")
        if self.request_id:
            parts.append(f"request-id={self.request_id}")
        return " ".join(parts)


class Throttled(ServiceError):
    def __init__(
        self, message: str, *, retry_after: float | None, reason: str, **kw: object
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after
        self.reason = reason


class Transient(ServiceError):
    """Worth retrying. ``sent``: the request may have reached the service and been acted on
    (connection lost or timed out after it went out); a non-idempotent request is then never
    resent blindly. ``answer``: what a success that did not arrive readable looked like (a
    body cut short, one that is no JSON), to tell the same answer coming again from a cut on
    the way (``graph.transport``)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        cause: Cause = Cause.SERVER,
        sent: bool = False,
        answer: tuple[object, ...] | None = None,
        **kw: object,
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after
        self.cause = cause
        self.sent = sent
        self.answer = answer


class Unreachable(Transient):
    """No connection to ``host`` (``host:port``): ``kind`` says why (dns, refused, tls,
    timeout, proxy, lost), ``advice`` what to check."""

    def __init__(
        self, message: str, *, host: str, kind: str, advice: str = "", **kw: object
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.host = host
        self.kind = kind
        self.advice = advice


class AuthExpired(ServiceError):
    pass


class SessionExpired(ServiceError):
    pass


class SessionMoved(SessionExpired):
    """409 from the import host without a Graph envelope: "Invalid import session. The target
    session is expected in mailbox MBX:…" (an auto-expanding archive). Nothing was imported;
    a new session on ``mailbox_id`` (None: the message named none, the same mailbox) takes
    the retry."""

    def __init__(self, message: str, *, mailbox_id: str | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.mailbox_id = mailbox_id


class ItemFailed(ServiceError):
    pass


class OutcomeUnknown(ServiceError):
    pass


class DeltaExpired(ServiceError):
    pass


class NotFound(ServiceError):
    pass


class Fatal(ServiceError):
    pass


class AuthFailed(Fatal):
    pass


class PermissionDenied(Fatal):
    pass


class MailboxNotFound(Fatal):
    pass


class BadItemLimit(Fatal):
    """More items of a pair failed than ``[limits] max_failed_items_per_pair`` allows."""
