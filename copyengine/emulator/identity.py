"""Tenants, app registrations and the token service (Microsoft identity platform, v2.0).

Access tokens are JWTs signed by the emulator (HS256, a key made at start) carrying ``tid``,
``appid`` and the granted permissions in ``roles`` (contract §7). Clients authenticate with a
client secret or a certificate (a signed JWT client assertion, as msal builds it: RS256 with
``x5t`` or PS256 with ``x5t#S256``).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .journal import signing_key
from .store import Mailbox

GRAPH_RESOURCE = "https://graph.microsoft.com"
ALL_ROLES = (
    "User.Read.All",
    "MailboxFolder.Read.All",
    "MailboxFolder.ReadWrite.All",
    "MailboxItem.Read.All",
    "MailboxItem.Export.All",
    "MailboxItem.ImportExport.All",
)


class AuthError(Exception):
    """A token request refused: ``status``, OAuth ``error`` code, AADSTS description."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


@dataclass
class AppCertificate:
    pem: bytes
    sha1: bytes
    sha256: bytes
    public_key: Any

    @classmethod
    def load(cls, pem: bytes) -> AppCertificate:
        cert = x509.load_pem_x509_certificate(pem)
        return cls(
            pem=pem,
            sha1=cert.fingerprint(hashes.SHA1()),
            sha256=cert.fingerprint(hashes.SHA256()),
            public_key=cert.public_key(),
        )


@dataclass
class App:
    client_id: str
    display_name: str
    roles: tuple[str, ...]
    secret: str | None = None
    certificates: list[AppCertificate] = field(default_factory=list)
    key_path: Path | None = None  # where a generated private key was written
    scope: frozenset[str] | None = None  # RBAC for Applications: lower-case UPNs, None = all
    cert_path: Path | None = None


@dataclass
class Tenant:
    id: str
    name: str
    domain: str
    apps: dict[str, App] = field(default_factory=dict)
    users: dict[str, Mailbox] = field(default_factory=dict)  # by lower-case UPN


def tenant_guid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.copyengine-emulator"))


