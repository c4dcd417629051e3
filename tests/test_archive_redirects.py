"""Auto-expanding archives (issue 26): the emulator's expanded archive answers as Microsoft
documents it (a per-item ``ErrorArchiveFolderMovedPermanently`` whose message is the URL to
export from; 409 ``{"Message": …}`` from the import host), and the engine follows the
redirect and renews the import session without losing, duplicating or failing an item; a
redirect off the tenant's Graph endpoint is refused and fails only that item."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest

from copyengine.config import load_job
from copyengine.console.html import render
from copyengine.emulator import parse_config
from copyengine.emulator.config import EmulatorConfigError
from copyengine.emulator.faults import FaultRule
from copyengine.exitcodes import ExitCode
from copyengine.graph import ImportSessionPool
from copyengine.graph.archive import export_redirect
from copyengine.report import JobStats
from copyengine.verify import sign_off
from copyengine.wiring import clients, run_job, store, verify_job
from tests.emu import DST_APP, DST_SECRET, SRC_APP, SRC_SECRET, Api, base_config, running
from tests.jobs import (
    archive_pair,
    check_copy,
    cli,
    cli_process,
    demo_job,
    duplicates,
    finish_process,
    finished_event,
    selected_by_default,
    write_job,
)

pytestmark = pytest.mark.anyio
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
GRAPH = "https://graph.microsoft.com/beta"


def _expanded(cfg: dict[str, Any], source: Any, target: Any, items: int = 60) -> dict[str, Any]:
    """Both first users with an archive: ``items`` at the source; ``expanded`` switches."""
    cfg["tenants"][0]["users"][0]["archive"] = {"items": items, "seed": 9, "expanded": source}
    cfg["tenants"][1]["users"][0]["archive"] = {"layout": "empty", "expanded": target}
    return cfg


def _archive(emu: Any, upn: str) -> Any:
    return emu.require_mailbox(emu.require_mailbox(upn).archive_id or "")


def _exact(emu: Any) -> tuple[int, int, int, int]:
    """(lost, duplicated, wrong, extra) of the target archive against the source archive's
    ground truth (the auxiliary's items are kept with their archive's); what a mirrored
    deletion soft-deleted in the target (its Recoverable Items) is not a copy."""
    src, dst = _archive(emu, ADELE).snapshot(), _archive(emu, T_ADELE).snapshot()
    dst["items"] = [r for r in dst["items"] if selected_by_default(r)]
    lost, dup, wrong = check_copy(src, dst, selected=selected_by_default)
    extra = len(dst["items"]) - sum(map(selected_by_default, src["items"]))
    return lost, dup + duplicates(dst), wrong, extra


def _another(content: Any, rng: random.Random) -> Any:
    """A new item's content like ``content`` (its own search key and payload)."""
    return dataclasses.replace(
        content, search_key=rng.randbytes(16), payload_key=rng.getrandbits(48), message_id=None
    )


# -- the redirect URL, a pure decision -------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "mailbox"),
    [
        (
            f"{GRAPH}/admin/exchange/mailboxes/MBX:5ffdc069-c31e@601eaae7-815e/exportItems",
            "MBX:5ffdc069-c31e@601eaae7-815e",
        ),
        (f"{GRAPH}/admin/exchange/mailboxes/MBX%3Aa%40b/exportItems", "MBX:a@b"),
        ("https://graph.evil.example/beta/admin/exchange/mailboxes/MBX:a@b/exportItems", None),
        ("http://graph.microsoft.com/beta/admin/exchange/mailboxes/MBX:a@b/exportItems", None),
        (
            "https://graph.microsoft.com:8443/beta/admin/exchange/mailboxes/MBX:a@b/exportItems",
            None,
        ),
        ("https://u:p@graph.microsoft.com/beta/admin/exchange/mailboxes/MBX:a@b/exportItems", None),
        (f"{GRAPH}/admin/exchange/mailboxes/MBX:a@b/exportItems?next=https://x", None),
        (f"{GRAPH}/admin/exchange/mailboxes/MBX:a@b/folders", None),
        ("https://graph.microsoft.com/v1.0/admin/exchange/mailboxes/MBX:a@b/exportItems", None),
        ("/beta/admin/exchange/mailboxes/MBX:a@b/exportItems", None),
        ("not a url at all", None),
    ],
)
def test_a_redirect_is_followed_only_on_the_tenants_own_graph_endpoint(
    url: str, mailbox: str | None
) -> None:
    where = export_redirect(url, GRAPH)
    assert where.mailbox_id == mailbox
    if mailbox is None:
        assert "not followed" in where.why and "exportItems?next" not in where.why


