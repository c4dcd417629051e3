"""Real msal against the emulator's identity endpoints: secret, certificate, expiry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msal
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from copyengine.tlshttp import PinnedVerifySession
from tests.emu import SRC_APP, SRC_SECRET, base_config, running

pytestmark = pytest.mark.anyio
SCOPE = ["https://graph.microsoft.com/.default"]


def _app(ep: Any, tenant: str, credential: Any, discovery: Any = False) -> Any:
    # msal's constructor already talks to the authority (discovery): it must run off the loop
    # that serves the emulator, like every msal call.
    return lambda: msal.ConfidentialClientApplication(
        SRC_APP,
        client_credential=credential,
        authority=ep.authority(tenant),
        http_client=PinnedVerifySession(ep.ca_cert),
        instance_discovery=discovery,
    )


async def _token(make: Any) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        return make().acquire_token_for_client(scopes=SCOPE)  # type: ignore[no-any-return]

    return await anyio.to_thread.run_sync(run)


async def _graph_status(emu: Any, token: str) -> int:
    emu.src.token = token
    r = await emu.src.get("/users/adele@contoso.example/settings/exchange")
    return int(r.status)


async def test_msal_client_secret(emu: Any) -> None:
    result = await _token(_app(emu.ep, "contoso.example", SRC_SECRET))
    assert "access_token" in result, result
    assert await _graph_status(emu, result["access_token"]) == 200


async def test_msal_with_instance_discovery_endpoint(emu: Any) -> None:
    url = f"{emu.ep.origin}/common/discovery/instance"
    result = await _token(_app(emu.ep, emu.state.tokens.tenant("contoso").id, SRC_SECRET, url))
    assert "access_token" in result, result


async def test_msal_wrong_secret_is_invalid_client(emu: Any) -> None:
    result = await _token(_app(emu.ep, "contoso", "not-the-secret"))
    assert result.get("error") == "invalid_client"
    assert "AADSTS7000215" in result["error_description"]


def _cert_files(emu: Any) -> tuple[str, str]:
    app = emu.state.tokens.tenant("contoso").apps[SRC_APP]
    return Path(app.key_path).read_text(), Path(app.cert_path).read_text()


async def test_msal_certificate_sha1_thumbprint(emu: Any) -> None:
    key, cert = _cert_files(emu)
    thumb = x509.load_pem_x509_certificate(cert.encode()).fingerprint(hashes.SHA1()).hex()
    result = await _token(_app(emu.ep, "contoso", {"private_key": key, "thumbprint": thumb}))
    assert "access_token" in result, result
    assert await _graph_status(emu, result["access_token"]) == 200


async def test_msal_certificate_public_certificate_sha256(emu: Any) -> None:
    key, cert = _cert_files(emu)
    result = await _token(_app(emu.ep, "contoso", {"private_key": key, "public_certificate": cert}))
    assert "access_token" in result, result


async def test_msal_unregistered_certificate_is_refused(emu: Any, tmp_path: Path) -> None:
    from copyengine.emulator.identity import generate_app_certificate

    key_path, cert_path, _ = generate_app_certificate("other", tmp_path)
    cred = {"private_key": key_path.read_text(), "public_certificate": cert_path.read_text()}
    result = await _token(_app(emu.ep, "contoso", cred))
    assert result.get("error") == "invalid_client"


async def test_expired_token_is_refused() -> None:
    async with running(base_config(token_lifetime=0)) as (_server, ep, session):
        from tests.emu import Api

        api = Api(ep, session, "contoso", SRC_APP, SRC_SECRET)
        await api.login()
        r = await api.get("/users/adele@contoso.example/settings/exchange")
        assert r.status == 401
        assert r.body["error"]["code"] == "InvalidAuthenticationToken"


async def test_token_request_errors(emu: Any) -> None:
    url = f"{emu.ep.origin}/contoso/oauth2/v2.0/token"
    for form, error in (
        ({"grant_type": "password"}, "unsupported_grant_type"),
        (
            {
                "grant_type": "client_credentials",
                "client_id": SRC_APP,
                "client_secret": "x",
                "scope": "User.Read",
            },
            "invalid_scope",
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "nope",
                "client_secret": "x",
                "scope": SCOPE[0],
            },
            "unauthorized_client",
        ),
    ):
        async with emu.session.post(url, data=form) as r:
            assert (await r.json())["error"] == error
    async with emu.session.post(f"{emu.ep.origin}/nope/oauth2/v2.0/token", data={}) as r:
        assert r.status == 400 and (await r.json())["error"] == "invalid_tenant"
