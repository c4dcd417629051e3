"""plan/changes.py: what a later pass decides, table by table (no sockets)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from copyengine.config import FolderRules, ItemFilters, Pair, RenameRule
from copyengine.graph.models import Folder, FolderNode, Item
from copyengine.plan import (
    Change,
    Create,
    Fate,
    FolderPlan,
    FolderRound,
    Rename,
    RoundEnd,
    Settled,
    TNode,
    classify_row,
    fingerprint,
    links_to_store,
    path_id,
    plan_folder_round,
    plan_folders,
    removal_fate,
    second_copies,
    settle_verdict,
    to_reread,
    under,
    unexplained,
)
from copyengine.plan.changes import parse_target_path
from copyengine.state import FolderRecord, ItemRecord, Status


def item(ck: str = "ck2", key: bytes = b"k1") -> Item:
    return Item("s1", ck, "IPM.Note", 10, "", "", (), key)


def rec(status: Status, ck: str | None = "ck1", target: str | None = "t1") -> ItemRecord:
    return ItemRecord("s1", "F", status, b"k1", "T", target, ck)


@pytest.mark.parametrize(
    ("record", "want"),
    [
        (None, Change.CREATE),
        (rec(Status.DONE, ck="ck2"), Change.UNCHANGED),
        (rec(Status.ADOPTED, ck="ck2"), Change.UNCHANGED),
        (rec(Status.DONE), Change.UPDATE),  # the source's change key moved on
        (rec(Status.INTENT, ck="ck2"), Change.UPDATE),  # an update never recorded: redo it
        (rec(Status.FAILED), Change.UPDATE),
        (rec(Status.REMOVED, ck="ck2"), Change.UPDATE),  # back, onto the kept copy
        (rec(Status.INTENT, target=None), Change.SETTLE),  # a create's outcome unknown
        (rec(Status.UNKNOWN, target=None), Change.SETTLE),
        (rec(Status.PENDING, target=None), Change.SETTLE),
        (rec(Status.REMOVED, target=None), Change.CREATE),
    ],
)
def test_classify_row(record: ItemRecord | None, want: Change) -> None:
    assert classify_row(item(), record) is want


def other(status: Status, sid: str = "s9", target: str | None = "t9") -> ItemRecord:
    return ItemRecord(sid, "F2", status, b"k1", "T2", target, "ck1")


@pytest.mark.parametrize(
    ("others", "deletions", "want"),
    [
        ([other(Status.DONE)], "keep", Fate.MOVED),  # a move, whatever the policy
        ([other(Status.ADOPTED)], "mirror", Fate.MOVED),
        ([other(Status.DONE, sid="s1")], "keep", Fate.KEEP),  # its own record is not a move
        ([other(Status.INTENT, target=None)], "mirror", Fate.DEFER),  # new copy on its way
        ([other(Status.UNKNOWN, target=None)], "keep", Fate.DEFER),
        ([other(Status.FAILED, target=None), other(Status.DONE, "s8")], "keep", Fate.MOVED),
        ([], "keep", Fate.KEEP),
        ([], "mirror", Fate.DELETE),
    ],
)
def test_removal_fate(others: list[ItemRecord], deletions: str, want: Fate) -> None:
    assert removal_fate(rec(Status.DONE), others, deletions) is want


def test_fingerprint_changes_with_the_rules_only() -> None:
    base = Pair("a@x", "b@y", FolderRules(), ItemFilters())
    same = Pair("A2@x", "b2@y", FolderRules(), ItemFilters())
    assert fingerprint(base) == fingerprint(same)  # who, not what
    wider = Pair("a@x", "b@y", FolderRules(), ItemFilters(types=("IPM.Note",)))
    dated = Pair(
        "a@x", "b@y", FolderRules(), ItemFilters(created_after=datetime(2020, 1, 1, tzinfo=UTC))
    )
    excl = Pair("a@x", "b@y", FolderRules(exclude=(re.compile("^/Junk"),)), ItemFilters())
    assert len({fingerprint(p) for p in (base, wider, dated, excl)}) == 4


@pytest.mark.parametrize("path", ["<inbox>", "<inbox>/a\\/b/c", "/Top/x", "/Mig/<odd>"])
def test_target_paths_parse_back(path: str) -> None:
    assert parse_target_path(path).path == path


def node(fid: str, *names: str, wk: str | None = None) -> FolderNode:
    return FolderNode(Folder(fid, names[-1], None, "IPF.Note", wk, 0, 0), names, len(names))


def _stored(plans: list[FolderPlan], ids: dict[str, str]) -> list[FolderRecord]:
    return [
        FolderRecord(p.source.folder.id, p.source.path, ids[p.source.folder.id], p.target.path)
        for p in plans
    ]


def T(fid: str, name: str, parent: str | None, wk: str | None = None) -> TNode:
    return TNode(fid, name, parent, wk)


BASE = [T("tI", "Inbox", None, "inbox"), T("tA", "Archive", None, "archive")]
ANCHORS = {"inbox": "tI", "archive": "tA"}


def _round(
    after: list[FolderNode],
    stored: list[FolderRecord],
    target: list[TNode],
    keep: bool = False,
    rules: FolderRules | None = None,
) -> tuple[list[Any], dict[str, tuple[str, str, str | None]], FolderRound]:
    rnd = plan_folder_round(
        plan_folders(after, rules or FolderRules(), "a@x"), stored, BASE + target, ANCHORS, keep
    )
    placed = {p.plan.source.folder.id: (p.kind, p.target, p.old) for p in rnd.placed}
    return rnd.actions, placed, rnd


def test_folder_round_same_renamed_moved_new_and_gone() -> None:
    before = [
        node("I", "Inbox", wk="inbox"),
        node("P", "Inbox", "Projects"),
        node("Q", "Inbox", "Projects", "Q1"),
        node("X", "Inbox", "Old"),
        node("G", "Gone"),
    ]
    ids = {"I": "tI", "P": "tP", "Q": "tQ", "X": "tX", "G": "tG"}
    stored = _stored(plan_folders(before, FolderRules(), "a@x"), ids)
    target = [
        T("tP", "Projects", "tI"),
        T("tQ", "Q1", "tP"),
        T("tX", "Old", "tI"),
        T("tG", "Gone", None),
    ]
    after = [
        node("I", "Inbox", wk="inbox"),
        node("P", "Inbox", "Work"),  # renamed
        node("Q", "Inbox", "Work", "Q1"),  # under the renamed parent: the same
        node("A", "Archive", wk="archive"),
        node("X", "Archive", "Old"),  # moved
        node("N", "Inbox", "New"),  # created
    ]
    actions, placed, rnd = _round(after, stored, target)
    assert actions == [
        Rename("tP", "Work"),
        Create("new:1", "tA", "Old", "IPF.Note"),
        Create("new:2", "tI", "New", "IPF.Note"),
    ]
    assert placed == {
        "I": ("same", "tI", None),
        "P": ("renamed", "tP", None),
        "Q": ("same", "tQ", None),
        "A": ("same", "tA", None),
        "X": ("moved", "new:1", "tX"),
        "N": ("new", "new:2", None),
    }
    assert [r.source_folder_id for r in rnd.gone] == ["G"]
    assert rnd.disposal == ["tX", "tG"]  # deepest first
    assert rnd.counts() == {"created": 1, "renamed": 1, "moved": 1, "deleted": 1}


@pytest.mark.parametrize(
    ("keep", "aside"), [(False, "Receipts ~copyengine"), (True, "Receipts (removed at source)")]
)
def test_folder_round_a_rename_onto_a_deleted_folders_name_moves_that_one_aside_first(
    keep: bool, aside: str
) -> None:
    before = [
        node("I", "Inbox", wk="inbox"),
        node("R", "Inbox", "Receipts"),
        node("P", "Inbox", "Projects"),
        node("S", "Inbox", "Projects", "Sub"),
    ]
    stored = _stored(
        plan_folders(before, FolderRules(), "a@x"), {"I": "tI", "R": "tR", "P": "tP", "S": "tS"}
    )
    target = [T("tR", "Receipts", "tI"), T("tP", "Projects", "tI"), T("tS", "Sub", "tP")]
    after = [
        node("I", "Inbox", wk="inbox"),
        node("P", "Inbox", "Receipts"),
        node("S", "Inbox", "Receipts", "Sub"),
    ]
    actions, placed, rnd = _round(after, stored, target, keep=keep)
    assert actions == [Rename("tR", aside, aside=True), Rename("tP", "Receipts")]
    assert placed["P"] == ("renamed", "tP", None) and placed["S"] == ("same", "tS", None)
    assert rnd.disposal == ["tR"]


def test_folder_round_a_swap_and_a_case_only_rename() -> None:
    before = [
        node("I", "Inbox", wk="inbox"),
        node("A", "Inbox", "Alpha"),
        node("B", "Inbox", "Beta"),
        node("C", "Inbox", "Case"),
    ]
    stored = _stored(
        plan_folders(before, FolderRules(), "a@x"), {"I": "tI", "A": "tA1", "B": "tB", "C": "tC"}
    )
    target = [T("tA1", "Alpha", "tI"), T("tB", "Beta", "tI"), T("tC", "Case", "tI")]
    after = [
        node("I", "Inbox", wk="inbox"),
        node("A", "Inbox", "Beta"),
        node("B", "Inbox", "Alpha"),
        node("C", "Inbox", "CASE"),
    ]
    actions, placed, rnd = _round(after, stored, target)
    assert actions == [
        Rename("tB", "Beta ~copyengine", aside=True),
        Rename("tA1", "Beta"),
        Rename("tB", "Alpha"),
        Rename("tC", "CASE"),
    ]
    assert {k: v[0] for k, v in placed.items()} == {
        "I": "same",
        "A": "renamed",
        "B": "renamed",
        "C": "renamed",
    }
    assert rnd.disposal == []


def test_folder_round_a_moved_folder_and_its_children_with_one_deleted() -> None:
    before = [
        node("I", "Inbox", wk="inbox"),
        node("F", "Inbox", "F"),
        node("G", "Inbox", "F", "G"),
        node("H", "Inbox", "F", "H"),
    ]
    stored = _stored(
        plan_folders(before, FolderRules(), "a@x"), {"I": "tI", "F": "tF", "G": "tG", "H": "tH"}
    )
    target = [T("tF", "F", "tI"), T("tG", "G", "tF"), T("tH", "H", "tF")]
    after = [
        node("A", "Archive", wk="archive"),
        node("F", "Archive", "F"),
        node("H", "Archive", "F", "H"),
        node("I", "Inbox", wk="inbox"),
    ]
    actions, placed, rnd = _round(after, stored, target)
    assert actions == [
        Create("new:1", "tA", "F", "IPF.Note"),
        Create("new:2", "new:1", "H", "IPF.Note"),
    ]
    assert placed["F"] == ("moved", "new:1", "tF") and placed["H"] == ("moved", "new:2", "tH")
    # children before parents: the old F goes once nothing is left in it
    assert rnd.disposal[-1] == "tF" and set(rnd.disposal) == {"tF", "tG", "tH"}


def test_folder_round_after_a_crash_adopts_the_new_folder_a_cut_short_move_made() -> None:
    before = [node("I", "Inbox", wk="inbox"), node("F", "Inbox", "F")]
    stored = _stored(plan_folders(before, FolderRules(), "a@x"), {"I": "tI", "F": "tF"})
    target = [T("tF", "F", "tI"), T("tN", "F", "tA")]  # made by the pass that was killed
    after = [
        node("I", "Inbox", wk="inbox"),
        node("A", "Archive", wk="archive"),
        node("F", "Archive", "F"),
    ]
    actions, placed, rnd = _round(after, stored, target)
    assert actions == [] and placed["F"] == ("moved", "tN", "tF")
    assert rnd.disposal == ["tF"]


def test_folder_round_a_folder_nobody_copied_is_adopted_not_moved_aside() -> None:
    after = [node("I", "Inbox", wk="inbox"), node("N", "Inbox", "Reports")]
    actions, placed, _ = _round(after, [], [T("tU", "reports", "tI")])
    assert actions == [Rename("tU", "Reports")] and placed["N"] == ("adopted", "tU", None)


def test_a_rename_rule_change_is_not_taken_for_a_rename() -> None:
    # renames apply to the display path: the same folder under a new rule lands elsewhere
    tree = [node("I", "Inbox", wk="inbox"), node("P", "Inbox", "Projects")]
    stored = _stored(plan_folders(tree, FolderRules(), "a@x"), {"I": "tI", "P": "tP"})
    rules = FolderRules(rename=(RenameRule(re.compile("^/Inbox/Projects"), "/Work"),))
    _, placed, _ = _round(tree, stored, [T("tP", "Projects", "tI")], rules=rules)
    assert placed["P"][0] == "moved" and placed["P"][2] == "tP"


def test_a_folder_made_only_as_a_path_is_said_and_used_again_never_moved_aside() -> None:
    """17009: a rename rule's path (``/Inbox/Migrated``) is made as a path only (the
    round's ``paths``, recorded as ours so that it goes once nothing needs it); the next
    round uses it again as the path, its record notwithstanding (not moved aside for a new
    one); and one a selected folder is placed at is that folder's, not a path."""
    tree = [node("I", "Inbox", wk="inbox"), node("R", "Inbox", "Receipts")]
    rules = FolderRules(rename=(RenameRule(re.compile("^/Inbox/Receipts"), "/Inbox/Mig/R"),))
    stored = _stored(plan_folders(tree, FolderRules(), "a@x"), {"I": "tI", "R": "tR"})
    actions, placed, rnd = _round(tree, stored, [T("tR", "Receipts", "tI")], rules=rules)
    assert actions[0] == Create("new:1", "tI", "Mig", "IPF.Note")
    assert rnd.paths == {"new:1": "<inbox>/Mig"}
    assert placed["R"] == ("moved", "new:2", "tR")
    # the next round: the path's folder recorded as ours, the rule still in force
    ours = FolderRecord(path_id("tM"), "<inbox>/Mig", "tM", "<inbox>/Mig")
    stored = [stored[0], FolderRecord("R", "/Inbox/Receipts", "tR2", "<inbox>/Mig/R"), ours]
    target = [T("tM", "Mig", "tI"), T("tR2", "R", "tM")]
    actions, placed, rnd = _round(tree, stored, target, rules=rules)
    assert actions == [] and placed["R"] == ("same", "tR2", None) and rnd.paths == {}
    assert rnd.disposal == ["tM"]  # looked at by the pass: it stays while R is under it
    assert under("<inbox>/Mig/R", "<inbox>/Mig") and not under("<inbox>/Mig", "<inbox>/Mig")
    assert not under("<inbox>/Migrated", "<inbox>/Mig") and not under("/Mig/R", "<inbox>/Mig")
    # made by a pass cut short before it recorded it (its journal: ``ours``), nobody's copy
    rnd = plan_folder_round(
        plan_folders(tree, rules, "a@x"),
        stored[:2],
        [*BASE, *target],
        ANCHORS,
        False,
        ours={"tM"},
    )
    assert rnd.actions == [] and rnd.paths == {"tM": "<inbox>/Mig"}
    # a folder of the source at the path's place: the path's folder is its copy (adopted)
    tree += [node("M", "Inbox", "Mig")]
    _, placed, rnd = _round(tree, stored, target, rules=rules)
    assert placed["M"] == ("adopted", "tM", None) and rnd.disposal == []


