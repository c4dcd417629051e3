"""plan/changes.py: what a later pass decides, table by table (no sockets)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from copyengine.config import FolderRules, ItemFilters, Pair, RenameRule
from copyengine.graph.models import Folder, FolderNode, Item
from copyengine.plan import (
    Change,
    Fate,
    FolderPlan,
    classify_row,
    fingerprint,
    plan_folders,
    reconcile_folders,
    removal_fate,
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


@pytest.mark.parametrize(
    ("arrived", "unsettled", "deletions", "want"),
    [
        ({b"k1": "s9"}, set(), "keep", Fate.MOVED),  # a move, whatever the policy
        ({b"k1": "s9"}, set(), "mirror", Fate.MOVED),
        ({b"k1": "s1"}, set(), "keep", Fate.KEEP),  # its own arrival is not a move
        ({}, {b"k1"}, "mirror", Fate.DEFER),  # its new copy may still be on its way
        ({}, set(), "keep", Fate.KEEP),
        ({}, set(), "mirror", Fate.DELETE),
    ],
)
def test_removal_fate(
    arrived: dict[bytes, str], unsettled: set[bytes], deletions: str, want: Fate
) -> None:
    assert removal_fate(rec(Status.DONE), arrived, unsettled, deletions) is want


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


def test_reconcile_folders_names_renames_moves_new_and_gone() -> None:
    rules = FolderRules()
    before = [
        node("I", "Inbox", wk="inbox"),
        node("P", "Inbox", "Projects"),
        node("Q", "Inbox", "Projects", "Q1"),
        node("X", "Inbox", "Old"),
        node("G", "Gone"),
    ]
    stored = _stored(
        plan_folders(before, rules, "a@x"), {"I": "tI", "P": "tP", "Q": "tQ", "X": "tX", "G": "tG"}
    )
    after = [
        node("I", "Inbox", wk="inbox"),
        node("P", "Inbox", "Work"),  # renamed
        node("Q", "Inbox", "Work", "Q1"),  # under the renamed parent: the same
        node("A", "Archive", wk="archive"),
        node("X", "Archive", "Old"),  # moved
        node("N", "Inbox", "New"),  # created
    ]
    ch = reconcile_folders(plan_folders(after, rules, "a@x"), stored)
    assert [(p.source.folder.id, name) for p, _, name in ch.renamed] == [("P", "Work")]
    assert sorted(p.source.folder.id for p, _ in ch.same) == ["I", "Q"]
    assert [p.source.folder.id for p, _ in ch.moved] == ["X"]
    assert sorted(p.source.folder.id for p in ch.new) == ["A", "N"]
    assert [r.source_folder_id for r in ch.gone] == ["G"]
    assert ch.counts() == {
        "folders_created": 2,
        "folders_renamed": 1,
        "folders_moved": 1,
        "folders_deleted": 1,
    }


def test_a_rename_rule_change_is_not_taken_for_a_rename() -> None:
    # renames apply to the display path: the same folder under a new rule lands elsewhere
    tree = [node("I", "Inbox", wk="inbox"), node("P", "Inbox", "Projects")]
    stored = _stored(plan_folders(tree, FolderRules(), "a@x"), {"I": "tI", "P": "tP"})
    rules = FolderRules(rename=(RenameRule(re.compile("^/Inbox/Projects"), "/Work"),))
    ch = reconcile_folders(plan_folders(tree, rules, "a@x"), stored)
    assert [p.source.folder.id for p, _ in ch.moved] == ["P"]
