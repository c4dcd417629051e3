"""A full client run with a certificate, a secret and import URLs leaves no secret in logs,
exception texts or reprs."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from copyengine import logs
from copyengine.auth import Credential, TokenProvider
from copyengine.errors import OutcomeUnknown
from copyengine.graph import ImportSessionPool
from copyengine.pacing import Pacers
from copyengine.secrets import Secret, redact
from copyengine.wiring import graph_client
from tests.emu import DST_APP, DST_SECRET, SRC_APP, client_ssl

pytestmark = pytest.mark.anyio


async def test_no_secret_in_any_log_line(emu: Any, caplog: pytest.LogCaptureFixture) -> None:
    buf = io.StringIO()
    logs.configure(fmt="json", level="debug", stream=buf)
    caplog.set_level(logging.DEBUG)
    app = emu.state.tokens.tenant("contoso").apps[SRC_APP]
    key_pem = Path(app.key_path).read_text()
    cert_pem = Path(app.cert_path).read_text()
    src_tokens = TokenProvider(
        tenant="contoso",
        client_id=SRC_APP,
        authority_host=emu.ep.origin,
        ca_bundle=emu.ep.ca_cert,
        credential=Credential(private_key=Secret(key_pem, "file:key.pem"), certificate=cert_pem),
    )
    dst_tokens = TokenProvider(
        tenant="fabrikam",
        client_id=DST_APP,
        authority_host=emu.ep.origin,
        ca_bundle=emu.ep.ca_cert,
        credential=Credential(secret=Secret(DST_SECRET, "env:X")),
    )
    errors: list[str] = []
    conn = aiohttp.TCPConnector(ssl=client_ssl(emu.ep))
    async with aiohttp.ClientSession(connector=conn) as http:
        pacers = Pacers()
        src = graph_client(emu.ep.graph_url, src_tokens, http, pacers)
        dst = graph_client(emu.ep.graph_url, dst_tokens, http, pacers)
        s = (await src.resolve_mailbox("adele@contoso.example")).primary_id
        d = (await dst.resolve_mailbox("adele@fabrikam.example")).primary_id
        await emu.src.control(
            "PUT",
            "/faults",
            {
                "rules": [
                    {"kind": "session_expire", "count": 1, "after": 2},
                    {"kind": "token_revoke", "calls": ["exportItems"], "count": 1},
                    {"kind": "drop_after", "calls": ["importItem"], "count": 1, "after": 6},
                ]
            },
        )
        pool = ImportSessionPool(dst, d)
        ids = list(emu.state.require_mailbox("adele@contoso.example").items)[:10]
        for e in await src.export_items(s, ids):
            assert e.data is not None
            try:
                await pool.import_item("inbox", e.data)
            except OutcomeUnknown as exc:
                errors.append(str(exc))
                errors.append(repr(exc))
        session = await pool.get()
        secrets_seen = {
            "client secret": DST_SECRET,
            "private key": key_pem.splitlines()[1],
            "src access token": await src_tokens.token(),
            "dst access token": await dst_tokens.token(),
            "authtoken": session.url.split("authtoken=")[1],
        }
        texts = {
            "structlog": buf.getvalue(),
            "stdlib logs": caplog.text,
            "errors": "\n".join(errors),
            "reprs": repr(src_tokens)
            + repr(dst_tokens)
            + repr(session)
            + repr(src_tokens._credential)
            + repr(Secret(DST_SECRET, "env:X")),
        }
    assert errors, "the drop_after fault should have produced an OutcomeUnknown"
    assert "import_session.renewing" in texts["structlog"]
    for where, text in texts.items():
        for what, value in secrets_seen.items():
            assert value not in text, f"{what} leaked into {where}"
    logs.configure(fmt="json", level="warning", stream=io.StringIO())


def test_redact_removes_tokens() -> None:
    url = "https://h/api/gbeta/Mailboxes('MBX:a@b')/importItem?authtoken=eyJ0eXAi.abc-_def"
    assert "eyJ0" not in redact(f"failed POST {url}")
    assert "s3cr3t" not in redact("Authorization: Bearer s3cr3t.tok")
    assert "xyz" not in redact("client_secret=xyz&scope=a")