@pytest.mark.parametrize(
    ("end", "want"),
    [
        (RoundEnd("F", "L2", True, False, True), [("F", "L2")]),  # settled: the new link
        (RoundEnd("F", "L2", True, False, False), []),  # unsettled: the old link stays
        (RoundEnd("F", "L2", False, False, True), []),  # cut short: never a partial link
        (RoundEnd("F", None, True, True, False), [("F", None)]),  # expired: cleared
        (RoundEnd("F", "L2", True, True, True), [("F", "L2")]),  # expired, listed, settled
        (RoundEnd("F", None, True, False, True), []),  # no link (delta off)
    ],
)
def test_links_to_store(end: RoundEnd, want: list[tuple[str, str | None]]) -> None:
    assert links_to_store([end]) == want


@pytest.mark.parametrize(
    ("update", "found", "last", "want"),
    [
        (False, "t1", False, Settled.FOUND),  # the create landed
        (False, None, False, Settled.RESEND),
        (False, None, True, Settled.FAILED),
        (False, "t1", True, Settled.FOUND),
        (True, "t1", False, Settled.RESEND),  # an update's copy was there before: resend
        (True, None, True, Settled.FAILED),
    ],
)
def test_settle_verdict(update: bool, found: str | None, last: bool, want: Settled) -> None:
    assert settle_verdict(update, found, last) is want


