"""The Graph client against the emulator: every call, its errors, renewals, per-item failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from copyengine.errors import (
    AuthFailed,
    DeltaExpired,
    MailboxNotFound,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    Transient,
)
from copyengine.graph import ImportSessionPool, Item, Removed
from copyengine.pacing.policy import Backoff, RetryPolicy
from copyengine.timefmt import parse_graph_datetime
from copyengine.wiring import graph_client
from tests.clients import Clients, clients, provider
from tests.emu import RO_APP, RO_SECRET, base_config, running

pytestmark = pytest.mark.anyio

ADELE = "adele@contoso.example"
T_ADELE = "adele@fabrikam.example"
FAST = RetryPolicy(backoff=Backoff(base=0.01, cap=0.05))


@pytest.fixture
async def cl(emu: Any) -> AsyncIterator[Clients]:
    async with clients(emu.ep) as c:
        c.src.transport.retry = FAST
        c.dst.transport.retry = FAST
        yield c


async def _faults(emu: Any, *rules: dict[str, Any]) -> None:
    r = await emu.src.control("PUT", "/faults", {"rules": list(rules)})
    assert r.status == 200, r.body


async def test_resolve_walk_and_get(emu: Any, cl: Clients) -> None:
    ref = await cl.src.resolve_mailbox(ADELE)
    assert ref.primary_id == emu.state.mailbox(ADELE).id
    tree = await cl.src.walk_folders(ref.primary_id)
    paths = {n.path for n in tree}
    assert "/Inbox/Projects/2024/Q3 — Ausschreibung" in paths and "/Calendar/Team Calendar" in paths
    by_path = {n.path: n for n in tree}
    assert by_path["/Inbox/Projects"].depth == 2
    inbox = await cl.src.get_folder(ref.primary_id, "inbox")
    assert inbox.well_known == "inbox" and inbox.id == by_path["/Inbox"].folder.id
    with pytest.raises(MailboxNotFound):
        await cl.src.resolve_mailbox("ghost@contoso.example")
    with pytest.raises(NotFound):
        await cl.src.get_folder(ref.primary_id, "AAMk/not+there==")


async def test_create_rename_delete_folder_and_409_reuse(cl: Clients) -> None:
    m = (await cl.dst.resolve_mailbox(T_ADELE)).primary_id
    a = await cl.dst.create_folder(m, None, "Migrated ✓")
    b = await cl.dst.create_folder(m, None, "migrated ✓")  # exists: reused
    assert a.id == b.id
    child = await cl.dst.create_folder(m, a.id, "Kalender", "IPF.Appointment")
    assert child.parent_id == a.id and child.type == "IPF.Appointment"
    renamed = await cl.dst.rename_folder(m, a.id, "Renamed")
    assert renamed.name == "Renamed"
    await cl.dst.delete_folder(m, a.id)
    with pytest.raises(NotFound):
        await cl.dst.get_folder(m, a.id)


async def test_list_items_with_keys_filter_and_get(emu: Any, cl: Clients) -> None:
    m = (await cl.src.resolve_mailbox(ADELE)).primary_id
    box = emu.state.mailbox(ADELE)
    inbox = box.well_known["inbox"]
    got: list[Item] = []
    async for page in cl.src.list_items(m, inbox.id, with_keys=True, page_size=7):
        got.extend(page)
    assert len(got) == inbox.live
    for it in got:
        assert it.search_key == box.items[it.id].content.search_key
        assert it.message_id == box.items[it.id].content.message_id
    cut = sorted(parse_graph_datetime(i.created) for i in got)[len(got) // 2]
    newer: list[Item] = []
    async for page in cl.src.list_items(m, inbox.id, created_from=cut):
        newer.extend(page)
    assert newer and all(parse_graph_datetime(i.created) >= cut for i in newer)
    assert len(newer) < len(got)
    one = await cl.src.get_item(m, inbox.id, got[0].id, with_keys=True)
    assert one.search_key == got[0].search_key


async def test_delta_rounds_and_410(emu: Any, cl: Clients) -> None:
    m = (await cl.src.resolve_mailbox(ADELE)).primary_id
    inbox = emu.state.mailbox(ADELE).well_known["inbox"]
    ids: list[str] = []
    link = None
    async for page in cl.src.item_delta(m, inbox.id, page_size=5):
        ids += [i.id for i in page.items]
        link = page.delta_link or link
    assert link and sorted(ids) == sorted(i.id for i in inbox.live_items())
    await cl.src.delete_item(m, inbox.id, ids[0])
    changes: list[Any] = []
    async for page in cl.src.item_delta(m, inbox.id, link):
        changes += page.items
    assert changes == [Removed(ids[0], "deleted")]
    with pytest.raises(DeltaExpired):
        async for _ in cl.src.item_delta(
            m, inbox.id, link.split("$deltatoken=")[0] + "$deltatoken=nope"
        ):
            pass
    folders: list[Any] = []
    async for page in cl.src.folder_delta(m):
        folders += page.items
    assert {f.name for f in folders} >= {"Inbox", "Projects"}


async def test_export_matches_results_by_id_with_per_item_errors(emu: Any, cl: Clients) -> None:
    m = (await cl.src.resolve_mailbox(ADELE)).primary_id
    ids = [i.id for i in list(emu.state.require_mailbox(ADELE).items.values())[:10]]
    await _faults(emu, {"kind": "export_item_error", "count": 1})
    res = await cl.src.export_items(m, [*ids, "AAMkGone=="])
    assert [r.item_id for r in res] == [*ids, "AAMkGone=="]  # request order, matched by id
    failed = [r for r in res if not r.ok]
    assert len(failed) == 2 and all(r.error_code == "ErrorItemNotFound" for r in failed)
    assert sum(r.ok for r in res) == 9
    with pytest.raises(ValueError, match="1 to 20"):
        await cl.src.export_items(m, ids * 3)


async def test_import_create_update_passes_data_untouched(emu: Any, cl: Clients) -> None:
    src = (await cl.src.resolve_mailbox(ADELE)).primary_id
    dst = (await cl.dst.resolve_mailbox(T_ADELE)).primary_id
    item = next(iter(emu.state.require_mailbox(ADELE).items.values()))
    (exp,) = await cl.src.export_items(src, [item.id])
    assert exp.data is not None
    pool = ImportSessionPool(cl.dst, dst)
    made = await pool.import_item("inbox", exp.data)
    target = emu.state.require_mailbox(T_ADELE).items[made.item_id]
    assert target.content == item.content
    upd = await pool.import_item(
        "inbox", exp.data, item_id=made.item_id, change_key=made.change_key
    )
    assert upd.item_id == made.item_id and upd.change_key != made.change_key


async def test_large_import_body_is_streamed_byte_exact(emu: Any, cl: Clients) -> None:
    """A body above the join limit (and above one 1 MiB slice) is streamed in slices, not
    joined: the target's copy is byte-exact."""
    import dataclasses

    from copyengine.graph.transport import CHUNK, JOIN_MAX

    mbx = emu.state.require_mailbox(ADELE)
    first = next(iter(mbx.items.values()))
    big = mbx.add_item(first.folder, dataclasses.replace(first.content, size=3 * CHUNK))
    src = (await cl.src.resolve_mailbox(ADELE)).primary_id
    dst = (await cl.dst.resolve_mailbox(T_ADELE)).primary_id
    (exp,) = await cl.src.export_items(src, [big.id])
    assert exp.data is not None and len(memoryview(exp.data)) > max(JOIN_MAX, 2 * CHUNK)
    made = await ImportSessionPool(cl.dst, dst).import_item("inbox", exp.data)
    assert emu.state.require_mailbox(T_ADELE).items[made.item_id].content == big.content


