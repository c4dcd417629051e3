"""The way to the service: every request through the job's proxy (counted by a proxy on
127.0.0.1), proxy credentials never shown, and a service that cannot be reached named with
its host and the cause, in seconds."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from copyengine import logs
from copyengine.auth import Credential, TokenProvider
from copyengine.config import load_job
from copyengine.errors import Cause, ConfigError, Unreachable
from copyengine.failures import classify
from copyengine.graph import Health, Transport
from copyengine.graph.transport import Call
from copyengine.network import NetworkConfig, bypassed, job_route, parse_proxy
from copyengine.pacing.policy import RetryPolicy
from copyengine.secrets import Secret
from copyengine.wiring import doctor, run_job, ssl_context
from tests.emu import base_config, running
from tests.jobs import write_job
from tests.proxy import CountingProxy

pytestmark = pytest.mark.anyio
PAIRS = [("adele@contoso.example", "adele@fabrikam.example")]
PASSWORD = "pr0xy-p@ss:w/rd"  # characters a URL would have to escape
PROXY_VARS = ("https_proxy", "http_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the proxy environment it means (this machine's own is not read)."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


# -- which proxy a request takes (pure) ------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "direct"),
    [
        ("graph.microsoft.com", 443, (), False),
        ("graph.microsoft.com", 443, ("*",), True),
        ("graph.microsoft.com", 443, ("microsoft.com",), True),
        ("graph.microsoft.com", 443, (".microsoft.com",), True),
        ("graph.microsoft.com", 443, ("*.microsoft.com",), True),
        ("notmicrosoft.com", 443, ("microsoft.com",), False),
        ("graph.microsoft.com", 443, ("graph.microsoft.com:8443",), False),
        ("graph.microsoft.com", 443, ("graph.microsoft.com:443",), True),
        ("127.0.0.1", 8443, ("localhost", "127.0.0.1"), True),
        ("10.1.2.3", 443, ("10.0.0.0/8",), True),
        ("10.1.2.3", 443, ("10.1.2.4",), False),
        ("::1", 443, ("[::1]",), True),
        ("::1", 443, ("[::1]:8443",), False),
    ],
)
def test_no_proxy_names_hosts_domains_networks_and_ports(
    host: str, port: int, no_proxy: tuple[str, ...], direct: bool
) -> None:
    assert bypassed(host, port, no_proxy) is direct


ENV = {
    "HTTPS_PROXY": "http://alice:env%20pw@proxy.corp:3128",
    "HTTP_PROXY": "http://plain.corp:8080",
    "NO_PROXY": "localhost,127.0.0.1,.corp.local",
}


@pytest.mark.parametrize(
    ("network", "environ", "url", "via"),
    [
        (NetworkConfig(), {}, ("https", "graph.microsoft.com", 443), None),
        (NetworkConfig(), ENV, ("https", "graph.microsoft.com", 443), "proxy.corp:3128"),
        (NetworkConfig(), ENV, ("http", "example.com", 80), "plain.corp:8080"),
        (NetworkConfig(), ENV, ("https", "mail.corp.local", 443), None),
        (
            NetworkConfig(),
            {"all_proxy": "proxy.corp:3128"},
            ("https", "a.b", 443),
            "proxy.corp:3128",
        ),
        # lower case is read first, as curl and Python do
        (
            NetworkConfig(),
            {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2"},
            ("https", "a.b", 443),
            "low:1",
        ),
        # the job file wins over the environment, and "direct" ignores it
        (NetworkConfig(proxy="http://mine:3129"), ENV, ("https", "a.b", 443), "mine:3129"),
        (NetworkConfig(proxy="direct"), ENV, ("https", "a.b", 443), None),
        # NO_PROXY still applies to the job file's proxy, unless no_proxy replaces it
        (NetworkConfig(proxy="http://127.0.0.1:3129"), ENV, ("https", "127.0.0.1", 8443), None),
        (
            NetworkConfig(proxy="http://127.0.0.1:3129", no_proxy=()),
            ENV,
            ("https", "127.0.0.1", 8443),
            "127.0.0.1:3129",
        ),
        # a remote proxy's loopback is not ours: the emulator is reached directly
        (NetworkConfig(proxy="http://mine:3129", no_proxy=()), {}, ("http", "127.0.0.1", 80), None),
    ],
)
def test_the_job_file_proxy_wins_over_the_environment(
    network: NetworkConfig, environ: dict[str, str], url: tuple[str, str, int], via: str | None
) -> None:
    proxy = job_route(network, environ).for_url(*url)
    assert (proxy.where if proxy else None) == via


def test_credentials_of_an_environment_proxy_are_taken_and_hidden() -> None:
    proxy = job_route(NetworkConfig(), ENV).https
    assert proxy is not None and proxy.username == "alice"
    assert proxy.password == Secret("env pw")
    assert "env pw" not in repr(proxy) and "env pw" not in str(job_route(NetworkConfig(), ENV))
    assert proxy.url == "http://proxy.corp:3128"
    assert proxy.url_with_credentials() == "http://alice:env%20pw@proxy.corp:3128"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("https://proxy.corp:3128", "https:// proxies are not supported"),
        ("socks5://proxy.corp:1080", "socks5:// proxies are not supported"),
        ("http://proxy.corp", "needs a host and a port"),
        ("http://proxy.corp:3128/path", "no path"),
        ("http://bob:hunter2@proxy.corp:3128", "proxy_password"),
    ],
)
def test_a_bad_proxy_url_is_a_configuration_error(value: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_proxy(value, "network.proxy", from_config=True)
    assert says in str(err.value) and str(err.value).startswith("network.proxy:")
    assert "hunter2" not in str(err.value)


def test_the_network_table_is_read_and_checked(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("PROXY_PW", PASSWORD)
    job = _job_file(tmp_path, "https://127.0.0.1:1/beta", "https://127.0.0.1:1")
    _append(
        job, '[network]\nproxy = "http://svc@127.0.0.1:3128"\nproxy_password = "env:PROXY_PW"\n'
    )
    cfg = load_job(job)
    assert cfg.network.proxy_password == Secret(PASSWORD)
    assert PASSWORD not in repr(cfg)
    _append(job, 'no_proxy = ["", "x"]\n')
    with pytest.raises(ConfigError, match=r"network.no_proxy\[0\]"):
        load_job(job)
    job = _job_file(tmp_path, "https://127.0.0.1:1/beta", "https://127.0.0.1:1")
    _append(job, '[network]\nproxy = "direct"\nproxy_password = "env:PROXY_PW"\n')
    with pytest.raises(ConfigError, match=r"network\.proxy_password"):
        load_job(job)


# -- every request through the proxy, counted ------------------------------------------------
async def test_every_request_of_a_job_goes_through_the_job_files_proxy(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Plain-HTTP Graph (the emulator without TLS): each Graph call and import upload is an
    absolute-form request the proxy sees and counts; the token requests (the identity platform
    speaks https only) are CONNECT tunnels. The site's NO_PROXY names 127.0.0.1 and a dead
    HTTPS_PROXY is set: the job file's [network] wins over both."""
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    async with running(base_config(tls=False)) as (server, ep, _), CountingProxy() as proxy:
        job = write_job(tmp_path, ep, PAIRS)
        text = job.read_text().replace(f'"{ep.origin}"', f'"{ep.authority_host}"')
        job.write_text(text + f'\n[network]\nproxy = "{proxy.url}"\nno_proxy = []\n')
        stats = await run_job(load_job(job))
        assert stats.exit_code() == 0, stats.fatal
        graph_host = ep.origin.removeprefix("http://")
        identity_host = ep.authority_host.removeprefix("https://")
        imports = [r for r in proxy.requests if "/importItem" in r[2]]
        graph = [r for r in proxy.requests if r[1] == graph_host and "/importItem" not in r[2]]
        served = server.emulator.stats.requests
        assert len(imports) == served_count(served, "importItem") > 0
        # every request the emulator served came through the proxy: none went direct
        assert len(proxy.requests) == sum(served.values())
        assert len(graph) > 0 and proxy.requests[0][1] == graph_host
        assert proxy.tunnels[identity_host] >= 2  # one token request per tenant at least