def test_folder_round_never_disposes_of_a_well_known_folder() -> None:
    # a rule now leaves out Junk Email: its record is gone, the target's own stays
    before = [node("I", "Inbox", wk="inbox"), node("J", "Junk Email", wk="junkemail")]
    stored = _stored(plan_folders(before, FolderRules(), "a@x"), {"I": "tI", "J": "tJ"})
    target = [T("tJ", "Junk Email", None, "junkemail")]
    rules = FolderRules(exclude=(re.compile("^/Junk Email"),))
    _, _, rnd = _round(before, stored, target, rules=rules)
    assert [r.source_folder_id for r in rnd.gone] == ["J"] and rnd.disposal == []


def test_folder_round_a_rename_onto_a_case_variant_nobody_owns_takes_the_exact_name() -> None:
    before = [node("I", "Inbox", wk="inbox"), node("R", "Inbox", "Receipts")]
    stored = _stored(plan_folders(before, FolderRules(), "a@x"), {"I": "tI", "R": "tR"})
    target = [T("tR", "Receipts", "tI"), T("tU", "BILLS", "tI")]  # made in the target
    after = [node("I", "Inbox", wk="inbox"), node("R", "Inbox", "Bills")]
    actions, placed, rnd = _round(after, stored, target)
    assert actions == [Rename("tU", "Bills")] and placed["R"] == ("moved", "tU", "tR")
    assert rnd.disposal == ["tR"]


