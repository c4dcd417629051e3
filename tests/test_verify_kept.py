"""``verify`` and the cutover's sign-off give one answer (review finding 9): a copy the
default ``[sync] deletions = "keep"`` keeps of an item deleted at the source is expected in
the target, so ``verify`` (with ``--content``, and plain ``verify`` where the state is) says
it kept, not extra, and exits 0 when the sign-off says complete. Against the emulator: the
source changed through its change API, then the two answers held against each other, for
both deletion policies, over seeded changes (adds, edits, soft and hard deletes, moves,
folders deleted), and for a copy moved in the target by someone else (both say wrong)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from copyengine.config import load_job
from copyengine.emulator.changes import apply
from copyengine.exitcodes import ExitCode
from copyengine.wiring import run_job, verify_content_job, verify_job
from tests.emu import base_config, q, running
from tests.jobs import archive_pair, with_archives, write_job
from tests.test_truth import _cli, _finish

pytestmark = pytest.mark.anyio
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
POLICY = '[sync]\ndeletions = "{}"\n'


async def _ops(emu: Any, upn: str, ops: list[dict[str, Any]]) -> None:
    mbx = emu.state.require_mailbox(upn).id
    r = await emu.src.control("POST", f"/mailboxes/{q(mbx)}/changes", {"ops": ops})
    assert r.status == 200, r.body


def _user_folders(upn: str, emu: Any) -> list[Any]:
    box = emu.state.require_mailbox(upn)
    return [
        f
        for f in box.walk()
        if f is not box.root and not f.hidden and f.type in ("IPF.Note", "") and f.parent
    ]


def _live(upn: str, emu: Any) -> list[Any]:
    box = emu.state.require_mailbox(upn)
    return sorted(
        (i for i in box.items.values() if not i.deleted and i.folder and not i.folder.hidden),
        key=lambda i: i.id,
    )


def _changes(emu: Any, rng: random.Random, n: int) -> list[dict[str, Any]]:
    """``n`` seeded source changes on adele: adds, edits, soft and hard deletes, moves, and one
    user folder deleted with what it holds (never a well-known folder)."""
    items = _live(ADELE, emu)
    folders = _user_folders(ADELE, emu)
    ops: list[dict[str, Any]] = []
    used: set[str] = set()
    for _ in range(n):
        kind = rng.choice(["add", "modify", "delete", "hard", "move"])
        if kind == "add":
            ops.append({"op": "add", "folder": rng.choice(folders).id, "count": 1})
            continue
        it = rng.choice([i for i in items if i.id not in used])
        used.add(it.id)
        if kind == "move":
            to = rng.choice([f for f in folders if f is not it.folder])
            ops.append({"op": "move", "id": it.id, "to": to.id})
        elif kind == "modify":
            ops.append({"op": "modify", "id": it.id})
        else:
            ops.append({"op": "delete", "id": it.id, "hard": kind == "hard"})
    leaves = [
        f
        for f in folders
        if not f.well_known
        and not f.children
        and all(i.folder is not f for i in items if i.id in used)
    ]
    if leaves:
        ops.append({"op": "deleteFolder", "id": rng.choice(leaves).id})
    return ops


async def _verify_both(cfg: Any) -> tuple[Any, Any]:
    (plain,) = await verify_job(cfg)
    (content,) = await verify_content_job(cfg)
    return plain, content


async def test_a_copy_kept_by_the_default_policy_is_kept_not_extra(
    emu: Any, tmp_path: Path
) -> None:
    """The review's case: a soft delete (and a hard one) under ``deletions = "keep"``; the
    pass says "kept", the sign-off complete, and ``verify`` exits 0 and says kept."""
    job = write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)])  # deletions = keep (the default)
    cfg = load_job(job)
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    inbox = [i.id for i in emu.state.require_mailbox(ADELE).well_known["inbox"].live_items()]
    await _ops(
        emu,
        ADELE,
        [
            {"op": "add", "folder": "inbox", "count": 2},
            {"op": "modify", "id": inbox[0]},
            {"op": "delete", "id": inbox[1]},
            {"op": "delete", "id": inbox[2], "hard": True},
            {"op": "move", "id": inbox[3], "to": "archive"},
        ],
    )
    stats = await run_job(cfg)
    assert stats.exit_code() == ExitCode.OK
    plain, content = await _verify_both(cfg)
    for check in (plain, content):
        assert check.ok, check.as_dict()
        assert len(check.verdict.kept) == 2 and check.as_dict()["kept"] == 2
    code, out = await _finish(_cli("verify", str(job), "--content"), 60)
    assert code == ExitCode.OK, out
    assert "2 kept by deletions = keep" in out and "extra" not in out, out
    code, out = await _finish(_cli("verify", str(job)), 60)
    assert code == ExitCode.OK and "2 kept by deletions = keep" in out, out
    report = tmp_path / "verify.json"
    code, out = await _finish(
        _cli("verify", str(job), "--content", "--json-output", str(report)), 60
    )
    (pair,) = json.loads(report.read_text())
    assert pair["ok"] and pair["kept"] == 2 and pair["extra"] == 0, pair
    stats = await run_job(cfg, cutover=True)
    assert stats.sign_off is not None and stats.sign_off["complete"], stats.sign_off
    assert stats.sign_off["pairs"][0]["kept"] == 2
    plain, content = await _verify_both(cfg)
    assert plain.ok and content.ok


async def test_without_the_state_an_extra_copy_is_told_it_may_be_kept(
    emu: Any, tmp_path: Path
) -> None:
    """Where no state is (another host), a kept copy cannot be told from someone else's item:
    still a mismatch, but the line says what it may be and how to tell."""
    job = write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)])
    cfg = load_job(job)
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    inbox = [i.id for i in emu.state.require_mailbox(ADELE).well_known["inbox"].live_items()]
    await _ops(emu, ADELE, [{"op": "delete", "id": inbox[0]}])
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    cfg.state_path.rename(tmp_path / "elsewhere.sqlite")
    code, out = await _finish(_cli("verify", str(job)), 60)
    assert code == ExitCode.VERIFY_MISMATCH, out
    assert "1 extra" in out and 'deletions = "keep"' in out and "state" in out, out


@pytest.mark.parametrize("policy", ["keep", "mirror"])
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_verify_and_the_sign_off_agree_over_seeded_changes(
    emu: Any, tmp_path: Path, policy: str, seed: int
) -> None:
    """Seeded source changes under each policy, a delta pass, then the cutover: both
    ``verify`` forms and the sign-off say complete, and say the same number kept."""
    rng = random.Random(seed)
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)], extra=POLICY.format(policy)))
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    ops = _changes(emu, rng, 8)
    await _ops(emu, ADELE, ops)
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    before = await _verify_both(cfg)
    stats = await run_job(cfg, cutover=True)
    so = stats.sign_off
    assert so is not None
    (entry,) = so["pairs"]
    after = await _verify_both(cfg)
    deleted = sum(o["op"] in ("delete", "deleteFolder") for o in ops)
    for check in (*before, *after):
        assert check.ok == so["complete"] is True, (ops, check.as_dict(), entry)
        assert len(check.verdict.kept) == entry["kept"], (ops, check.as_dict(), entry)
    if policy == "mirror":
        assert entry["kept"] == 0 and entry["extra_in_target"] == 0
    else:
        assert entry["kept"] == entry["extra_in_target"] and (entry["kept"] > 0) == (deleted > 0)


async def test_a_copy_moved_in_the_target_is_wrong_for_both(emu: Any, tmp_path: Path) -> None:
    """Someone moves a copy in the target: ``verify`` says misplaced, and the cutover (which
    puts it back) signs off complete, after which ``verify`` agrees again."""
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)]))
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    box = emu.state.require_mailbox(T_ADELE)
    copy = next(iter(box.well_known["inbox"].live_items()))
    await _ops(emu, T_ADELE, [{"op": "move", "id": copy.id, "to": "archive"}])
    plain, content = await _verify_both(cfg)
    for check in (plain, content):
        assert not check.ok and len(check.verdict.misplaced) == 1 and not check.verdict.kept
    stats = await run_job(cfg, cutover=True)
    so = stats.sign_off
    assert so is not None
    plain, content = await _verify_both(cfg)
    for check in (plain, content):
        assert check.ok == so["complete"], (check.as_dict(), so)


async def test_an_archive_copy_kept_by_the_policy_is_kept_too(tmp_path: Path) -> None:
    """The review's archive half (dora's ``[archive]/Inbox``): an archive item soft-deleted
    and one moved at the source under ``keep``; verify and the sign-off agree."""
    async with running(with_archives(base_config(), 40)) as (server, ep, _):
        emu = server.emulator
        job = archive_pair(write_job(tmp_path, ep, [(ADELE, T_ADELE)]), T_ADELE)
        cfg = load_job(job)
        assert (await run_job(cfg)).exit_code() == ExitCode.OK
        arch = emu.require_mailbox(emu.require_mailbox(ADELE).archive_id or "")
        live = [i for i in arch.items.values() if not i.deleted and i.folder is not None]
        others = [f for f in arch.walk() if f is not arch.root and not f.hidden and f.parent]
        to = next(f for f in others if f is not live[1].folder and f.type in ("IPF.Note", ""))
        apply(arch, {"op": "delete", "id": live[0].id}, random.Random(0))
        apply(arch, {"op": "move", "id": live[1].id, "to": to.id}, random.Random(0))
        assert (await run_job(cfg)).exit_code() == ExitCode.OK
        for check in await _verify_both(cfg):
            assert check.ok and len(check.verdict.kept) == 1, check.as_dict()
            assert check.verdict.kept[0]["folder"].startswith("[archive]/")
        stats = await run_job(cfg, cutover=True)
        assert stats.sign_off is not None and stats.sign_off["complete"]
        assert stats.sign_off["pairs"][0]["kept"] == 1
        code, out = await _finish(_cli("verify", str(job), "--content"), 60)
        assert code == ExitCode.OK and "1 kept by deletions = keep" in out, out


async def test_a_state_that_cannot_be_read_leaves_plain_verify_presence_only(
    emu: Any, tmp_path: Path
) -> None:
    """Plain verify needs no state: one it cannot read is said (``verify.state_unread``)
    and the check goes on without it."""
    job = write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)])
    cfg = load_job(job)
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    cfg.state_path.write_bytes(b"not a database at all" * 100)
    code, out = await _finish(_cli("verify", str(job)), 60)
    assert code == ExitCode.OK and "(present)" in out and "verify.state_unread" in out, out
    assert "Traceback" not in out
