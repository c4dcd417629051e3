"""The randomized history checker's fast tier (issue 22): the oracle itself on hand-made
snapshots, one seed run twice gives the same history, a handful of seeded histories in both
deletion modes (two with a pass killed by SIGKILL), and the minimal reproductions the soak
(``python -m benchmarks soak passes``) found (benchmarks/results/soak-passes-findings.md).
Everything here passes at 18ea172; a test for something the engine gets wrong is marked
``_xf(what the oracle found)`` (``xfail(strict=False)``) until it is fixed.
A failing seed is read with ``python -m tests.histories SEED --deletions MODE``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.histories import (
    DST,
    Options,
    PassRecord,
    live_keys,
    named,
    oracle,
    removed_live,
    replay,
    run_history,
    signoff_findings,
    wrong,
)
from tests.modes import by_mode, modes

pytestmark = pytest.mark.anyio
ALL_NEW = frozenset({"archive", "tmove"})


# -- the oracle ----------------------------------------------------------------------------------
def _snap(items: list[tuple[str, str, str]], folders: list[str]) -> dict[str, Any]:
    return {
        "folders": [{"path": p, "type": "IPF.Note", "id": p} for p in folders],
        "items": [
            {"folderPath": f, "searchKey": k, "digest": d, "size": 1, "type": "IPM.Note"}
            for f, k, d in items
        ],
    }


FOLDERS = ["/Inbox", "/Inbox/A", "/Archive", "/Recoverable Items", "/Recoverable Items/Deletions"]


def test_the_oracle_finds_each_kind() -> None:
    src = _snap(
        [
            ("/Inbox", "k1", "d1"),
            ("/Inbox/A", "k2", "d2"),
            ("/Archive", "k3", "d3"),
            ("/Inbox", "k4", "d4"),
            ("/Recoverable Items/Deletions", "k6", "d6"),  # soft-deleted: not selected
        ],
        FOLDERS,
    )
    same = _snap(
        [
            r
            for r in [
                ("/Inbox", "k1", "d1"),
                ("/Inbox/A", "k2", "d2"),
                ("/Archive", "k3", "d3"),
                ("/Inbox", "k4", "d4"),
            ]
        ],
        FOLDERS,
    )
    assert wrong(oracle(src, same, "mirror")) == []
    dst = _snap(
        [
            ("/Inbox", "k1", "d1"),
            ("/Inbox", "k1", "d1"),  # duplicated
            ("/Inbox", "k2", "d2"),  # misplaced
            ("/Archive", "k3", "old"),  # stale
            # k4 lost
            ("/Inbox", "k6", "d6"),  # soft-deleted at the source, still in the target
            ("/Old", "k7", "d7"),  # gone at the source
        ],
        [*FOLDERS, "/Old", "/Empty"],
    )
    got = oracle(src, dst, "mirror")
    assert {k: got[k] for k in wrong(got)} == {
        "lost": 1,
        "duplicated": 1,
        "misplaced": 1,
        "stale": 1,
        "extra_items": 2,
        "leftover_folders": 2,
    }
    keep = oracle(src, dst, "keep")  # kept deletions, and the folder that holds one, allowed
    assert {k: keep[k] for k in wrong(keep)} == {
        "lost": 1,
        "duplicated": 1,
        "misplaced": 1,
        "stale": 1,
        "leftover_folders": 1,  # /Empty: an extra folder with nothing kept in it
    }
    assert keep["kept"] == 2
    # a copy edited in the target and kept (by design) is not counted as stale
    assert oracle(src, dst, "keep", {"k3"})["stale"] == 0
    # a case-only rename not carried over has kinds of its own
    src_case = _snap([("/Inbox/A", "k2", "d2")], ["/Inbox", "/Inbox/A"])
    dst_case = _snap([("/Inbox/a", "k2", "d2")], ["/Inbox", "/Inbox/a"])
    got = oracle(src_case, dst_case, "mirror")
    assert wrong(got) == ["misplaced_case", "leftover_case", "missing_case"]


def test_the_sign_off_is_held_to_the_ground_truth_after_every_pass() -> None:
    """Complete only when the oracle finds nothing; not complete, it names something, and
    only kinds the oracle finds (a pass checked or not: the property holds for every one)."""
    exact = oracle(
        _snap([("/Inbox", "k1", "d")], ["/Inbox"]),
        _snap([("/Inbox", "k1", "d")], ["/Inbox"]),
        "mirror",
    )
    extra = oracle(
        _snap([("/Inbox", "k1", "d")], ["/Inbox"]),
        _snap([("/Inbox", "k1", "d"), ("/Deleted Items", "k2", "d")], ["/Inbox"]),
        "mirror",
    )
    assert wrong(extra) == ["extra_items"] and not wrong(exact)
    pending = {"pairs": [{"pending_deletions": 1, "complete": False}]}
    stale_unsettled = {"pairs": [{"stale": 1, "stale_items": [{"reason": "x did not complete"}]}]}
    assert named(pending) == ["pending_deletions"]
    assert named(stale_unsettled) == ["stale_unsettled"]
    assert signoff_findings(True, [], extra) == ["signoff_complete_but_wrong"]
    assert signoff_findings(True, [], exact) == []
    assert signoff_findings(False, ["pending_deletions"], extra) == []
    assert signoff_findings(False, [], extra) == ["signoff_incomplete_names_nothing"]
    assert signoff_findings(False, ["misplaced"], extra) == ["signoff_names_misplaced_not_wrong"]
    assert signoff_findings(False, ["stale_unsettled"], exact) == []
    assert signoff_findings(None, [], extra) == []  # no sign-off taken (a refused run)
    # a folder moved at the source, the pass killed after it copied the item again where the
    # folder now is and before it moved the target's folder (soak seed 2120 keep): the
    # sign-off names the folder recorded at its old place (moved_folders), the oracle finds
    # a target folder not at the source and two copies
    half_moved = oracle(
        _snap([("/Sent Items/tmp", "k1", "d")], ["/Sent Items/tmp"]),
        _snap(
            [("/Sent Items/tmp", "k1", "d"), ("/Outbox/tmp", "k1", "d")],
            ["/Sent Items/tmp", "/Outbox/tmp"],
        ),
        "keep",
    )
    assert half_moved["folders_not_at_source"] and not half_moved["misplaced"]
    assert signoff_findings(False, ["moved_folders", "duplicated"], half_moved) == []
    # unchecked passes are held to it too, and a cutover's exit code to its sign-off
    rec = PassRecord(1, "drift-delta", 0, 0.0, False, extra, None, signed=True)
    assert rec.honesty() == ["signoff_complete_but_wrong"]
    rec = PassRecord(
        2, "cutover", 0, 0.0, True, extra, False, signed=False, said=["pending_deletions"]
    )
    assert rec.honesty() == ["exit_0_with_signoff_incomplete"]


def test_a_copy_removed_while_its_item_was_live_is_a_failure_of_any_pass() -> None:
    """A copy a pass removed (the emulator's record of Graph removals) whose item was live at
    the source at both ends of the pass and has no copy left: counted on every pass, checked
    or not (a churn pass, whose end state is excused, included)."""

    def gone(key: str, path: str = "/Inbox") -> dict[str, Any]:
        return {"searchKey": key, "folderPath": path, "call": "deleteItem", "disposal": "x"}

    src = _snap([("/Inbox", "live", "d"), ("/Recoverable Items/Deletions", "soft", "d")], FOLDERS)
    assert live_keys(src) == {"live"}  # soft-deleted items are not live
    before = {"live", "moved", "deleted", "new"}
    after = {"live", "moved", "new"}
    removals = [
        gone("live"),  # live throughout, no copy left: the failure
        gone("moved"),  # a move followed: the old copy removed, the new one there
        gone("deleted"),  # deleted at the source during the pass: mirrored
        gone("late", "/Archive"),  # created during the pass (not live when it began)
    ]
    assert removed_live(removals, before, after | {"late"}, {"moved"}) == [
        "/Inbox live (deleteItem x)"
    ]
    assert removed_live([], before, after, set()) == []
    rec = PassRecord(1, "churn", 0, 0.0, False, {}, live_removed=["/Inbox live"])
    assert rec.every_pass() == ["removed_live"] and "REMOVED_LIVE" in rec.line()
    assert rec.honesty() == []  # the sign-off's honesty is another matter


# -- the generator -------------------------------------------------------------------------------
@pytest.mark.slow
async def test_one_seed_makes_one_history(tmp_path: Path) -> None:
    """Without churn or a kill (timing), a seed gives the same ops and the same counts."""
    # the twelfth stream left out: which call a quirk fires at is timing
    opts = Options(
        kill=False, churn=False, rounds=(3, 3), exclude=frozenset({"quirk", "stack", "rules"})
    )
    a = await run_history(11, "mirror", tmp_path / "a", opts)
    b = await run_history(11, "mirror", tmp_path / "b", opts)
    assert a.error is None, a.error
    assert a.ops == b.ops and len(a.ops) > 5
    assert [p.counts for p in a.passes] == [p.counts for p in b.passes]
    assert a.passes[0].kind == "first" and a.passes[-1].kind == "cutover"


# -- seeded histories ------------------------------------------------------------------------------
# The fast tier (the default run) keeps one pinned whole history, 5 mirror (the archive pairs'
# stream, target moves, a kill); every other seed (1508's moved copy, the harness's own 9119
# and 9406 among them) and the other whole histories of this file (the streams' own tests,
# 517, 15024, 9612) run with ``pytest -m slow`` (``.ci/run`` runs both). The small
# deterministic tests of the seeds' defects, in the default run, in this file or beside it: 2 keep (da44e8f's five: ``test_minimal_reproduction``'s da44e8f
# cases), 6 keep (``test_a_copy_moved_into_a_user_made_subfolder_of_a_folder_that_goes_is_
# kept``), 1703 mirror (``test_an_item_moved_during_a_pass_is_moved[a-second-move-while-
# reading-again]`` and the ``_without_delta_`` cases), 2305 mirror (``..._without_delta_is_
# moved[new-item-into-a-folder-listed-before]``, ``..._is_moved[full-pass]``), 6001 keep
# (``test_a_folder_deleted_at_the_source_during_a_pass_goes_at_the_next``,
# ``tests/test_folder_gone.py``), 6006 mirror (``test_a_target_folder_deleted_during_a_pass_
# is_made_again_in_that_pass[full-listItems]``)
SLOW = pytest.mark.slow


def _xf(reason: str) -> Any:
    return pytest.mark.xfail(strict=False, reason=f"issue 22: {reason}")


HISTORIES = [
    # (seed, deletions, kill). All five failed at da44e8f's engine (leftover folders, stale
    # edits after full listings, items lost to a reused name, duplicates after the kill,
    # case-only renames lost; see benchmarks/results/soak-passes-da44e8f.md); they pass
    # since 3432879.
    pytest.param(1, "mirror", False, id="1-mirror", marks=SLOW),
    pytest.param(2, "keep", True, id="2-keep-killed", marks=SLOW),
    pytest.param(10, "mirror", False, id="10-mirror", marks=SLOW),
    pytest.param(10, "keep", False, id="10-keep", marks=SLOW),
    pytest.param(3, "mirror", True, id="3-mirror-killed", marks=SLOW),
    # archive pairs (both archives auto-expanding) with target moves, from the seed's second
    # stream; the first five have target moves too
    pytest.param(5, "mirror", True, id="5-mirror-archive-killed"),
    pytest.param(28, "keep", False, id="28-keep-archive", marks=SLOW),
    # an item moved during a pass, after the folder listing and before the item rounds (the
    # seed's third stream): at r2 /Calendar -> /Outbox, which the listing counted empty. With
    # the empty-folder skip of review 2 (finding 1) put back, the full pass soft-deletes the
    # copy (removed_live) and the item is lost (``python -m tests.histories 907 --no-kill``)
    pytest.param(907, "mirror", False, id="907-mirror-move-during-the-pass", marks=SLOW),
    # r2 (drift-delta): the target's user moved a copy from /Archive to /Inbox (a new id),
    # /Inbox was listed in full (its delta link expired), and the moved copy, claimed by no
    # source item there, had the key of an item whose record still named its old id: it
    # was hard-deleted as a second copy and the item had none (removed_live) until the full
    # pass. A spare is a second copy only where the item's recorded copy is found
    # (``pipeline.spares``). Deterministic up to r3's kill (without the kill the seed's ops
    # differ from r1 on).
    pytest.param(
        1508, "keep", True, id="1508-keep-killed-moved-copy-not-a-second-copy", marks=SLOW
    ),
]
# the seed's fourth stream (``_fourth``) left out above, so that those histories are what
# they were; these two have it. 6 keep: at r1, r3 and r5 a folder the target's user made
# under a folder deleted at the source, a moved copy of a live item in it (swept with its
# copy made back: duplicated without ``MailboxPass._held``). 13 mirror, ``delta = false``:
# an item moved during r3's pass when its folder's listing arrives, /Calendar -> /Outbox
# listed before (taken for a deletion, removed_live and lost, without ``reread.Relisting``).
FOURTH = frozenset({"usersub", "nodelta"})
HISTORIES += [
    pytest.param(6, "keep", False, id="6-keep-user-subfolders", marks=SLOW),
    pytest.param(13, "mirror", False, id="13-mirror-delta-off", marks=SLOW),
    # delta = false. r3: an item moved before the pass (its departure seen early, at /Sent
    # Items), then again during it into /Drafts/tmp, read after that departure was seen: only
    # the folders read before the departure were read again, so it was taken for a deletion
    # (removed_live, lost). The first reading again takes every folder (``reread``).
    pytest.param(1703, "mirror", True, id="1703-mirror-killed-delta-off-moved-twice", marks=SLOW),
    # delta = false, found by the soak of 1801-1820 (the same on 2283b1f, where the delta-off
    # histories came in): an item added before the pass (no record yet) moved during it, at
    # its own folder's listing, into a folder listed before (/Drafts, /Outbox, which the walk
    # found empty) had no copy after that pass (lost): no departure pointed at the folder it
    # went to. Folders whose count changed after their listing are listed again
    # (``reread._changed_since_listed``; ``new-item-into-a-folder-listed-before`` below).
    pytest.param(1802, "mirror", True, id="1802-mirror-delta-off-moved-into-empty", marks=SLOW),
    pytest.param(1807, "keep", True, id="1807-keep-delta-off-moved-into-empty", marks=SLOW),
]
WITH_FOURTH = {(6, "keep"), (13, "mirror"), (1703, "mirror"), (1802, "mirror"), (1807, "keep")}
# the fifth stream (``_fifth``: delta on, an item moved at its own folder's item round) left
# out of all of them, so that they are what they were
FIFTH = frozenset({"deltamove"})
# ...but in these, found by the soak of 2301-2330 with every stream: r5, a --full pass, an
# item added before the pass in a new folder moved at its folder's item round into /Drafts
# (read before), one created where it left: the count of its folder the walk's, no removal
# told, and it had no copy after the pass (lost, signed incomplete). Every folder read from
# nothing is counted again after the pass's rounds (``reread._changed_since_listed``).
HISTORIES += [
    pytest.param(
        2305, "mirror", True, id="2305-mirror-killed-full-pass-moved-behind-a-create", marks=SLOW
    )
]
WITH_EVERY_STREAM = {(2305, "mirror")}
# the sixth stream (``_sixth``: a folder deleted or moved at the source during a pass) left
# out of all of the above, so that they are what they were; these have every stream. Found
# by the soak of 6001-6040: r2 (6001 keep) and r6 (6007 mirror), a folder deleted at its own
# item round failed the pair (exit 5, "itemDelta 404"; ``Producer._round``); 6007 mirror
# r2, a folder moved before the pass (a new target folder made) and deleted at its item
# round, its items never re-homed: the next pass deleted the new target folder with their
# records and left their copies in the old one, kept as items nobody copied (extra items,
# a leftover folder at every later pass; ``MailboxPass._departures``).
SIXTH = frozenset({"midfolder"})
HISTORIES += [
    pytest.param(
        6001, "keep", True, id="6001-keep-killed-folder-deleted-during-a-pass", marks=SLOW
    ),
    pytest.param(
        6007, "mirror", True, id="6007-mirror-killed-moved-folder-deleted-during-a-pass", marks=SLOW
    ),
]
WITH_EVERY_STREAM |= {(6001, "keep"), (6007, "mirror")}
# the seventh (``_seventh``: a target folder deleted by the target's user during a pass) left
# out of all of the above, so that they are what they were
SEVENTH = frozenset({"midtarget"})
# ...but in this one, found by the soak of 6001-6012 with the seventh stream: r4, the target
# folder of /Contacts/Suppliers deleted by the target's user before the pass (a full one)
# listed it: the pair failed (exit 5, "listItems 404"; ``Producer._target_index``)
HISTORIES += [
    pytest.param(6006, "mirror", True, id="6006-mirror-killed-target-folder-gone", marks=SLOW)
]
WITH_EVERY_STREAM |= {(6006, "mirror")}
# the eighth (``_eighth``: a folder deleted as the sign-off lists it, a transient target 404,
# the kill timed between a folder's creation and its record) left out of all of the above
EIGHTH = frozenset({"signgone", "t404", "killmake"})
# ...but in this one (its r3 sign-off with a folder deleted as it lists it: issue 26's soak
# defect 1, with its own test), found by a run of 9101-9120 with the eighth stream's events made likelier: at r3 a
# trigger of the sixth stream, timed to a new folder's item round that never came (the
# folder counted empty, skipped), fired in the sign-off after the pass (the folder moved
# after the sign-off's walk: complete, said of a target that then differed). The harness
# now clears the pass's triggers before its sign-off; on main, `python -m tests.histories
# 9119 --deletions keep` fails the same way
HISTORIES += [
    pytest.param(
        9119, "keep", True, id="9119-keep-a-pass-trigger-left-for-its-sign-off", marks=SLOW
    ),
]
WITH_EVERY_STREAM |= {(9119, "keep")}
# the ninth (``_ninth``: a transient 404 anywhere, either side, any pass or a sign-off) left
# out of all of the above, so that they are what they were
NINTH = frozenset({"n404"})
# ...but in this one, found by the soak of 9401-9430 with every stream: r1, the re-run after a
# pass killed between a folder's creation and its record, a transient 404 from the target's
# getFolder as the sweep of a moved folder's old copy asked whether it was empty: the old
# copy stayed for the next pass (leftover_folders after the checked re-run;
# ``MailboxPass._folder_now``)
HISTORIES += [
    pytest.param(
        9404, "keep", True, id="9404-keep-killed-a-404-as-an-old-folder-is-swept", marks=SLOW
    ),
    # the same soak, both modes (a harness defect): r1, the eighth stream's target listing
    # 404 and the ninth's, twice, at the same listing: a 404 that stays (three, raised: exit
    # 5), not a transient one; the ninth's target 404 is left out when the eighth's is armed
    pytest.param(
        9406, "mirror", True, id="9406-mirror-no-404-that-stays-made-of-two-streams", marks=SLOW
    ),
]
WITH_EVERY_STREAM |= {(9404, "keep"), (9406, "mirror")}
# the tenth (``_tenth``: compound owner ops, target edits, a 429 storm with an import's answer
# lost, the cutover killed) left out of all of the above, so that they are what they were
TENTH = frozenset({"compound", "storm", "cutkill"})
# the eleventh stream's events, left out where a seed's history before them is the test's
ELEVENTH = frozenset({"twin", "pairgone", "restore", "refill", "midexport"})
# the twelfth (``_twelfth``: the service's documented quirks armed for a pass) likewise
TWELFTH = frozenset({"quirk"})
# the thirteenth (``_thirteenth``: kinds of event stacked in one round) likewise
THIRTEENTH = frozenset({"stack"})
# and the operator's changes to the job between passes (``_rules``), so that every seed
# pinned before that stream is the history it was
RULES = frozenset({"rules"})


@pytest.mark.parametrize(("seed", "deletions", "kill"), HISTORIES)
async def test_history(tmp_path: Path, seed: int, deletions: str, kill: bool) -> None:
    ex = SIXTH | FIFTH | (frozenset() if (seed, deletions) in WITH_FOURTH else FOURTH)
    if (seed, deletions) in WITH_EVERY_STREAM:
        ex = frozenset() if seed >= 6000 else SIXTH
    if (seed, deletions) not in {
        (6006, "mirror"),
        (9119, "keep"),
        (9404, "keep"),
        (9406, "mirror"),
    }:
        ex |= SEVENTH
    ex |= TENTH | ELEVENTH | TWELFTH | THIRTEENTH | RULES
    if seed < 9400:
        ex |= NINTH
    if seed < 7000:
        ex |= EIGHTH
    elif (seed, deletions) == (9119, "keep"):  # the eighth stream's events happened
        h = await run_history(seed, deletions, tmp_path, Options(kill=kill, exclude=ex))
        assert any("SIGNGONE" in o for o in h.ops), h.text()
        assert h.error is None and not h.failures(), h.text()
        return
    h = await run_history(seed, deletions, tmp_path, Options(kill=kill, exclude=ex))
    if (seed, deletions) in WITH_FOURTH:  # the events it is here for happened
        assert any("USERSUB" in o for o in h.ops) or not h.delta, h.text()
    if seed >= 9400:  # the ninth stream's 404s happened
        assert any(" N404 fired 1 " in o for o in h.ops), h.text()
    assert h.error is None, h.text()
    assert not h.failures(), h.text()
    if h.archive is not None:  # the archives' events happened, and were checked
        assert h.redirects.get("redirected", 0) > 0, h.text()
        assert h.redirects.get("sessions_renewed", 0) > 0, h.text()
        assert any(" ARCHIVE " in o for o in h.ops), h.text()


@SLOW
async def test_the_eleventh_stream_twin_pair_restores_refills_changes_at_export(
    tmp_path: Path,
) -> None:
    """Soak seed 11002 keep, no kill (its timing) nor the tenth stream: the same source copied
    to a second target, that pair out of the job at r4 and back at r5, soft-deleted items
    restored, folders emptied and refilled, items changed as their export arrives; every
    checked pass exact for both targets, every sign-off honest."""
    h = await run_history(
        11002, "keep", tmp_path, Options(kill=False, exclude=TENTH | TWELFTH | THIRTEENTH | RULES)
    )
    assert h.error is None and not h.failures(), h.text()
    assert h.twin, h.text()
    for event in ("PAIRGONE", "PAIRBACK", "RESTORE", "REFILL", "MIDEXPORT"):
        assert any(event in o for o in h.ops), (event, h.text())


def test_the_twelfth_streams_quirks_are_rules_the_emulator_fires() -> None:
    """Every quirk the twelfth stream arms is a fault rule the emulator takes and can fire
    on each of its calls (``faults.APPLIES_TO``), at the source's or the target's mailbox."""
    import random

    from copyengine.emulator.faults import APPLIES_TO, FaultRule
    from tests.histories import DST, QUIRKS, SRC, quirks

    for kind, calls, _side, _most, _what in QUIRKS:
        assert set(calls) <= APPLIES_TO.get(kind, set(calls)), (kind, calls)
    said: list[str] = []
    gen = type("G", (), {"emit": lambda self, t: said.append(t)})()
    kinds = set()
    for seed in range(60):
        for rule in quirks(random.Random(seed), gen):  # type: ignore[arg-type]
            FaultRule.parse(rule)
            assert rule["mailbox"] in (SRC, DST) and rule["count"] in (1, 2)
            kinds.add((rule["kind"], tuple(rule["calls"])))
    assert len(kinds) == len(QUIRKS) and all(t.startswith("QUIRK ") for t in said)


@SLOW
async def test_history_with_service_quirks_every_pass(tmp_path: Path) -> None:
    """The twelfth stream made certain (``Options(p_quirk=1.0)``), seed 14002 mirror, no kill
    nor churn (timing), without the tenth and eleventh streams: every pass, the first
    included, under one to three of the contract's quirks (a folder's creation dropped, made
    with its answer lost, deleted with its answer lost; imports dropped; exports omitting an
    item; 504s); each absorbed within its pass: every checked pass exact, every sign-off
    honest."""
    h = await run_history(
        14002,
        "mirror",
        tmp_path,
        Options(
            kill=False, churn=False, p_quirk=1.0, exclude=TENTH | ELEVENTH | THIRTEENTH | RULES
        ),
    )
    fired = [o for o in h.ops if " QUIRK fired " in o and " QUIRK fired 0 " not in o]
    assert len(fired) >= 6, h.text()
    assert any("drop_after createFolder" in o for o in fired), h.text()
    assert any("drop_after deleteFolder" in o for o in fired), h.text()
    assert h.error is None and not h.failures(), h.text()


def test_the_thirteenth_stream_stacks_two_to_four_kinds_in_a_round() -> None:
    """``stacked``: two to four kinds of event for a round (the kill one of them in the kill
    round), none twice, none left out by ``exclude``, no move at its own item round without
    delta; every kind of each round list drawn over a few seeds; said in the op log."""
    import random

    from tests.histories import STACK_CUTOVER, STACK_KILL, STACK_ROUND, stacked

    said: list[str] = []
    gen = type("G", (), {"emit": lambda self, t: said.append(t)})()
    seen: set[str] = set()
    for seed in range(200):
        rng = random.Random(seed)
        for kinds, most, kill in ((STACK_ROUND, 4, False), (STACK_KILL, 4, True)):
            out = stacked(rng, kinds, most, gen, seed % 2 == 0, frozenset({"storm"}), kill=kill)  # type: ignore[arg-type]
            assert 2 <= len(out) <= most and ("kill" in out) == kill, out
            assert "storm" not in out and (seed % 2 == 0 or "deltamove" not in out), out
            seen |= out
        out = stacked(rng, STACK_CUTOVER, 3, gen, True, frozenset())  # type: ignore[arg-type]
        assert 2 <= len(out) <= 3 and out <= set(STACK_CUTOVER), out
        seen |= out
    assert seen == (set(STACK_ROUND) | set(STACK_CUTOVER) | {"kill"}) - {"storm"}, seen
    assert said and all(t.startswith("STACK ") for t in said)


@SLOW
async def test_a_sign_offs_transient_404_leaves_the_rounds_quirks_armed(tmp_path: Path) -> None:
    """Seed 15502 mirror, the ninth and twelfth streams made certain, no kill nor churn: at r2
    a transient 404 armed for the sign-off after the pass (``N404 sign-off``) and the round's
    quirks. The 404's rule used to replace the round's rules (``PUT /_emulator/faults``
    replaces them all), so that a quirk not fired yet never fired, nor was one that had
    said; now it is added to them (``POST``), and both fire."""
    h = await run_history(
        15502,
        "mirror",
        tmp_path,
        Options(
            kill=False,
            churn=False,
            p_quirk=1.0,
            p_n404=1.0,
            exclude=TENTH | ELEVENTH | THIRTEENTH | RULES,
        ),
    )
    assert h.error is None and not h.failures(), h.text()
    both = [
        r
        for r in {o.split()[0] for o in h.ops if " N404 sign-off: " in o}
        if any(o.startswith(f"{r} N404 fired ") and " fired 0 " not in o for o in h.ops)
        and any(o.startswith(f"{r} QUIRK fired ") and " fired 0 " not in o for o in h.ops)
    ]
    assert both, h.text()


# the ninth stream made certain (``Options(p_n404=1.0)``: a transient 404 in every round),
# found by a hunt of 9601-9620 on cb23fa2 (before gone3's fixes): 9613, r4, the re-run
# after a kill, the settlement's listing of /Outbox answering 404 once: its items left
# unknown (exit 1) and lost until the next pass (``settle.Settler._index``); 9612 (delta off),
# r3, the eighth stream's target listing 404 and the ninth's at the getFolder that confirmed
# it: two 404s, a folder gone by the contract, and its items copied again (duplicated); the
# harness no longer arms the second (``N404 left out``)
EVERY_ROUND_404 = [
    pytest.param(9613, "mirror", id="9613-mirror-a-404-as-the-rerun-settles", marks=SLOW),
    pytest.param(9613, "keep", id="9613-keep-a-404-as-the-rerun-settles", marks=SLOW),
    pytest.param(
        9612, "keep", id="9612-keep-no-404-at-the-getfolder-that-confirms-one", marks=SLOW
    ),
]


@pytest.mark.parametrize(("seed", "deletions"), EVERY_ROUND_404)
async def test_history_with_a_transient_404_every_round(
    tmp_path: Path, seed: int, deletions: str
) -> None:
    h = await run_history(
        seed,
        deletions,
        tmp_path,
        Options(kill=True, p_n404=1.0, exclude=TENTH | ELEVENTH | TWELFTH | THIRTEENTH | RULES),
    )
    assert sum(" N404 fired 1 " in o or " N404 fired 2 " in o for o in h.ops) >= 4, h.text()
    assert h.error is None and not h.failures(), h.text()


@SLOW
async def test_a_delta_pass_after_a_folder_moved_in_the_target_is_not_signed_off(
    tmp_path: Path,
) -> None:
    """Soak seed 517/keep (an archive pair whose source archive does not redirect): at
    1886f14 the sign-off taken after a delta pass that followed a target move signed off
    complete with 5 copies misplaced and a folder missing (r5). Every pass's sign-off is now
    held to the oracle; that one names the folder moved in the target."""
    h = await run_history(
        517,
        "keep",
        tmp_path,
        Options(
            kill=True,
            exclude=SIXTH | SEVENTH | NINTH | TENTH | ELEVENTH | TWELFTH | THIRTEENTH | RULES,
        ),
    )
    assert h.error is None and not h.failures(), h.text()
    (r5,) = [p for p in h.passes if p.round == 5 and p.kind == "drift-delta"]
    assert wrong(r5.counts) and r5.signed is False and "moved_folders" in r5.said, h.text()


async def test_the_second_stream_adds_archive_pairs_and_target_moves(tmp_path: Path) -> None:
    """Seeds mix the new events with the old ones, and leave a seed's first stream as it was:
    the same owner operations at the source with and without them (what the target's drift
    picks may differ: the target moves changed the target)."""
    # the moves during a pass (third and fifth streams) and the folders gone during one
    # (sixth) are source ops drawn in the rounds the second stream leaves to a plain pass:
    # left out of both
    opts = Options(
        kill=False,
        churn=False,
        rounds=(3, 3),
        exclude=frozenset({"midmove", "deltamove", "midfolder", "midtarget"})
        | NINTH
        | TENTH
        | ELEVENTH
        | TWELFTH
        | THIRTEENTH
        | RULES,
    )
    new = await run_history(5, "mirror", tmp_path / "new", opts)
    old = await run_history(
        5,
        "mirror",
        tmp_path / "old",
        Options(**{**opts.__dict__, "exclude": ALL_NEW | opts.exclude}),
    )
    assert new.archive is not None and old.archive is None
    assert any(" TMOVE target " in o for o in new.ops), new.text()
    assert not any(" TMOVE " in o or " ARCHIVE " in o for o in old.ops)

    def source_ops(ops: list[str]) -> list[str]:  # the owner's, not the target's or events
        events = (" TMOVE ", " ARCHIVE ", " DRIFT ", "EXPIRE", " KILL ", " CHURN ")
        return [o for o in ops if not any(e in o for e in events)]

    assert source_ops(new.ops) == source_ops(old.ops) and len(source_ops(old.ops)) > 5
    assert not new.failures() and not old.failures(), new.text()


# -- minimal reproductions found by the soak -------------------------------------------------------
# A folder is "@<path>", an item "#<path>" (the first live item there); see ``replay``.
REPROS = [
    pytest.param(
        "mirror",
        [
            ("ops", [{"op": "renameFolder", "id": "@/Inbox/Receipts", "name": "RECEIPTS"}]),
            ("pass", "delta"),
        ],
        id="case-only-rename",
        # da44e8f: a case-only folder rename was not carried over (misplaced, leftover)
    ),
    pytest.param(
        "mirror",
        [("ops", [{"op": "modify", "id": "#/Inbox"}]), ("pass", "full")],
        id="edit-read-by-full-listing",
        # da44e8f: an edit read by a full listing was matched by search key and left stale
    ),
    pytest.param(
        "mirror",
        [("ops", [{"op": "modify", "id": "#/Inbox"}]), ("expire",), ("pass", "delta")],
        id="edit-after-expired-link",
        # da44e8f: an edit read after an expired delta link was left stale
    ),
    pytest.param(
        "mirror",
        [
            (
                "ops",
                [
                    {"op": "deleteFolder", "id": "@/Inbox/Projects"},
                    {"op": "renameFolder", "id": "@/Inbox/Receipts", "name": "Projects"},
                ],
            ),
            ("pass", "delta"),
        ],
        id="name-reused-by-rename-after-delete",
        # da44e8f: a folder renamed to the name of a folder deleted in the same interval:
        # its items lost, the folder missing, exit 0
    ),
    pytest.param(
        "mirror",
        [
            (
                "ops",
                [
                    {"op": "deleteFolder", "id": "@/Inbox/Projects"},
                    {"op": "createFolder", "parent": "inbox", "name": "Projects"},
                    {"op": "add", "folder": "@/Inbox/Projects", "count": 2},
                ],
            ),
            ("pass", "delta"),
        ],
        id="name-reused-by-create-after-delete",
        # da44e8f: a folder created with the name of a folder deleted in the same interval:
        # its items lost, exit 0
    ),
    pytest.param(
        "mirror",
        [
            (
                "ops",
                [
                    {"op": "moveFolder", "id": "@/Inbox/Projects/2024", "to": "inbox"},
                    {"op": "deleteFolder", "id": "@/Inbox/2024/Q3 — Ausschreibung"},
                ],
            ),
            ("pass", "delta"),
        ],
        id="move-folder-and-delete-its-subfolder",
        # da44e8f: a folder moved and one of its subfolders deleted: the old target folder
        # was left (leftover_folders)
    ),
    # These passed at da44e8f's engine and failed after the "three trees" changes (8b5bfb7).
    pytest.param(
        "mirror",
        [
            ("drift", [{"op": "deleteFolder", "id": "@/Inbox/Receipts"}]),
            ("ops", [{"op": "deleteFolder", "id": "@/Inbox/Receipts"}]),
            ("pass", "full"),
            ("ops", [{"op": "add", "folder": "inbox"}]),
            ("pass", "delta"),
        ],
        # 3432879: the next delta pass read the gone folder's item delta, 404 failed the
        # pair (exit 5); fixed by 363ee67
        id="folder-deleted-in-both-then-delta",
    ),
    pytest.param(
        "mirror",
        [
            ("ops", [{"op": "deleteFolder", "id": "@/Inbox/Projects"}]),
            ("drift", [{"op": "deleteFolder", "id": "@/Inbox/Projects/2024"}]),
            ("pass", "full"),
            ("ops", [{"op": "add", "folder": "inbox"}]),
            ("pass", "delta"),
        ],
        # 3432879: the next delta pass failed the pair on itemDelta 404 (exit 5) and the new
        # item in /Inbox was not copied (lost); fixed by 363ee67
        id="folder-deleted-at-source-its-subfolder-in-target-then-delta",
    ),
    pytest.param(
        "keep",
        [
            (
                "ops",
                [
                    {"op": "moveFolder", "id": "@/Inbox/Projects", "to": "archive"},
                    {"op": "deleteFolder", "id": "@/Archive/Projects/2024/Q3 — Ausschreibung"},
                ],
            ),
            ("pass", "cutover"),
        ],
        # under keep the old /Inbox/Projects/2024/Q3 stays with its kept items, and so must
        # its parents: the sign-off counted them as leftover folders (exit 1)
        id="keep-parents-of-kept-folder-are-not-leftover",
    ),
]


# Target moves (the generator's TMOVE events), found by the soak once it made them.
for _mode in ("mirror", "keep"):
    REPROS += [
        pytest.param(
            _mode,
            [
                ("drift", [{"op": "move", "id": "#/Inbox", "to": "deleteditems"}]),
                ("pass", "full"),
                ("pass", "delta"),
            ],
            # 7102534: the full pass copied the item again into /Inbox, but /Deleted Items was
            # listed while that import was on its way (its record not settled yet), so the
            # moved copy was not taken for a second copy: duplicated, exit 0 (seed 1 keep)
            id=f"target-copy-moved-to-deleted-items-{_mode}",
        ),
        pytest.param(
            _mode,
            [
                ("drift", [{"op": "move", "id": "#/Inbox", "to": "outbox"}]),
                ("pass", "full"),
            ],
            # 7102534: a folder with nothing at the source had its target copy never read,
            # so a copy the target's user moved there stayed (duplicated)
            id=f"target-copy-moved-to-a-folder-empty-at-the-source-{_mode}",
        ),
    ]


REPROS.append(
    pytest.param(
        "mirror",
        [
            ("drift", [{"op": "move", "id": "~/Inbox", "to": "deleteditems"}]),
            ("ops", [{"op": "delete", "id": "#/Inbox", "hard": True}]),
            ("pass", "delta", "unchecked"),  # target drift: only a full listing repairs it
            ("pass", "full"),
        ],
        # seed 38 mirror (churn deleted the item during the pass): the target's user moved a
        # copy to Deleted Items, then the item was deleted at the source and a delta pass saw
        # it. Mirroring the deletion found no copy where it was recorded (NotFound: already
        # gone) and forgot the record, so the later --full pass could not tell the moved copy
        # from an item nobody copied and left it (extra under mirror; the sign-off, which
        # does not hold extras against a pair, said complete). Fixed: a pass that did not
        # list the target in full keeps the record, and the full pass removes the moved copy
        # by its search key (a second copy) before forgetting it.
        id="target-copy-moved-then-deleted-at-source-seen-by-a-delta-pass",
    )
)
# the same, soft-deleted at the source, moved to a folder other than Deleted Items, and two
# delta passes before the full one (the record kept across them)
REPROS.append(
    pytest.param(
        "mirror",
        [
            ("drift", [{"op": "move", "id": "~/Inbox", "to": "@/Archive"}]),
            ("ops", [{"op": "delete", "id": "#/Inbox", "hard": False}]),
            ("pass", "delta", "unchecked"),
            ("pass", "delta", "unchecked"),
            ("pass", "full"),
            ("pass", "delta"),
        ],
        id="target-copy-moved-then-soft-deleted-at-source-two-delta-passes",
    )
)
# seed 38 mirror as it happened: the copy moved out of a folder then deleted at the source
# as a whole (its target folder deleted whole, no per-item call)
MOVED_OUT_OF_A_GONE_FOLDER: list[Any] = [
    ("drift", [{"op": "move", "id": "~/Inbox/Projects", "to": "deleteditems"}]),
    ("ops", [{"op": "deleteFolder", "id": "@/Inbox/Projects"}]),
    ("pass", "delta", "unchecked"),
    ("pass", "delta", "unchecked"),
    ("pass", "full"),
    ("pass", "delta"),
]
REPROS.append(
    pytest.param(
        "mirror", MOVED_OUT_OF_A_GONE_FOLDER, id="target-copy-moved-out-of-a-folder-then-deleted"
    )
)


async def test_records_kept_for_a_full_pass_are_forgotten_by_it(tmp_path: Path) -> None:
    """The records a delta pass keeps for a copy it could not find (its folder gone) are
    forgotten by the full pass that looked for it: none left without a folder."""
    import sqlite3

    h = await replay("mirror", MOVED_OUT_OF_A_GONE_FOLDER, tmp_path)
    assert not h.failures(), h.text()
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        (left,) = db.execute(
            "SELECT count(*) FROM items WHERE folder_id NOT IN "
            "(SELECT source_folder_id FROM folders)"
        ).fetchone()
        (items,) = db.execute("SELECT count(*) FROM items").fetchone()
    assert left == 0 and items > 40


# hunt2, seed 9801 keep (the tenth stream's compound ops; delta off): an item moved away, edited
# and moved back between passes (a move makes a new id), then a pass listing its folder in
# full: no record of the new id, so its old copy, found by search key, was adopted as it was
# (of the version before the edit) and recorded as current: stale, and the sign-off said
# complete. The folder's record of that search key not met by the listing is the item's
# (``plan.decide``'s ``earlier``): the copy is updated in place.
MOVED_AWAY_EDITED_AND_BACK: list[Any] = [
    ("ops", [{"op": "createFolder", "parent": "@/Inbox", "name": "Tmp"}]),
    ("ops", [{"op": "move", "id": "#/Archive", "to": "@/Inbox/Tmp"}]),
    ("ops", [{"op": "modify", "id": "#/Inbox/Tmp"}]),
    ("ops", [{"op": "move", "id": "#/Inbox/Tmp", "to": "@/Archive"}]),
]


@pytest.mark.parametrize("deletions", modes("keep"))
@pytest.mark.parametrize("how", ["full", "delta-off"])
async def test_an_item_edited_while_moved_away_and_back_is_updated(
    tmp_path: Path, deletions: str, how: str
) -> None:
    kind = "full" if how == "full" else "delta"
    script = [*MOVED_AWAY_EDITED_AND_BACK, ("pass", kind), ("pass", "cutover")]
    h = await replay(deletions, script, tmp_path, delta=how == "full")
    assert not h.failures(), h.text()


# hunt5, soak seed 15024 mirror (r5: the re-run after a kill, the twelfth stream's "a copy
# deleted, its answer lost" armed for it): a moved folder's old copy, left by a pass killed
# after the move was recorded, swept by the re-run, one of its copies deleted with the answer
# lost: the retry met the 404 the first delete left, which ended the whole sweep (taken for
# the folder's own 404): the old folder stayed with the rest of its copies beside their
# re-homed ones (duplicated, a leftover folder) until the next pass. The copy is gone, as
# wanted: the sweep goes on (``MailboxPass._sweep_old``).
SWEEP_DELETE_ANSWER_LOST: list[Any] = [
    ("ops", [{"op": "add", "folder": "@/Inbox/Receipts", "count": 4}]),
    ("pass", "delta"),
    ("ops", [{"op": "moveFolder", "id": "@/Inbox/Receipts", "to": "@/Archive"}]),
    ("kill", "deleteItem", {"kind": "slow", "calls": ["deleteItem"], "delay": 8.0, "count": 50}),
    ("fault", {"kind": "drop_after", "calls": ["deleteItem"], "mailbox": DST, "count": 1}),
    ("pass", "delta"),
    ("pass", "cutover"),
]


@pytest.mark.parametrize("deletions", modes("mirror"))
async def test_a_sweeps_copy_deleted_with_its_answer_lost_does_not_end_the_sweep(
    tmp_path: Path, deletions: str
) -> None:
    h = await replay(deletions, SWEEP_DELETE_ANSWER_LOST, tmp_path)
    killed = [p for p in h.passes if p.kind == "killed"]
    assert killed and "SIGKILL" in killed[0].note, h.text()
    assert not h.failures(), h.text()


# hunt2, seed 9803 keep (the tenth stream; churn timed it there): the target's user moved a
# copy, the item was edited (a delta pass: its recorded copy not found, copied again) and then
# deleted at the source (kept): the moved copy, a second copy, stayed through every full pass
# (``spares`` took no kept copy for the item's own) and every sign-off said complete.
MOVED_COPY_THEN_ITEM_EDITED_AND_DELETED: list[Any] = [
    ("drift", [{"op": "move", "id": "~/Inbox", "to": "@/Inbox/Projects"}]),
    ("ops", [{"op": "modify", "id": "#/Inbox"}]),
    ("pass", "delta", "unchecked"),
    ("ops", [{"op": "delete", "id": "#/Inbox", "hard": False}]),
    ("pass", "delta", "unchecked"),
    ("pass", "full"),
    ("pass", "cutover"),
]


@pytest.mark.parametrize(
    "deletions",
    [
        "keep",
        # under mirror the item's copy goes with it and its record is forgotten: the moved
        # copy stayed (an item nobody copied) and the sign-off said complete (hunt2). Now
        # the update that met its copy gone notes the lost copy (``Store.note_lost_copies``):
        # the sign-off names the moved copy a deletion pending, the full pass removes it
        "mirror",
    ],
)
async def test_a_moved_copy_of_an_item_copied_again_then_deleted_goes(
    tmp_path: Path, deletions: str
) -> None:
    h = await replay(deletions, MOVED_COPY_THEN_ITEM_EDITED_AND_DELETED, tmp_path)
    assert not h.failures(), h.text()


async def test_a_moved_copy_of_an_item_copied_again_then_deleted_goes_at_the_cutover(
    tmp_path: Path,
) -> None:
    # as above under mirror with no full pass before the cutover: its sign-off names the
    # moved copy a deletion pending and its repair (a full listing) removes it
    script = [s for s in MOVED_COPY_THEN_ITEM_EDITED_AND_DELETED if s != ("pass", "full")]
    h = await replay("mirror", script, tmp_path)
    assert not h.failures(), h.text()


@pytest.mark.parametrize(("deletions", "script"), REPROS)
async def test_minimal_reproduction(tmp_path: Path, deletions: str, script: list[Any]) -> None:
    h = await replay(deletions, script, tmp_path)
    assert not h.failures(), h.text()


# -- the sign-off never says complete when the target differs (issue 26) ------------------------
# the target's user moved a copy, its item was then deleted at the source, and the next pass
# is the cutover: its delta finds no copy where it was recorded and keeps the record; the
# sign-off saw the moved copy as an item nobody copied and said complete (exit 0) with an
# extra item left under mirror. Now the moved copy is a deletion pending, held against the
# pair, and the cutover's repair (a full listing) removes it.
MOVED_THEN_DELETED_AT_CUTOVER: list[Any] = [
    ("drift", [{"op": "move", "id": "~/Inbox", "to": "deleteditems"}]),
    ("ops", [{"op": "delete", "id": "#/Inbox", "hard": True}]),
    ("pass", "cutover"),
]
REPROS.append(
    pytest.param(
        "mirror", MOVED_THEN_DELETED_AT_CUTOVER, id="target-copy-moved-then-deleted-cutover-only"
    )
)


def _moved_when(folder: str, item: str, to: str, after: int = 1) -> tuple[str, dict[str, Any]]:
    """A move of ``item`` into ``to`` made when the ``after``-th item round of ``folder``
    arrives."""
    op = {"op": "move", "id": item, "to": to}
    return ("trigger", {"calls": ["itemDelta"], "folder": folder, "after": after, "ops": [op]})


# -- no copy of a live item removed (review 2 of issue 26, finding 1) ---------------------------
# Seed 911 mirror (``--no-kill --no-churn``), r5: the target's user moved a copy into the
# target folder of /Inbox/Projects, then the source's user deleted /Inbox/Projects; the next
# (delta) pass deleted that target folder whole under mirror, and with it the copy of an item
# still live at the source (in /Inbox): no copy of it until a full pass imported it again.
# The end-state oracle excuses a pass after target drift; the removal check does not.
@pytest.mark.parametrize(
    "script",
    [
        pytest.param(
            [
                ("drift", [{"op": "move", "id": "~/Inbox", "to": "@/Inbox/Projects"}]),
                ("ops", [{"op": "deleteFolder", "id": "@/Inbox/Projects"}]),
                ("pass", "delta", "unchecked"),
                ("pass", "full"),
            ],
            id="target-copy-moved-into-a-folder-deleted-at-the-source",
        ),
        # Seeds 909, 912, 921 mirror in the soak (churn passes, timing): an item moved during
        # a pass into a folder whose item round this pass had already read (here: moved when
        # the round of /Sent Items, read after /Inbox, arrives) was seen only leaving its
        # folder, taken for a deletion under mirror, its copy soft-deleted; the next pass
        # imported it again. Nothing in one delta round tells such a move from a deletion:
        # the folders read before a departure was seen are read once more before the pass
        # applies it (``pipeline/reread.py``); more cases, both modes, below.
        pytest.param(
            [
                _moved_when("@/Sent Items", "#/Sent Items", "@/Inbox"),
                ("pass", "delta", "unchecked"),
                ("pass", "delta"),
            ],
            id="item-moved-mid-pass-into-a-folder-already-read",
        ),
        # the same pass killed (SIGKILL) once it changed the target (the arrival copied, or
        # the copy soft-deleted), then run again: under keep nothing is removed either way
        pytest.param(
            [
                _moved_when("@/Sent Items", "#/Sent Items", "@/Inbox"),
                ("kill", 1),
                ("pass", "delta"),
            ],
            id="item-moved-mid-pass-killed-and-run-again",
        ),
    ],
)
async def test_no_copy_of_a_live_item_is_removed(tmp_path: Path, script: list[Any]) -> None:
    """Strict: a removal after target drift is no excuse (the histories fail it too)."""
    h = await replay("mirror", script, tmp_path)
    assert not h.failures(), h.text()


# -- a move during a pass is a move, never a deletion (seeds 909, 912, 921) ---------------------
# The pass in which the move happens is checked: exact at its end (the arrival copied, the old
# copy removed as a move), in both modes; no copy of a live item removed. Folders of a pass
# that reuses its mapping are read in path order (/Archive, /Deleted Items, /Drafts, /Inbox,
# ..., /Sent Items, /Tasks), a walked tree's in the tree's (/Inbox first).
MOVED_DURING_A_PASS = [
    pytest.param(
        [_moved_when("@/Sent Items", "#/Sent Items", "@/Inbox"), ("pass", "delta")],
        id="into-a-folder-read-before",
    ),
    pytest.param(
        # every link refused (410): each folder listed in full from a fresh round; read
        # again, a folder was listed in full once more after its round from the fresh link
        # (seed 2209 mirror): its items counted twice, "not done", exit 1 on an exact target
        [("expire",), _moved_when("@/Drafts", "#/Drafts", "@/Inbox"), ("pass", "delta")],
        id="links-expired",
    ),
    pytest.param(
        # a --full pass lists every folder through a fresh round (in the tree's order,
        # /Inbox first): the same race
        [_moved_when("@/Sent Items", "#/Sent Items", "@/Inbox"), ("pass", "full")],
        id="full-pass",
    ),
    pytest.param(
        # a second move while the folders are read again (/Drafts' second round): into
        # /Sent Items, whose first round began before that departure was seen
        [
            _moved_when("@/Inbox", "#/Inbox", "@/Archive"),
            _moved_when("@/Drafts", "#/Drafts", "@/Sent Items", after=2),
            ("pass", "delta"),
        ],
        id="a-second-move-while-reading-again",
    ),
    pytest.param(
        # a deletion and a move in the same folder, the same pass: only the deletion is one
        [
            ("ops", [{"op": "delete", "id": "#/Sent Items", "hard": False}]),
            _moved_when("@/Sent Items", "#/Sent Items", "@/Deleted Items"),
            ("pass", "delta"),
        ],
        id="with-a-deletion-beside-it",
    ),
]


# an item new since the last pass (no record) in a folder not yet read this pass, moved into
# a folder whose round already closed, when its own folder's round arrives: that round shows
# at most an ``@removed`` of an id nobody knew (with a link) or nothing (a first round, or a
# --full pass's fresh one), the other round is closed: no copy until the next pass (lost at
# a cutover)
NEW_IN = [
    ("ops", [{"op": "createFolder", "parent": "@/Sent Items", "name": "New"}]),
    ("pass", "delta"),
    ("ops", [{"op": "add", "folder": "@/Sent Items/New", "count": 1}]),
    _moved_when("@/Sent Items/New", "#/Sent Items/New", "@/Inbox"),
]
MOVED_DURING_A_PASS += [
    pytest.param([*NEW_IN, ("pass", "delta")], id="new-item-into-a-folder-read-before"),
    pytest.param([*NEW_IN, ("pass", "full")], id="new-item-into-a-folder-read-before-full"),
    pytest.param([*NEW_IN, ("pass", "cutover")], id="new-item-into-a-folder-read-before-cutover"),
    # an item with a record moved out of a folder read before into the one being read:
    # copied there, and its departure unseen (that round closed): two copies, the old one
    # misplaced, until the next pass. An arrival whose search key a live record elsewhere
    # holds, that no round saw leave, makes the folders read before it read again
    pytest.param(
        [_moved_when("@/Sent Items", "#/Inbox", "@/Sent Items"), ("pass", "delta")],
        id="out-of-a-folder-read-before",
    ),
    pytest.param(
        [_moved_when("@/Sent Items", "#/Inbox", "@/Sent Items"), ("pass", "full")],
        id="out-of-a-folder-read-before-full",
    ),
    pytest.param(
        [
            # the folder new too: its first round lists it in full, no removal at all
            (
                "ops",
                [
                    {"op": "createFolder", "parent": "@/Sent Items", "name": "New"},
                    {"op": "add", "folder": "@/Sent Items/New", "count": 1},
                ],
            ),
            _moved_when("@/Sent Items/New", "#/Sent Items/New", "@/Inbox"),
            ("pass", "delta"),
        ],
        id="new-item-in-a-new-folder-into-a-folder-read-before",
    ),
]


MOVED_DURING_A_PASS.append(
    pytest.param(
        # seed 1015 keep (soak from 1001, with the first version of the fix): an item moved
        # during a pass into a folder read after its own (its copy made there, the old one
        # left: two copies until the next pass), then deleted at the source: the next pass
        # sees it leave both folders, and kept both copies as deleted (duplicated). One
        # copy stands for the item; the other is removed as a second copy. (The move is timed
        # to /Archive's round, read after /Inbox: /Outbox, empty, has no round of its own to
        # time it to; its count changed since the walk makes the pass read it.)
        [
            _moved_when("@/Archive", "#/Inbox", "@/Outbox"),
            ("pass", "delta", "unchecked"),
            ("ops", [{"op": "delete", "id": "#/Outbox", "hard": False}]),
            ("pass", "delta"),
        ],
        id="moved-then-deleted-seen-leaving-twice",
    )
)


# -- a target folder that goes is read first (seed 911, both modes, a lost answer) ------------
# The target's user moved a copy into a target folder that then goes: deleted whole (its
# source folder deleted, ``mirror``), swept (kept under ``keep``, or a moved folder's old
# copy). The copy is its item's only one (the state records it where it was made): it is
# made again where the item lives first (``pipeline/rehome.py``), then the folder goes. The
# delta pass right after the drift leaves the target exact; none removes a live item's copy.
INTO_A_GONE_FOLDER = [
    ("drift", [{"op": "move", "id": "~/Inbox", "to": "@/Inbox/Projects"}]),
    ("ops", [{"op": "deleteFolder", "id": "@/Inbox/Projects"}]),
]
INTO_A_MOVED_FOLDER = [
    ("drift", [{"op": "move", "id": "~/Inbox", "to": "@/Inbox/Projects"}]),
    ("ops", [{"op": "moveFolder", "id": "@/Inbox/Projects", "to": "archive"}]),
]
# the answer to the import that makes the copy again is lost (it landed): the pass looks for
# it by search key before sending it again, takes the copy found as the item's and lets the
# folder go (``test_a_copy_made_back_whose_answer_is_lost_is_settled_in_its_pass``); a pass
# killed at that moment leaves it to the next pass, which does the same
LOST = ("fault", {"kind": "drop_after", "calls": ["importItem"], "count": 1})
# the item modified at the source as the export that makes its copy again arrives: the copy
# made back holds the version exported, and its record says so (the sign-off named it stale)
CHANGED_AT_EXPORT = (
    "trigger",
    {"calls": ["exportItems"], "after": 1, "ops": [{"op": "modify", "id": "#/Inbox"}]},
)
# the import host refuses the copy made back: the folder and the moved copy stay (the pair's
# notes say why), the next pass makes it back and lets the folder go
REFUSED = ("fault", {"kind": "import_reject", "calls": ["importItem"], "count": 1})
# the same with SIGKILL: the pass killed while the emulator holds the import that makes the copy
# again (it lands after the client died); the next pass, a delta one, finishes exactly
SLOW_IMPORT = (
    "kill",
    "exportItems",
    {"kind": "slow", "calls": ["importItem"], "delay": 2.0, "count": 1},
)


# seed 2 keep with the fifth stream (r4): a new folder (no link: its round lists it from
# nothing, no removal told), an item added to it before the pass moved into a folder read
# before when its round arrives, and another item created in it at that moment: its round
# returns as many items as the walk counted, so the count told nothing either and the item
# had no copy until the next pass (signed incomplete). In a pass that reads links, a round
# from nothing of a folder the walk found holding items makes the folders read before it
# read again (rare: a new folder, a refused link)
NEW_FOLDER_SWAP = [
    (
        "ops",
        [
            {"op": "createFolder", "parent": "@/Sent Items", "name": "New"},
            {"op": "add", "folder": "@/Sent Items/New", "count": 2},
        ],
    ),
    (
        "trigger",
        {
            "calls": ["itemDelta"],
            "folder": "@/Sent Items/New",
            "after": 1,
            "ops": [
                {"op": "move", "id": "#/Sent Items/New", "to": "@/Inbox"},
                {"op": "add", "folder": "@/Sent Items/New", "count": 1},
            ],
        },
    ),
]


@pytest.mark.parametrize("deletions", modes("keep"))
async def test_a_new_folders_item_moved_out_and_one_created_there_during_a_pass(
    tmp_path: Path, deletions: str
) -> None:
    h = await replay(deletions, [*NEW_FOLDER_SWAP, ("pass", "delta")], tmp_path)
    assert not h.failures(), h.text()


@pytest.mark.parametrize("deletions", modes("keep"))
async def test_the_same_in_a_full_pass(tmp_path: Path, deletions: str) -> None:
    h = await replay(deletions, [*NEW_FOLDER_SWAP, ("pass", "full")], tmp_path)
    assert not h.failures(), h.text()


@pytest.mark.parametrize("deletions", modes("keep"))
async def test_the_same_at_a_cutover_is_not_signed_off_complete(
    tmp_path: Path, deletions: str
) -> None:
    h = await replay(deletions, [*NEW_FOLDER_SWAP, ("pass", "cutover")], tmp_path)
    last = h.passes[-1]
    assert not (last.signoff_complete and wrong(last.counts)), h.text()


@pytest.mark.parametrize(
    ("script", "deletions"),
    by_mode(MOVED_DURING_A_PASS, both=frozenset({"moved-then-deleted-seen-leaving-twice"})),
)
async def test_an_item_moved_during_a_pass_is_moved(
    tmp_path: Path, deletions: str, script: list[Any]
) -> None:
    h = await replay(deletions, script, tmp_path)
    assert not h.failures(), h.text()
    assert all(p.live_removed == [] for p in h.passes), h.text()


async def test_a_departure_still_unexplained_after_every_reading_waits_a_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No reading again allowed: the departure is put off (its folder keeps its old link),
    never taken for a deletion; the next pass sees it again with the arrival: a move."""
    from copyengine.pipeline import reread

    monkeypatch.setattr(reread, "MAX_REREADS", 0)
    script = [
        _moved_when("@/Sent Items", "#/Sent Items", "@/Inbox"),
        ("pass", "delta", "unchecked"),
        ("pass", "delta"),
    ]
    h = await replay("mirror", script, tmp_path)
    assert not h.failures(), h.text()
    assert all(p.live_removed == [] for p in h.passes), h.text()