def test_the_switch_is_checked_where_it_is_written() -> None:
    for bad, key in (
        ({"every": 0}, "every"),
        ({"foldres": []}, "foldres"),
        ({"folders": "/Inbox"}, "folders"),
    ):
        cfg = _expanded(base_config(), bad, None)
        with pytest.raises(EmulatorConfigError, match=rf"users\[0\]\.archive\.expanded.*{key}"):
            parse_config(cfg)


# -- the emulator's wire shapes --------------------------------------------------------------------
async def test_the_emulator_answers_as_the_documentation_shows() -> None:
    cfg = _expanded(base_config(), {"every": 1}, {"folders": ["/Inbox"], "session_uploads": 2})
    async with running(cfg) as (server, ep, session):
        emu = server.emulator
        arch, tarch = _archive(emu, ADELE), _archive(emu, T_ADELE)
        aux = arch.auxiliary
        assert aux is not None and aux.id != arch.id and emu.mailboxes[aux.id] is aux
        src = Api(ep, session, "contoso", SRC_APP, SRC_SECRET)
        await src.login()
        item = next(iter(arch.items.values()))
        r = await src.post(src.m(arch.id) + "/exportItems", json={"itemIds": [item.id]})
        assert r.status == 200
        (row,) = r.body["value"]
        err = row.get("error") or row.get("Error")
        assert err["code"] == "ErrorArchiveFolderMovedPermanently" and "data" not in row
        assert err["message"] == f"{ep.graph_url}/admin/exchange/mailboxes/{aux.id}/exportItems"
        r = await src.post(err["message"], json={"itemIds": [item.id]})
        assert r.status == 200 and r.body["value"][0]["data"]
        data = r.body["value"][0]["data"]

        dst = Api(ep, session, "fabrikam", DST_APP, DST_SECRET)
        await dst.login()
        inbox = tarch.folder_by_path("/Inbox")
        taux = tarch.auxiliary
        s = await dst.post(dst.m(tarch.id) + "/createImportSession")
        body = {"FolderId": inbox.id, "Mode": "create", "Data": data}
        r = await dst.post(s.body["importUrl"], json=body, auth=False)
        assert r.status == 409 and set(r.body) == {"Message"}  # not Graph's envelope
        assert r.body["Message"] == (
            f"Invalid import session. The target session is expected in mailbox {taux.id}."
        )
        assert len(tarch.items) == 0  # nothing imported
        s = await dst.post(dst.m(taux.id) + "/createImportSession")
        for _ in range(2):
            r = await dst.post(s.body["importUrl"], json=body, auth=False)
            assert r.status == 200, r.body
        assert len(tarch.items) == 2  # kept with their archive: listed through it
        r = await dst.post(s.body["importUrl"], json=body, auth=False)  # the session is spent
        assert r.status == 409 and taux.id in r.body["Message"] and len(tarch.items) == 2
        # a folder that is not expanded, through the auxiliary's session: the main archive's
        s = await dst.post(dst.m(taux.id) + "/createImportSession")
        other = {**body, "FolderId": tarch.folder_by_path("/Archive").id}
        r = await dst.post(s.body["importUrl"], json=other, auth=False)
        assert r.status == 409 and tarch.id in r.body["Message"]


