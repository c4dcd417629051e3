"""End-to-end copies against the emulator, checked with its snapshots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from copyengine.config import load_job
from copyengine.exitcodes import ExitCode
from copyengine.wiring import run_job, verify_job
from tests.emu import q
from tests.jobs import by_key, check_copy, duplicates, write_job

pytestmark = pytest.mark.anyio
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
BIANCA, T_BIANCA = "bianca@contoso.example", "bianca@fabrikam.example"
EXCLUDED_BY_DEFAULT = ("/Recoverable Items", "/Journal")


async def _snap(emu: Any, upn: str) -> dict[str, Any]:
    return emu.state.require_mailbox(upn).snapshot()  # type: ignore[no-any-return]


def _selected(row: dict[str, Any]) -> bool:
    return not row["folderPath"].startswith(EXCLUDED_BY_DEFAULT)


async def test_copy_every_item_once_into_the_same_folders(emu: Any, tmp_path: Path) -> None:
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE), (BIANCA, T_BIANCA)]))
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    for s, t in ((ADELE, T_ADELE), (BIANCA, T_BIANCA)):
        src, dst = await _snap(emu, s), await _snap(emu, t)
        assert check_copy(src, dst, selected=_selected) == (0, 0, 0)
        assert len(dst["items"]) == sum(map(_selected, src["items"]))
        # well-known folders were mapped, not recreated: one Inbox
        assert sum(f["wellKnownName"] == "inbox" for f in dst["folders"]) == 1
        assert sum(f["path"] == "/Inbox" for f in dst["folders"]) == 1
    report = json.loads(cfg.report_path.read_text())
    assert report["totals"]["copied"] == stats.total("copied") > 100
    assert report["totals"]["failed"] == 0 and report["exit_code"] == 0
    pair = report["pairs"][0]
    assert {
        "source_items",
        "source_bytes",
        "copied",
        "already_present",
        "skipped",
        "failed",
        "throttled_429",
        "throttle_wait_s",
        "duration_s",
        "folders",
    } <= set(pair)
    inbox = next(f for f in pair["folders"] if f["source_path"] == "/Inbox")
    assert inbox["copied"] == inbox["source_items"] > 0
    # a second run is a delta pass: nothing changed, nothing listed, nothing copied
    again = await run_job(cfg)
    assert again.total("copied") == 0 and again.total("source_items") == 0
    assert again.pass_info["kind"] == "delta" and again.exit_code() == ExitCode.OK
    # a full pass lists everything, copies nothing and finds everything present
    full = await run_job(cfg, full=True)
    assert full.total("copied") == 0
    assert full.total("already_present") == stats.total("copied")
    assert duplicates(await _snap(emu, T_ADELE)) == 0
    assert all(pc.ok for pc in await verify_job(cfg))


async def test_folder_rules_and_item_filters(emu: Any, tmp_path: Path) -> None:
    extra = """
[folders]
exclude = ["^/Junk Email", "^/Inbox/Receipts"]
rename = [{ from = "^/Archive/2019", to = "/Archive/Old 2019" }]
classes = ["mail", "calendar"]

[items]
max_size_mb = 0.03
types = ["IPM.Note", "IPM.Appointment"]
"""
    pair_extra = """
