"""Throttling rules and fault injection of the emulator, over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import anyio
import pytest

from copyengine.emulator.config import EmulatorConfigError, parse_config
from copyengine.emulator.throttle import MB, Limits, Throttle
from tests.emu import q

pytestmark = pytest.mark.anyio

ADELE = "adele@contoso.example"
BIANCA = "bianca@contoso.example"


async def _limits(emu: Any, **kw: Any) -> None:
    r = await emu.src.control("PUT", "/limits", {"profile": "unlimited", **kw})
    assert r.status == 200, r.body


async def _faults(emu: Any, *rules: dict[str, Any]) -> None:
    r = await emu.src.control("PUT", "/faults", {"rules": list(rules)})
    assert r.status == 200, r.body


async def test_fifth_concurrent_call_gets_mailbox_concurrency(emu: Any) -> None:
    await _limits(emu, concurrency=4, latency_base=0.4)
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    results: list[Any] = []

    async def one() -> None:
        results.append(await emu.src.get(m + "/folders"))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one)
    statuses = sorted(r.status for r in results)
    assert statuses == [200, 200, 200, 200, 429]
    throttled = next(r for r in results if r.status == 429)
    assert throttled.body["error"]["message"] == "Application is over its MailboxConcurrency limit."
    assert float(throttled.headers["Retry-After"]) >= 0
    stats = (await emu.src.control("GET", "/stats")).body
    mbx = await emu.src.mailbox_id(ADELE)
    assert stats["max_inflight"][mbx] == 4
    assert stats["throttled"] == {"MailboxConcurrency": 1}


async def test_concurrency_is_per_mailbox(emu: Any) -> None:
    await _limits(emu, concurrency=1, latency_base=0.3)
    a = emu.src.m(await emu.src.mailbox_id(ADELE))
    b = emu.src.m(await emu.src.mailbox_id(BIANCA))
    results: list[int] = []

    async def one(url: str) -> None:
        results.append((await emu.src.get(url)).status)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, a + "/folders")
        tg.start_soon(one, b + "/folders")
    assert results == [200, 200]


async def test_request_window_trips_with_fractional_retry_after_and_429s_count(emu: Any) -> None:
    await _limits(emu, requests=5, request_window=30.0)
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    statuses = [(await emu.src.get(m + "/folders/inbox")).status for _ in range(5)]
    assert statuses == [200] * 5
    r = await emu.src.get(m + "/folders/inbox")
    assert r.status == 429
    assert r.body["error"]["message"] == "Application is over its RequestRate limit."
    wait = float(r.headers["Retry-After"])
    assert 25.0 < wait <= 30.0 and r.headers["Retry-After"] != str(int(wait))
    await anyio.sleep(0.05)  # past the grace for requests already on their way
    r2 = await emu.src.get(m + "/folders/inbox")  # too early: counted as early, still 429
    assert r2.status == 429
    stats = (await emu.src.control("GET", "/stats")).body
    mbx = await emu.src.mailbox_id(ADELE)
    assert stats["early_requests"][mbx] == 1
    assert stats["throttled"]["RequestRate"] == 2
    # another mailbox is not affected
    other = emu.src.m(await emu.src.mailbox_id(BIANCA))
    assert (await emu.src.get(other + "/folders/inbox")).status == 200


async def test_upload_bytes_window_counts_request_bodies(emu: Any) -> None:
    src = emu.src.m(await emu.src.mailbox_id(BIANCA))
    box = emu.state.mailbox(BIANCA)
    ids = [i.id for i in box.items.values()][:3]
    exp = await emu.src.post(src + "/exportItems", {"itemIds": ids})
    datas = [v["data"] for v in exp.body["value"]]
    s = await emu.src.post(src + "/createImportSession")
    url = s.body["importUrl"]
    budget = len(datas[0]) + len(datas[1]) + 400
    await _limits(emu, upload_bytes=budget, upload_window=60.0)
    r1 = await emu.src.post(
        url, {"FolderId": "inbox", "Mode": "create", "Data": datas[0]}, auth=False
    )
    r2 = await emu.src.post(
        url, {"FolderId": "inbox", "Mode": "create", "Data": datas[1]}, auth=False
    )
    r3 = await emu.src.post(
        url, {"FolderId": "inbox", "Mode": "create", "Data": datas[2]}, auth=False
    )
    assert (r1.status, r2.status, r3.status) == (200, 200, 429)
    assert r3.body["error"]["message"] == "Application is over its IncomingBytes limit."
    assert 0 < float(r3.headers["Retry-After"]) <= 60
    # a GET carries no body and passes
    assert (await emu.src.get(src + "/folders/inbox")).status == 200
    # what the budget counted is in the stats per mailbox (the refused body is not)
    up = (await emu.src.control("GET", "/stats")).body["uploads_by_mailbox"][BIANCA]
    admitted = len(datas[0]) + len(datas[1])
    assert admitted < up["bytes"] < admitted + len(datas[2])
    assert up["span_s"] > 0


async def test_app_wide_window(emu: Any) -> None:
    await _limits(emu, app_requests=3, app_window=30.0)
    a = emu.src.m(await emu.src.mailbox_id(ADELE))  # 1
    b = emu.src.m(await emu.src.mailbox_id(BIANCA))  # 2
    assert (await emu.src.get(a + "/folders")).status == 200  # 3
    r = await emu.src.get(b + "/folders")
    assert r.status == 429 and "ApplicationRequestRate" in r.body["error"]["message"]
    # a different app has its own window
    dst = emu.dst.m(await emu.dst.mailbox_id("adele@fabrikam.example"))
    assert (await emu.dst.get(dst + "/folders")).status == 200


async def test_request_body_over_limit_is_413(emu: Any) -> None:
    emu.state.config.__dict__["max_body_bytes"] = 1000  # frozen dataclass; test-only poke
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    r = await emu.src.post(m + "/exportItems", {"itemIds": ["x" * 2000]})
    assert r.status == 413


# -- faults ------------------------------------------------------------------------------------
async def test_503_with_and_without_retry_after_and_504(emu: Any) -> None:
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    await _faults(
        emu,
        {"kind": "http_503", "calls": ["getFolder"], "count": 1, "retry_after": 1.5},
        {"kind": "http_504", "calls": ["listFolders"], "count": 1},
    )
    r = await emu.src.get(m + "/folders/inbox")
    assert r.status == 503 and r.headers["Retry-After"] == "1.5"
    assert (await emu.src.get(m + "/folders/inbox")).status == 200  # count exhausted
    r = await emu.src.get(m + "/folders")
    assert r.status == 504 and "Retry-After" not in r.headers
    await _faults(emu, {"kind": "http_503", "calls": ["getFolder"], "count": 1})
    r = await emu.src.get(m + "/folders/inbox")
    assert r.status == 503 and "Retry-After" not in r.headers


async def test_posted_faults_join_those_in_force_whose_counts_stay(emu: Any) -> None:
    """``POST /_emulator/faults`` adds rules; ``PUT`` replaces them all. A rule armed later
    (a transient 404 for a sign-off) leaves the round's rules, fired or not, as they were."""
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    await _faults(emu, {"kind": "http_503", "calls": ["getFolder"], "count": 2})
    assert (await emu.src.get(m + "/folders/inbox")).status == 503  # one of two fired
    r = await emu.src.control(
        "POST", "/faults", {"rules": [{"kind": "http_504", "calls": ["listFolders"], "count": 1}]}
    )
    assert r.status == 200, r.body
    assert [(x["kind"], x["fired"]) for x in r.body["rules"]] == [("http_503", 1), ("http_504", 0)]
    assert (await emu.src.get(m + "/folders")).status == 504
    assert (await emu.src.get(m + "/folders/inbox")).status == 503  # the second of two
    assert (await emu.src.get(m + "/folders/inbox")).status == 200
    r = await emu.src.control("GET", "/faults")
    assert [(x["kind"], x["fired"]) for x in r.body["rules"]] == [("http_503", 2), ("http_504", 1)]
    r = await emu.src.control("POST", "/faults", {"rules": [{"kind": "nope"}]})
    assert r.status == 400
    assert len((await emu.src.control("GET", "/faults")).body["rules"]) == 2  # none added


