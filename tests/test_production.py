"""What production has shown (issue 10 §2), against the emulator over real HTTP: the
emulator reproduces it, the engine copes, nothing is lost or duplicated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from copyengine.config import load_job
from copyengine.exitcodes import ExitCode
from copyengine.wiring import run_job
from tests.jobs import assert_exact, check_copy, selected_by_default, write_job

pytestmark = pytest.mark.anyio
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
BIANCA, T_BIANCA = "bianca@contoso.example", "bianca@fabrikam.example"
PAIRS = [(ADELE, T_ADELE), (BIANCA, T_BIANCA)]


_selected = selected_by_default


def _exact(emu: Any) -> None:
    assert_exact(emu.state, PAIRS)


async def test_export_answers_that_silently_drop_rows(emu: Any, tmp_path: Path) -> None:
    m = emu.src.m(await emu.src.mailbox_id(ADELE))
    rule = {"kind": "export_drop", "probability": 1.0, "count": 1}
    assert (await emu.src.control("PUT", "/faults", {"rules": [rule]})).status == 200
    ids = list(emu.state.require_mailbox(ADELE).items)[:5]
    r = await emu.src.post(m + "/exportItems", {"itemIds": ids})
    assert r.status == 200 and len(r.body["value"]) == 4  # one id: no row, no error row
    assert all("error" not in v and "Error" not in v for v in r.body["value"])
    rule = {"kind": "export_drop", "probability": 0.5}
    assert (await emu.src.control("PUT", "/faults", {"rules": [rule], "seed": 4})).status == 200
    stats = await run_job(load_job(write_job(tmp_path, emu.ep, PAIRS)))
    fired = (await emu.src.control("GET", "/stats")).body["faults"]
    assert fired.get("export_drop", 0) >= 5
    report = json.loads((tmp_path / "report.json").read_text())
    assert stats.exit_code() == ExitCode.OK == report["exit_code"]
    assert report["totals"]["failed"] == 0 and report["totals"]["unknown"] == 0
    _exact(emu)


async def test_rbac_scoped_grant_fails_only_the_pair_outside_it(emu: Any, tmp_path: Path) -> None:
    from tests.emu import DST_APP

    app = emu.state.tokens.tenant("fabrikam.example").apps[DST_APP]
    app.scope = frozenset({T_ADELE})  # RBAC for Applications: only adele's target mailbox
    dst = await emu.dst.mailbox_id(T_BIANCA)
    r = await emu.dst.get(emu.dst.m(dst) + "/folders")
    assert r.status == 403 and r.body["error"]["code"] == "ErrorAccessDenied"
    ok = await emu.dst.get(emu.dst.m(await emu.dst.mailbox_id(T_ADELE)) + "/folders")
    assert ok.status == 200
    stats = await run_job(load_job(write_job(tmp_path, emu.ep, PAIRS)))
    report = json.loads((tmp_path / "report.json").read_text())
    assert stats.exit_code() == ExitCode.ITEMS_FAILED == report["exit_code"]
    by = {p["target"]: p for p in report["pairs"]}
    assert by[T_ADELE]["status"] == "done" and by[T_ADELE]["failed"] == 0
    bad = by[T_BIANCA]
    assert bad["status"] == "failed" and bad["error_code"] == "PermissionDenied"
    assert f"{T_BIANCA} (target)" in bad["error"]  # names the mailbox as the operator knows it
    assert "MailboxFolder.Read.All" in bad["error"] and "RBAC" in bad["error"]
    src = emu.state.require_mailbox(ADELE).snapshot()
    assert check_copy(src, emu.state.require_mailbox(T_ADELE).snapshot(), selected=_selected) == (
        0,
        0,
        0,
    )


async def test_rbac_scope_from_the_emulator_configuration() -> None:
    from tests.emu import DST_APP, DST_SECRET, Api, base_config, running

    cfg = base_config()
    cfg["tenants"][1]["apps"][0]["mailboxes"] = [T_ADELE]
    async with running(cfg) as (_, ep, session):
        api = Api(ep, session, "fabrikam.example", DST_APP, DST_SECRET)
        await api.login()
        assert (await api.get(api.m(await api.mailbox_id(T_BIANCA)) + "/folders")).status == 403
        assert (await api.get(api.m(await api.mailbox_id(T_ADELE)) + "/folders")).status == 200


async def test_imported_items_get_a_new_date_and_size_and_nothing_compares_them(
    emu: Any, tmp_path: Path
) -> None:
    from copyengine.wiring import verify_job

    cfg = load_job(write_job(tmp_path, emu.ep, [(BIANCA, T_BIANCA)]))
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    src = {r["searchKey"]: r for r in emu.state.require_mailbox(BIANCA).snapshot()["items"]}
    dst = emu.state.require_mailbox(T_BIANCA).snapshot()["items"]
    assert dst and all(r["searchKey"] in src for r in dst)
    for r in dst:  # as Exchange does: same search key, new created date and reported size
        s = src[r["searchKey"]]
        assert r["createdDateTime"] != s["createdDateTime"]
        assert r["reportedSize"] != s["reportedSize"] and r["digest"] == s["digest"]
    m = emu.dst.m(await emu.dst.mailbox_id(T_BIANCA))
    listed = await emu.dst.collect(m + "/folders/inbox/items?$top=100")
    reported = {r["id"]: r["reportedSize"] for r in dst}
    assert listed and all(i["size"] == reported[i["id"]] for i in listed)  # what Graph lists
    # a full pass: settlement and skip-if-present match by search key only
    again = await run_job(cfg, full=True)
    assert again.total("copied") == 0 and again.total("already_present") == len(dst)
    assert all(pc.ok for pc in await verify_job(cfg))


async def test_embedding_the_emulator_leaves_the_process_gc_alone() -> None:
    import gc

    from tests.emu import base_config, running

    before = (gc.get_threshold(), gc.get_freeze_count())
    async with running(base_config()):
        assert (gc.get_threshold(), gc.get_freeze_count()) == before


async def test_export_data_is_larger_than_the_items_size() -> None:
    import base64

    from tests.emu import SRC_APP, SRC_SECRET, Api, base_config, running

    cfg = base_config()
    cfg["tenants"][0]["users"][1]["mailbox"]["data_ratio"] = 1.5
    async with running(cfg) as (server, ep, session):
        api = Api(ep, session, "contoso", SRC_APP, SRC_SECRET)
        await api.login()
        for upn, ratio in ((ADELE, 1.1), (BIANCA, 1.5)):  # default, and configured
            m = api.m(await api.mailbox_id(upn))
            box = server.emulator.require_mailbox(upn)
            items = sorted(box.items.values(), key=lambda i: i.content.size)[-3:]
            r = await api.post(m + "/exportItems", {"itemIds": [i.id for i in items]})
            sizes = {i.id: i.content.size for i in items}
            for v in r.body["value"]:
                raw = len(base64.b64decode(v["data"]))
                assert raw >= sizes[v["itemId"]] * ratio, (upn, raw, sizes[v["itemId"]])


async def test_archives_on_beta_are_copied_when_a_pair_asks(tmp_path: Path) -> None:
    from tests.emu import SRC_APP, SRC_SECRET, Api, base_config, running

    cfg = base_config()
    cfg["tenants"][0]["users"][0]["archive"] = {"items": 25, "seed": 9}
    cfg["tenants"][1]["users"][0]["archive"] = {"layout": "empty"}
    async with running(cfg) as (server, ep, session):
        api = Api(ep, session, "contoso", SRC_APP, SRC_SECRET)
        await api.login()
        r = await api.get(f"/users/{ADELE}/settings/exchange")
        archive_id = r.body["inPlaceArchiveMailboxId"]
        assert archive_id and archive_id != r.body["primaryMailboxId"]
        v1 = await api.get(ep.graph_v1_url + f"/users/{ADELE}/settings/exchange")
        assert "inPlaceArchiveMailboxId" not in v1.body
        gone = await api.get(ep.graph_v1_url + api.m(archive_id) + "/folders")
        assert gone.status == 400 and "not supported on v1.0" in gone.body["error"]["message"]
        job = write_job(tmp_path, ep, [(ADELE, T_ADELE), (BIANCA, T_BIANCA)])
        text = job.read_text().replace(
            f'target = "{T_ADELE}"\n', f'target = "{T_ADELE}"\narchive = true\n'
        )
        job.write_text(text)
        stats = await run_job(load_job(job))
        report = json.loads((tmp_path / "report.json").read_text())
        assert stats.exit_code() == ExitCode.OK == report["exit_code"]
        emu = server.emulator
        src_arch = emu.require_mailbox(archive_id).snapshot()
        dst_primary = emu.require_mailbox(T_ADELE)
        dst_arch = emu.require_mailbox(dst_primary.archive_id or "").snapshot()
        assert check_copy(src_arch, dst_arch) == (0, 0, 0) and len(dst_arch["items"]) == 25
        adele = next(p for p in report["pairs"] if p["source"] == ADELE)
        assert any(f["source_path"].startswith("[archive]/") for f in adele["folders"])
        # an archive has throttling budgets of its own: it is paced as a mailbox apart
        assert any(archive_id in str(k) for k in emu.stats.by_mailbox)
        # a pair asking for an archive the target lacks fails that pair, saying so
        text = job.read_text().replace(
            f'target = "{T_BIANCA}"\n', f'target = "{T_BIANCA}"\narchive = true\n'
        )
        job.write_text(text)
        again = await run_job(load_job(job))
        report = json.loads((tmp_path / "report.json").read_text())
        bianca = next(p for p in report["pairs"] if p["source"] == BIANCA)
        assert bianca["status"] == "failed" and "no in-place archive" in bianca["error"]
        assert again.exit_code() == ExitCode.ITEMS_FAILED == report["exit_code"]


def test_archive_on_v1_is_refused_at_load(tmp_path: Path) -> None:
    from copyengine.errors import ConfigError
    from tests.emu import base_config  # noqa: F401

    (tmp_path / "s").write_text("x")
    text = f"""
[tenants.source]
graph_url = "https://graph.microsoft.com/v1.0"
tenant_id = "a"
client_id = "b"
client_secret = "file:s"
[tenants.target]
tenant_id = "c"
client_id = "d"
client_secret = "file:s"
[[pairs]]
source = "{ADELE}"
target = "{T_ADELE}"
archive = true
"""
    (tmp_path / "job.toml").write_text(text)
    with pytest.raises(ConfigError, match=r"pairs\[0\]\.archive: .*only on Graph beta"):
        load_job(tmp_path / "job.toml")