@pytest.mark.parametrize("deletions", ["mirror", "keep"])
@pytest.mark.parametrize(
    "script",
    [
        pytest.param(
            [*INTO_A_GONE_FOLDER, ("pass", "delta"), ("pass", "full")], id="deleted-at-source"
        ),
        pytest.param(
            [*INTO_A_GONE_FOLDER, LOST, ("pass", "delta", "unchecked"), ("pass", "delta")],
            id="deleted-at-source-answer-lost",
        ),
        pytest.param(
            [*INTO_A_GONE_FOLDER, REFUSED, ("pass", "delta", "unchecked"), ("pass", "delta")],
            id="deleted-at-source-copy-back-refused-once",
        ),
        pytest.param(
            [*INTO_A_GONE_FOLDER, SLOW_IMPORT, ("pass", "delta"), ("pass", "full")],
            id="deleted-at-source-killed-during-the-copy-back",
        ),
        pytest.param(
            [*INTO_A_GONE_FOLDER, CHANGED_AT_EXPORT, ("pass", "delta"), ("pass", "full")],
            id="deleted-at-source-changed-at-the-copy-backs-export",
        ),
        pytest.param(
            [*INTO_A_MOVED_FOLDER, ("pass", "delta"), ("pass", "full")], id="moved-at-source"
        ),
    ],
)
async def test_a_copy_moved_into_a_folder_that_goes_is_kept(
    tmp_path: Path, deletions: str, script: list[Any]
) -> None:
    h = await replay(deletions, script, tmp_path)
    assert not h.failures(), h.text()
    assert all(p.checked for p in h.passes[-1:]) and not wrong(h.passes[-1].counts), h.text()