def served_count(requests: dict[tuple[str, int], int], call: str) -> int:
    return sum(n for (c, _), n in requests.items() if c == call)


async def test_https_requests_are_tunnelled_through_the_environments_proxy(
    emu: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """Graph over TLS: the proxy sees CONNECT tunnels to the emulator (tokens, Graph calls
    and import uploads share its host), and the copy is complete."""
    async with CountingProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        stats = await run_job(load_job(write_job(tmp_path, emu.ep, PAIRS)))
        assert stats.exit_code() == 0, stats.fatal
        host = emu.ep.origin.removeprefix("https://")
        assert proxy.tunnels[host] >= 2 and set(proxy.tunnels) == {host}
        assert stats.pairs[f"{PAIRS[0][0]}->{PAIRS[0][1]}"].total("copied") > 0


async def test_a_proxy_password_is_sent_and_never_shown(
    emu: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    buf = io.StringIO()
    logs.configure(fmt="json", level="debug", stream=buf)
    async with CountingProxy(credentials=("svc", PASSWORD)) as proxy:
        monkeypatch.setenv("PROXY_PW", PASSWORD)
        job = write_job(tmp_path, emu.ep, PAIRS)
        _append(
            job,
            f'[network]\nproxy = "http://svc@127.0.0.1:{proxy.port}"\nno_proxy = []\n'
            'proxy_password = "env:PROXY_PW"\n',
        )
        good = await run_job(load_job(job))
        assert good.exit_code() == 0 and proxy.refused == 0 and sum(proxy.tunnels.values()) >= 2
        monkeypatch.setenv("PROXY_PW", PASSWORD + "-wrong")
        t0 = time.monotonic()
        bad = await run_job(load_job(job))
        assert time.monotonic() - t0 < 10
        assert proxy.refused > 0
        pair = next(iter(bad.pairs.values()))
        assert pair.error_code == "ServiceUnreachable"
        assert pair.error is not None and "407" in pair.error
        assert f"127.0.0.1:{proxy.port}" in pair.error
    seen = [
        buf.getvalue(),
        *(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()),
        str(bad.fatal),
        repr(load_job(job)),
        repr(job_route(load_job(job).network, {})),
    ]
    for text in seen:
        assert PASSWORD not in text and PASSWORD + "-wrong" not in text


async def test_doctor_names_the_proxy_and_the_tenants_cloud(
    emu: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    async with CountingProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        result = await doctor(load_job(write_job(tmp_path, emu.ep, PAIRS)))
        assert result["ok"], result
        assert result["network"] == f"https through 127.0.0.1:{proxy.port} (HTTPS_PROXY)"
        assert sum(proxy.tunnels.values()) >= 2  # the probes went through it too
    source = result["tenants"]["source"]
    assert source["scope"] == "https://graph.microsoft.com/.default"
    assert source["cloud"].startswith("not a Microsoft Graph host (the emulator")
    assert source["contract"] == ""


# -- a service that cannot be reached --------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _call(
    url: str, ctx: ssl.SSLContext | bool = True, **kw: Any
) -> tuple[Unreachable, float, Transport]:
    conn = aiohttp.TCPConnector(ssl=ctx)
    async with aiohttp.ClientSession(connector=conn) as http:
        transport = Transport(http, None, **kw)
        t0 = time.monotonic()
        with pytest.raises(Unreachable) as err:
            await transport.request(Call("listFolders", "GET", url, None))
        return err.value, time.monotonic() - t0, transport


async def test_a_refused_port_is_named_with_its_host_in_seconds() -> None:
    port = _closed_port()
    err, took, transport = await _call(f"https://127.0.0.1:{port}/beta/users")
    assert err.kind == "refused" and err.host == f"127.0.0.1:{port}"
    assert f"cannot connect to 127.0.0.1:{port}: the connection was refused" in err.message
    assert took < 5 and transport.requests == 3  # two quick retries, then the operator hears
    verdict = classify(err)
    assert verdict.error_type == "ServiceUnreachable"
    assert f"127.0.0.1:{port}" in verdict.message and "nothing listens there" in verdict.message


async def test_a_name_that_does_not_resolve_is_named_in_seconds() -> None:
    err, took, _ = await _call("https://graph.contoso.invalid/beta/users")
    assert err.kind == "dns" and err.host == "graph.contoso.invalid:443"
    assert "graph.contoso.invalid:443: the name does not resolve (DNS" in err.message
    assert took < 5


async def test_a_host_that_answered_before_is_retried_by_the_server_budget() -> None:
    """A drop mid-run (the host answered earlier) keeps the retry policy of a server failure:
    eight retries with backoff (the waits are recorded here, not slept)."""
    port = _closed_port()
    health = Health()
    health.reached.add(f"127.0.0.1:{port}")
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    err, _, transport = await _call(
        f"https://127.0.0.1:{port}/beta/users", health=health, sleep=sleep, retry=RetryPolicy()
    )
    assert err.cause is Cause.SERVER and transport.requests == 9 and len(waits) == 8
    assert "run again when it answers" in classify(err).message


def _server_context(problem: str, ca: trustme.CA, tmp: Path) -> ssl.SSLContext:
    """A server context whose certificate has ``problem`` for a client trusting ``ca``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if problem == "self-signed":  # a CA's own certificate, a CA the client does not trust
        other = trustme.CA()
        pem = tmp / "self-signed.pem"
        pem.write_bytes(other.private_key_pem.bytes() + other.cert_pem.bytes())
        ctx.load_cert_chain(str(pem))
    elif problem == "untrusted issuer":
        trustme.CA().issue_cert("127.0.0.1").configure_cert(ctx)
    elif problem == "expired":
        past = datetime.now(UTC) - timedelta(days=2)
        leaf = ca.issue_cert("127.0.0.1", not_before=past - timedelta(days=30), not_after=past)
        leaf.configure_cert(ctx)
    else:  # hostname mismatch
        ca.issue_cert("graph.other.example").configure_cert(ctx)
    return ctx


@asynccontextmanager
async def _tls_server(ctx: ssl.SSLContext) -> AsyncIterator[int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ctx)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


@pytest.mark.parametrize(
    ("problem", "says"),
    [
        ("self-signed", "self-signed certificate"),
        ("untrusted issuer", "unable to get local issuer certificate"),
        ("expired", "certificate has expired"),
        ("hostname mismatch", "the certificate is for another name"),
    ],
)
async def test_an_untrusted_certificate_is_named_with_its_problem(
    problem: str, says: str, tmp_path: Path
) -> None:
    ca = trustme.CA()
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with _tls_server(_server_context(problem, ca, tmp_path)) as port:
        err, took, _ = await _call(f"https://127.0.0.1:{port}/beta/users", client)
    assert err.kind == "tls" and err.host == f"127.0.0.1:{port}"
    assert f"cannot connect to 127.0.0.1:{port}: TLS: " in err.message and says in err.message
    assert err.cause is Cause.UNREACHABLE and took < 5
    assert "ca_bundle" in classify(err).message


async def test_an_unreachable_identity_platform_is_named_with_its_host() -> None:
    port = _closed_port()
    for authority, host, kind in (
        (f"https://127.0.0.1:{port}", f"127.0.0.1:{port}", "refused"),
        ("https://login.contoso.invalid", "login.contoso.invalid:443", "dns"),
    ):
        tokens = TokenProvider(
            tenant="contoso.example",
            client_id="app",
            credential=Credential(secret=Secret("s", "env:S")),
            authority_host=authority,
        )
        conn = aiohttp.TCPConnector()
        async with aiohttp.ClientSession(connector=conn) as http:
            transport = Transport(http, tokens)
            t0 = time.monotonic()
            with pytest.raises(Unreachable) as err:
                await transport.request(Call("listFolders", "GET", "https://127.0.0.1:1/x", None))
        assert time.monotonic() - t0 < 5
        assert err.value.kind == kind and err.value.host == host
        assert f"identity platform for tenant contoso.example at {host}" in err.value.message


async def test_a_job_on_a_refused_graph_url_fails_in_seconds_naming_it(
    emu: Any, tmp_path: Path
) -> None:
    port = _closed_port()
    job = write_job(tmp_path, emu.ep, PAIRS)
    job.write_text(job.read_text().replace(emu.ep.graph_url, f"https://127.0.0.1:{port}/beta"))
    t0 = time.monotonic()
    stats = await run_job(load_job(job))
    assert time.monotonic() - t0 < 10
    pair = next(iter(stats.pairs.values()))
    assert pair.error_code == "ServiceUnreachable" and pair.error is not None
    assert f"127.0.0.1:{port}: the connection was refused" in pair.error


# -- helpers ---------------------------------------------------------------------------------
def _append(job: Path, text: str) -> None:
    job.write_text(job.read_text() + "\n" + text)


def _job_file(tmp: Path, graph_url: str, authority: str) -> Path:
    (tmp / "s.secret").write_text("x")
    job = tmp / "job.toml"
    job.write_text(
        "[tenants.source]\n"
        f'graph_url = "{graph_url}"\nauthority = "{authority}"\n'
        'tenant_id = "contoso.example"\nclient_id = "a"\nclient_secret = "file:s.secret"\n'
        "[tenants.target]\n"
        f'graph_url = "{graph_url}"\nauthority = "{authority}"\n'
        'tenant_id = "fabrikam.example"\nclient_id = "b"\nclient_secret = "file:s.secret"\n'
        '[[pairs]]\nsource = "a@contoso.example"\ntarget = "a@fabrikam.example"\n'
    )
    return job


# -- TLS verification is never switched off ----------------------------------------------------
_INSECURE_ENV = {
    "PYTHONHTTPSVERIFY": "0",  # the interpreter's own switch for urllib's default context
    "CURL_CA_BUNDLE": "",  # requests reads an empty bundle as "no verify" in some versions
    "REQUESTS_CA_BUNDLE": "",
    "AIOHTTP_NO_EXTENSIONS": "1",
}


async def test_tls_verification_is_never_switched_off(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tenant whose ca_bundle is another CA's (the emulator's certificate is then
    untrusted), in an environment that asks for verification off: the token request and every
    Graph call fail on the certificate: no token, nothing copied, doctor says TLS."""
    for name, value in _INSECURE_ENV.items():
        monkeypatch.setenv(name, value)
    other = tmp_path / "other-ca.pem"
    other.write_bytes(trustme.CA().cert_pem.bytes())
    job = write_job(tmp_path, emu.ep, PAIRS)
    job.write_text(job.read_text().replace(str(emu.ep.ca_cert), str(other)))
    cfg = load_job(job)
    ctx = ssl_context(cfg)
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    stats = await run_job(cfg)
    pair = next(iter(stats.pairs.values()))
    assert pair.error_code == "ServiceUnreachable" and pair.error is not None, pair.error
    assert "identity platform" in pair.error and ": TLS: " in pair.error, pair.error
    assert stats.exit_code() != 0 and pair.status == "failed"
    err, _, _ = await _call(f"{emu.ep.graph_url}/users", ctx)  # Graph itself, the job's context
    assert err.kind == "tls", err.message
    checked = await doctor(cfg)
    assert checked["exit_code"] != 0
    assert not any(t.get("token") for t in checked["tenants"].values()), checked
    assert "TLS" in json.dumps(checked)


@pytest.mark.parametrize("key", ["verify = false", "insecure = true", "tls_verify = false"])
def test_no_job_file_key_turns_tls_verification_off(tmp_path: Path, key: str) -> None:
    job = _job_file(tmp_path, "https://graph.example/beta", "https://login.example")
    job.write_text(job.read_text().replace("[tenants.target]\n", f"{key}\n[tenants.target]\n"))
    with pytest.raises(ConfigError) as err:
        load_job(job)
    assert key.split(" ")[0] in str(err.value)