async def _import_setup(emu: Any) -> tuple[str, str, str]:
    m = emu.src.m(await emu.src.mailbox_id(BIANCA))
    it = next(iter(emu.state.require_mailbox(BIANCA).items.values()))
    exp = await emu.src.post(m + "/exportItems", {"itemIds": [it.id]})
    s = await emu.src.post(m + "/createImportSession")
    return m, s.body["importUrl"], exp.body["value"][0]["data"]


async def test_drop_before_processing_creates_nothing(emu: Any) -> None:
    _, url, data = await _import_setup(emu)
    box = emu.state.mailbox(BIANCA)
    before = len(box.items)
    await _faults(emu, {"kind": "drop_before", "calls": ["importItem"], "count": 1})
    with pytest.raises(aiohttp.ClientError):
        await emu.src.post(url, {"FolderId": "inbox", "Mode": "create", "Data": data}, auth=False)
    assert len(box.items) == before


async def test_drop_after_commit_loses_the_response_but_keeps_the_item(emu: Any) -> None:
    _, url, data = await _import_setup(emu)
    box = emu.state.mailbox(BIANCA)
    before = len(box.items)
    await _faults(emu, {"kind": "drop_after", "calls": ["importItem"], "count": 1})
    with pytest.raises(aiohttp.ClientError):
        await emu.src.post(url, {"FolderId": "inbox", "Mode": "create", "Data": data}, auth=False)
    assert len(box.items) == before + 1
    stats = (await emu.src.control("GET", "/stats")).body
    assert stats["faults"]["drop_after"] == 1