# -- a copy moved into a folder the target's user made under a folder that goes ---------------
# Deleting a target folder whole takes every folder under it. A folder the target's user made
# there has no source counterpart (nothing maps to it, nothing sweeps it first): a copy of a
# live item moved into it is that item's only copy, read and made again where its item lives
# before the folder goes (``MailboxPass._held``), like one moved into the folder itself.
INTO_A_USER_SUBFOLDER = [
    (
        "drift",
        [
            {"op": "createFolder", "parent": "@/Inbox/Projects", "name": "Mine"},
            {"op": "move", "id": "~/Inbox", "to": "@/Inbox/Projects/Mine"},
        ],
    ),
    ("ops", [{"op": "deleteFolder", "id": "@/Inbox/Projects"}]),
]


@pytest.mark.parametrize("deletions", ["mirror", "keep"])
async def test_a_copy_moved_into_a_user_made_subfolder_of_a_folder_that_goes_is_kept(
    tmp_path: Path, deletions: str
) -> None:
    script = [*INTO_A_USER_SUBFOLDER, ("pass", "delta", "unchecked"), ("pass", "full")]
    h = await replay(deletions, script, tmp_path)
    assert not h.failures(), h.text()
    assert all(p.live_removed == [] for p in h.passes), h.text()


# soak seed 10001 (r3, mirror and keep): a 429 storm's import answer lost was the one of the
# copy made back (a copy the target's user moved into a folder of theirs under a folder that
# goes): the pass gave up on it, kept the old folder and the moved copy beside the copy made
# back (duplicated; under mirror the folder's other copies too) and exited 0. The copy made
# back is now looked for by search key before it is sent again (``Rehome._import_settled``):
# the pass is exact, as under every fault.
@pytest.mark.parametrize("deletions", modes("mirror"))
@pytest.mark.parametrize(
    "into",
    [
        pytest.param(INTO_A_USER_SUBFOLDER, id="user-subfolder"),
        pytest.param(INTO_A_GONE_FOLDER, id="gone-folder"),
    ],
)
async def test_a_copy_made_back_whose_answer_is_lost_is_settled_in_its_pass(
    tmp_path: Path, deletions: str, into: list[Any]
) -> None:
    h = await replay(deletions, [*into, LOST, ("pass", "delta"), ("pass", "full")], tmp_path)
    assert not h.failures(), h.text()
    assert all(p.checked and not wrong(p.counts) for p in h.passes), h.text()