# -- the engine against it -------------------------------------------------------------------------
async def test_an_expanded_archive_pair_is_copied_exactly_and_signed_off(tmp_path: Path) -> None:
    cfg = _expanded(
        base_config(),
        {"every": 2},
        {"folders": ["/Inbox", "/Sent Items"], "session_uploads": 7},
    )
    async with running(cfg) as (server, ep, _):
        emu = server.emulator
        job = archive_pair(write_job(tmp_path, ep, [(ADELE, T_ADELE)]), T_ADELE)
        jc = load_job(job)
        first = await run_job(jc)
        assert first.exit_code() == ExitCode.OK, first.as_dict()
        assert _exact(emu) == (0, 0, 0, 0)
        (p,) = first.as_dict()["pairs"]
        assert p["failed"] == 0 and p["unknown"] == 0
        moved = p["archive_redirects"]
        in_aux = sum(
            1
            for i in _archive(emu, ADELE).items.values()
            if i.folder.id in _archive(emu, ADELE).expanded
        )
        assert in_aux > 0 and moved["redirected"] == in_aux
        assert moved["sessions_renewed"] > 0 and moved["folders_moved"] >= 1
        assert any("auto-expanding archive" in n for n in p["notes"])
        # the auxiliaries' requests are the pair's too (each on its own pacer)
        boxes = [emu.require_mailbox(u) for u in (ADELE, T_ADELE)]
        boxes += [_archive(emu, u) for u in (ADELE, T_ADELE)]
        boxes += [b.auxiliary for b in boxes[2:] if b.auxiliary is not None]
        assert p["requests"] == sum(emu.stats.by_mailbox[b.id] for b in boxes)
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["pairs"][0]["archive_redirects"] == moved
        page = render(report)  # the customer's page says it, among the notes
        assert "<h2>Notes</h2>" in page and "auto-expanding archive" in page

        # the source changes, in expanded folders and out of them; a delta pass is exact
        arch = _archive(emu, ADELE)
        moved_item = next(i for i in arch.items.values() if i.folder.id in arch.expanded)
        plain = next(f for f in arch.walk() if f.id not in arch.expanded and f.live)
        arch.move_item(moved_item, plain)
        some = next(i for i in arch.items.values() if i.folder.id in arch.expanded)
        arch.add_item(some.folder, _another(some.content, random.Random(5)))
        second = await run_job(jc)
        assert second.exit_code() == ExitCode.OK, second.as_dict()
        assert _exact(emu) == (0, 0, 0, 0)
        (p2,) = second.as_dict()["pairs"]
        assert p2["failed"] == 0 and p2["changes"]["created"] >= 1 and p2["changes"]["moved"] >= 1

        (check,) = await verify_job(jc)
        assert check.ok, [f for f in check.folders if not f.ok]
        async with clients(jc) as built, store(jc) as st:
            so = await sign_off(jc, built, st, jc.pairs, JobStats())
        assert so["complete"], so
        cut = await run_job(jc, cutover=True)
        assert cut.exit_code() == ExitCode.OK and cut.sign_off and cut.sign_off["complete"]