async def test_slow_response(emu: Any) -> None:
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    await _faults(emu, {"kind": "slow", "calls": ["listFolders"], "delay": 0.3, "count": 1})
    t0 = time.monotonic()
    assert (await emu.src.get(m + "/folders")).status == 200
    assert time.monotonic() - t0 >= 0.3


async def test_export_item_error_is_per_item(emu: Any) -> None:
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    ids = [i.id for i in list(emu.state.require_mailbox(ADELE).items.values())[:6]]
    await _faults(emu, {"kind": "export_item_error", "count": 1})
    r = await emu.src.post(m + "/exportItems", {"itemIds": ids})
    assert r.status == 200
    errors = [v for v in r.body["value"] if "data" not in v]
    assert len(errors) == 1
    err = errors[0].get("error") or errors[0].get("Error")
    assert err["code"] == "ErrorItemNotFound"
    assert errors[0]["itemId"] not in emu.state.require_mailbox(ADELE).items  # it was deleted


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_early_session_expiry(emu: Any, status: int) -> None:
    _, url, data = await _import_setup(emu)
    await _faults(emu, {"kind": "session_expire", "status": status, "count": 1})
    body = {"FolderId": "inbox", "Mode": "create", "Data": data}
    r = await emu.src.post(url, body, auth=False)
    assert r.status == status
    r = await emu.src.post(url, body, auth=False)
    assert r.status == 401  # the session is gone for good


async def test_token_revocation(emu: Any) -> None:
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    await _faults(emu, {"kind": "token_revoke", "calls": ["listFolders"], "count": 1})
    r = await emu.src.get(m + "/folders")
    assert r.status == 401 and r.body["error"]["code"] == "InvalidAuthenticationToken"
    assert (await emu.src.get(m + "/folders/inbox")).status == 401
    await emu.src.login()
    assert (await emu.src.get(m + "/folders/inbox")).status == 200


async def test_delta_expiry_fault(emu: Any) -> None:
    m = emu.src.m(await emu.src.mailbox_id(BIANCA))
    r = await emu.src.get(
        m + "/folders/inbox/items/delta", headers={"Prefer": "odata.maxpagesize=2"}
    )
    await _faults(emu, {"kind": "delta_expire", "count": 1})
    r = await emu.src.get(r.body["@odata.nextLink"])
    assert r.status == 410 and r.body["error"]["code"] == "syncStateNotFound"