@pytest.mark.parametrize("frozen", [False, True], ids=["renewed-ahead", "stale-clock-401"])
async def test_token_expiring_mid_run_is_renewed_without_failed_item(frozen: bool) -> None:
    # With a frozen clock the client believes its token never expires, so the service answers
    # 401 and the client must renew and retry; otherwise it renews ahead of expiry (with a
    # small margin: the server's clock starts a token's life before the client receives it).
    # Lifetimes long enough that a loaded machine's latency stays well inside the margin.
    clock = (lambda: 0.0) if frozen else time.time
    async with (
        running(base_config(token_lifetime=2)) as (server, ep, _),
        clients(ep, refresh_margin=0.0 if frozen else 1.0, clock=clock) as c,
    ):
        src = (await c.src.resolve_mailbox(ADELE)).primary_id
        dst = (await c.dst.resolve_mailbox(T_ADELE)).primary_id
        pool = ImportSessionPool(c.dst, dst)
        ids = list(server.emulator.require_mailbox(ADELE).items)[:30]
        with anyio.fail_after(30):
            for k in range(0, 30, 3):
                for e in await c.src.export_items(src, ids[k : k + 3]):
                    assert e.data is not None
                    await pool.import_item("inbox", e.data)
                await anyio.sleep(0.5)
        assert len(server.emulator.require_mailbox(T_ADELE).items) == 30
        assert c.src.tokens.renewals >= 2
        unauthorized = sum(n for (_, st), n in server.emulator.stats.requests.items() if st == 401)
        assert (unauthorized >= 1) if frozen else (unauthorized == 0)