[[pairs]]
source = "bianca@contoso.example"
target = "bianca@fabrikam.example"
[pairs.folders]
target_root = "/Migrated/{source}"
"""
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)], extra=extra + pair_extra))
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    src, dst = await _snap(emu, ADELE), await _snap(emu, T_ADELE)

    def selected(row: dict[str, Any]) -> bool:
        p = row["folderPath"]
        if p.startswith(
            (
                "/Junk Email",
                "/Inbox/Receipts",
                "/Contacts",
                "/Tasks",
                "/Notes",
                *EXCLUDED_BY_DEFAULT,
            )
        ):
            return False
        t = row["type"]
        return bool(row["size"] <= 0.03 * 1024 * 1024) and (
            t == "IPM.Note" or t.startswith("IPM.Note.") or t == "IPM.Appointment"
        )

    def mapped(path: str) -> str:
        return path.replace("/Archive/2019", "/Archive/Old 2019")

    assert check_copy(src, dst, mapped, selected) == (0, 0, 0)
    assert len(dst["items"]) == sum(map(selected, src["items"]))
    paths = {f["path"] for f in dst["folders"]}
    assert "/Archive/Old 2019" in paths and "/Archive/2019" not in paths
    assert "/Contacts/Suppliers" not in paths and "/Inbox/Receipts" not in paths
    report = json.loads(cfg.report_path.read_text())
    pair = report["pairs"][0]
    assert pair["skipped"] > 0
    big = [i for f in pair["folders"] for i in f["skipped_items"]]
    assert big and all(i["size"] > 0.03 * 1024 * 1024 and i["folder"] for i in big)
    # the second pair landed in a subfolder, well-known folders included
    bsrc, bdst = await _snap(emu, BIANCA), await _snap(emu, T_BIANCA)
    assert check_copy(
        bsrc,
        bdst,
        lambda p: "/Migrated/bianca" + p.replace("/Archive/2019", "/Archive/Old 2019"),
        selected,
    ) == (0, 0, 0)
    assert sum(f["path"] == "/Migrated/bianca/Inbox" for f in bdst["folders"]) == 1
    assert all(pc.ok for pc in await verify_job(cfg))


async def test_unknown_mailbox_fails_its_pair_and_the_others_go_on(
    emu: Any, tmp_path: Path
) -> None:
    cfg = load_job(
        write_job(tmp_path, emu.ep, [("ghost@contoso.example", T_ADELE), (BIANCA, T_BIANCA)])
    )
    stats = await run_job(cfg)
    ghost = stats.pairs["ghost@contoso.example->adele@fabrikam.example"]
    assert ghost.status == "failed" and ghost.error_code == "MailboxNotFound"
    assert "ghost@contoso.example" in (ghost.error or "")
    assert stats.pairs[f"{BIANCA}->{T_BIANCA}"].status == "done"
    assert stats.exit_code() == ExitCode.ITEMS_FAILED
    report = json.loads(cfg.report_path.read_text())
    assert report["totals"]["pairs_failed"] == 1


async def test_deleting_the_state_file_creates_no_duplicates(emu: Any, tmp_path: Path) -> None:
    cfg = load_job(write_job(tmp_path, emu.ep, [(BIANCA, T_BIANCA)]))
    first = await run_job(cfg)
    assert first.total("copied") > 0
    for p in tmp_path.glob("state.sqlite*"):
        p.unlink()
    second = await run_job(cfg)
    assert second.total("copied") == 0
    assert second.total("already_present") == first.total("copied")
    assert duplicates(await _snap(emu, T_BIANCA)) == 0


async def test_items_deleted_from_the_target_are_copied_again(emu: Any, tmp_path: Path) -> None:
    cfg = load_job(write_job(tmp_path, emu.ep, [(BIANCA, T_BIANCA)]))
    await run_job(cfg)
    box = emu.state.mailbox(T_BIANCA)
    gone = list(box.items)[:3]
    await emu.src.control("POST", f"/mailboxes/{q(box.id)}/changes", {"delete": gone})
    delta = await run_job(cfg)  # the source did not change: a delta pass has nothing to do
    assert delta.total("copied") == 0
    again = await run_job(cfg, full=True)  # a full pass reconciles the target: drift found
    assert again.total("copied") == 3
    report = json.loads(cfg.report_path.read_text())
    assert report["pairs"][0]["drift"] == 3
    src, dst = await _snap(emu, BIANCA), await _snap(emu, T_BIANCA)
    assert check_copy(src, dst, selected=_selected) == (0, 0, 0)
    assert len(by_key(dst)) == len(dst["items"])


async def test_refused_credential_is_exit_code_auth(emu: Any, tmp_path: Path) -> None:
    path = write_job(tmp_path, emu.ep, [(BIANCA, T_BIANCA)])
    (tmp_path / "src.secret").write_text("wrong-secret")
    stats = await run_job(load_job(path))
    assert stats.exit_code() == ExitCode.AUTH
    pair = next(iter(stats.pairs.values()))
    assert pair.error_code == "AuthFailed" and "invalid_client" in (pair.error or "")
    assert "wrong-secret" not in json.dumps(stats.as_dict())


async def test_verify_reports_missing_and_extra(emu: Any, tmp_path: Path) -> None:
    cfg = load_job(write_job(tmp_path, emu.ep, [(BIANCA, T_BIANCA)]))
    await run_job(cfg)
    box = emu.state.mailbox(T_BIANCA)
    gone = next(iter(box.items.values()))
    await emu.src.control("POST", f"/mailboxes/{q(box.id)}/changes", {"delete": [gone.id]})
    (check,) = await verify_job(cfg)
    assert not check.ok
    bad = [f for f in check.folders if not f.ok]
    assert len(bad) == 1 and len(bad[0].missing) == 1 and not bad[0].extra


async def test_first_item_is_imported_before_enumeration_finishes(emu: Any, tmp_path: Path) -> None:
    # One pair: the source listing (listItems on the source) is still going on when the
    # first import arrives, because stages are pipelined, not run one after the other.
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)]))
    emu.state.stats.reset()
    await run_job(cfg)
    st = emu.state.stats
    assert st.first_seen["importItem"] < st.last_seen["listItems"]
    assert st.first_seen["importItem"] < st.last_seen["exportItems"]