async def test_mailbox_not_found_fault(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(ADELE)
    await _faults(emu, {"kind": "mailbox_not_found", "mailbox": ADELE})
    r = await emu.src.get(f"/users/{ADELE}/settings/exchange")
    assert r.status == 404
    r = await emu.src.get(emu.src.m(mbx) + "/folders")
    assert r.status == 404 and r.body["error"]["code"] == "ErrorNonExistentMailbox"
    assert (await emu.src.get(f"/users/{BIANCA}/settings/exchange")).status == 200


async def test_probabilistic_faults_and_after(emu: Any) -> None:
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    await _faults(emu, {"kind": "http_503", "calls": ["getFolder"], "after": 2, "count": 1})
    statuses = [(await emu.src.get(m + "/folders/inbox")).status for _ in range(4)]
    assert statuses == [200, 200, 503, 200]
    await _faults(emu, {"kind": "http_503", "calls": ["getFolder"], "probability": 0.5})
    statuses = [(await emu.src.get(m + "/folders/inbox")).status for _ in range(60)]
    assert 10 < statuses.count(503) < 50
    r = await emu.src.control("PUT", "/faults", {"rules": [{"kind": "nope"}]})
    assert r.status == 400


async def test_unknown_delete_item_after_listing_is_item_not_found(emu: Any) -> None:
    mbx = await emu.src.mailbox_id(BIANCA)
    it = next(iter(emu.state.require_mailbox(BIANCA).items.values()))
    await emu.src.control("POST", f"/mailboxes/{q(mbx)}/changes", {"delete": [it.id]})
    r = await emu.src.get(f"{emu.src.m(mbx)}/folders/{q(it.folder.id)}/items/{q(it.id)}")
    assert r.status == 404 and r.body["error"]["code"] == "ErrorItemNotFound"


# -- the pure throttle -------------------------------------------------------------------------
def test_throttle_window_refills_exactly_when_retry_after_says() -> None:
    t = Throttle(Limits.profile("exchange", requests=3, request_window=10.0, concurrency=None))
    for k in range(3):
        assert t.admit(100.0 + k, "app", "m", 0).reason is None
        t.release("app", "m")
    v = t.admit(103.0, "app", "m", 0)
    # The throttled call itself counts, so the window has room again only once the first two
    # calls have left it: at 101 + 10.
    assert v.reason == "RequestRate" and v.retry_after == pytest.approx(8.0)
    assert t.admit(111.0, "app", "m", 0).reason is None


def test_exchange_fast_keeps_the_per_second_ceilings() -> None:
    e = Limits.profile("exchange")
    f = Limits.profile("exchange-fast", time_scale=60)
    assert e.requests and f.requests and e.upload_bytes and f.upload_bytes
    assert f.request_window == 10.0 and f.upload_window == 5.0
    assert f.requests / f.request_window == pytest.approx(e.requests / e.request_window, 0.01)
    assert f.upload_bytes / f.upload_window == pytest.approx(e.upload_bytes / e.upload_window, 0.01)
    assert e.upload_bytes == 150 * MB


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"upload_byte": 5}, "emulator.limits.upload_byte: unknown rule; known: app_requests"),
        ({"upload_bytes": -5}, "emulator.limits.upload_bytes: must be a finite number greater"),
        ({"upload_bytes": "x"}, "emulator.limits.upload_bytes: must be a number or null"),
        ({"upload_window": 0}, "emulator.limits.upload_window: must be a finite number greater"),
        ({"latency_base": -0.1}, "emulator.limits.latency_base: must be a finite number at least"),
        ({"request_window": None}, "emulator.limits.request_window: must be a number, not None"),
        ({"concurrency": True}, "emulator.limits.concurrency: must be a number or null"),
    ],
)
def test_a_nonsense_limit_is_a_configuration_error_naming_the_rule(
    limits: dict[str, Any], message: str
) -> None:
    """Not a Python error about ``Limits.__init__``, not a service that refuses every import
    (a negative budget) or fails every pair (a string compared with a number) at run time."""
    with pytest.raises(EmulatorConfigError) as info:
        parse_config({"emulator": {"profile": "exchange-fast", "limits": limits}})
    assert message in str(info.value)


def test_limits_that_make_sense_are_taken() -> None:
    cfg = parse_config(
        {"emulator": {"limits": {"latency_base": 0, "upload_bytes": None, "requests": 50}}}
    )
    lim = cfg.make_limits()
    assert (lim.latency_base, lim.upload_bytes, lim.requests) == (0, None, 50)