async def test_revoked_token_is_renewed(emu: Any, cl: Clients) -> None:
    m = (await cl.src.resolve_mailbox(ADELE)).primary_id
    await _faults(emu, {"kind": "token_revoke", "calls": ["getFolder"], "count": 1})
    before = cl.src.tokens.renewals
    assert (await cl.src.get_folder(m, "inbox")).well_known == "inbox"
    assert cl.src.tokens.renewals == before + 1


async def test_import_session_expiring_early_loses_no_item(emu: Any, cl: Clients) -> None:
    src = (await cl.src.resolve_mailbox(ADELE)).primary_id
    dst = (await cl.dst.resolve_mailbox(T_ADELE)).primary_id
    ids = list(emu.state.require_mailbox(ADELE).items)[:40]
    # Sessions die early at scripted points, never twice in a row (the pool renews once and
    # retries once; a second refusal in a row is the pipeline's to retry later).
    await _faults(
        emu,
        {"kind": "session_expire", "count": 1, "status": 401, "after": 3},
        {"kind": "session_expire", "count": 1, "status": 403, "after": 12},
        {"kind": "session_expire", "count": 1, "status": 404, "after": 24},
        {"kind": "session_expire", "count": 1, "status": 401, "after": 33},
    )
    pool = ImportSessionPool(cl.dst, dst)
    for k in range(0, 40, 20):
        for e in await cl.src.export_items(src, ids[k : k + 20]):
            assert e.data is not None
            await pool.import_item("inbox", e.data)
    assert len(emu.state.require_mailbox(T_ADELE).items) == 40
    assert pool.renewals >= 4


async def test_import_session_renewed_before_expiry(emu: Any, cl: Clients) -> None:
    dst = (await cl.dst.resolve_mailbox(T_ADELE)).primary_id
    now = [1000.0]
    pool = ImportSessionPool(cl.dst, dst, margin=60, clock=lambda: now[0])
    s1 = await pool.get()
    now[0] = s1.expires - 61
    assert await pool.get() is s1
    now[0] = s1.expires - 59
    s2 = await pool.get()
    assert s2 is not s1 and pool.renewals == 2
    assert "authtoken" not in repr(s2)


async def test_lost_import_response_is_outcome_unknown_not_resent(emu: Any, cl: Clients) -> None:
    src = (await cl.src.resolve_mailbox(ADELE)).primary_id
    dst = (await cl.dst.resolve_mailbox(T_ADELE)).primary_id
    item = next(iter(emu.state.require_mailbox(ADELE).items.values()))
    (exp,) = await cl.src.export_items(src, [item.id])
    assert exp.data is not None
    await _faults(emu, {"kind": "drop_after", "calls": ["importItem"], "count": 1})
    pool = ImportSessionPool(cl.dst, dst)
    with pytest.raises(OutcomeUnknown):
        await pool.import_item("inbox", exp.data)
    assert len(emu.state.require_mailbox(T_ADELE).items) == 1  # committed once, never resent


