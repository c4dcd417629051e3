"""The way to the service: which proxy a request takes, and why a connection failed.

**Proxies.** Every request of a job (the token requests msal sends through ``requests``, the
Graph calls and the import uploads aiohttp sends) takes its proxy from one rule, ``Route``:
``[network] proxy`` when the job file gives it, else ``HTTPS_PROXY`` / ``HTTP_PROXY`` (or
``ALL_PROXY``) from the environment; ``[network] no_proxy`` (or else ``NO_PROXY``) names the
hosts reached directly. The rule is ours rather than each library's (aiohttp's
``trust_env``, requests' environment): ``trust_env`` also reads ``~/.netrc`` and sends what
it finds there as basic authentication to every host, and the two libraries read
``NO_PROXY`` differently; one rule means the token and the Graph call of a tenant never take
two ways. A loopback host (the emulator) goes through a proxy only when the proxy is on
loopback too: a remote proxy's 127.0.0.1 is not ours.

Proxy credentials: a user in the proxy URL, the password by reference
(``[network] proxy_password = "env:NAME"`` or ``"file:PATH"``), or both in an environment
variable's URL (``http://user:pass@proxy:3128``, as sites set it). The password lives in a
``Secret`` and is turned into a ``Proxy-Authorization`` header only when a request is sent.

**Failures.** ``no_connection`` reads any exception chain (aiohttp's, requests' and
urllib3's wrappers around the socket error) and says why no connection was made: the name
did not resolve, the port refused, TLS (with the certificate's problem), a timeout, the
proxy, or a connection lost.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from .errors import ConfigError
from .secrets import Secret, resolve_secret
from .textfiles import Table

DIRECT = "direct"  # ``[network] proxy = "direct"``: no proxy, whatever the environment says
LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- the [network] table ---------------------------------------------------------------------
@dataclass(frozen=True)
class NetworkConfig:
    """``[network]`` as written: ``proxy`` None means the environment decides."""

    proxy: str | None = None
    proxy_password: Secret | None = None
    no_proxy: tuple[str, ...] | None = None  # None: NO_PROXY from the environment


def parse_network(t: Table, base: Path, resolve: bool) -> NetworkConfig:
    proxy = t.get("proxy", str)
    ref = t.get("proxy_password", str)
    no_proxy = t.get("no_proxy", list)
    t.done()
    password = None
    if ref is not None:
        password = resolve_secret(ref, t.path("proxy_password"), base) if resolve else None
    if proxy is not None and proxy.strip().lower() != DIRECT:
        # checked now, so that a typo is a configuration error before anything runs
        parse_proxy(proxy, t.path("proxy"), password, from_config=True)
    elif ref is not None:
        raise ConfigError(t.path("proxy_password"), "is for a [network] proxy URL with a user")
    entries: tuple[str, ...] | None = None
    if no_proxy is not None:
        for i, e in enumerate(no_proxy):
            if not isinstance(e, str) or not e.strip():
                raise ConfigError(f"{t.path('no_proxy')}[{i}]", "must be a host name, not empty")
        entries = tuple(str(e).strip().lower() for e in no_proxy)
    return NetworkConfig(proxy, password, entries)


# -- proxies ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Proxy:
    """One proxy: its URL without credentials, and the credentials apart."""

    host: str
    port: int
    source: str  # where it came from: "[network] proxy", "HTTPS_PROXY", …
    username: str | None = None
    password: Secret | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` header value (basic), or None without credentials."""
        if self.username is None:
            return None
        pw = self.password.reveal() if self.password is not None else ""
        return "Basic " + base64.b64encode(f"{self.username}:{pw}".encode()).decode("ascii")

    def url_with_credentials(self) -> str:
        """The URL requests and urllib3 take credentials from (built for one request,
        never stored or shown)."""
        if self.username is None:
            return self.url
        pw = self.password.reveal() if self.password is not None else ""
        return f"http://{quote(self.username, safe='')}:{quote(pw, safe='')}@{self.where}"

    def __repr__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"Proxy({user}{self.where} from {self.source})"

    __str__ = __repr__