# -- reading again before deletions apply (a move during a pass, seeds 909/912/921) ---------------
def _r(
    sid: str, key: bytes | None, status: Status = Status.DONE, target: str | None = "t"
) -> ItemRecord:
    return ItemRecord(sid, "F", status, key, "T", target, "ck")


def test_a_departure_is_unexplained_only_without_another_live_record_of_its_key() -> None:
    gone = [
        _r("a", b"ka"),
        _r("b", b"kb"),
        _r("c", b"kc"),
        _r("d", None),
        _r("e", b"ke", target=None),
    ]
    known = [
        *gone,
        _r("b2", b"kb"),  # arrived elsewhere (copied): a move
        _r("c2", b"kc", Status.INTENT),  # arriving, unsettled: a move put off, not a deletion
        _r("a0", b"ka", Status.REMOVED),  # an old copy kept as deleted says nothing
    ]
    # a (only a removed record besides it) looks like a deletion; d and e cannot be told
    # (no key: never a move) or have no copy to lose
    assert [r.source_id for r in unexplained(gone, known)] == ["a"]
    # two departures of one key explain nothing of each other
    assert [r.source_id for r in unexplained([*gone[:1], _r("a1", b"ka")], known)] == ["a", "a1"]


@pytest.mark.parametrize("seed", range(20))
def test_the_folders_read_again_are_those_whose_round_began_before_a_departure(seed: int) -> None:
    """Against the rule stated plainly, over random rounds: a folder is read again exactly
    when it can be and its last round began before the last departure seen."""
    import random

    rng = random.Random(seed)
    rounds = [(f"f{i}", rng.randint(1, 100), rng.random() < 0.8) for i in range(rng.randint(0, 12))]
    seen = [rng.randint(1, 100) for _ in range(rng.randint(0, 4))]
    got = to_reread(seen, rounds)
    for sid, began, can in rounds:
        assert (sid in got) == (can and any(began < t for t in seen))
    assert to_reread([], rounds) == []