async def test_503_504_and_drops_are_retried_for_idempotent_calls(emu: Any, cl: Clients) -> None:
    m = (await cl.src.resolve_mailbox(ADELE)).primary_id
    await _faults(
        emu,
        {"kind": "http_503", "calls": ["getFolder"], "count": 2, "retry_after": 0.05},
        {"kind": "http_504", "calls": ["getFolder"], "count": 1, "after": 2},
        {"kind": "drop_before", "calls": ["listFolders"], "count": 2},
        {"kind": "drop_after", "calls": ["exportItems"], "count": 1},
    )
    assert (await cl.src.get_folder(m, "inbox")).well_known == "inbox"
    assert len(await cl.src.list_folders(m)) == 12
    ids = list(emu.state.require_mailbox(ADELE).items)[:3]
    assert all(r.ok for r in await cl.src.export_items(m, ids))
    stats = emu.state.stats.requests
    assert stats[("getFolder", 503)] == 2 and stats[("getFolder", 504)] == 1


async def test_persistent_503_gives_up_with_transient(emu: Any, cl: Clients) -> None:
    m = (await cl.src.resolve_mailbox(ADELE)).primary_id
    await _faults(emu, {"kind": "http_503", "calls": ["getFolder"]})
    with pytest.raises(Transient) as exc:
        await cl.src.get_folder(m, "inbox")
    assert exc.value.status == 503 and exc.value.request_id


async def test_missing_permission_is_fatal_permission_denied(emu: Any, cl: Clients) -> None:
    ro = graph_client(
        emu.ep.graph_url, provider(emu.ep, "contoso", RO_APP, RO_SECRET), cl.http, cl.pacers
    )
    m = (await ro.resolve_mailbox(ADELE)).primary_id
    with pytest.raises(PermissionDenied) as exc:
        await ro.export_items(m, ["x"])
    assert "permission" in str(exc.value)


async def test_wrong_secret_is_auth_failed(emu: Any, cl: Clients) -> None:
    bad = graph_client(
        emu.ep.graph_url, provider(emu.ep, "contoso", RO_APP, "wrong"), cl.http, cl.pacers
    )
    with pytest.raises(AuthFailed) as exc:
        await bad.resolve_mailbox(ADELE)
    assert "invalid_client" in str(exc.value) and "wrong" not in str(exc.value)


def test_graph_time_parsing() -> None:
    dt = parse_graph_datetime("2024-10-17T19:00:48.1052906Z")
    assert dt == datetime(2024, 10, 17, 19, 0, 48, 105290, tzinfo=UTC)


async def test_pfx_credential_obtains_a_token(emu: Any, tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    from copyengine.auth import Credential, TokenProvider
    from copyengine.secrets import Secret
    from tests.emu import SRC_APP

    app = emu.state.tokens.tenant("contoso").apps[SRC_APP]
    key = serialization.load_pem_private_key(Path(app.key_path).read_bytes(), None)
    cert = x509.load_pem_x509_certificate(Path(app.cert_path).read_bytes())
    pfx = tmp_path / "app.pfx"
    pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"app",
            key,  # type: ignore[arg-type]
            cert,
            None,
            serialization.BestAvailableEncryption(b"pfx-pass"),
        )
    )
    tokens = TokenProvider(
        tenant="contoso",
        client_id=SRC_APP,
        authority_host=emu.ep.origin,
        ca_bundle=emu.ep.ca_cert,
        credential=Credential(pfx_path=pfx, pfx_password=Secret("pfx-pass", "env:P")),
    )
    assert await tokens.token()
    bad = TokenProvider(
        tenant="contoso",
        client_id=SRC_APP,
        authority_host=emu.ep.origin,
        ca_bundle=emu.ep.ca_cert,
        credential=Credential(pfx_path=pfx, pfx_password=Secret("nope", "x")),
    )
    from copyengine.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        await bad.token()
    assert "nope" not in str(exc.value)