# soak seed 11002 keep (the eleventh stream, r3): an item modified, deleted (its copy kept),
# then restored by its owner from Recoverable Items/Deletions into the same folder (same search
# key, a new id): the pass imports it, and the import's outcome unknown (an answer lost, or the
# pass killed), settlement looked for it by search key and took the kept copy, of the older
# version, for it: the new copy left as a second one, and after a full pass (which trusts the
# record's version) the sign-off said complete of a stale copy. A kept copy is no copy of an
# item imported now (``Settler._look_up``).
def _restored(modified: bool, unsure: Any) -> list[Any]:
    return [
        *([("ops", [{"op": "modify", "id": "#/Sent Items"}])] if modified else []),
        ("ops", [{"op": "delete", "id": "#/Sent Items", "hard": False}]),
        ("pass", "delta"),
        ("ops", [{"op": "move", "id": "%deleted", "to": "@/Sent Items"}]),
        unsure,
        ("pass", "delta", "unchecked") if unsure[0] == "kill" else ("pass", "delta"),
        ("pass", "delta"),
        ("pass", "full"),
    ]


KILLED_AT_IMPORT = (
    "kill",
    "importItem",
    {"kind": "slow", "calls": ["importItem"], "delay": 2.0, "count": 1},
)


@pytest.mark.parametrize("deletions", modes("keep"))
@pytest.mark.parametrize("modified", [True, False], ids=["modified", "as-deleted"])
@pytest.mark.parametrize(
    "unsure", [pytest.param(LOST, id="answer-lost"), pytest.param(KILLED_AT_IMPORT, id="killed")]
)
async def test_an_item_restored_beside_its_kept_copy_is_copied_once(
    tmp_path: Path, deletions: str, modified: bool, unsure: Any
) -> None:
    h = await replay(deletions, _restored(modified, unsure), tmp_path)
    assert not h.failures(), h.text()
    assert all(not wrong(p.counts) for p in h.passes if p.checked), h.text()


# soak seeds 11004, 11007 (both modes), 11010 keep: the tenth stream's 429 storm at one
# request at a time per mailbox, and the eighth's kill between a folder's creation and its
# record (the creation's answer held 8 s): the killed process's request held the mailbox's
# one slot, and the re-run's every call met MailboxConcurrency 429s with none of its own calls
# in flight to wait for: retried at once, its 50 retries spent within a second, exit 5
# (``service kept failing after every retry``). With nothing of ours in flight a
# MailboxConcurrency 429 is waited out as any throttling is (``transport``).
@pytest.mark.parametrize("deletions", modes("keep"))
async def test_a_slot_held_by_a_killed_run_is_waited_out(tmp_path: Path, deletions: str) -> None:
    script = [
        ("limits", {"profile": "unlimited", "concurrency": 1}),
        ("ops", [{"op": "createFolder", "parent": "@/Inbox", "name": "New"}]),
        ("ops", [{"op": "add", "folder": "@/Inbox/New", "count": 2}]),
        ("killmake",),
        ("pass", "delta"),
    ]
    h = await replay(deletions, script, tmp_path)
    assert "SIGKILL between" in h.passes[1].note, h.text()
    assert not h.failures(), h.text()


# -- the same race with ``[sync] delta = false``: no link to read again from ------------------
# Every pass lists every folder in full (``listItems``); an item moved during the pass into a
# folder listed before was seen only leaving its folder: under mirror its copy soft-deleted
# and the item imported again the next pass, at a cutover the item missing at its end. The
# folders listed before such a departure was seen are listed again (source only, looking for
# the departures' search keys: ``reread.Relisting``) before the pass applies it.
def _listed_when(folder: str, item: str, to: str, after: int = 1) -> tuple[str, dict[str, Any]]:
    op = {"op": "move", "id": item, "to": to}
    return ("trigger", {"calls": ["listItems"], "folder": folder, "after": after, "ops": [op]})


MOVED_DURING_A_PASS_NO_DELTA = [
    pytest.param(
        [_listed_when("@/Sent Items", "#/Sent Items", "@/Inbox"), ("pass", "delta")],
        id="into-a-folder-listed-before",
    ),
    pytest.param(
        [
            ("ops", [{"op": "delete", "id": "#/Sent Items", "hard": False}]),
            _listed_when("@/Sent Items", "#/Sent Items", "@/Inbox"),
            ("pass", "delta"),
            ("pass", "delta"),
        ],
        id="with-a-deletion-beside-it",
    ),
    # seeds 1802 mirror, 1807 keep: an item new since the last pass (no record, so no
    # departure to explain) moved, when its folder's listing arrives, into a folder listed
    # before (there one the walk found empty; here /Inbox): nothing told the pass that
    # folder changed after its listing, and the item had no copy until the next pass (lost
    # at a cutover). Folders whose count changed after their listing are listed again
    # (``reread``; ``Relisting`` hands on what arrived since the listing)
    pytest.param(
        [
            (
                "ops",
                [
                    {"op": "createFolder", "parent": "@/Sent Items", "name": "New"},
                    {"op": "add", "folder": "@/Sent Items/New", "count": 1},
                ],
            ),
            _listed_when("@/Sent Items/New", "#/Sent Items/New", "@/Inbox"),
            ("pass", "delta"),
        ],
        id="new-item-into-a-folder-listed-before",
    ),
    # an item moved from a folder already listed into one listed later (here the one being
    # listed): copied again there, and its departure unseen: two copies until the next pass.
    # The folder it left is listed again (its count changed after its listing): the
    # departure is seen, a move
    pytest.param(
        [_listed_when("@/Sent Items", "#/Inbox", "@/Sent Items"), ("pass", "delta")],
        id="out-of-a-folder-listed-before",
    ),
    # a departure during the listing again (a deletion before the pass makes every folder
    # listed again; the move is made when /Inbox's second listing arrives, into /Sent Items,
    # listed again after it; or when /Sent Items' arrives, into /Inbox, listed again before
    # it): ``Relisting`` handed on only the departures' keys and noted no departure, so the
    # item kept its copy in its old folder until the next pass (misplaced). Now the listing
    # again tells arrivals and departures since the last listing, as a delta round would
    pytest.param(
        [
            ("ops", [{"op": "delete", "id": "#/Drafts", "hard": True}]),
            _listed_when("@/Inbox", "#/Inbox", "@/Sent Items", after=2),
            ("pass", "delta"),
        ],
        id="during-the-listing-again-into-a-folder-listed-after",
    ),
    pytest.param(
        [
            ("ops", [{"op": "delete", "id": "#/Drafts", "hard": True}]),
            _listed_when("@/Sent Items", "#/Sent Items", "@/Inbox", after=2),
            ("pass", "delta"),
        ],
        id="during-the-listing-again-into-a-folder-listed-before",
    ),
]


@pytest.mark.parametrize("deletions", modes("mirror"))
@pytest.mark.parametrize("script", MOVED_DURING_A_PASS_NO_DELTA)
async def test_an_item_moved_during_a_pass_without_delta_is_moved(
    tmp_path: Path, deletions: str, script: list[Any]
) -> None:
    h = await replay(deletions, script, tmp_path, delta=False)
    assert not h.failures(), h.text()
    assert all(p.live_removed == [] for p in h.passes), h.text()


# the copy made back has an intent of its own (review 3, F1/F2): its answer lost or the pass
# killed, then the item deleted, modified or moved at the source before the next pass; the
# next pass settles the intent by search key where the item lived: the copy made back is the
# item's, deleted or kept (``keep``: the copy moved into the old folder then goes as a second
# copy), updated, or removed for the copy made where the item went, never one nobody claims
X_DELETED = ("ops", [{"op": "delete", "id": "#/Inbox", "hard": True}])
X_MODIFIED = ("ops", [{"op": "modify", "id": "#/Inbox"}])
X_MOVED = ("ops", [{"op": "move", "id": "#/Inbox", "to": "@/Sent Items"}])
COPIED_BACK_UNSURE = [*INTO_A_GONE_FOLDER, LOST, ("pass", "delta", "unchecked")]


@pytest.mark.parametrize("deletions", modes("mirror"))
@pytest.mark.parametrize(
    "script",
    [
        pytest.param(
            [*INTO_A_GONE_FOLDER, SLOW_IMPORT, X_DELETED, ("pass", "delta"), ("pass", "full")],
            id="killed-then-deleted",
        ),
        pytest.param(
            [*COPIED_BACK_UNSURE, X_DELETED, ("pass", "delta"), ("pass", "full")],
            id="answer-lost-then-deleted",
        ),
        pytest.param(
            [*COPIED_BACK_UNSURE, X_DELETED, ("pass", "cutover")],
            id="answer-lost-then-deleted-cutover",
        ),
        pytest.param(
            [*COPIED_BACK_UNSURE, X_MODIFIED, ("pass", "delta"), ("pass", "full")],
            id="answer-lost-then-modified",
        ),
        pytest.param(
            [*COPIED_BACK_UNSURE, X_MOVED, ("pass", "delta"), ("pass", "full")],
            id="answer-lost-then-moved",
        ),
        pytest.param(
            [*INTO_A_MOVED_FOLDER, SLOW_IMPORT, ("pass", "delta"), ("pass", "full")],
            id="moved-folder-killed",
        ),
        pytest.param(
            [
                *INTO_A_MOVED_FOLDER,
                LOST,
                ("pass", "delta", "unchecked"),
                X_DELETED,
                ("pass", "delta"),
                ("pass", "full"),
            ],
            id="moved-folder-answer-lost-then-deleted",
        ),
    ],
)
async def test_a_copy_made_back_unsure_is_settled_whatever_the_item_did_since(
    tmp_path: Path, deletions: str, script: list[Any]
) -> None:
    h = await replay(deletions, script, tmp_path)
    assert not h.failures(), h.text()  # every checked pass exact, a cutover honest
    assert all(p.live_removed == [] for p in h.passes), h.text()
    assert all(p.checked for p in h.passes[-1:]) and not wrong(h.passes[-1].counts), h.text()


@pytest.mark.parametrize("deletions", ["mirror", "keep"])
@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"op": "modify", "id": "#/Inbox/New"}, id="modified"),
        pytest.param({"op": "delete", "id": "#/Inbox/New", "hard": True}, id="deleted"),
    ],
)
async def test_a_create_killed_in_flight_then_changed_is_settled(
    tmp_path: Path, deletions: str, change: dict[str, Any]
) -> None:
    """Any create whose outcome a killed pass never recorded (not only a copy made back),
    its item changed at the source before the next pass: the copy found by search key is of
    the version sent, so a modified item is updated onto it in that pass (not left stale
    until a full pass); a deleted one's copy is found as it leaves and removed or kept by
    the policy, never left for nobody to claim (review 3, F1/F2)."""
    script = [
        ("ops", [{"op": "createFolder", "parent": "@/Inbox", "name": "New"}]),
        ("pass", "delta"),
        ("ops", [{"op": "add", "folder": "@/Inbox/New", "count": 1}]),
        SLOW_IMPORT,  # the pass killed while the import is held: it lands, unrecorded
        ("ops", [change]),
        ("pass", "delta"),
    ]
    h = await replay(deletions, script, tmp_path)
    assert not h.failures(), h.text()
    assert h.passes[-1].checked and not wrong(h.passes[-1].counts), h.text()


# -- review4: what a count cannot tell (``reread._changed_since_listed``) ----------------------
# The folders listed again are those whose item count changed after their listing, and the
# walk that says so runs only when some listing already differed from the pass's walk. Both
# are counts: a second change made at the same moment hides the first. Each script is the
# "new-item-into-a-folder-listed-before" one (seeds 1802, 1807) with one more owner op in
# the same trigger, as a live mailbox makes them (mail arriving while the user files mail).
_NEW_INTO_INBOX = (
    "ops",
    [
        {"op": "createFolder", "parent": "@/Sent Items", "name": "New"},
        {"op": "add", "folder": "@/Sent Items/New", "count": 1},
    ],
)


