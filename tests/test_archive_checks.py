"""A pair's archive is read by every check, not only by the copy (issue 23, item 1): the
sign-off the job is handed and ``verify`` find an archive copy missing an item and say it is
the archive's; ``plan`` counts the archive's folders and items. The job is handed its
sign-off by ``wiring`` (the pipeline never imports ``verify``): a cutover calls the callable
it was given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from copyengine.config import JobConfig, Pair, load_job
from copyengine.console.signoff import sign_off_problems
from copyengine.exitcodes import ExitCode
from copyengine.forecast import plan_pair
from copyengine.graph import Clients
from copyengine.pipeline.job import run_pairs
from copyengine.report import JobStats
from copyengine.state import Store
from copyengine.survey import ARCHIVE_LABEL
from copyengine.verify import PairCheck, pair_entry, sign_off
from copyengine.wiring import clients, run_job, store, verify_job
from tests.emu import base_config, running
from tests.jobs import archive_pair, with_archives, write_job
from tests.test_truth import _cli, _finish

pytestmark = pytest.mark.anyio
BIANCA, T_BIANCA = "bianca@contoso.example", "bianca@fabrikam.example"
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
MIRROR = '[sync]\ndeletions = "mirror"\n'
ARCHIVED = 25  # items in the source archive (``with_archives``)


def _archive_of(emu: Any, upn: str) -> Any:
    return emu.require_mailbox(emu.require_mailbox(upn).archive_id or "")


async def test_an_archive_copy_missing_an_item_is_not_signed_off_and_verify_says_so(
    tmp_path: Path,
) -> None:
    async with running(with_archives(base_config(), ARCHIVED)) as (server, ep, _):
        job = archive_pair(write_job(tmp_path, ep, [(ADELE, T_ADELE)], extra=MIRROR), T_ADELE)
        cfg = load_job(job)
        assert (await run_job(cfg)).exit_code() == ExitCode.OK
        emu = server.emulator
        tarch = _archive_of(emu, T_ADELE)
        gone = next(i for i in tarch.items.values() if not i.deleted and i.folder is not None)
        where = gone.folder.path()
        tarch.delete_item(gone)

        # the sign-off wiring hands the job, taken on the target as it is (no repair pass)
        async with clients(cfg) as built, store(cfg) as st:
            so = await sign_off(cfg, built, st, cfg.pairs, JobStats())
        assert not so["complete"]
        (p,) = so["pairs"]
        assert p["archive"] is True and not p["complete"] and p["error"] is None
        assert p["unaccounted"] == 1 and p["failed"] == 0 and p["in_target"] == p["selected"] - 1
        (row,) = p["unaccounted_items"]
        assert row["folder"] == ARCHIVE_LABEL + where  # named as the archive's folder
        assert row["state"] == "done"  # the state says copied: the target lost it
        ((heading, lines),) = sign_off_problems(p)
        assert heading.startswith("1 ") and lines[0].startswith(ARCHIVE_LABEL + where)

        # verify reports it, as the archive's, in code and on the command line
        (check,) = await verify_job(cfg)
        assert not check.ok and len(check.verdict.missing) == 1
        bad = [f for f in check.folders if not f.ok]
        assert [f.source_path for f in bad] == [ARCHIVE_LABEL + where]
        assert bad[0].missing == [row["id"]]
        code, out = await _finish(_cli("verify", str(job)), 60)
        assert code == ExitCode.VERIFY_MISMATCH, out
        assert f"{ARCHIVE_LABEL}{where}: 1 missing" in out, out


async def test_the_cutover_calls_the_sign_off_it_is_handed(tmp_path: Path) -> None:
    async with running(base_config()) as (_, ep, _session):
        cfg = load_job(write_job(tmp_path, ep, [(ADELE, T_ADELE)]))
        calls: list[tuple[Pair, ...]] = []
        entries = [pair_entry(p, PairCheck(p.source, p.target)) for p in cfg.pairs]

        async def signed(
            c: JobConfig, built: Clients, st: Store, pairs: tuple[Pair, ...], stats: JobStats
        ) -> dict[str, Any]:
            calls.append(pairs)
            return {"changes_captured_until": "then", "complete": True, "pairs": entries}

        async with clients(cfg) as built:
            stats = await run_pairs(cfg, built, store(cfg), cutover=True, sign_off=signed)
        assert calls == [cfg.pairs]  # once: nothing to repair
        assert stats.sign_off is not None and stats.sign_off["pairs"] == entries
        assert stats.exit_code() == ExitCode.OK
        # without a sign-off a cutover cannot end: a programming error, never a silent pass
        async with clients(cfg) as built:
            stats = await run_pairs(cfg, built, store(cfg), cutover=True)
        assert stats.sign_off is None and stats.fatal and stats.exit_code() != ExitCode.OK


async def test_plan_counts_a_pairs_archive(tmp_path: Path) -> None:
    async with running(with_archives(base_config(), ARCHIVED)) as (server, ep, _):
        job = archive_pair(write_job(tmp_path, ep, [(ADELE, T_ADELE)]), T_ADELE)
        cfg = load_job(job)
        (pair,) = cfg.pairs
        src = _archive_of(server.emulator, ADELE).snapshot()

        async with clients(cfg) as built:
            planned = await plan_pair(built.src, built.dst, pair, None, cfg.limits)
        assert planned.error is None
        archive = [f for f in planned.folders if f.source_path.startswith(ARCHIVE_LABEL)]
        primary = [f for f in planned.folders if not f.source_path.startswith(ARCHIVE_LABEL)]
        assert archive and primary
        assert all(f.target_path.startswith(ARCHIVE_LABEL) for f in archive)
        assert f"{ARCHIVE_LABEL}/Inbox" in {f.source_path for f in archive}
        # every archive item in a planned folder is counted; the empty target archive has
        # none of them: every one the item filter keeps is to be copied
        paths = {f.source_path.removeprefix(ARCHIVE_LABEL) for f in archive}
        rows = [r for r in src["items"] if r["folderPath"] in paths]
        assert sum(f.items for f in archive) == len(rows) == ARCHIVED
        chosen = len(rows) - sum(sum(f.skipped.values()) for f in archive)
        assert sum(f.copy for f in archive) == chosen and sum(f.present for f in archive) == 0

        assert (await run_job(cfg)).exit_code() == ExitCode.OK
        async with clients(cfg) as built:
            listed = await plan_pair(built.src, built.dst, pair, None, cfg.limits)
            async with store(cfg, exclusive=False) as st:
                delta = await plan_pair(built.src, built.dst, pair, st, cfg.limits)
        # without the state every folder is listed in full: the copies are found in the
        # target archive; with it, the archive's folders are read by delta (nothing new)
        archive = [f for f in listed.folders if f.source_path.startswith(ARCHIVE_LABEL)]
        assert sum(f.copy for f in archive) == 0 and sum(f.present for f in archive) == chosen
        archive = [f for f in delta.folders if f.source_path.startswith(ARCHIVE_LABEL)]
        # (a folder empty at the pass was not read, so has no link: listed, nothing in it)
        assert {f.mode for f in archive} <= {"delta", "full"}
        assert any(f.mode == "delta" for f in archive)
        assert all(f.items == 0 for f in archive if f.mode != "delta")
        assert sum(f.copy for f in archive) == 0


async def test_primary_still_copied_when_the_target_has_no_archive(tmp_path: Path) -> None:
    """A pair asking for an archive the target lacks copies its primary mailbox, then fails
    with MailboxNotFound (found by the review: the reading room had refused it first)."""
    async with running(base_config()) as (server, ep, _session):
        job = write_job(tmp_path, ep, [(BIANCA, T_BIANCA)])
        job.write_text(
            job.read_text().replace(
                f'target = "{T_BIANCA}"\n', f'target = "{T_BIANCA}"\narchive = true\n'
            )
        )
        await run_job(load_job(job))
        report = json.loads((tmp_path / "report.json").read_text())
        p = report["pairs"][0]
        assert p["status"] == "failed" and "no in-place archive" in p["error"]
        assert p.get("error_code") == "MailboxNotFound"  # the stable name reports carry
        src = server.emulator.require_mailbox(BIANCA)
        dst = server.emulator.require_mailbox(T_BIANCA)
        # the primary mailbox is copied before the archive is refused
        assert len(dst.items) >= len(src.items) > 0