def parse_proxy(
    value: str, where: str, password: Secret | None = None, *, from_config: bool = False
) -> Proxy:
    """A proxy URL: ``http://[user@]host:port`` (a missing scheme means http). A password in
    the job file's URL is refused (it goes by reference); in an environment variable it is
    taken, as sites write it there."""
    raw = value.strip()
    text = raw if "://" in raw else f"http://{raw}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConfigError(where, "is not a proxy URL (http://host:port)") from None
    if parts.scheme.lower() != "http":
        raise ConfigError(
            where,
            f"{parts.scheme}:// proxies are not supported; give an http:// proxy (an https "
            "request still travels encrypted through it, in a CONNECT tunnel)",
        )
    if not parts.hostname or port is None:
        raise ConfigError(where, "needs a host and a port: http://proxy.example:3128")
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(where, "must be only http://host:port (no path or query)")
    user = unquote(parts.username) if parts.username else None
    if parts.password is not None:
        if from_config:
            raise ConfigError(
                where,
                "the URL holds a password: remove it and give [network] proxy_password = "
                '"env:NAME" or "file:PATH" (configuration files get copied)',
            )
        password = Secret(unquote(parts.password), f"env:{where}")
    if password is not None and user is None:
        raise ConfigError(where, "a proxy password needs a user: http://user@host:port")
    return Proxy(parts.hostname, port, where, user, password)


def bypassed(host: str, port: int | None, no_proxy: tuple[str, ...]) -> bool:
    """Whether ``host`` is reached directly: ``*``; a name and its subdomains (``example.com``,
    ``.example.com``, ``*.example.com``); an address or network (``10.0.0.0/8``); any of
    these with ``:port``."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    for entry in no_proxy:
        e = entry.strip().lower()
        if e == "*":
            return True
        name, want_port = _split_port(e)
        if want_port is not None and want_port != port:
            continue
        name = name.strip("[]").removeprefix("*").removeprefix(".").rstrip(".")
        if not name:
            continue
        if addr is not None:
            try:
                if addr in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if host == name or host.endswith("." + name):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [::1]:8443
        name, _, rest = entry[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        name, _, p = entry.partition(":")
        if p.isdigit():
            return name, int(p)
    return entry, None


@dataclass(frozen=True)
class Route:
    """Which proxy each request takes (``for_url``): the job's rule, decided once."""

    https: Proxy | None = None
    http: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    def for_url(self, scheme: str, host: str, port: int | None) -> Proxy | None:
        """The proxy for a request to ``scheme://host:port``, or None: direct."""
        proxy = self.https if scheme == "https" else self.http
        if port is None:
            port = 443 if scheme == "https" else 80
        if proxy is None or bypassed(host, port, self.no_proxy):
            return None
        if is_loopback(host) and not is_loopback(proxy.host):
            return None  # the proxy's loopback is not ours
        return proxy

    def describe(self) -> str:
        if self.https is None and self.http is None:
            return "direct"
        ways = [
            f"{s} through {p.where} ({p.source})"
            for s, p in (("https", self.https), ("http", self.http))
            if p is not None
        ]
        bypass = f"; direct to {', '.join(self.no_proxy)}" if self.no_proxy else ""
        return "; ".join(ways) + bypass


def _env(environ: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """The first of ``names`` set (lower case before upper case, as curl and Python read
    them), as (name, value)."""
    for name in names:
        for n in (name.lower(), name.upper()):
            v = environ.get(n)
            if v is not None and v.strip():
                return n, v
    return None


def job_route(cfg: NetworkConfig, environ: Mapping[str, str]) -> Route:
    """The job's ``Route``: ``[network]`` over the environment."""
    if cfg.no_proxy is not None:
        no_proxy = cfg.no_proxy
    else:
        found = _env(environ, "no_proxy")
        no_proxy = (
            tuple(e.strip().lower() for e in found[1].split(",") if e.strip()) if found else ()
        )
    if cfg.proxy is not None:
        if cfg.proxy.strip().lower() == DIRECT:
            return Route()
        p = parse_proxy(cfg.proxy, "[network] proxy", cfg.proxy_password, from_config=True)
        return Route(p, p, no_proxy)
    out: dict[str, Proxy | None] = {}
    for scheme in ("https", "http"):
        found = _env(environ, f"{scheme}_proxy", "all_proxy")
        try:
            out[scheme] = parse_proxy(found[1], found[0]) if found else None
        except ConfigError as exc:
            raise ConfigError(
                exc.where,
                f"{exc.message} (the environment variable; [network] proxy in the job file "
                'overrides it, "direct" ignores it)',
            ) from None
    return Route(out["https"], out["http"], no_proxy)


# -- why no connection -----------------------------------------------------------------------
@dataclass(frozen=True)
class NoConnection:
    """Why a request got no connection: ``kind`` is dns, refused, tls, timeout, proxy or
    lost; ``detail`` says it in words; ``advice`` what to check."""

    kind: str
    detail: str
    advice: str = ""
    lasting: bool = False  # does not fix itself (a certificate not trusted)

    def not_worth_waiting(self, reached: bool) -> bool:
        """Whether a minute of retries would only delay the operator: a certificate that is
        not trusted, or a host that has never answered (``reached``) whose name does not
        resolve, whose port refuses, whose TLS fails, or whose proxy refuses. A host that
        answered earlier and then refuses is a drop mid-run: worth the usual retries."""
        return self.lasting or (not reached and self.kind in ("dns", "refused", "tls", "proxy"))

    def advice_when(self, reached: bool) -> str:
        """What to do: check the site, unless the host answered before and only dropped."""
        if self.not_worth_waiting(reached) or self.kind == "timeout":
            return self.advice
        return "it answered earlier in the run: run again when it answers"


ADVICE = {
    "dns": "check the URL, and this host's DNS (or a [network] proxy, where names resolve "
    "only through the proxy)",
    "refused": "nothing listens there, or a firewall rejects the connection; check the URL "
    "and the port",
    "tls": "the certificate is not trusted: give the tenant's ca_bundle the CA that issued it "
    "(a private CA, or the CA of a TLS-inspecting proxy); verification is never switched off",
    "timeout": "packets are dropped on the way (a firewall, or a proxy this host must use: "
    "[network] proxy or HTTPS_PROXY)",
    "proxy": "check [network] proxy (or HTTPS_PROXY / NO_PROXY) and the proxy's credentials",
    "lost": "the connection was closed before an answer",
}


def _chain(exc: BaseException, limit: int = 24) -> Iterator[BaseException]:
    """``exc`` and what it wraps: causes, contexts, and the exceptions aiohttp, requests and
    urllib3 keep in attributes and arguments (bounded: chains can loop)."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < limit:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        inner = [getattr(e, a, None) for a in ("os_error", "certificate_error", "reason")]
        inner += [e.__cause__, e.__context__, *getattr(e, "args", ())]
        todo += [x for x in inner if isinstance(x, BaseException)]


def _cert_problem(e: ssl.SSLCertVerificationError) -> str:
    msg = (e.verify_message or e.reason or str(e)).strip()
    if "Hostname mismatch" in msg or "IP address mismatch" in msg:
        return f"the certificate is for another name ({msg})"
    return msg


def _proxy_answer(status: int, words: str) -> NoConnection:
    """The proxy answered the tunnel request (CONNECT) with an error."""
    if status == 407:
        return NoConnection(
            "proxy",
            "the proxy asks for credentials, or refused them (407)",
            "give the user in [network] proxy (http://user@host:port) and [network] proxy_password",
        )
    return NoConnection(
        "proxy",
        f"the proxy answered {status} {words}".rstrip()
        + " to the tunnel (it could not reach the host itself, or its rules forbid it)",
        ADVICE["proxy"],
    )


def _proxy_problem(chain: list[BaseException]) -> NoConnection | None:
    for e in chain:
        if type(e).__name__ == "ClientHttpProxyError":  # aiohttp
            return _proxy_answer(int(getattr(e, "status", 0)), str(getattr(e, "message", "")))
        # http.client under urllib3 (msal's token requests): the tunnel was refused
        text = e.args[0] if type(e) is OSError and e.args and isinstance(e.args[0], str) else ""
        if text.startswith("Tunnel connection failed:"):
            status, _, words = text.removeprefix("Tunnel connection failed:").strip().partition(" ")
            return _proxy_answer(int(status) if status.isdigit() else 0, words)
    names = {type(e).__name__ for e in chain}
    if "ClientProxyConnectionError" in names or "ProxyError" in names:
        inner = _socket_problem(chain)
        what = inner.detail if inner is not None else "no connection"
        return NoConnection("proxy", f"cannot connect to the proxy: {what}", ADVICE["proxy"])
    return None


def _socket_problem(chain: list[BaseException]) -> NoConnection | None:
    for e in chain:
        # aiohttp's ClientConnectorCertificateError is one too, without the details
        if isinstance(e, ssl.SSLCertVerificationError) and hasattr(e, "verify_message"):
            return NoConnection("tls", f"TLS: {_cert_problem(e)}", ADVICE["tls"], lasting=True)
    dns: list[BaseException] = [e for e in chain if isinstance(e, socket.gaierror)]
    dns += [
        e for e in chain if type(e).__name__ in ("ClientConnectorDNSError", "NameResolutionError")
    ]
    if dns:
        e = dns[0]
        why = e.strerror if isinstance(e, OSError) and e.strerror else "not found"
        return NoConnection("dns", f"the name does not resolve (DNS: {why})", ADVICE["dns"])
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return NoConnection("refused", "the connection was refused", ADVICE["refused"])
    for e in chain:
        if isinstance(e, ssl.SSLError):
            return NoConnection("tls", f"TLS: {e.reason or e}", ADVICE["tls"])
    for e in chain:
        if isinstance(e, TimeoutError) or "Timeout" in type(e).__name__:
            return NoConnection("timeout", "the connection timed out", ADVICE["timeout"])
    return None


def no_connection(exc: BaseException) -> NoConnection:
    """Why ``exc`` left a request without an answer (a connection that was lost when no
    cause is found)."""
    chain = list(_chain(exc))
    found = _proxy_problem(chain) or _socket_problem(chain)
    if found is not None:
        return found
    return NoConnection("lost", f"connection lost ({type(exc).__name__})", ADVICE["lost"])