def _listed_then(folder: str, ops: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    return ("trigger", {"calls": ["listItems"], "folder": folder, "after": 1, "ops": ops})


COUNTS_HIDE_A_MOVE = [
    # a mail arrives in /Sent Items/New as the new item leaves it for /Inbox (listed
    # before): New's listing has as many items as the pass's walk counted, /Inbox's too, so
    # no walk is made and /Inbox is never listed again: the moved item has no copy (lost)
    pytest.param(
        [
            _NEW_INTO_INBOX,
            _listed_then(
                "@/Sent Items/New",
                [
                    {"op": "move", "id": "#/Sent Items/New", "to": "@/Inbox"},
                    {"op": "add", "folder": "@/Sent Items/New", "count": 1},
                ],
            ),
            ("pass", "delta"),
        ],
        # (xfail until the count again stopped waiting for a listing that differed first)
        id="new-item-into-a-folder-listed-before-while-mail-arrives",
    ),
    # the user files the new item into /Inbox (listed before) and an /Inbox item into
    # /Sent Items/New (being listed): every folder's count is what its listing returned,
    # walk or no walk: the new item has no copy (lost), the other two (its old copy in
    # /Inbox still recorded there, a new one in New)
    pytest.param(
        [
            _NEW_INTO_INBOX,
            _listed_then(
                "@/Sent Items/New",
                [
                    {"op": "move", "id": "#/Sent Items/New", "to": "@/Inbox"},
                    {"op": "move", "id": "#/Inbox", "to": "@/Sent Items/New"},
                ],
            ),
            ("pass", "delta"),
        ],
        # the arrival in New of an item whose record (in /Inbox, listed before) no listing
        # saw leave tells it: /Inbox listed again (``reread._unseen_departures``)
        id="two-items-swapped-between-a-folder-listed-before-and-one-being-listed",
    ),
    # the new item filed into /Inbox (listed before) as an /Inbox item is deleted: /Inbox's
    # count is what its listing returned, New's listing returns one item fewer than the
    # pass's walk counted there and no departure explains it (the item that left has no
    # record): the new item had no copy (lost) and the deleted one's copy stayed
    pytest.param(
        [
            _NEW_INTO_INBOX,
            _listed_then(
                "@/Sent Items/New",
                [
                    {"op": "move", "id": "#/Sent Items/New", "to": "@/Inbox"},
                    {"op": "delete", "id": "#/Inbox", "hard": True},
                ],
            ),
            ("pass", "delta"),
        ],
        id="new-item-into-a-folder-listed-before-as-one-there-is-deleted",
    ),
    # ...and mail arriving in New as well: every count is what its listing returned, no key
    # is seen twice, nothing tells the move (``docs/passes.md``: what no count or key tells)
    pytest.param(
        [
            _NEW_INTO_INBOX,
            _listed_then(
                "@/Sent Items/New",
                [
                    {"op": "move", "id": "#/Sent Items/New", "to": "@/Inbox"},
                    {"op": "delete", "id": "#/Inbox", "hard": True},
                    {"op": "add", "folder": "@/Sent Items/New", "count": 1},
                ],
            ),
            ("pass", "delta"),
        ],
        id="new-item-into-a-folder-listed-before-as-one-there-is-deleted-and-mail-arrives",
        marks=pytest.mark.xfail(
            strict=True, reason="no count or key tells it: lost until the next pass"
        ),
    ),
]


@pytest.mark.parametrize("deletions", modes("mirror"))
@pytest.mark.parametrize("script", COUNTS_HIDE_A_MOVE)
async def test_a_move_during_a_pass_without_delta_hidden_by_another_change(
    tmp_path: Path, deletions: str, script: list[Any]
) -> None:
    h = await replay(deletions, script, tmp_path, delta=False)
    assert not h.failures(), h.text()
    assert all(p.live_removed == [] for p in h.passes), h.text()


# -- review4: an item a listing skipped, found by the listing again ---------------------------
# ``listItems`` pages by ``$skip`` (contract §2): an item deleted from a page already read
# while the folder is listed shifts the rest, and the item at the next page's edge is never
# listed. The pass takes it for a departure (a live item, recorded there); the listing again
# (every folder: a departure looks like a deletion) lists it where its record says, but the
# first round's departure is kept (``reread._read_again`` merges ``before``): once the
# folders listed again began after it was seen, it is applied, under mirror the live item's
# copy removed. Pages of 3 items so that a 60-item mailbox's folders have several.
@pytest.mark.parametrize("deletions", modes("mirror"))
async def test_an_item_a_paged_listing_skipped_is_not_taken_for_a_departure(
    tmp_path: Path, deletions: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from copyengine.pipeline import enumerate as enumerate_

    monkeypatch.setattr(enumerate_, "PAGE", 3)
    script = [
        (
            "trigger",
            {
                "calls": ["listItems"],
                "folder": "@/Inbox",
                "after": 2,
                "ops": [{"op": "delete", "id": "#/Inbox", "hard": True}],
            },
        ),
        ("pass", "delta"),
    ]
    h = await replay(deletions, script, tmp_path, delta=False)
    assert not h.failures(), h.text()
    assert all(p.live_removed == [] for p in h.passes), h.text()


# The same paging, an item with no record yet: three new items in a new folder, pages of 2;
# when its second page is asked for, the first item (on the page read) is filed into /Inbox
# (listed before). /Inbox's count changed: listed again, that item copied. The folder's own
# listing returned 2 items, and it holds 2 now: not listed again, and its third item, never
# listed, has no copy after the pass (lost at a cutover; the next pass copies it).
@pytest.mark.parametrize("deletions", modes("mirror"))
async def test_a_new_item_a_paged_listing_skipped_is_copied(
    tmp_path: Path, deletions: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from copyengine.pipeline import enumerate as enumerate_

    monkeypatch.setattr(enumerate_, "PAGE", 2)
    script = [
        (
            "ops",
            [
                {"op": "createFolder", "parent": "@/Sent Items", "name": "New"},
                {"op": "add", "folder": "@/Sent Items/New", "count": 3},
            ],
        ),
        (
            "trigger",
            {
                "calls": ["listItems"],
                "folder": "@/Sent Items/New",
                "after": 2,
                "ops": [{"op": "move", "id": "#/Sent Items/New", "to": "@/Inbox"}],
            },
        ),
        ("pass", "delta"),
    ]
    h = await replay(deletions, script, tmp_path, delta=False)
    assert not h.failures(), h.text()
    assert all(p.live_removed == [] for p in h.passes), h.text()


# A listing returned newest first (the contract says no order; ``emulator.newest_first``):
# mail arriving in a folder while it is listed by ``$skip`` pushes every item one place on,
# and the item read last is at the head of the next page too. Listed twice, it was handed on
# twice in one listing (``graph.skippaging`` hands on each id once); the new mail itself is
# before the pages read, seen by the count again (``reread._changed_since_listed``).
@pytest.mark.parametrize("deletions", modes("mirror"))
async def test_a_newest_first_listing_that_mail_arrives_in_copies_each_item_once(
    tmp_path: Path, deletions: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from copyengine.pipeline import enumerate as enumerate_

    monkeypatch.setattr(enumerate_, "PAGE", 2)
    script = [
        (
            "ops",
            [
                {"op": "createFolder", "parent": "@/Sent Items", "name": "New"},
                {"op": "add", "folder": "@/Sent Items/New", "count": 5},
            ],
        ),
        (
            "trigger",
            {
                "calls": ["listItems"],
                "folder": "@/Sent Items/New",
                "after": 2,
                "ops": [{"op": "add", "folder": "@/Sent Items/New", "count": 1}],
            },
        ),
        ("pass", "delta"),
    ]
    h = await replay(deletions, script, tmp_path, delta=False, emulator={"newest_first": True})
    assert not h.failures(), h.text()
    assert all(p.live_removed == [] for p in h.passes), h.text()


# A round from nothing (a link refused, so the folder read from nothing) whose next page the
# service refuses too (410): the pass failed ("the service kept failing"), the new item not
# copied. Rounds of one page (250 items) rarely meet it; pages of 2 did in the soak (seed
# 2617 with ``enumerate.PAGE = 3``, at 2e3b1b3 as well). The round is read from nothing
# again (``enumerate.FRESH_RESTARTS``) and its link not stored: the next pass reads the
# folder from nothing (an item handed on before the refusal and deleted before the new
# round began is told by no later round: its departure is found from the records).
@pytest.mark.parametrize("deletions", modes("mirror"))
async def test_a_round_from_nothing_refused_midway_is_read_again(
    tmp_path: Path, deletions: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from copyengine.pipeline import enumerate as enumerate_

    monkeypatch.setattr(enumerate_, "PAGE", 2)
    script = [
        ("ops", [{"op": "add", "folder": "@/Inbox", "count": 1}]),
        ("fault", {"kind": "delta_expire", "calls": ["itemDelta"], "count": 3}),
        ("pass", "delta"),
        ("ops", [{"op": "delete", "id": "#/Inbox", "hard": True}]),
        ("pass", "delta"),
    ]
    h = await replay(deletions, script, tmp_path)
    assert not h.failures(), h.text()
    assert all(p.exit_code == 0 for p in h.passes), h.text()
    assert all(p.live_removed == [] for p in h.passes), h.text()


# review5: the part of ``enumerate.DeltaListing``'s read-again that the test above does not
# reach (it passes with ``job.deferred`` never set): an item handed on (and copied) by the
# refused round and deleted before the new round began. No later round tells its
# departure; only the link not stored (``deferred``) makes the next pass read the folder
# from nothing and find it from the records. Pages of 2 in a folder of 30: the first
# batch (20) is copied before the refusal; then the first item is deleted and the next
# page refused (410).
#
# "old-link": the folder has a stored link (made when it held one item) and the pass is
# ``--full`` (every folder read from nothing, links not read): ``deferred`` keeps that old
# link, and the next pass reads from it, not from nothing (``docs/passes.md`` says "the next
# pass reads that folder from nothing"). The item deleted is one new since that link.
@pytest.mark.parametrize("before", ["no-link", "old-link"])
@pytest.mark.parametrize("deletions", modes("mirror"))
async def test_an_item_handed_on_then_deleted_before_the_round_is_read_again_goes(
    tmp_path: Path, deletions: str, before: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contextlib import asynccontextmanager

    import tests.emu as emu
    import tests.histories as histories
    from copyengine.errors import DeltaExpired
    from copyengine.graph.client import GraphClient
    from copyengine.pipeline import enumerate as enumerate_

    monkeypatch.setattr(enumerate_, "PAGE", 2)
    held: dict[str, Any] = {}
    real_running = emu.running

    @asynccontextmanager
    async def running(cfg: Any) -> Any:
        async with real_running(cfg) as t:
            held["emu"] = t[0].emulator
            yield t

    monkeypatch.setattr(histories, "running", running)
    real = GraphClient.item_delta

    def item_delta(
        self: Any,
        mailbox_id: str,
        folder_id: str,
        delta_link: Any = None,
        page_size: int = 200,
        *,
        with_keys: bool = True,
    ) -> Any:
        it = real(self, mailbox_id, folder_id, delta_link, page_size, with_keys=with_keys)
        emu = held["emu"]
        box = emu.require_mailbox(histories.SRC)
        try:
            new = histories._by_path(box, "/Sent Items/New")
        except KeyError:  # the first pass, before the script
            return it
        if held.get("done") or delta_link is not None or folder_id != new.id:
            return it

        async def refused() -> Any:
            pages = 0
            async for page in it:
                yield page
                pages += 1
                if pages == 12:  # 24 handed on: a batch of 20 exported meanwhile
                    held["done"] = True
                    tbox = emu.require_mailbox(histories.DST)
                    mine = {i.content.search_key for i in box.items.values() if i.folder is new}
                    copied: set[bytes] = set()
                    for _ in range(500):  # 10 s at most
                        copied = mine & {i.content.search_key for i in tbox.items.values()}
                        if len(copied) >= 20:
                            break
                        await anyio.sleep(0.02)
                    gone = max(
                        (
                            i
                            for i in box.items.values()
                            if i.folder is new and i.content.search_key in copied
                        ),
                        key=lambda i: i.ord,
                    )
                    held["gone"] = gone.id
                    box.delete_item(gone)
                    raise DeltaExpired("test: the round's next page refused", call="itemDelta")

        return refused()

    monkeypatch.setattr(GraphClient, "item_delta", item_delta)
    made = {"op": "createFolder", "parent": "@/Sent Items", "name": "New"}
    thirty = {"op": "add", "folder": "@/Sent Items/New", "count": 30}
    if before == "no-link":
        script: list[Any] = [("ops", [made, thirty]), ("pass", "delta", "unchecked")]
    else:
        script = [
            ("ops", [made, {"op": "add", "folder": "@/Sent Items/New", "count": 1}]),
            ("pass", "delta"),  # one page: its link stored
            ("ops", [thirty]),
            ("pass", "full", "unchecked"),
        ]
    script.append(("pass", "delta"))  # the copy of the deleted item goes (mirror)
    h = await replay(deletions, script, tmp_path)
    assert "gone" in held, h.text()
    assert h.passes[-2].signoff_complete is not True, h.text()
    assert not h.failures(), h.text()


# review5 ("found elsewhere"): the folder round's the same as the item round's above. A
# fresh folder delta round (a first pass; or after its stored link was refused) whose next
# page the service refuses (410) failed the pass: ``_folder_round`` raised for a round with
# no link. Folder rounds of 2 folders a page, so that the tree's round has several pages;
# the first pass's fresh round refused at its second page (lost items and missing folders
# before: the pass failed), the second pass's folder rounds refused three times over (its
# stored link, then fresh rounds' pages): each is read fresh again, the passes exact.
@pytest.mark.parametrize("deletions", modes("mirror"))
async def test_a_fresh_folder_round_refused_midway_is_read_again(
    tmp_path: Path, deletions: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from copyengine.graph.client import GraphClient

    folder_delta = GraphClient.folder_delta

    def small_pages(
        self: GraphClient, mailbox_id: str, delta_link: str | None = None, page_size: int = 200
    ) -> Any:
        return folder_delta(self, mailbox_id, delta_link, 2)

    monkeypatch.setattr(GraphClient, "folder_delta", small_pages)
    script = [
        ("fault", {"kind": "delta_expire", "calls": ["folderDelta"], "after": 1, "count": 1}),
        ("pass", "delta"),
        ("ops", [{"op": "createFolder", "parent": "@/Inbox", "name": "Later"}]),
        ("ops", [{"op": "add", "folder": "@/Inbox/Later", "count": 2}]),
        ("fault", {"kind": "delta_expire", "calls": ["folderDelta"], "count": 3}),
        ("pass", "delta"),
    ]
    h = await replay(deletions, script, tmp_path)
    assert not h.failures(), h.text()
    assert all(p.exit_code == 0 for p in h.passes), h.text()


# -- a folder deleted or moved at the source during a pass ------------------------------------------
# After the pass's walk listed it: its item round (``itemDelta``, or ``listItems`` when it is
# listed in full) answers 404 ``ErrorItemNotFound``, and an export of an item handed on
# before answers that item's ``ErrorItemNotFound``. Until 97fab5f the pair failed (exit 5,
# "the service kept failing after every retry (itemDelta 404 ...)"). The folder's round ends
# as gone (``produce.Producer._round``), the rest of the pair goes on, and the next pass
# deals with its copy as with any folder deleted between passes, from the records: those
# passes are checked (exact, each item once), the pass it went in is held to what every pass
# is (no failed pair, no copy of a live item removed, an honest sign-off).
def _during(folder: str | None, ops: list[dict[str, Any]], call: str = "itemDelta") -> Any:
    """``ops`` made when ``folder``'s item round arrives (``call``), or, ``folder`` None, the
    pass's first ``call`` (an export: its items handed on already)."""
    body: dict[str, Any] = {"calls": [call], "after": 1, "ops": ops}
    if folder is not None:
        body["folder"] = folder
    return ("trigger", body)


_DELETE = {"op": "deleteFolder", "id": "@/Inbox/Projects"}
FOLDER_GONE_DURING_A_PASS = [
    pytest.param(
        [_during("@/Inbox/Projects", [_DELETE]), ("pass", "delta", "unchecked")],
        id="at-its-item-round",
    ),
    pytest.param(
        [
            ("ops", [{"op": "add", "folder": "@/Inbox/Projects", "count": 3}]),
            _during(None, [_DELETE], call="exportItems"),
            ("pass", "delta", "unchecked"),
        ],
        id="at-an-export-of-its-new-items",
    ),
    pytest.param(
        [
            _during(
                "@/Inbox/Projects",
                [{"op": "move", "id": "#/Inbox/Projects", "to": "@/Inbox"}, _DELETE],
            ),
            ("pass", "delta", "unchecked"),
        ],
        id="an-item-moved-out-of-it-first",
    ),
    pytest.param(
        [_during("@/Inbox/Projects", [_DELETE]), ("pass", "full", "unchecked")],
        id="at-its-round-in-a-full-pass",
    ),
    pytest.param(
        [
            ("ops", [{"op": "moveFolder", "id": "@/Inbox/Projects", "to": "@/Archive"}]),
            _during("@/Archive/Projects", [{"op": "deleteFolder", "id": "@/Archive/Projects"}]),
            ("pass", "delta", "unchecked"),
        ],
        id="moved-before-the-pass-its-items-never-re-homed",
    ),
]


@pytest.mark.parametrize("deletions", modes("keep"))
@pytest.mark.parametrize("script", FOLDER_GONE_DURING_A_PASS)
async def test_a_folder_deleted_at_the_source_during_a_pass_goes_at_the_next(
    tmp_path: Path, deletions: str, script: list[Any]
) -> None:
    h = await replay(deletions, [*script, ("pass", "delta"), ("pass", "delta")], tmp_path)
    assert not h.failures(), h.text()
    during = h.passes[1]
    assert during.exit_code == 0, h.text()
    assert "deleted at the source during the pass" in during.note, h.text()
    assert all(p.live_removed == [] for p in h.passes), h.text()


@pytest.mark.parametrize("deletions", modes("mirror"))
async def test_a_folder_deleted_during_a_pass_without_delta_goes_at_the_next(
    tmp_path: Path, deletions: str
) -> None:
    script = [
        _during("@/Inbox/Projects", [_DELETE], call="listItems"),
        ("pass", "delta", "unchecked"),
        ("pass", "delta"),
    ]
    h = await replay(deletions, script, tmp_path, delta=False)
    assert not h.failures(), h.text()
    assert h.passes[1].exit_code == 0, h.text()
    assert "deleted at the source during the pass" in h.passes[1].note, h.text()


@pytest.mark.parametrize("deletions", modes("mirror"))
async def test_a_folder_moved_at_the_source_during_a_pass_is_moved_by_the_next(
    tmp_path: Path, deletions: str
) -> None:
    """Its id stays: its round reads it where it went, its copies go where the walk placed
    it, and the next pass moves the folder's copy (never an item lost or copied twice)."""
    move = {"op": "moveFolder", "id": "@/Inbox/Projects", "to": "@/Archive"}
    script = [
        ("ops", [{"op": "add", "folder": "@/Inbox/Projects", "count": 2}]),
        _during("@/Inbox/Projects", [move]),
        ("pass", "delta", "unchecked"),
        ("pass", "delta"),
    ]
    h = await replay(deletions, script, tmp_path)
    assert not h.failures(), h.text()
    assert h.passes[1].exit_code == 0 and not h.passes[1].counts.get("lost"), h.text()


# The target's side: a target folder deleted by the target's user during a pass. Its items'
# imports answer 404 ``ErrorFolderNotFound`` (nothing made: not sent); a folder listed in
# full whose target copy went before its listing failed the whole pair until
# ``Producer._target_index`` (exit 5, "listItems 404"). The pair then goes once more within
# the pass (``PairRunner._remake``): it reads both trees, makes the folder again and copies
# its items, exit 0 and said; its items failed (exit 1) until the next pass before.
@pytest.mark.parametrize("deletions", modes("mirror"))
@pytest.mark.parametrize(("kind", "call"), [("delta", "importItem"), ("full", "listItems")])
async def test_a_target_folder_deleted_during_a_pass_is_made_again_in_that_pass(
    tmp_path: Path, deletions: str, kind: str, call: str
) -> None:
    gone = {"op": "deleteFolder", "id": "@/Inbox/Projects"}
    script = [
        ("ops", [{"op": "add", "folder": "@/Inbox/Projects", "count": 3}]),
        ("ops", [{"op": "modify", "id": "#/Inbox/Projects"}]),
        ("ttrigger", {"calls": [call], "after": 1, "ops": [gone]}),
        ("pass", kind),  # checked: the target exact at its end
        ("pass", "delta"),
    ]
    h = await replay(deletions, script, tmp_path)
    assert not h.failures(), h.text()
    assert h.passes[1].exit_code == 0, h.text()
    assert "deleted in the target: made again" in h.passes[1].note, h.text()


@pytest.mark.parametrize("deletions", modes("mirror"))
async def test_a_folder_deleted_during_a_cutover_is_dealt_with_by_its_repair(
    tmp_path: Path, deletions: str
) -> None:
    """The cutover's first sign-off finds the folder's copy (and the item moved out of it
    first, misplaced); its repair lists the pair in full, which deals with the folder as
    gone: signed off complete, exit 0, in the same pass."""
    script = [
        ("ops", [{"op": "add", "folder": "@/Inbox/Projects", "count": 2}]),
        _during(
            "@/Inbox/Projects", [{"op": "move", "id": "#/Inbox/Projects", "to": "@/Inbox"}, _DELETE]
        ),
        ("pass", "cutover"),
    ]
    h = await replay(deletions, script, tmp_path)
    assert not h.failures(), h.text()
    cut = h.passes[-1]
    assert cut.exit_code == 0 and cut.signoff_complete is True, h.text()
    assert "deleted at the source during the pass" in cut.note, h.text()


@pytest.mark.parametrize("deletions", modes("mirror"))
async def test_a_target_folder_deleted_during_a_delta_pass_is_made_again_in_that_pass(
    tmp_path: Path, deletions: str
) -> None:
    """Every folder with a link (none empty, so no fresh tree read for an unlinked one): a
    delta pass reuses the mapping and sent the item into the deleted folder (exit 1, pass
    after pass until ``--full``, then until the next pass). The folder's link is dropped
    when its target folder answers 404 (``FolderJob.target_gone``) and the pair goes once
    more within the pass: it reads both trees, makes the folder again and copies its items;
    the next pass has nothing of it left to do."""
    empty = ["/Contacts/Suppliers", "/Notes", "/Outbox", "/Tasks", "/Tasks/Follow-ups"]
    script = [
        ("ops", [{"op": "add", "folder": f"@{f}", "count": 1} for f in empty]),
        ("pass", "delta"),
        ("ops", [{"op": "modify", "id": "#/Inbox/Projects"}]),
        ("ttrigger", {"calls": ["importItem"], "after": 1, "ops": [_DELETE]}),
        ("pass", "delta"),  # checked
        ("pass", "delta"),
    ]
    h = await replay(deletions, script, tmp_path)
    assert not h.failures(), h.text()
    assert h.passes[2].exit_code == 0 and h.passes[3].exit_code == 0, h.text()
    assert "deleted in the target: made again" in h.passes[2].note, h.text()
    assert "made again" not in h.passes[3].note, h.text()


# -- soak seed 9737 mirror (hunt2, r6): a live item's moved copy hard-deleted ----------------
# Three things in one pass: the target's user moved an item's copy (/Inbox -> /Drafts/PROJECTS),
# the source's user moved the item (/Inbox -> /Inbox/Q3) at the pass's first item round, and
# the target's user deleted the target's /Inbox/Q3 at the pass's first import or listing. A
# full pass lists /Drafts/PROJECTS: the moved copy is a spare, and the item's record, leaving
# /Inbox, was taken as its copy (``spares.remove_second_copies``): the moved copy went as a
# second copy while the import into Q3 failed (the folder gone), and the item had no copy
# (REMOVED_LIVE, lost; at 2a6b768). Since 65427cf the folder is made again within the pass and
# the item copied there; the second case makes the import fail for another reason.
_Q3_SETUP: list[Any] = [
    (
        "ops",
        [
            {"op": "createFolder", "parent": "@/Inbox", "name": "Q3"},
            {"op": "createFolder", "parent": "@/Drafts", "name": "PROJECTS"},
        ],
    ),
    ("ops", [{"op": "add", "folder": "@/Drafts/PROJECTS", "count": 2}]),
    ("pass", "delta"),
    ("drift", [{"op": "move", "id": "~/Inbox", "to": "@/Drafts/PROJECTS"}]),
]
SEED_9737_R6: list[Any] = [
    *_Q3_SETUP,
    ("ops", [{"op": "add", "folder": "@/Archive", "count": 1}]),  # an import for a delta pass
    # at the pass's first item round, delta or full (the generator's ``mid_pass_move``)
    ("trigger", {"after": 1, "ops": [{"op": "move", "id": "#/Inbox", "to": "@/Inbox/Q3"}]}),
    (
        "ttrigger",
        {
            "calls": ["importItem", "listItems"],
            "after": 1,
            "ops": [{"op": "deleteFolder", "id": "@/Inbox/Q3"}],
        },
    ),
]
# the same item's import into its new folder refused (400 ErrorCorruptData, once): the moved
# copy, the item's only one, was hard-deleted as a second copy all the same (on main after
# 65427cf). A key whose live item's copy this pass did not settle has no second copy.
MOVED_COPY_ITEM_MOVED_IMPORT_REFUSED: list[Any] = [
    *_Q3_SETUP,
    ("ops", [{"op": "move", "id": "#/Inbox", "to": "@/Inbox/Q3"}]),
    ("fault", {"kind": "import_reject", "calls": ["importItem"], "count": 1}),
]


@pytest.mark.parametrize("deletions", modes("mirror"))
@pytest.mark.parametrize("kind", ["full", "delta"])
@pytest.mark.parametrize(
    "script",
    [
        pytest.param(SEED_9737_R6, id="9737-target-folder-deleted"),
        pytest.param(MOVED_COPY_ITEM_MOVED_IMPORT_REFUSED, id="import-refused"),
    ],
)
async def test_a_moved_copy_of_an_item_moved_whose_new_copy_failed_is_kept(
    tmp_path: Path, deletions: str, kind: str, script: list[Any]
) -> None:
    h = await replay(deletions, [*script, ("pass", kind, "unchecked"), ("pass", "full")], tmp_path)
    assert not h.failures(), h.text()
    assert all(p.live_removed == [] for p in h.passes), h.text()
    assert not wrong(h.passes[-1].counts), h.text()


# -- a pass killed between a folder's creation and its record (issue 26 soak, defect 3) ------
# the pass moving /Inbox/Receipts under /Archive makes its new copy and is killed before it
# records it (the creation's answer held back); the folder is then deleted at the source: the
# next pass deleted the old copy (mirror) and nothing knew the new one, left for good
KILLED_AT_A_MOVED_FOLDERS_CREATION: list[Any] = [
    ("ops", [{"op": "moveFolder", "id": "@/Inbox/Receipts", "to": "@/Archive"}]),
    ("killmake",),
    ("ops", [{"op": "deleteFolder", "id": "@/Archive/Receipts"}]),
    ("pass", "delta"),
    ("pass", "delta"),
]
# the same with a new folder, moved on at the source after the kill: its first copy,
# unrecorded, is nobody's where nothing needs it
KILLED_AT_A_NEW_FOLDERS_CREATION: list[Any] = [
    ("ops", [{"op": "createFolder", "parent": "@/Inbox/Projects", "name": "Fresh"}]),
    ("ops", [{"op": "add", "folder": "@/Inbox/Projects/Fresh", "count": 2}]),
    ("killmake",),
    ("ops", [{"op": "moveFolder", "id": "@/Inbox/Projects/Fresh", "to": "@/Archive"}]),
    ("pass", "delta"),
    ("pass", "delta"),
]


# a new folder with a subfolder: the pass made both and is killed before it recorded them
# (the subfolder's creation held back); the subfolder is deleted at the source: its parent's
# copy is adopted, and its own, journaled by its parent's place, is swept
KILLED_AT_A_NEW_SUBFOLDERS_CREATION: list[Any] = [
    ("ops", [{"op": "createFolder", "parent": "@/Inbox/Projects", "name": "Fresh"}]),
    ("ops", [{"op": "createFolder", "parent": "@/Inbox/Projects/Fresh", "name": "Sub"}]),
    ("ops", [{"op": "add", "folder": "@/Inbox/Projects/Fresh/Sub", "count": 2}]),
    ("killmake", 1),
    ("ops", [{"op": "deleteFolder", "id": "@/Inbox/Projects/Fresh/Sub"}]),
    ("pass", "delta"),
    ("pass", "delta"),
]


@pytest.mark.parametrize("deletions", modes("mirror"))
@pytest.mark.parametrize(
    "script",
    [
        KILLED_AT_A_MOVED_FOLDERS_CREATION,
        KILLED_AT_A_NEW_FOLDERS_CREATION,
        KILLED_AT_A_NEW_SUBFOLDERS_CREATION,
    ],
    ids=["moved-then-deleted", "new-then-moved", "new-subfolder-then-deleted"],
)
async def test_a_folder_made_and_not_recorded_by_a_killed_pass_is_not_left_behind(
    tmp_path: Path, deletions: str, script: list[Any]
) -> None:
    """The creation is journaled before it is made (``passes.MailboxPass._intents``): the
    next pass finds the folder nobody's copy where nothing needs it and sweeps it as an old
    folder of ours (``_made_before``)."""
    import sqlite3

    h = await replay(deletions, script, tmp_path)
    killed = [p for p in h.passes if p.kind == "killed"]
    assert killed and "between a folder's creation and its record" in killed[0].note, h.text()
    assert not h.failures(), h.text()
    # the journal forgotten, and the folder found by it swept (a copy kept under ``keep``
    # keeps the folder deleted at the source retired: not this one)
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        left = db.execute(
            "SELECT source_folder_id FROM folders WHERE source_folder_id LIKE 'making:%'"
            " OR source_folder_id LIKE 'retired:made:%'"
        ).fetchall()
    assert left == []


# review9: the journal's known limit. A round's creations are journaled at once, before the
# first: killed at the first (Alpha made, its answer held back), Beta's place stays journaled
# though Beta was never made. The target's user then makes a folder of their own there (empty),
# and Beta is deleted at the source: the next pass finds the user's folder at the journaled
# place, nobody's copy and needed by nothing, takes it for its own unrecorded creation
# ("pass.unrecorded_folder"), and sweeps it (deleted once empty, with any empty folders under
# it). Before the journal it stayed. Narrowing it needs the journal to know which creations
# were attempted (a record per creation, or the round's progress); strict, so that a fix says so.
USERS_FOLDER_AT_A_JOURNALED_PLACE: list[Any] = [
    ("ops", [{"op": "createFolder", "parent": "@/Inbox/Projects", "name": "Alpha"}]),
    ("ops", [{"op": "createFolder", "parent": "@/Inbox/Projects", "name": "Beta"}]),
    ("ops", [{"op": "add", "folder": "@/Inbox/Projects/Alpha", "count": 1}]),
    ("ops", [{"op": "add", "folder": "@/Inbox/Projects/Beta", "count": 1}]),
    ("killmake",),
    ("drift", [{"op": "createFolder", "parent": "@/Inbox/Projects", "name": "Beta"}]),
    ("ops", [{"op": "deleteFolder", "id": "@/Inbox/Projects/Beta"}]),
    ("pass", "delta"),
    # the target's user goes back to their folder (a KeyError when it was deleted)
    ("drift", [{"op": "createFolder", "parent": "@/Inbox/Projects/Beta", "name": "Mine"}]),
]


@pytest.mark.xfail(strict=True, raises=KeyError, reason="review9: the journal's known limit")
async def test_a_folder_the_target_user_made_at_a_journaled_place_is_not_swept(
    tmp_path: Path,
) -> None:
    h = await replay("mirror", USERS_FOLDER_AT_A_JOURNALED_PLACE, tmp_path)
    assert not h.failures(), h.text()


async def test_a_history_not_ended_within_its_limit_is_a_timeout_failure(tmp_path: Path) -> None:
    """A history stopped at ``Options.limit_s`` where it is: a failure (``timeout``), so that
    a soak reports it and goes on (seed 9737 mirror, a pass under a 429 storm crawling,
    ran past 600 s and the soaks after it past their wall budget)."""
    import time

    t = time.monotonic()
    h = await run_history(3, "mirror", tmp_path, Options(kill=False, limit_s=2.0))
    assert h.timed_out and "timeout" in h.failures(), (h.failures(), h.error)
    assert time.monotonic() - t < 30


@pytest.mark.slow
async def test_history_9737_mirror_under_its_429_storm_ends(tmp_path: Path) -> None:
    """Soak seed 9737 mirror, every stream (the tenth's 429 storm: 20 requests per 1 s per
    mailbox, a request window shorter than any the pacer keeps): its passes under the storm
    crawled at a quarter of ``[limits]`` and the history ran past 600 s; now ~45 s."""
    h = await run_history(
        9737, "mirror", tmp_path, Options(limit_s=240.0, exclude=TWELFTH | THIRTEENTH | RULES)
    )
    assert any(" STORM " in o for o in h.ops), h.text()
    assert not h.timed_out and not h.failures(), h.text()


# soak seed 14219 keep: an item soft-deleted (its copy kept), then restored into another folder
# in the round whose pass was SIGKILLed after its copy was made and recorded, before the pass's
# end dropped the kept copy: the re-run and every delta pass after met the item's key nowhere
# (settled already: not an arrival) and left the kept copy beside the new one (duplicated,
# the sign-off not complete); only the cutover's full listing repaired it. The same when the
# kept copy's removal failed ("the next pass tries again" did not). Now every pass asks the
# state for kept copies beside a settled copy of their key (``Store.kept_beside_live``)
KEPT_COPY_REMOVAL_FAILED = [
    ("ops", [{"op": "delete", "id": "#/Sent Items", "hard": False}]),
    ("pass", "delta"),
    ("ops", [{"op": "move", "id": "%deleted", "to": "@/Deleted Items"}]),
    ("fault", {"kind": "http_503", "calls": ["deleteItem"], "mailbox": DST, "count": 50}),
    ("pass", "delta", "unchecked"),  # the kept copy's removal fails: exit 1, named unknown
    ("faults", []),
    ("pass", "delta"),
    ("pass", "delta"),
]


async def test_a_kept_copy_left_by_a_pass_that_ended_early_goes_in_the_next(
    tmp_path: Path,
) -> None:
    h = await replay("keep", KEPT_COPY_REMOVAL_FAILED, tmp_path)
    assert not h.failures(), h.text()
    assert [p.checked and not wrong(p.counts) for p in h.passes[-2:]] == [True, True], h.text()


# soak seed 17018 keep: an item soft-deleted (its copy kept) in the round the operator left
# /Sent Items out of the job (a well-known folder: it stays, its mapping forgotten, its kept
# copies kept), then restored into /Deleted Items: the pass copied it there and met the kept
# copy's record in no folder it knew, so left it beside the new one; the sign-off, reading
# only the copied region, said complete. Now the pass drops it (``_kept``), and when that
# fails the pass says so (exit 1) and the sign-off names the second copy (``_kept_outside``)
def _kept_in_a_folder_left_out(fails_at: str | None) -> list[Any]:
    # the kept copy's removal, or the read of its folder, fails: exit 1, named
    fault = {"kind": "http_503", "calls": [fails_at], "mailbox": DST, "count": 50}
    fails: list[Any] = [("fault", fault), ("pass", "delta", "unchecked"), ("faults", [])]
    return [
        ("ops", [{"op": "delete", "id": "#/Sent Items", "hard": False}]),
        ("rules", {"exclude": ["^/Sent Items$"]}),
        ("pass", "delta"),
        ("ops", [{"op": "move", "id": "%deleted", "to": "@/Deleted Items"}]),
        *(fails if fails_at else []),
        ("pass", "delta"),
        ("pass", "full"),
        ("pass", "cutover"),
    ]


@pytest.mark.parametrize(
    "fails_at",
    [None, "deleteItem", pytest.param("getFolder", marks=pytest.mark.slow)],
    ids=["dropped", "removal-fails", "folder-unread"],
)
async def test_a_kept_copy_in_a_well_known_folder_left_out_goes_when_its_item_is_back(
    tmp_path: Path, fails_at: str | None
) -> None:
    h = await replay("keep", _kept_in_a_folder_left_out(fails_at), tmp_path)
    assert not h.failures(), h.text()
    if fails_at:
        failed = h.passes[2]
        assert failed.exit_code == 1 and failed.signed is False, h.text()
        assert "duplicated" in failed.said, h.text()
    assert all(p.checked and not wrong(p.counts) for p in h.passes[-3:]), h.text()


@pytest.mark.slow
async def test_history_17018_keep_a_kept_copy_in_an_excluded_sent_items(tmp_path: Path) -> None:
    h = await run_history(17018, "keep", tmp_path, Options(limit_s=240.0, exclude=THIRTEENTH))
    assert any(" RULES " in o for o in h.ops), h.text()
    assert h.error is None and not h.failures(), h.text()


@pytest.mark.slow
async def test_history_14219_keep_a_restored_item_beside_its_kept_copy_after_a_kill(
    tmp_path: Path,
) -> None:
    h = await run_history(
        14219, "keep", tmp_path, Options(limit_s=240.0, exclude=THIRTEENTH | RULES)
    )
    assert h.error is None and not h.failures(), h.text()


# soak seed 13011 keep (main too): an item deleted (its copy kept, ``keep``), restored, then
# deleted again during the pass that copied it back (a churn; here a reading again that a
# departure elsewhere brings sees it leave): its departure kept the new copy (no other live
# item of its key) and the old kept copy stayed too (its key back only as a departing item):
# two kept copies of one item, and the sign-off said complete
RESTORED_THEN_DELETED_IN_ONE_PASS = [
    ("ops", [{"op": "delete", "id": "#/Sent Items", "hard": False}]),
    ("pass", "delta"),
    ("ops", [{"op": "createFolder", "parent": "@/Inbox", "name": "Back"}]),
    ("ops", [{"op": "move", "id": "%deleted", "to": "@/Inbox/Back"}]),
    ("ops", [{"op": "delete", "id": "#/Drafts", "hard": True}]),
    (
        "trigger",
        {
            "calls": ["itemDelta"],
            "folder": "@/Inbox/Back",
            "after": 2,
            "ops": [{"op": "delete", "id": "#/Inbox/Back", "hard": False}],
        },
    ),
    ("pass", "delta"),
    ("pass", "delta"),
]


@pytest.mark.parametrize("deletions", modes("keep"))
async def test_an_item_restored_then_deleted_in_one_pass_keeps_one_copy(
    tmp_path: Path, deletions: str
) -> None:
    h = await replay(deletions, RESTORED_THEN_DELETED_IN_ONE_PASS, tmp_path)
    assert not h.failures(), h.text()
    assert all(not wrong(p.counts) for p in h.passes if p.checked), h.text()


# soak seed 13011 keep (the twin pair, r5): a folder moved at the source (its copy is a new
# target folder, its items re-homed, the old copy swept once they are), the pass killed after
# it re-homed some items and removed some old copies, then the folder deleted at the source:
# the next pass kept the re-homed copies (their records, ``REMOVED``) and its sweep of the old
# target folder counted only live items' copies as copies elsewhere, so the old copies not yet
# removed stayed beside the kept ones: two copies of each, and the cutover's repair (a full
# listing, which lists no retired folder) kept them too. A kept copy is a copy elsewhere.
MOVED_FOLDER_KILLED_MID_SWEEP_THEN_DELETED: list[Any] = [
    ("ops", [{"op": "add", "folder": "@/Inbox/Receipts", "count": 4}]),
    ("pass", "delta"),
    ("ops", [{"op": "moveFolder", "id": "@/Inbox/Receipts", "to": "@/Archive"}]),
    ("kill", "deleteItem", {"kind": "slow", "calls": ["deleteItem"], "delay": 8.0, "count": 50}),
    ("ops", [{"op": "deleteFolder", "id": "@/Archive/Receipts"}]),
    ("pass", "delta"),
    ("pass", "cutover"),
]


@pytest.mark.parametrize("deletions", modes("keep"))
async def test_a_moved_folder_killed_mid_sweep_then_deleted_keeps_one_copy(
    tmp_path: Path, deletions: str
) -> None:
    h = await replay(deletions, MOVED_FOLDER_KILLED_MID_SWEEP_THEN_DELETED, tmp_path)
    killed = [p for p in h.passes if p.kind == "killed"]
    assert killed and "SIGKILL" in killed[0].note, h.text()
    assert not h.failures(), h.text()
    assert all(not wrong(p.counts) for p in h.passes if p.checked), h.text()
    assert h.passes[-1].signoff_complete, h.text()


# the tenth stream's pinned histories (15024, 9737, 14219) run with ``-m slow``; 15024's
# defect is ``test_a_sweeps_copy_deleted_with_its_answer_lost_does_not_end_the_sweep``
@SLOW
async def test_history_15024_mirror_a_sweep_past_a_delete_whose_answer_was_lost(
    tmp_path: Path,
) -> None:
    """Soak seed 15024 mirror, every stream but the thirteenth (2 of 2 runs on main f2213a6,
    with or without the ninth stream's 404s): r5, a pass killed between a folder's creation
    and its record, its re-run under the quirk "a copy deleted, its answer lost": the sweep
    of /Archive/Inbox's old copy (the folder moved under /Drafts) ended at its retry's 404,
    seven copies left beside their re-homed ones and the old folder with them
    (``test_a_sweeps_copy_deleted_with_its_answer_lost_does_not_end_the_sweep``)."""
    h = await run_history(
        15024, "mirror", tmp_path, Options(limit_s=240.0, exclude=THIRTEENTH | RULES)
    )
    assert any(" QUIRK fired 1 of 1 drop_after deleteItem" in o for o in h.ops), h.text()
    assert h.error is None and not h.failures(), h.text()


# -- the operator changes the job between passes (``_rules``) ------------------------------------
# soak seed 17001 mirror (r6, the first run of the stream): ``[items] types`` narrowed to
# IPM.Note under ``mirror``: the new baseline listed every folder in full and skipped the
# items the filter no longer takes, their records and copies left as they were: the copies
# of items no longer selected stayed (extra_items) and every sign-off after named them
# deletions pending, which no pass would ever apply. What leaves the selection through the
# item filters is gone, as a folder no longer selected is: ``mirror`` removes its copy.
FILTER_NARROWED: list[Any] = [
    ("rules", {"types": ["IPM.Note"]}),
    ("pass", "delta"),
    ("pass", "delta"),
    ("rules", {"types": []}),  # widened again: copied back once, never twice
    ("pass", "delta"),
]


@pytest.mark.parametrize("deletions", ["mirror", "keep"])
async def test_copies_an_item_filter_no_longer_selects_go_as_deletions_do(
    tmp_path: Path, deletions: str
) -> None:
    h = await replay(deletions, FILTER_NARROWED, tmp_path)
    narrowed = h.passes[1]
    assert narrowed.counts["source_items"] < h.passes[0].counts["source_items"], h.text()
    if deletions == "keep":  # kept, as the copies of items deleted at the source are
        assert narrowed.counts["kept"] > 0, h.text()
    assert not h.failures(), h.text()
    assert all(p.signed for p in h.passes[1:]), h.text()


# the same seed (r8, the cutover): ``deletions`` switched keep -> mirror: the copies ``keep``
# kept stay (docs/passes.md), but every sign-off under ``mirror`` named them deletions
# pending (their records ``REMOVED``): a cutover never signed off complete.
KEEP_THEN_MIRROR: list[Any] = [
    ("ops", [{"op": "delete", "id": "#/Inbox", "hard": True}]),
    ("ops", [{"op": "deleteFolder", "id": "@/Inbox/Receipts"}]),
    ("pass", "delta"),
    ("rules", {"deletions": "mirror"}),
    ("pass", "delta"),
    ("pass", "full"),
    ("pass", "cutover"),
]


async def test_keep_then_mirror_keeps_what_keep_kept_and_signs_off(tmp_path: Path) -> None:
    h = await replay("keep", KEEP_THEN_MIRROR, tmp_path)
    kept = h.passes[1].counts["kept"]
    assert kept >= 2, h.text()
    assert all(p.counts["kept"] == kept for p in h.passes[2:]), h.text()
    assert not h.failures(), h.text()
    assert h.passes[-1].signoff_complete, h.text()


# the fast tier of the ``_rules`` stream: the operator changing the job before most passes
# (``p_rules=0.8``), no kill nor churn (timing), without the streams that make a history
# long (tenth to twelfth); every checked pass exact under the rules in force, every sign-off
# honest, no kept copy removed
RULES_FAST = [
    # created_after set, a subtree of unicode names excluded, delta switched
    pytest.param(17007, "keep", id="17007-keep-a-date-range-a-subtree-out"),
    # created_after, then types, lifted in turn; the archive taken off the pair
    pytest.param(17011, "mirror", id="17011-mirror-filters-and-the-archive-off"),
]


@pytest.mark.parametrize(("seed", "deletions"), RULES_FAST)
async def test_history_with_the_operator_changing_the_job(
    tmp_path: Path, seed: int, deletions: str
) -> None:
    opts = Options(
        kill=False, churn=False, p_rules=0.8, exclude=TENTH | ELEVENTH | TWELFTH | THIRTEENTH
    )
    h = await run_history(seed, deletions, tmp_path, opts)
    changes = [o for o in h.ops if " RULES " in o]
    assert len(changes) >= 3, h.text()
    assert h.error is None and not h.failures(), h.text()


# the fast tier's 17011 mirror with rename rules (``p_rename=0.4``, every stream, no kill
# nor churn: ``python -m tests.histories 17011 --p-rules 0.8 --p-rename 0.4 --no-kill
# --no-churn``): r2 a rule sends a subtree under /Inbox/Migrated, which the source does not
# have, r4 lifts it: the folder the engine made for the path stayed, empty and nobody's, a
# leftover folder at every sign-off and the cutover exit 1 (on d54c3da); ~40 s at load 14
async def test_history_with_a_rename_rule_set_and_lifted(tmp_path: Path) -> None:
    opts = Options(kill=False, churn=False, p_rules=0.8, p_rename=0.4)
    h = await run_history(17011, "mirror", tmp_path, opts)
    assert any(" RULES " in o and "rename" in o for o in h.ops), h.text()
    assert h.error is None and not h.failures(), h.text()


# the fast tier's 17011 mirror with p_rules=0.8 and rename rules (r3): ``types`` narrowed in
# the round the target's user moved a copy of an item the filter no longer takes: the full
# pass took the moved copy for the item's only one (the item live, its record not leaving),
# then forgot the record: the copy stayed, nobody's, and the sign-off said complete
FILTER_NARROWED_COPY_MOVED: list[Any] = [
    ("drift", [{"op": "move", "id": "~/Inbox", "to": "@/Outbox"}]),
    ("rules", {"types": ["IPM.Appointment"]}),
    ("pass", "full"),
]


@pytest.mark.parametrize("deletions", ["mirror", "keep"])
async def test_a_moved_copy_of_an_item_a_filter_no_longer_selects_goes_as_deletions_do(
    tmp_path: Path, deletions: str
) -> None:
    h = await replay(deletions, FILTER_NARROWED_COPY_MOVED, tmp_path)
    assert not h.failures(), h.text()


# the same defect without a change of rules (``("rules", {})`` only turns the check that no
# kept copy is removed on): under ``keep`` an item deleted at the source in the round its copy
# was moved by the target's user: the full pass took the moved copy, the item's only one,
# for a second copy (its record leaving, "taken as there") and hard-deleted it
KEPT_COPY_MOVED_IN_THE_TARGET: list[Any] = [
    ("drift", [{"op": "move", "id": "~/Inbox", "to": "@/Outbox"}]),
    ("ops", [{"op": "delete", "id": "#/Inbox", "hard": True}]),
    ("rules", {}),
    ("pass", "full"),
    ("pass", "cutover"),
]


async def test_a_copy_moved_in_the_target_of_an_item_deleted_at_the_source_is_kept(
    tmp_path: Path,
) -> None:
    h = await replay("keep", KEPT_COPY_MOVED_IN_THE_TARGET, tmp_path)
    assert h.passes[1].counts["kept"] == 1, h.text()
    assert not h.failures(), h.text()
    assert h.passes[-1].signoff_complete, h.text()


# the same with the item leaving with its folder (18002 keep with rename rules, r2: a rule
# made that pass list every folder in full): the target's user moved the copy of an item to
# Deleted Items, then its folder was deleted at the source; under ``keep`` the full pass took
# the moved copy for a second copy (the gone folder's record, not leaving with a job, was
# "taken as there") and hard-deleted it: the item's only copy
KEPT_COPY_MOVED_ITS_FOLDER_DELETED: list[Any] = [
    ("drift", [{"op": "move", "id": "~/Inbox/Receipts", "to": "@/Deleted Items"}]),
    ("ops", [{"op": "deleteFolder", "id": "@/Inbox/Receipts"}]),
    ("rules", {}),
    ("pass", "full"),
    ("pass", "cutover"),
]


async def test_a_copy_moved_in_the_target_of_an_item_gone_with_its_folder_is_kept(
    tmp_path: Path,
) -> None:
    h = await replay("keep", KEPT_COPY_MOVED_ITS_FOLDER_DELETED, tmp_path)
    assert not h.failures(), h.text()
    assert h.passes[-1].signoff_complete, h.text()


# soak seed 19031 mirror (r4, hunt6): the operator switched to ``keep`` and left a subtree out
# of the job in the round the target's user moved a copy in it to /Junk Email (and renamed its
# folder); the full pass's second copies (``spares._other_copies``) took the record of the
# item, not selected any more and not leaving with a job, as "taken as there" and
# hard-deleted the moved copy from /Junk Email: the only copy of an item live at the source,
# kept by the policy (``removed_live``: '/Junk Email ... kept copy'). Fixed by 32eca2b (a
# spare whose key's record left with its folder, deleted or no longer selected, is a second
# copy under ``keep`` only where the kept copy is found); both variants fail on 9997d8d,
# the base the seed was found on, and the seed passes on c4aeb2c (20 runs, 4 under load 9)
def _kept_copy_moved_its_folder_left_out(switch: bool) -> list[Any]:
    rules: dict[str, Any] = {"exclude": ["^/Inbox/Receipts(/|$)"]}
    return [
        (
            "drift",
            [
                {"op": "move", "id": "~/Inbox/Receipts", "to": "@/Junk Email"},
                {"op": "renameFolder", "id": "@/Inbox/Receipts", "name": "Receipts (mine)"},
            ],
        ),
        ("rules", {**rules, "deletions": "keep"} if switch else rules),
        ("pass", "full"),
        ("pass", "cutover"),
    ]


@pytest.mark.parametrize("switch", [True, False], ids=["mirror-then-keep", "keep"])
async def test_a_copy_moved_in_the_target_of_an_item_whose_folder_is_left_out_is_kept(
    tmp_path: Path, switch: bool
) -> None:
    script = _kept_copy_moved_its_folder_left_out(switch)
    h = await replay("mirror" if switch else "keep", script, tmp_path)
    assert not h.failures(), h.text()
    assert h.passes[-1].signoff_complete, h.text()


# soak seed 19030 keep (r4, hunt6): an item deleted at the source with its folder, in the round
# the target's user moved that folder's copy under another folder and the item's copy to
# /Outbox; the full pass hard-deleted the copy in /Outbox as a second copy (its record, gone
# with its folder, "taken as there"): the kept copy removed ('/Outbox ... kept copy'). The
# same defect as the one above and 18002 keep, fixed by 32eca2b; fails on 9997d8d
KEPT_COPY_AND_ITS_FOLDER_MOVED_ITS_FOLDER_DELETED: list[Any] = [
    (
        "drift",
        [
            {"op": "move", "id": "~/Inbox/Receipts", "to": "@/Outbox"},
            {"op": "moveFolder", "id": "@/Inbox/Receipts", "to": "@/Sent Items"},
        ],
    ),
    (
        "ops",
        [
            {"op": "delete", "id": "#/Inbox/Receipts", "hard": False},
            {"op": "deleteFolder", "id": "@/Inbox/Receipts"},
        ],
    ),
    ("rules", {}),
    ("pass", "full"),
    ("pass", "cutover"),
]


async def test_a_copy_moved_in_the_target_of_an_item_deleted_with_its_moved_folder_is_kept(
    tmp_path: Path,
) -> None:
    h = await replay("keep", KEPT_COPY_AND_ITS_FOLDER_MOVED_ITS_FOLDER_DELETED, tmp_path)
    assert not h.failures(), h.text()
    assert h.passes[-1].signoff_complete, h.text()


# the seeds themselves (hunt6, removed_live on 9997d8d, every run; pass on c4aeb2c)
@pytest.mark.slow
@pytest.mark.parametrize(("seed", "deletions"), [(19031, "mirror"), (19030, "keep")])
async def test_history_19031_mirror_19030_keep_a_moved_copy_kept(
    tmp_path: Path, seed: int, deletions: str
) -> None:
    h = await run_history(seed, deletions, tmp_path, Options(limit_s=240.0))
    assert any(" RULES " in o for o in h.ops), h.text()
    assert h.error is None and not h.failures(), h.text()


# soak seed 19009 keep (hunt6, r3 settle): both copies of one key hard-deleted ('/Inbox/Projects'
# and '/Sent Items', kept copies) after a churn moved the item from /Sent Items into the folder
# the round's renames made /Inbox/Projects, the operator having left /Inbox/Receipts out. It
# depends on the churn's size (the pass's length): on 9997d8d 1 run of 7 failed (157 churn
# changes; runs of 46-131 passed), on c4aeb2c 5 of 5 passed (51-191 changes). Not diagnosed
# further (the failing run was not instrumented); pinned so that a heavy churn here is run
@pytest.mark.slow
async def test_history_19009_keep_a_churn_round_with_rules_changed(tmp_path: Path) -> None:
    h = await run_history(19009, "keep", tmp_path, Options(limit_s=240.0))
    assert h.error is None and not h.failures(), h.text()


# found by the ``_rules`` stream's rename rules (17011 mirror at p_rules=0.8, p_rename=0.4,
# r4): a rename rule putting a subtree under a folder the source does not have
# (/Inbox/Migrated), then lifted: the subtree's copy goes back where it was, and the folder
# the engine made for the rule's path stayed, empty and nobody's copy: every sign-off named
# it a leftover folder and the cutover exited 1. A folder made only as a path is now
# recorded as ours (``FolderRound.paths``) and goes once no selected folder is under it
RENAME_LIFTED: list[Any] = [
    ("rules", {"rename": [("^/Inbox/Receipts(?=/|$)", "/Inbox/Migrated/Receipts")]}),
    ("pass", "delta"),
    ("rules", {"rename": []}),
    ("pass", "delta"),
    ("pass", "cutover"),
]


@pytest.mark.parametrize("deletions", modes("mirror"))
async def test_a_folder_made_for_a_rename_rule_goes_when_the_rule_is_lifted(
    tmp_path: Path, deletions: str
) -> None:
    h = await replay(deletions, RENAME_LIFTED, tmp_path)
    assert h.passes[1].counts["folders_not_at_source"] >= 1, h.text()  # /Inbox/Migrated
    assert not h.failures(), h.text()
    assert h.passes[-1].signoff_complete, h.text()


# the same cause without a rename rule (17029 keep and 17009 mirror at p_rules=0.8 and the
# soak's defaults): a folder excluded alone (``^/Inbox/Receipts$``), its copy gone (mirror),
# then a subfolder made under it at the source: the engine makes the excluded folder again in
# the target as the subfolder's path; the subfolder deleted at the source, its copy went and
# the folder made for its path stayed, empty and nobody's (leftover at every sign-off); now
# it goes with it (under ``keep`` it stays while the subfolder's kept copy is under it)
EXCLUDED_PARENT_MADE_AGAIN: list[Any] = [
    ("rules", {"exclude": ["^/Inbox/Receipts$"]}),
    ("pass", "delta"),
    ("ops", [{"op": "createFolder", "parent": "@/Inbox/Receipts", "name": "New"}]),
    ("ops", [{"op": "add", "folder": "@/Inbox/Receipts/New", "count": 2}]),
    ("pass", "delta"),
    ("ops", [{"op": "deleteFolder", "id": "@/Inbox/Receipts/New"}]),
    ("pass", "delta"),
    ("pass", "cutover"),
]


async def test_a_folder_made_as_the_path_of_a_selected_one_goes_once_unneeded(
    tmp_path: Path,
) -> None:
    h = await replay("mirror", EXCLUDED_PARENT_MADE_AGAIN, tmp_path)
    assert not h.failures(), h.text()
    assert h.passes[-1].signoff_complete, h.text()


# soak seed 17014 mirror (r3, at fd27d69; 17022 keep at p_rules=0.8 alike): under ``keep`` an
# item gone from the source (here deleted; there no longer selected by ``types``) in the round
# the target's user moved its copy into a folder of theirs under a folder then deleted at the
# source: the sweep of that old folder took the item's kept record, which names the copy as
# it was before the move, for a kept copy elsewhere and hard-deleted the moved one: the
# item's only copy
KEPT_COPY_MOVED_UNDER_A_FOLDER_THAT_GOES: list[Any] = [
    ("drift", [{"op": "createFolder", "parent": "@/Inbox/Receipts", "name": "Mine"}]),
    ("drift", [{"op": "move", "id": "~/Inbox/Receipts", "to": "@/Inbox/Receipts/Mine"}]),
    ("ops", [{"op": "delete", "id": "#/Inbox/Receipts", "hard": True}]),
    ("ops", [{"op": "deleteFolder", "id": "@/Inbox/Receipts"}]),
    ("rules", {}),
    ("pass", "delta"),
    ("pass", "cutover"),
]


async def test_a_kept_copy_moved_under_a_folder_that_goes_is_not_swept(tmp_path: Path) -> None:
    h = await replay("keep", KEPT_COPY_MOVED_UNDER_A_FOLDER_THAT_GOES, tmp_path)
    assert not h.failures(), h.text()


# -- hunt6 -------------------------------------------------------------------------------------
# soak seed 19012 keep (r3 /Sent Items excluded, r5 deletions = mirror, r6 an item moved out of
# /Sent Items into /Junk Email): a well-known folder left out of the selection under ``keep``
# stays with its copies kept (their records ``REMOVED``) and its mapping forgotten; the item
# moved from it into a selected folder was copied there, and the kept copy, whose folder no
# mapping named, was left beside it to the end: duplicated, and the sign-off said complete
WELL_KNOWN_LEFT_OUT_THEN_MOVED_BACK: list[Any] = [
    ("rules", {"exclude": ["^/Sent Items(/|$)"]}),
    ("pass", "delta"),
    ("ops", [{"op": "move", "id": "#/Sent Items", "to": "@/Junk Email"}]),
    ("pass", "delta"),
    ("pass", "cutover"),
]


@pytest.mark.parametrize("switch", [False, True], ids=["keep", "keep-then-mirror"])
async def test_a_kept_copy_of_a_folder_left_out_goes_when_its_item_comes_back(
    tmp_path: Path, switch: bool
) -> None:
    script = list(WELL_KNOWN_LEFT_OUT_THEN_MOVED_BACK)
    if switch:  # as the seed: the policy switched before the move
        script.insert(2, ("rules", {"deletions": "mirror"}))
    h = await replay("keep", script, tmp_path)
    assert h.passes[1].counts["kept"] >= 1, h.text()
    assert not h.failures(), h.text()
    assert h.passes[-1].signoff_complete, h.text()


@pytest.mark.slow
async def test_history_19012_keep_a_kept_copy_beside_its_item_moved_back(tmp_path: Path) -> None:
    h = await run_history(19012, "keep", tmp_path, Options())
    assert h.error is None and not h.failures(), h.text()


# -- keep2 -------------------------------------------------------------------------------------
# soak seed 20103 keep (``--p-rules 0.3 --p-rename 0.3``; hunt7, 2 / 2 runs, and 3 / 3 here): a
# copy kept under ``keep`` (its item in /Archive/2019, excluded in r1) counted kept for good
# after r4's switch to ``mirror``; r4's churn moved the item into /Archive (the churn pass
# copied it there and dropped the kept copy: its item came back) and deleted it, so the
# settling pass soft-deleted its new copy, a deletion under ``mirror`` as any. The oracle,
# which sees the source only between passes, took that copy for the kept one
# (``kept_removed``: "kept copy"); it now drops from the kept keys those whose item a churn
# moved into a selected folder (``churned_back``, from ``Churn.moved``). The engine was right
def test_a_kept_copy_whose_item_a_churn_brought_back_is_kept_no_more() -> None:
    from tests.histories import JobRules, churned_back

    jr = JobRules("mirror", exclude=["^/Archive/2019(/|$)"])
    jr.kept, jr.last_kept = {"k1", "k2", "k3"}, {"k1", "k4"}
    row = {"type": "IPM.Note", "createdDateTime": "2026-01-01T00:00:00Z"}
    moved = [
        {**row, "folderPath": "/Archive", "searchKey": "k1"},  # back in the selection
        {**row, "folderPath": "/Archive/2019/Q1", "searchKey": "k2"},  # still left out
        {**row, "folderPath": "/Inbox", "searchKey": "k5"},  # never kept
    ]
    assert churned_back(jr, moved) == {"k1"}
    assert (jr.kept, jr.last_kept) == ({"k2", "k3"}, {"k4"})


# soak seed 22302 keep: a kept copy whose item the rules leave out stays kept while a user's
# copy of that item (same search key) is selected; the oracle under ``mirror`` counts it
# kept, not a second copy of the twin's (it dropped the key once the twin was selected)
def test_a_kept_copy_beside_its_twin_s_stays_kept_under_mirror() -> None:
    from collections import Counter

    from tests.histories import JobRules, oracle, rules_kept, wrong

    row = {"type": "IPM.Note", "createdDateTime": "2026-01-01T00:00:00Z", "digest": "d"}
    src = {
        "items": [
            {**row, "folderPath": "/Sent Items", "searchKey": "k1"},  # left out by the rules
            {**row, "folderPath": "/Inbox", "searchKey": "k1"},  # its owner's copy
            {**row, "folderPath": "/Inbox", "searchKey": "k2"},
        ],
        "folders": [{"path": p} for p in ("/Inbox", "/Sent Items")],
    }
    dst = {**src, "items": [{**r} for r in src["items"]]}
    jr = JobRules("keep", exclude=["^/Sent Items$"])
    assert jr.kept_now(src, dst) == {"k1"}  # (k2's copy is its selected item's)
    rules_kept(jr, jr.kept_now(src, dst), src)
    assert jr.last_kept == {"k1"}
    jr.kept, jr.deletions = set(jr.last_kept), "mirror"  # (``change_rules``' switch)
    rules_kept(jr, jr.kept_now(src, dst), src)
    assert jr.kept == {"k1"}  # the twin selected does not bring the left-out item back
    counts = oracle(src, dst, "mirror", rules=jr, twins=Counter({"k1": 1}))
    assert wrong(counts) == [] and counts["kept"] == 1
    # the exclusion lifted: the item is selected again, its copy no kept one
    jr.exclude = []
    rules_kept(jr, jr.kept_now(src, dst), src)
    assert jr.kept == set()


@pytest.mark.slow
async def test_history_20103_keep_a_kept_copy_s_item_churned_back_and_deleted(
    tmp_path: Path,
) -> None:
    opts = Options(p_rules=0.3, p_rename=0.3, limit_s=300.0)
    h = await run_history(20103, "keep", tmp_path, opts)
    assert h.error is None and not h.failures(), h.text()


# soak seeds 22101 and 22106 keep (``--p-samekey 0.3``; 2 / 2 runs each, 22101 also on
# 6366ff7, there with a removed_live more): R1b under keep (tests/test_samekey.py's xfails).
# An item deleted at the source while a copy of it its owner made (same search key) lives:
# the sign-off of the pass killed after it names the deleted item's kept copy a second copy
# of the twin's (``verify.judge``: a kept copy is known by its search key), which the oracle,
# counting items, does not (``signoff_names_duplicated_not_wrong``); the pass after it takes
# the departure for a move. Fixed by R1b (``plan.apart``: the state's moments prove them two
# items; docs/passes.md): 22101 3 / 3 runs and 22106 5 / 5 pass (h/r1b2, 1d52671)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [22101, 22106])
async def test_history_keep_an_item_deleted_beside_its_owner_s_copy(
    tmp_path: Path, seed: int
) -> None:
    h = await run_history(seed, "keep", tmp_path, Options(p_samekey=0.3))
    assert h.error is None and not h.failures(), h.text()


# -- spare2 --------------------------------------------------------------------------------------
# soak seed 20110 mirror at --p-rules 0.3 --p-rename 0.3 (hunt7, r5, 2 / 2 runs; the archive
# pair): a rename rule's path folder (/Inbox/Migrated, ours: ``FolderRound.paths``), the
# target's user moves a copy from the renamed folder into it. No folder job listed a folder
# made only as a path, so neither a --full pass nor the cutover's repair saw the moved copy
# as a spare: a new copy was made where it belongs and the moved one stayed (duplicated,
# misplaced; the cutover's sign-off said "1 second copy", exit 1). Now a pass that lists the
# target in full lists a path folder's items as spares (``spares.list_paths``): the moved
# copy of a live item is a second copy under either policy (``keep`` keeps copies of items
# deleted at the source, and this one's item is live: docs/passes.md, target drift)
MOVED_INTO_A_RULE_S_PATH: list[Any] = [
    ("rules", {"rename": [("^/Inbox/Receipts(?=/|$)", "/Inbox/Migrated/Receipts")]}),
    ("pass", "delta"),
    ("drift", [{"op": "move", "id": "#/Inbox/Migrated/Receipts", "to": "@/Inbox/Migrated"}]),
    ("pass", "full"),
    ("pass", "cutover"),
]


@pytest.mark.parametrize("deletions", ["mirror", "keep"])
@pytest.mark.parametrize("full", [True, False], ids=["full", "cutover-repair"])
async def test_a_copy_moved_by_the_target_s_user_into_a_rename_rule_s_path_folder(
    tmp_path: Path, deletions: str, full: bool
) -> None:
    script = list(MOVED_INTO_A_RULE_S_PATH)
    if not full:  # the cutover's sign-off sees it (it lists the path folder) and repairs
        script.remove(("pass", "full"))
    h = await replay(deletions, script, tmp_path)
    assert not h.failures(), h.text()
    assert h.passes[-1].signoff_complete, h.text()
    if not full:
        assert "first sign-off found the target changed" in h.passes[-1].note, h.text()


# soak seeds 22002 keep and 22007 mirror (switched to keep at r3), --p-samekey 0.3 --p-rules
# 0.3 --p-rename 0.3 (spare2, at 41e3e6d, 3 of 3 runs each): a pass killed before it applied
# the deletion of one of two items sharing a search key (a user's copy of a message), its
# twin live with a settled copy; the sign-off taken as the kill left it named the deleted
# one's kept copy a second copy (a false alarm under ``keep``; the next pass removes that
# copy as a move's other half: a kept copy lost). Review R1b, as 22101 / 22106 below and
# ``test_samekey.py``'s xfails: the state could not tell that deletion from a move of the twin
# by key. Fixed by R1b (22002 3 / 3 and 22007 5 / 5 runs pass; 22002 needed the deleted
# twin's folder's moment kept when its link was cleared: the folder moved at the source)
@pytest.mark.slow
@pytest.mark.parametrize(
    ("seed", "deletions"), [(22002, "keep"), (22007, "mirror")], ids=["22002-keep", "22007-mirror"]
)
async def test_history_a_killed_pass_s_sign_off_on_a_deleted_twin(
    tmp_path: Path, seed: int, deletions: str
) -> None:
    opts = Options(p_rules=0.3, p_rename=0.3, p_samekey=0.3)
    h = await run_history(seed, deletions, tmp_path, opts)
    assert not h.failures(), h.text()


# soak seed 22006 keep at --p-samekey 0.3 --p-rules 0.3 --p-rename 0.3 (41e3e6d, 1db4a53: 3 of
# 4 runs; r7): an item moved into a folder and its copy (a user's, same search key) made in a
# folder under it, then the folder deleted at the source: under ``keep`` both copies are kept
# (one item's alone is: the single case), but the pass hard-deleted both kept copies
# (``removed_live``'s "kept copy"). Review R1b, as
# ``test_samekey.py::test_an_item_and_its_copy_deleted_together_are_both_kept`` (there deleted
# one by one, taken for one item that left twice: ``second_copies``). Traced: one twin's
# departure is decided a move (``second_copies``, its copy hard-deleted by ``_removal``), the
# other's copy is kept, then the sweep of the folder takes it for a second copy of the first,
# whose record, forgotten only after the sweeps, still names a settled copy (``_Elsewhere``).
# The state could not tell two items of one key from one: fixed by R1b (``plan.apart``); the
# soak seed switches to ``delta = false`` at r5, so its evidence is each full listing's moment
# (``Store.set_listed``): 22006 2 / 2 runs pass
TWINS_GONE_WITH_THEIR_FOLDER: list[Any] = [
    ("rules", {"deletions": "keep"}),  # (the checker holds kept copies to ``kept_removed``)
    ("ops", [{"op": "createFolder", "parent": "@/Inbox", "name": "T"}]),
    ("ops", [{"op": "createFolder", "parent": "@/Inbox/T", "name": "S"}]),
    ("ops", [{"op": "copy", "id": "#/Inbox", "to": "@/Inbox/T/S"}]),
    ("ops", [{"op": "move", "id": "#/Inbox", "to": "@/Inbox/T"}]),
    ("pass", "delta"),
    ("ops", [{"op": "deleteFolder", "id": "@/Inbox/T"}]),
    ("pass", "delta"),
    ("pass", "cutover"),
]


@pytest.mark.parametrize(
    "twins",
    [True, False],
    ids=["twins", "single"],
)
async def test_copies_of_an_item_and_its_copy_gone_with_their_folder_are_kept(
    tmp_path: Path, twins: bool
) -> None:
    script = list(TWINS_GONE_WITH_THEIR_FOLDER)
    if not twins:  # the item alone: its copy kept (as on main)
        script.remove(("ops", [{"op": "copy", "id": "#/Inbox", "to": "@/Inbox/T/S"}]))
    h = await replay("keep", script, tmp_path)
    assert not h.failures(), h.text()
    assert h.passes[-1].counts["kept"] == (2 if twins else 1), h.text()


@pytest.mark.slow
async def test_history_22006_keep_twins_gone_with_their_folder(tmp_path: Path) -> None:
    opts = Options(p_rules=0.3, p_rename=0.3, p_samekey=0.3)
    h = await run_history(22006, "keep", tmp_path, opts)
    assert not h.failures(), h.text()


# soak seed 22302 keep at --p-samekey 0.3 (a948396): two findings. r6-r8: an item of /Sent
# Items, left out in r3 under keep (its copy kept), mirror from r4, copied by its owner to
# /Junk Email in r6: the oracle said ``duplicated`` (and so ``signoff_complete_but_wrong``)
# for the kept copy beside the twin's; the engine was right, the oracle wrong (fixed:
# ``test_samekey.py::test_a_kept_copy_in_a_folder_left_out_stays_beside_its_items_copy``,
# ``then-mirror``). r8: a /Contacts item left out by ``created_after`` (r2), its copy kept,
# copied by its owner to /Deleted Items: the killed cutover's sign-off named its kept copy a
# second copy and the cutover removed it (R1 for item filters; fixed: the sign-off and the
# second-copy sweep ask the source whether the kept copy's own item is still there,
# ``test_samekey.py::test_a_kept_copy_of_an_item_left_out_by_a_filter_stays_beside_its_items_copy``;
# 3 runs of 3 pass, failures=none, and 31d4bfc fails it: r8 ``duplicated``)
@pytest.mark.slow
async def test_history_22302_keep_a_kept_copy_beside_its_item_s_copy(tmp_path: Path) -> None:
    h = await run_history(22302, "keep", tmp_path, Options(p_samekey=0.3, limit_s=300.0))
    assert not h.failures(), h.text()


# soak seed 22303 keep (``--p-samekey 0.3``; 3 / 3 runs on c94d687, and on the commit before
# R1b): r8 ``removed_live`` x35, each a "kept copy", all in the second pair's target. That
# pair was out of the job from r3 to r8 (``p_pairgone``); meanwhile ``types = ["IPM.Note"]``
# left most items out (r6, under keep: the first pair kept their copies) and the job switched
# to ``mirror`` (r7). Back in r8, the second pair's pass saw those items gone for the first
# time, under ``mirror``, and removed its copies: the policy applies to the deletions a pass
# sees, and "keep then mirror keeps what keep kept" is per pair, what its own state recorded
# kept (docs/passes.md "When the operator changes the job"); the second pair kept nothing.
# The engine was right; the oracle held the first pair's kept keys (``JobRules.kept``, one
# set for the job) against the second pair's target. It now keeps them per pair
# (``twin_kept``, ``JobRules.for_twin``): 3 / 3 runs pass.
TWIN_BACK_UNDER_MIRROR = [
    ("twin", True),
    ("pass", "delta"),  # the second pair copies the mailbox
    ("twin", False),
    ("rules", {"types": ["IPM.Note"]}),  # under keep: the first pair keeps the copies
    ("ops", [{"op": "delete", "id": "#/Inbox", "hard": True}]),
    ("pass", "delta"),
    ("rules", {"deletions": "mirror"}),
    ("pass", "delta"),
    ("twin", True),  # back under mirror: its copies of the items gone meanwhile go
    ("pass", "delta"),
    ("pass", "cutover"),
]


async def test_a_pair_back_under_mirror_removes_what_left_while_it_was_out(
    tmp_path: Path,
) -> None:
    h = await replay("keep", TWIN_BACK_UNDER_MIRROR, tmp_path)
    assert not h.failures(), h.text()
    assert all(p.checked and not wrong(p.counts) for p in h.passes), h.text()
    # the first pair kept the left-out items' copies; the second pair's went (mirror)
    left_out = h.passes[2].counts["kept"]
    assert left_out >= 2, h.text()
    back = h.passes[-2].counts
    assert back["kept"] == left_out, h.text()
    # (source items counted once per target)
    assert back["target_items"] == back["source_items"] + left_out, h.text()


@pytest.mark.slow
async def test_history_22303_keep_a_pair_back_under_mirror(tmp_path: Path) -> None:
    h = await run_history(22303, "keep", tmp_path, Options(p_samekey=0.3, limit_s=300.0))
    assert not h.failures(), h.text()


# soak seed 23002 mirror (``--p-samekey 0.3 --p-rules 0.3 --p-rename 0.3``; on c94d687 it
# failed 3 of 4 runs, and on the commit before R1b): r7, ``delta = false``, the target's user
# deleted an item's copy (drift), its owner modified the item, the pass found the copy to
# update gone (404 x3) and copied the item again (``Stages._copy_now``), then was killed
# before that copy was recorded, and the item was deleted at the source (at the pass's
# export). The record still named the old copy, its import unsettled (``INTENT``); the
# re-run took the departure for a deletion, removed the old copy (404: gone already) and
# forgot the record, so the new copy stayed, nobody's: ``extra_items``, and the sign-off said
# complete (``signoff_complete_but_wrong``; with delta links the record was kept for a full
# pass and the sign-off named a pending deletion). ``_settle_departing`` looked for an
# unrecorded copy only for a record naming none; it now looks for one whenever the copy a
# departing unsettled record names is not in its folder. This script fails 3 / 3 on
# c94d687 with ``delta = false`` (with delta: ``extra_items``, a pending deletion named);
# the seed 3 / 3 passes.
COPIED_AGAIN_KILLED_THEN_DELETED = [
    ("drift", [{"op": "delete", "id": "~/Inbox"}]),  # the target's user deletes its copy
    ("ops", [{"op": "modify", "id": "#/Inbox"}]),
    ("kill", 1),  # its copy gone: copied again, killed before that copy is recorded
    ("ops", [{"op": "delete", "id": "#/Inbox", "hard": True}]),
    ("pass", "delta"),
    ("pass", "cutover"),
]


@pytest.mark.parametrize("delta", [False, True], ids=["listed", "delta"])
@pytest.mark.parametrize("mode", modes("mirror"))
async def test_an_item_copied_again_by_a_killed_pass_then_deleted_leaves_no_copy(
    tmp_path: Path, mode: str, delta: bool
) -> None:
    h = await replay(mode, COPIED_AGAIN_KILLED_THEN_DELETED, tmp_path, delta=delta)
    assert not h.failures(), h.text()
    assert all(not wrong(p.counts) for p in h.passes if p.checked), h.text()
    last = h.passes[-1].counts
    kept = 1 if mode == "keep" else 0  # the copy made again, kept as the item's
    assert last["target_items"] == last["source_items"] + kept, h.text()


@pytest.mark.slow
async def test_history_23002_mirror_an_item_copied_again_killed_then_deleted(
    tmp_path: Path,
) -> None:
    opts = Options(p_samekey=0.3, p_rules=0.3, p_rename=0.3, limit_s=300.0)
    h = await run_history(23002, "mirror", tmp_path, opts)
    assert not h.failures(), h.text()


# soak seed 23006 mirror, replayed (the seed's operator switched to ``keep`` at r1, so what
# ``keep`` keeps is checked): a folder moved at the source; during the pass that moved it,
# at its first export, one of its items moved into another folder and the folder deleted.
# The moved folder's round ended gone (no departure taken: its record A kept naming its
# copy Ta), the arrival was copied (record B, copy Tb) and the sweep of the moved folder's
# old copy removed Ta as a second copy of Tb, A still naming it. The arrival's folder then
# deleted: the next pass saw A and B leave together, ``plan.second_copies`` let A (listed
# first, its copy gone) stand for the item and hard-deleted Tb as a move's old copy: no
# copy left of an item ``keep`` keeps. Fails 3 / 3 on 7028508 (``removed_live`` x1 "kept
# copy"); the sweep now forgets the records naming a copy it removes.
SWEPT_COPY_NAMED = [
    ("rules", {"deletions": "keep"}),
    ("ops", [{"op": "moveFolder", "id": "@/Inbox/Projects", "to": "@/Archive"}]),
    (
        "trigger",
        {
            "calls": ["exportItems"],
            "after": 1,
            "ops": [
                {"op": "move", "id": "#/Archive/Projects", "to": "@/Inbox/Ünïcødé 日本語 📁"},
                {"op": "deleteFolder", "id": "@/Archive/Projects"},
            ],
        },
    ),
    ("pass", "delta", "unchecked"),  # its folders' copies go in the next pass
    ("ops", [{"op": "deleteFolder", "id": "@/Inbox/Ünïcødé 日本語 📁"}]),
    ("pass", "delta"),
]


async def test_a_copy_swept_as_a_second_copy_leaves_no_record_naming_it(tmp_path: Path) -> None:
    h = await replay("mirror", SWEPT_COPY_NAMED, tmp_path)
    assert not h.failures(), h.text()
    assert all(not wrong(p.counts) for p in h.passes if p.checked), h.text()


# soak seed 23006 mirror (``--p-samekey 0.3 --p-rules 0.3 --p-rename 0.3``), found beside
# 23002: r2 settle ``removed_live`` x1 "kept copy" (deletions = keep since r1), 2 / 2 runs on
# c94d687. The item (GYzu7O5Q, record A, copy Ta) had its folder moved; at r2's first export
# it moved into /Inbox/Ünïcødé 日本語 📁 and its folder was deleted: the folder's round ended
# gone, A kept naming Ta; the arrival was copied (record B, copy Tb) and the sweep of the
# moved folder's old copy removed Ta as a second copy of Tb. The settling pass saw A and B
# leave together and ``plan.second_copies`` let A (its copy gone) stand: Tb hard-deleted,
# no copy left. The sweep now forgets the records naming a copy it removes (replayed above:
# ``SWEPT_COPY_NAMED``); the seed passes 3 / 3.
@pytest.mark.slow
async def test_history_23006_mirror_a_kept_copy_hard_deleted(tmp_path: Path) -> None:
    opts = Options(p_samekey=0.3, p_rules=0.3, p_rename=0.3, limit_s=300.0)
    h = await run_history(23006, "mirror", tmp_path, opts)
    assert not h.failures(), h.text()