async def test_the_archive_note_is_on_the_screen_in_the_log_and_in_the_report_alike(
    tmp_path: Path,
) -> None:
    """Review (issue 26): a pair whose items were redirected to an auxiliary archive had its
    note in the report, not in the summary ``run`` prints at its end, nor in
    ``job.finished``: every answer says it, in the same words."""
    cfg = _expanded(base_config(), {"every": 2}, {"folders": ["/Inbox"], "session_uploads": 7})
    async with running(cfg) as (_, ep, _):
        job = archive_pair(write_job(tmp_path, ep, [(ADELE, T_ADELE)]), T_ADELE)
        args = ["run", str(job), "--no-progress", "--log-format", "json", "--log-level", "info"]
        proc = cli_process(*args)
        code, out = await finish_process(proc, 120)
    assert code == ExitCode.OK, out[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    event = finished_event(out)
    (note,) = report["archive_notes"]
    assert event["archive_notes"] == [note]
    (p,) = report["pairs"]
    assert note == f"{ADELE} → {T_ADELE}: {p['notes'][-1]}"
    assert f"{p['archive_redirects']['redirected']} item(s) exported" in note
    assert f"note: {note}" in out  # the summary on stdout, after the table


async def test_a_redirect_off_the_tenants_graph_host_fails_that_item_only(tmp_path: Path) -> None:
    evil = "https://graph.evil.example/beta"
    cfg = _expanded(base_config(), {"every": 3, "redirect_base": evil}, None)
    async with running(cfg) as (server, ep, _):
        emu = server.emulator
        arch = _archive(emu, ADELE)
        job = archive_pair(write_job(tmp_path, ep, [(ADELE, T_ADELE)]), T_ADELE)
        stats = await run_job(load_job(job))
        assert stats.exit_code() == ExitCode.ITEMS_FAILED
        (p,) = stats.as_dict()["pairs"]
        expanded = {i.id for i in arch.items.values() if i.folder.id in arch.expanded}
        failed = [row for f in p["folders"] for row in f["failures"]]
        assert expanded and {row["id"] for row in failed} == expanded
        assert all(
            "graph.evil.example" in row["reason"] and "not followed" in row["reason"]
            for row in failed
        )
        assert p["unknown"] == 0 and p["archive_redirects"].get("redirected", 0) == 0
        lost, dup, wrong, _ = _exact(emu)
        assert (lost, dup, wrong) == (len(expanded), 0, 0)  # the rest copied
        assert "authtoken" not in (tmp_path / "report.json").read_text()
        # recorded as failed in the state: a retry pass finds them (and fails them again)
        again = await run_job(load_job(job), retry_only=True)
        (p2,) = again.as_dict()["pairs"]
        assert p2["failed"] == len(expanded) and p2["copied"] == 0


# -- a seeded mix with the other faults ------------------------------------------------------------
FAULTS = (
    {"kind": "http_503", "probability": 0.05, "retry_after": 0.01},
    {"kind": "export_drop", "probability": 0.2},
    {"kind": "session_expire", "probability": 0.04},
    {"kind": "drop_after", "calls": ["importItem"], "probability": 0.03},
    {"kind": "delta_duplicate", "probability": 0.3},
    {"kind": "export_item_error", "probability": 0.03},
)
TARGET_FOLDERS = ("/Inbox", "/Sent Items", "/Archive", "/Calendar", "/Deleted Items")


def _changes(arch: Any, rng: random.Random, n: int) -> None:
    """``n`` changes in the source archive, in expanded folders and out of them."""
    for _ in range(n):
        live = list(arch.items.values())
        holding = [f for f in arch.walk() if f.live and f.parent is not None]
        op = rng.choice(("add", "modify", "move", "delete"))
        it = rng.choice(live)
        if op == "add":
            arch.add_item(rng.choice(holding), _another(it.content, rng))
        elif op == "modify":
            arch.update_item(it, dataclasses.replace(it.content, subject="changed"))
        elif op == "move":
            to = rng.choice(
                [f for f in holding if f is not it.folder and f.type == it.folder.type]
                or [it.folder]
            )
            if to is not it.folder:
                arch.move_item(it, to)
        else:
            arch.delete_item(it)


@pytest.mark.parametrize("seed", [1, *(pytest.param(s, marks=pytest.mark.slow) for s in (2, 3, 4))])
async def test_a_seeded_mix_of_redirects_409s_and_faults(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    source = {"every": rng.choice((1, 2, 3))}
    target = {
        "folders": rng.sample(TARGET_FOLDERS, k=rng.randint(1, 3)),
        "session_uploads": rng.choice((0, 3, 7)),
    }
    cfg = _expanded(base_config(seed=seed), source, target, items=rng.randint(40, 90))
    cfg["faults"] = rng.sample(FAULTS, k=3)
    async with running(cfg) as (server, ep, _):
        emu = server.emulator
        job = archive_pair(
            write_job(tmp_path, ep, [(ADELE, T_ADELE)], extra='[sync]\ndeletions = "mirror"\n'),
            T_ADELE,
        )
        jc = load_job(job)
        redirected = renewed = failed = 0
        for round_ in range(3):
            if round_:
                _changes(_archive(emu, ADELE), rng, rng.randint(3, 8))
            stats = await run_job(jc)
            for p in stats.as_dict()["pairs"]:
                redirected += p["archive_redirects"].get("redirected", 0)
                renewed += p["archive_redirects"].get("sessions_renewed", 0)
                failed += p["failed"]
                assert p["error"] is None, p["error"]
            if stats.exit_code() != ExitCode.OK:  # an outcome left unknown: the next settles
                assert all(p["failed"] == 0 for p in stats.as_dict()["pairs"])
        settle = await run_job(jc)  # nothing unknown is left behind
        assert settle.exit_code() == ExitCode.OK, settle.as_dict()
        assert failed == 0 and redirected > 0
        assert renewed > 0 or not any(
            i.folder.id in _archive(emu, T_ADELE).expanded
            for i in _archive(emu, T_ADELE).items.values()
        )
        assert _exact(emu) == (0, 0, 0, 0)
        emu.faults.rules = []
        (check,) = await verify_job(jc)
        assert check.ok, [f for f in check.folders if not f.ok]


async def test_an_update_whose_answer_was_lost_is_not_failed_by_its_own_resend(
    tmp_path: Path,
) -> None:
    """Found by the seeded mix (seed 34): an update lands, its answer is lost, the transport
    resends it (update mode is safe to resend) and the import host answers 409
    ErrorIrresolvableConflict, the change key having moved with the first. The same data
    onto the copy's current version: updated, not failed."""
    cfg = _expanded(base_config(), {"every": 2}, {"folders": ["/Inbox"]})
    async with running(cfg) as (server, ep, _):
        emu = server.emulator
        jc = load_job(archive_pair(write_job(tmp_path, ep, [(ADELE, T_ADELE)]), T_ADELE))
        assert (await run_job(jc)).exit_code() == ExitCode.OK
        arch = _archive(emu, ADELE)
        for it in list(arch.items.values())[:3]:
            arch.update_item(it, dataclasses.replace(it.content, subject="changed"))
        rules = [{"kind": "drop_after", "calls": ["importItem"], "count": 1}]
        emu.faults.replace([FaultRule.parse(r) for r in rules])
        stats = await run_job(jc)
        (p,) = stats.as_dict()["pairs"]
        assert stats.exit_code() == ExitCode.OK and p["failed"] == 0, p
        assert emu.stats.faults["drop_after"] == 1
        assert p["changes"]["updated"] == 3
        assert _exact(emu) == (0, 0, 0, 0)


async def test_the_session_pool_follows_the_import_hosts_409_without_a_session_storm(
    tmp_path: Path,
) -> None:
    """Ten imports into an expanded folder whose sessions last three imports each: the first
    409 sends the folder to the auxiliary's session (and it stays there), each spent session
    is made anew once, every item lands once."""
    cfg = _expanded(base_config(), None, {"folders": ["/Inbox"], "session_uploads": 3})
    async with running(cfg) as (server, ep, _):
        emu = server.emulator
        tarch = _archive(emu, T_ADELE)
        src = _archive(emu, ADELE)
        jc = load_job(write_job(tmp_path, ep, [(ADELE, T_ADELE)]))
        inbox = tarch.folder_by_path("/Inbox").id
        async with clients(jc) as built:
            exported = await built.src.export_items(src.id, list(src.items)[:10])
            pool = ImportSessionPool(built.dst, tarch.id)
            for e in exported:
                assert e.data is not None and e.mailbox_id is None
                await pool.import_item(inbox, e.data)
        assert len(tarch.items) == 10 and duplicates(tarch.snapshot()) == 0
        assert tarch.auxiliary is not None
        assert pool.homes == {inbox: tarch.auxiliary.id} and pool.moved_folders == {inbox}
        # the main archive's session once; the auxiliary's: one per three imports
        assert pool.renewals == 1 + 4 and pool.moved == 4
        assert emu.stats.requests[("importItem", 409)] == 4
        assert emu.stats.requests[("importItem", 200)] == 10


def test_an_unknown_expanded_folder_is_a_configuration_error_before_anything_starts(
    tmp_path: Path,
) -> None:
    """The documentation's promise ("an unknown path is a configuration error"): in an
    emulator file and in a job, named where it is written, not an emulator that dies at
    start with an internal error."""
    cfg = _expanded(base_config(), {"folders": ["/Inbox", "/Nope"]}, None)
    with pytest.raises(
        EmulatorConfigError, match=r"users\[0\]\.archive\.expanded\.folders: no folder '/Nope'"
    ):
        parse_config(cfg)
    parse_config(_expanded(base_config(), {"folders": ["/Inbox", "/Archive/2019"]}, None))

    job = demo_job(tmp_path)
    text = job.read_text(encoding="utf-8").replace(
        'items = 600, sizes = "realistic" }',
        'items = 600, sizes = "realistic", archive = { expanded = { folders = ["/Nope"] } } }',
    )
    assert text != job.read_text(encoding="utf-8")
    job.write_text(text, encoding="utf-8")
    done = cli("run", job.name, "--no-progress", cwd=tmp_path, timeout=60)
    assert done.returncode == ExitCode.CONFIG, done.stderr[-2000:]
    assert (
        "emulator.mailboxes[3]: archive.expanded.folders: no folder '/Nope' in the archive"
        in done.stderr
    )
    assert not (tmp_path / ".copyengine").exists()  # nothing written


@pytest.mark.parametrize("base", ["ftp://x", "graph.example/beta", 7])
def test_a_redirect_base_that_is_not_an_http_url_is_a_configuration_error(base: Any) -> None:
    with pytest.raises(EmulatorConfigError, match=r"expanded\.redirect_base: an http\(s\) URL"):
        parse_config(_expanded(base_config(), {"redirect_base": base}, None))


async def test_the_log_says_each_session_made_on_a_409_once_as_the_report_counts(
    tmp_path: Path,
) -> None:
    """Review finding 10: several importers refused by one spent session made one new session,
    but the log said ``import_session.moved`` once per 409 answer (54 against the report's 9).
    Now once per session made; the pair's event and the report count the 409 answers too,
    as the emulator counted them, and each answer is a debug event."""
    from structlog.testing import capture_logs

    cfg = _expanded(base_config(), {"every": 2}, {"folders": ["/Inbox"], "session_uploads": 3})
    async with running(cfg) as (server, ep, _):
        emu = server.emulator
        jc = load_job(archive_pair(write_job(tmp_path, ep, [(ADELE, T_ADELE)]), T_ADELE))
        with capture_logs() as logs:
            stats = await run_job(jc)
        assert stats.exit_code() == ExitCode.OK
        (p,) = stats.as_dict()["pairs"]
        counts = p["archive_redirects"]
        answers = emu.stats.requests[("importItem", 409)]
        moved = [e for e in logs if e["event"] == "import_session.moved"]
        (pair_event,) = [e for e in logs if e["event"] == "pair.archive_redirects"]
        assert counts["sessions_renewed"] == len(moved) == pair_event["sessions_renewed"] > 1
        assert counts["answers_409"] == pair_event["answers_409"] == answers > len(moved)
        refused = [e for e in logs if e["event"] == "import_session.refused"]
        assert all(e["log_level"] == "debug" for e in refused) and len(refused) <= answers
        assert f"({answers} import request(s) answered 409, retried)" in " ".join(p["notes"])