def generate_app_certificate(client_id: str, directory: Path) -> tuple[Path, Path, bytes]:
    """A self-signed RSA certificate for an app registration; writes key and certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"copyengine-app-{client_id}")])
    now = time.time()
    import datetime as _dt

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_dt.datetime.fromtimestamp(now - 3600, _dt.UTC))
        .not_valid_after(_dt.datetime.fromtimestamp(now + 365 * 86400, _dt.UTC))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    return write_app_certificate(client_id, directory, key_pem, cert_pem)


def write_app_certificate(
    client_id: str, directory: Path, key_pem: bytes, cert_pem: bytes
) -> tuple[Path, Path, bytes]:
    """An app's key (readable by its owner only) and certificate written into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / f"{client_id}.key.pem"
    cert_path = directory / f"{client_id}.cert.pem"
    key_path.write_bytes(key_pem)
    key_path.chmod(0o600)
    cert_path.write_bytes(cert_pem)
    return key_path, cert_path, cert_pem


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class TokenService:
    """Issues and checks access tokens; knows every tenant and app."""

    def __init__(self, lifetime: float = 3600.0) -> None:
        self.lifetime = lifetime
        self._key = secrets.token_bytes(32)
        self._key_path: Path | None = None
        self.tenants: dict[str, Tenant] = {}  # by id
        self._names: dict[str, str] = {}  # name/domain -> id
        self._revoked: set[str] = set()
        self._verified: dict[str, dict[str, Any]] = {}
        self.issued = 0

    def use_key_file(self, path: Path, write: bool = True) -> None:
        """Sign with the key kept at ``path``: tokens stay valid across a restart. Without
        ``write`` the key there is used when there is one, and nothing is written."""
        if not write:
            if path.exists() and len(key := path.read_bytes()) >= 32:
                self._key = key
            return
        self._key_path = path
        self._key = signing_key(path)

    def add_tenant(self, tenant: Tenant) -> None:
        self.tenants[tenant.id] = tenant
        self._names[tenant.name.lower()] = tenant.id
        self._names[tenant.domain.lower()] = tenant.id

    def tenant(self, ref: str) -> Tenant | None:
        t = self.tenants.get(ref) or self.tenants.get(self._names.get(ref.lower(), ""))
        return t

    # -- token endpoint ----------------------------------------------------------------------
    def issue(self, tenant_ref: str, form: dict[str, str], token_url: str) -> dict[str, Any]:
        tenant = self.tenant(tenant_ref)
        if tenant is None:
            raise AuthError(
                400,
                "invalid_tenant",
                f"AADSTS90002: Tenant '{tenant_ref}' not found.",
            )
        if form.get("grant_type") != "client_credentials":
            raise AuthError(
                400,
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
            )
        scope = form.get("scope", "")
        scopes = scope.split()
        if (
            not scopes
            or not all(s.rstrip("/").endswith(".default") for s in scopes)
            or not any(s.startswith(GRAPH_RESOURCE) for s in scopes)
        ):
            raise AuthError(
                400,
                "invalid_scope",
                f"AADSTS1002012: The provided value for scope {scope} is not valid. Client "
                "credential flows must have a scope value with /.default suffixed to the "
                "resource identifier.",
            )
        client_id = form.get("client_id", "")
        app = tenant.apps.get(client_id)
        if app is None:
            raise AuthError(
                400,
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{client_id}' was not found in "
                f"the directory '{tenant.name}'.",
            )
        if "client_secret" in form:
            if app.secret is None or not hmac.compare_digest(
                form["client_secret"].encode(), app.secret.encode()
            ):
                raise AuthError(
                    401,
                    "invalid_client",
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being "
                    "sent in the request is the client secret value, not the client secret ID.",
                )
        elif "client_assertion" in form:
            self._check_assertion(app, form, token_url)
        else:
            raise AuthError(
                401,
                "invalid_client",
                "AADSTS7000218: The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        now = time.time()
        claims = {
            "aud": GRAPH_RESOURCE,
            "iss": f"https://sts.windows.net/{tenant.id}/",
            "iat": int(now),
            "nbf": int(now) - 1,
            "exp": now + self.lifetime,
            "tid": tenant.id,
            "appid": app.client_id,
            "app_displayname": app.display_name,
            "roles": list(app.roles),
            "jti": secrets.token_hex(8),
        }
        token = jwt.encode(claims, self._key, algorithm="HS256")
        self.issued += 1
        return {
            "token_type": "Bearer",
            "expires_in": int(self.lifetime),
            "ext_expires_in": int(self.lifetime),
            "access_token": token,
        }

    def _check_assertion(self, app: App, form: dict[str, str], token_url: str) -> None:
        if form.get("client_assertion_type") != (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            raise AuthError(400, "invalid_request", "AADSTS50027: Invalid client_assertion_type.")
        assertion = form["client_assertion"]
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise AuthError(
                401, "invalid_client", "AADSTS50027: JWT token is invalid or malformed."
            ) from exc
        cert = None
        # msal keeps the base64 padding in x5t; RFC 7515 drops it: accept both.
        x5t256 = str(header.get("x5t#S256", "")).rstrip("=")
        x5t = str(header.get("x5t", "")).rstrip("=")
        for c in app.certificates:
            if x5t256 == _b64url(c.sha256) or x5t == _b64url(c.sha1):
                cert = c
                break
        if cert is None:
            raise AuthError(
                401,
                "invalid_client",
                f"AADSTS700027: The certificate with identifier used to sign the client "
                f"assertion is not registered on application {app.client_id}.",
            )
        try:
            claims = jwt.decode(
                assertion,
                cert.public_key,
                algorithms=["RS256", "PS256"],
                audience=token_url,
                options={"require": ["exp", "aud", "iss", "sub"]},
                leeway=60,
            )
        except jwt.PyJWTError as exc:
            raise AuthError(
                401,
                "invalid_client",
                f"AADSTS700027: Client assertion failed signature validation: {exc}.",
            ) from exc
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise AuthError(
                401,
                "invalid_client",
                "AADSTS700021: Client assertion application identifier doesn't match "
                "'client_id' parameter.",
            )

    # -- resource side -----------------------------------------------------------------------
    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a live access token, or None (bad signature, expired, revoked)."""
        claims = self._verified.get(token)
        if claims is None:
            try:
                claims = jwt.decode(token, self._key, algorithms=["HS256"], audience=GRAPH_RESOURCE)
            except jwt.PyJWTError:
                return None
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[token] = claims
        if claims["exp"] <= time.time() or claims["jti"] in self._revoked:
            return None
        return claims

    def revoke(self, token: str) -> None:
        claims = self.verify(token)
        if claims is not None:
            self._revoked.add(claims["jti"])

    def revoke_all(self, client_id: str | None = None) -> int:
        """Revoke the tokens of one app, or of everyone (a new signing key: even tokens
        never presented yet stop working)."""
        if client_id is None:
            n = len(self._verified)
            self._key = secrets.token_bytes(32)
            if self._key_path is not None:  # the new key is the one a restart comes back with
                self._key_path.unlink(missing_ok=True)
                self._key = signing_key(self._key_path)
            self._verified.clear()
            return n
        mine = [c["jti"] for c in self._verified.values() if c["appid"] == client_id]
        self._revoked.update(mine)
        return len(mine)
