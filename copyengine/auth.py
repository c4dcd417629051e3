"""Access tokens for one tenant app, through msal, without blocking the event loop.

msal is synchronous and its constructor already talks to the authority, so every msal call
runs in a worker thread. Tokens are cached and renewed ``refresh_margin`` seconds before they
expire; concurrent callers share one renewal; ``invalidate`` (after a 401) forces the next
caller to renew.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import msal
import requests

from .clouds import AUTHORITY_HOSTS, GLOBAL
from .errors import AuthFailed, Cause, ConfigError, Transient, Unreachable
from .network import Route, no_connection
from .secrets import Secret
from .tlshttp import PinnedVerifySession

GRAPH_SCOPE = GLOBAL.scope


@dataclass(frozen=True)
class Credential:
    """A client secret, or a certificate: PEM private key + PEM certificate, or a PFX file."""

    secret: Secret | None = None
    private_key: Secret | None = None  # PEM text
    certificate: str | None = None  # PEM text of the public certificate
    pfx_path: Path | None = None
    pfx_password: Secret | None = None

    def __post_init__(self) -> None:
        kinds = sum(x is not None for x in (self.secret, self.private_key, self.pfx_path))
        if kinds != 1:
            raise ConfigError("credential", "give exactly one of secret, certificate or pfx")

    @property
    def kind(self) -> str:
        return "secret" if self.secret else "pfx" if self.pfx_path else "certificate"

    def for_msal(self) -> Any:
        if self.secret is not None:
            return self.secret.reveal()
        if self.pfx_path is not None:
            return _pfx_to_pem(self.pfx_path, self.pfx_password)
        assert self.private_key is not None
        return {"private_key": self.private_key.reveal(), "public_certificate": self.certificate}

    def __repr__(self) -> str:
        return f"Credential(kind={self.kind!r})"


def _pfx_to_pem(path: Path, password: Secret | None) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        key, cert, _ = pkcs12.load_key_and_certificates(
            path.read_bytes(), password.reveal().encode() if password else None
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), f"cannot read the PFX file: {type(exc).__name__}") from None
    if key is None or cert is None:
        raise ConfigError(str(path), "the PFX file holds no private key and certificate")
    return {
        "private_key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }


class TokenProvider:
    def __init__(
        self,
        *,
        tenant: str,
        client_id: str,
        credential: Credential,
        authority_host: str = "https://login.microsoftonline.com",
        ca_bundle: str | None = None,
        scope: str = GRAPH_SCOPE,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.time,
        timeout: float = 30.0,
        route: Route | None = None,
    ) -> None:
        self.tenant = tenant
        self.client_id = client_id
        self._credential = credential
        self._authority = f"{authority_host.rstrip('/')}/{tenant}"
        where = urlsplit(authority_host)
        self._host = f"{where.hostname}:{where.port or (80 if where.scheme == 'http' else 443)}"
        self._known_host = (where.hostname or "") in AUTHORITY_HOSTS
        self._route = route or Route()
        self._answered = False  # the identity platform has answered once
        self._ca = ca_bundle
        self._scope = scope
        self._margin = refresh_margin
        self._clock = clock
        self._timeout = timeout
        self._app: msal.ConfidentialClientApplication | None = None
        self._token: str | None = None
        self._expires = 0.0
        self._lock = anyio.Lock()
        self.renewals = 0

    def __repr__(self) -> str:
        return f"TokenProvider(tenant={self.tenant!r}, client_id={self.client_id!r})"

    @property
    def scope(self) -> str:
        """What the tokens are asked for: the tenant's Graph resource (``clouds``)."""
        return self._scope

    async def token(self) -> str:
        tok = self._token
        if tok is not None and self._clock() < self._expires - self._margin:
            return tok
        async with self._lock:
            # Someone else may have renewed while we waited for the lock.
            if self._token is not None and self._clock() < self._expires - self._margin:
                return self._token
            return await self._renew()

    def invalidate(self, token: str) -> None:
        """The service refused ``token``: the next caller renews (unless already renewed)."""
        if self._token == token:
            self._token = None
            self._expires = 0.0

    async def _renew(self) -> str:
        result = await anyio.to_thread.run_sync(self._acquire_sync)
        self._answered = True
        if "access_token" not in result:
            code = str(result.get("error", "unknown_error"))
            desc = str(result.get("error_description", "")).split("\r\n")[0].split("\n")[0]
            raise AuthFailed(
                f"the identity platform refused the credential of app {self.client_id} in "
                f"tenant {self.tenant}: {code}: {desc}",
                code=code,
                call="token",
            )
        self._token = str(result["access_token"])
        self._expires = self._clock() + float(result.get("expires_in", 3600))
        self.renewals += 1
        return self._token

    def _unreachable(self, exc: requests.RequestException) -> Transient:
        """No answer from the identity platform, its host and why named; the same budgets
        as a Graph call (``transport.classify_exception``): a host that never answered and
        refuses, does not resolve or is not trusted is told in seconds."""
        why = no_connection(exc)
        host = self._host
        where = urlsplit(self._authority)
        proxy = self._route.for_url(where.scheme, where.hostname or "", where.port)
        via = f" through the proxy {proxy.where}" if proxy is not None else ""
        message = (
            f"cannot reach the identity platform for tenant {self.tenant} at {host}{via}: "
            f"{why.detail}"
        )
        if isinstance(exc, requests.ConnectionError | requests.Timeout):
            short = why.not_worth_waiting(self._answered)
            return Unreachable(
                message,
                host=host,
                kind=why.kind,
                advice=why.advice_when(self._answered),
                cause=Cause.UNREACHABLE if short else Cause.CONNECTION,
                sent=False,  # the Graph request itself never went out
                call="token",
            )
        return Transient(message, cause=Cause.CONNECTION, sent=False, call="token")

    def _acquire_sync(self) -> dict[str, Any]:
        try:
            if self._app is None:
                http = PinnedVerifySession(self._ca if self._ca else True, self._route)
                self._app = msal.ConfidentialClientApplication(
                    self.client_id,
                    client_credential=self._credential.for_msal(),
                    authority=self._authority,
                    http_client=http,
                    instance_discovery=None if self._known_host else False,
                    timeout=self._timeout,
                    token_cache=msal.TokenCache(),
                )
            else:
                cache = self._app.token_cache
                for at in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                    cache.remove_at(at)
            return self._app.acquire_token_for_client(scopes=[self._scope])  # type: ignore[no-any-return]
        except requests.RequestException as exc:
            raise self._unreachable(exc) from None
        except ValueError as exc:
            # msal raises ValueError for an unknown tenant / failed discovery.
            raise AuthFailed(
                f"authority discovery failed for tenant {self.tenant}: {str(exc)[:300]}",
                call="token",
            ) from None