# -- a success whose body is no JSON -------------------------------------------------------------
async def test_a_success_whose_body_is_not_json_is_a_service_failure_not_a_bug() -> None:
    """200 with a body cut short (or a proxy's page with a token in it): a read is tried
    again and then fails naming the call, the status and what came, never the body; a write
    is not resent (its outcome is unknown, settled by search key). It was an internal error
    (JSONDecodeError, "run with --debug for the traceback") that failed the pair."""
    import aiohttp
    from aiohttp import web

    from copyengine.failures import classify
    from copyengine.graph import Transport
    from copyengine.graph.transport import Call

    hits: list[str] = []

    async def cut_short(request: web.Request) -> web.Response:
        hits.append(request.method)
        return web.Response(body=b'{"value": [{"authtoken=s3cr3t", ', content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", cut_short)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/beta/users"
    try:
        async with aiohttp.ClientSession() as http:
            transport = Transport(http, None, retry=FAST)
            with pytest.raises(Transient) as read:
                await transport.request(Call("listFolders", "GET", url, None))
            assert len(hits) > 1 and read.value.code == "UnreadableAnswer"
            said = classify(read.value).message
            assert "listFolders: the service answered 200 with a body that is not JSON" in said
            assert "text/html" in said and "s3cr3t" not in said and "internal" not in said
            hits.clear()
            with pytest.raises(OutcomeUnknown) as write:
                await transport.request(
                    Call("importItem", "POST", url, None, body=b"{}", idempotent=False)
                )
            assert hits == ["POST"] and "not JSON" in str(write.value)
    finally:
        await runner.cleanup()


@asynccontextmanager
async def _answering(answers: list[bytes]) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server on 127.0.0.1 that gives each request the next of ``answers`` (raw HTTP, the
    last one over again), then closes the connection: its URL, and the answers given."""
    given: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            given.append(answers[min(len(given), len(answers) - 1)])
            writer.write(given[-1])
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/beta/users", given
    finally:
        server.close()
        await server.wait_closed()


def _answer(body: bytes, length: int | None = None, kind: str = "application/json") -> bytes:
    size = len(body) if length is None else length
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {size}\r\n\r\n"
    return head.encode() + body


WHOLE = b'{"value": []}'


async def test_the_same_cut_short_answer_twice_is_not_retried_further() -> None:
    """A read whose 200 comes cut at the same byte twice in a row (a middlebox cutting every
    answer there), or the same page that is no JSON twice: retrying cannot help, so the call
    fails after its second answer, not after the connection budget's seven (20-22 s of
    backoff a call with the default policy, several calls before a pair failed). A cut
    anywhere else each time is a
    drop on the way: retried as before, and the answer that comes whole is read."""
    import aiohttp

    from copyengine.graph import Transport
    from copyengine.graph.transport import Call

    same_cut = _answer(b'{"value": [{"id": "AAMk', length=400)
    page = _answer(b"<html>the proxy says no</html>", kind="text/html")
    drops = [_answer(WHOLE[:n], length=len(WHOLE)) for n in (3, 7, 1, 9)] + [_answer(WHOLE)]
    async with aiohttp.ClientSession() as http:
        transport = Transport(http, None, retry=FAST)
        for answers, code in (([same_cut], "CutShort"), ([page], "UnreadableAnswer")):
            async with _answering(answers) as (url, given):
                with pytest.raises(Transient) as read:
                    await transport.request(Call("listFolders", "GET", url, None))
            assert len(given) == 2, (code, len(given))
            assert read.value.code == code and "the same answer came twice" in read.value.message
            assert "AAMk" not in read.value.message and "proxy says" not in read.value.message
        async with _answering(drops) as (url, given):
            assert await transport.request(Call("listFolders", "GET", url, None)) == {"value": []}
        assert len(given) == 5
        # the headers and none of the body, every time: where such a cut lands says nothing,
        # so it has the connection budget as before (six retries)
        async with _answering([_answer(b"", length=400)]) as (url, given):
            with pytest.raises(Transient) as read:
                await transport.request(Call("listFolders", "GET", url, None))
        assert len(given) == 7 and read.value.code == "CutShort"