def test_one_copy_stands_for_an_item_that_left_more_than_once() -> None:
    a, b = _r("a", b"k"), _r("b", b"k")  # moved a -> b, then b deleted: both left
    c = _r("c", b"k", Status.INTENT)  # unsettled: cannot stand for the item
    d, e = _r("d", b"j"), _r("e", b"j")  # a key with a live record elsewhere: moves
    assert second_copies([a, b, d, e], live={b"j"}) == {"b": a}
    assert second_copies([c, a, b], live=set()) == {"c": a, "b": a}
    assert second_copies([c], live=set()) == {}
    assert second_copies([a, _r("x", None), _r("y", None)], live=set()) == {}


def test_two_records_of_one_key_are_apart_only_when_each_was_there_after_the_other_s_listing() -> (
    None
):
    """Review R1b (``plan.apart``): a user's copy of a message keeps its search key. Two ids
    each at the source after the other was first listed coexisted: two items. A move ends
    the old id before the new one is listed, so its two halves never are; nor are records
    without the evidence (written before it was kept)."""
    from dataclasses import replace

    from copyengine.plan import apart, known_at

    began = {"F": 100, "G": 300}  # when the round of each folder's stored link began
    orig = replace(_r("a", b"k"), folder_id="F", seen=50)
    twin = replace(_r("b", b"k"), folder_id="G", seen=80)  # listed before F's round began
    assert apart(orig, twin, began) and apart(twin, orig, began)
    # a's move into G, listed after F's round began (its departure seen by a later round)
    moved = replace(twin, seen=150)
    assert not apart(orig, moved, began) and not apart(moved, orig, began)
    # kept as deleted: its own moment, not its folder's link's (which moves on)
    kept = replace(orig, status=Status.REMOVED, known=60)
    assert known_at(kept, {"F": 10**9}) == 60
    assert not apart(kept, twin, began)  # 80 is not before 60
    assert apart(replace(kept, known=90), twin, began)
    # no evidence: one item, as the search key says
    assert not apart(replace(orig, seen=None), twin, began)
    assert not apart(orig, twin, {"F": 100})  # G has no link's moment
    assert not apart(replace(kept, known=None), twin, began)
    # two departures of one key proven apart are no second copies of each other
    assert second_copies([orig, twin], live=set(), distinct=lambda x, y: apart(x, y, began)) == {}
    assert second_copies([orig, moved], live=set(), distinct=lambda x, y: apart(x, y, began)) == {
        "b": orig
    }
