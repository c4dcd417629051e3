"""plan/: pure decisions, table by table (no sockets, no sleeps)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from copyengine.config import FolderRules, ItemFilters, RenameRule
from copyengine.graph.models import Folder, FolderNode, Item
from copyengine.plan import (
    Decision,
    Skip,
    TargetIndex,
    TargetRef,
    Verdict,
    batches,
    decide,
    filter_item,
    place,
    plan_folders,
    surplus,
)
from copyengine.state import ItemRecord, Status


def node(
    *names: str, wk: str | None = None, kind: str = "IPF.Note", hidden: bool = False
) -> FolderNode:
    f = Folder("/".join(names), names[-1], None, kind, wk, 0, 0, hidden)
    return FolderNode(f, names, len(names))


TREE = [
    node("Inbox", wk="inbox"),
    node("Inbox", "Projects"),
    node("Inbox", "a/b"),
    node("Sent Items", wk="sentitems"),
    node("Calendar", wk="calendar", kind="IPF.Appointment"),
    node("Secret", hidden=True),
    node("Secret", "Child"),
    node("Archive", wk="archive"),
    node("Archive", "2019"),
]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            FolderRules(),
            {
                ("Inbox",): ("inbox", ()),
                ("Inbox", "Projects"): ("inbox", ("Projects",)),
                ("Inbox", "a/b"): ("inbox", ("a/b",)),
                ("Sent Items",): ("sentitems", ()),
                ("Calendar",): ("calendar", ()),
                ("Archive",): ("archive", ()),
                ("Archive", "2019"): ("archive", ("2019",)),
            },
        ),
        (
            FolderRules(classes=("calendar",)),
            {("Calendar",): ("calendar", ())},
        ),
        (
            FolderRules(skip_hidden=False, classes=("mail",), include=(re.compile("^/Secret"),)),
            {("Secret",): (None, ("Secret",)), ("Secret", "Child"): (None, ("Secret", "Child"))},
        ),
        (
            FolderRules(
                exclude=(re.compile("^/Inbox"),),
                rename=(RenameRule(re.compile("^/Archive/2019"), "/Archive/Old 2019"),),
                classes=("mail",),
            ),
            {
                ("Sent Items",): ("sentitems", ()),
                ("Archive",): ("archive", ()),
                ("Archive", "2019"): ("archive", ("Old 2019",)),
            },
        ),
        (
            FolderRules(target_root="/Migrated/{source}", classes=("mail",), map_well_known=True),
            {
                ("Inbox",): (None, ("Migrated", "adele", "Inbox")),
                ("Inbox", "Projects"): (None, ("Migrated", "adele", "Inbox", "Projects")),
                ("Inbox", "a/b"): (None, ("Migrated", "adele", "Inbox", "a/b")),
                ("Sent Items",): (None, ("Migrated", "adele", "Sent Items")),
                ("Archive",): (None, ("Migrated", "adele", "Archive")),
                ("Archive", "2019"): (None, ("Migrated", "adele", "Archive", "2019")),
            },
        ),
        (
            FolderRules(map_well_known=False, classes=("mail",), include=(re.compile("^/Inbox$"),)),
            {("Inbox",): (None, ("Inbox",))},
        ),
    ],
)
def test_plan_folders(
    rules: FolderRules, expected: dict[tuple[str, ...], tuple[object, ...]]
) -> None:
    got = {
        p.source.names: (p.target.anchor, p.target.parts)
        for p in plan_folders(TREE, rules, "adele@contoso.example")
    }
    assert got == expected


ANCHORS = {"inbox": "I", "sentitems": "S"}
CHILDREN = {None: {"inbox": "I", "sent items": "S", "x": "X"}, "I": {"projects": "P"}, "X": {}}


@pytest.mark.parametrize(
    ("ref", "fallback", "parent", "missing"),
    [
        (TargetRef("inbox", ()), "Inbox", "I", ()),
        (TargetRef("inbox", ("Projects",)), "Inbox", "P", ()),
        (TargetRef("inbox", ("PROJECTS",)), "Inbox", "P", ()),  # names compare case-blind
        (TargetRef("inbox", ("Projects", "2024")), "Inbox", "P", ("2024",)),
        (TargetRef("inbox", ("a/b",)), "Inbox", "I", ("a/b",)),
        # a well-known folder the target lacks: a top folder named like the source's
        (TargetRef("archive", ("2019",)), "Archive", None, ("Archive", "2019")),
        (TargetRef(None, ("X",)), "X", "X", ()),
        (TargetRef(None, ("Migrated", "adele")), "Inbox", None, ("Migrated", "adele")),
    ],
)
def test_place(ref: TargetRef, fallback: str, parent: str | None, missing: tuple[str, ...]) -> None:
    where = place(ref, fallback, ANCHORS, CHILDREN)
    assert (where.parent, where.missing) == (parent, missing)
    assert where.existing == (parent if not missing else None)


def item(i: str, key: bytes | None = b"k", size: int = 100, **kw: object) -> Item:
    base = Item(
        i, "ck", "IPM.Note", size, "2024-05-01T00:00:00Z", "2024-05-01T00:00:00Z", (), key, None
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def record(
    status: Status,
    target: str | None = "t1",
    ck: str | None = "ck",
    tck: str | None = "tck1",
    folder: str = "T",
) -> ItemRecord:
    return ItemRecord("s1", "F", status, b"k", folder, target, ck, tck)


EDITED = "edited in the target since it was copied: restored from the source"
GONE = "deleted in the target since it was copied"


@pytest.mark.parametrize(
    ("rec", "target_keys", "key", "want"),
    [
        (None, [], b"k", Verdict(Decision.COPY)),
        # a copy the state has no record of (state lost, another tool): taken as it is
        (None, [("t1", b"k")], b"k", Verdict(Decision.ADOPT, "t1")),
        (record(Status.DONE), [("t1", b"k")], b"k", Verdict(Decision.ALREADY_DONE, "t1")),
        (record(Status.ADOPTED), [("t1", b"k")], b"k", Verdict(Decision.ALREADY_DONE, "t1")),
        (record(Status.DONE), [], b"k", Verdict(Decision.COPY, drift=GONE)),
        # changed at the source since the copy: updated in place
        (record(Status.DONE, ck="old"), [("t1", b"k")], b"k", Verdict(Decision.UPDATE, "t1")),
        # edited in the target (its change key moved on): restored, reported
        (
            record(Status.DONE, tck="tck0"),
            [("t1", b"k")],
            b"k",
            Verdict(Decision.UPDATE, "t1", EDITED),
        ),
        # the version our copy holds was never recorded: made current once
        (record(Status.ADOPTED, tck=None), [("t1", b"k")], b"k", Verdict(Decision.UPDATE, "t1")),
        # our copy is gone but another with its key is here: of unknown version
        (record(Status.DONE), [("t7", b"k")], b"k", Verdict(Decision.UPDATE, "t7")),
        # a create of this very version, its outcome never recorded: it landed
        (record(Status.INTENT, target=None), [("t9", b"k")], b"k", Verdict(Decision.ADOPT, "t9")),
        (record(Status.UNKNOWN, target=None), [], b"k", Verdict(Decision.COPY)),
        # an intent for an older version: what landed may be older: updated
        (
            record(Status.INTENT, target=None, ck="old"),
            [("t9", b"k")],
            b"k",
            Verdict(Decision.UPDATE, "t9"),
        ),
        # an update whose outcome is unknown: its copy is updated again
        (record(Status.INTENT), [("t1", b"k")], b"k", Verdict(Decision.UPDATE, "t1")),
        (record(Status.FAILED, target=None), [], b"k", Verdict(Decision.COPY)),
        (record(Status.PENDING, target=None), [], b"k", Verdict(Decision.COPY)),
        # recorded in another target folder: a copy being re-homed here (moved folder)
        (record(Status.DONE, folder="OLD"), [], b"k", Verdict(Decision.COPY)),
        # ... whose re-homing import landed before a crash: adopted here
        (record(Status.INTENT), [("t5", b"k")], b"k", Verdict(Decision.ADOPT, "t5")),
        (record(Status.DONE), [], None, Verdict(Decision.ALREADY_DONE, "t1")),  # keyless
        (None, [("t1", None)], None, Verdict(Decision.COPY)),  # keyless: never matched
    ],
)
def test_decide(
    rec: ItemRecord | None,
    target_keys: list[tuple[str, bytes | None]],
    key: bytes | None,
    want: Verdict,
) -> None:
    index = TargetIndex.of(item(t, k, change_key="tck1") for t, k in target_keys)
    assert decide(item("s1", key), rec, index, "T") == want


@pytest.mark.parametrize(
    ("earlier", "want"),
    [
        # the item moved away and back (a new id): its copy, of the version it is, recorded
        # for the new id
        (record(Status.DONE), Verdict(Decision.ADOPT, "t1")),
        # ... edited while it was away: updated in place, not taken as it is (hunt2, 9801)
        (record(Status.DONE, ck="old"), Verdict(Decision.UPDATE, "t1")),
        # ... and its copy edited in the target: restored
        (record(Status.DONE, tck="tck0"), Verdict(Decision.UPDATE, "t1", EDITED)),
        # ... its copy deleted in the target: copied
        (record(Status.DONE, target="t8"), Verdict(Decision.UPDATE, "t1")),
    ],
)
def test_decide_an_item_met_under_a_new_id(earlier: ItemRecord, want: Verdict) -> None:
    """With no record of its id, the folder's record of its search key not met yet is the
    item's (``earlier``): decided as it, a copy current adopted for the new id."""
    index = TargetIndex.of([item("t1", b"k", change_key="tck1")])
    assert decide(item("s2", b"k"), None, index, "T", earlier) == want
    assert decide(item("s2", b"k"), None, TargetIndex(), "T", earlier).decision is Decision.COPY


def test_one_target_item_is_claimed_once() -> None:
    index = TargetIndex.of([item("t1"), item("t2")])
    assert [decide(item(f"s{i}"), None, index, "T").decision for i in range(3)] == [
        Decision.ADOPT,
        Decision.ADOPT,
        Decision.COPY,
    ]


def test_copy_and_verify_agree_on_keyless_items() -> None:
    # Before: verify indexed keyless items by their own ids, so a keyless item copied once
    # was reported both missing (source side) and extra (target side); the copy counted it
    # present. Now one rule: keyless items are matched by count within the folder.
    src = TargetIndex.of([item("s1", None), item("s2", b"a")])
    dst = TargetIndex.of([item("t1", None), item("t2", b"a")])
    assert surplus(src, dst) == [] and surplus(dst, src) == []
    dst2 = TargetIndex.of([item("t1", None), item("t3", None), item("t2", b"a")])
    assert surplus(src, dst2) == [] and surplus(dst2, src) == ["t3"]
    assert src.count() == 2 and dst2.count() == 3


def test_settlement_excludes_target_items_already_recorded() -> None:
    index = TargetIndex.of([item("t1"), item("t2")], exclude=frozenset({"t1"}))
    assert index.claim(b"k") == "t2" and index.claim(b"k") is None


@pytest.mark.parametrize(
    ("filters", "it", "skip"),
    [
        (ItemFilters(), item("s"), None),
        (ItemFilters(max_size=99), item("s", size=100), Skip.TOO_LARGE),
        (ItemFilters(types=("IPM.Appointment",)), item("s"), Skip.TYPE),
        (ItemFilters(types=("IPM.Note",)), item("s", type="IPM.Note.SMIME"), None),
        (ItemFilters(types=("IPM.Note",)), item("s", type="IPM.NoteX"), Skip.TYPE),
        (
            ItemFilters(created_after=datetime(2025, 1, 1, tzinfo=UTC)),
            item("s"),
            Skip.OUT_OF_RANGE,
        ),
        (
            ItemFilters(created_before=datetime(2024, 5, 1, tzinfo=UTC)),
            item("s"),
            Skip.OUT_OF_RANGE,
        ),
        (ItemFilters(created_after=datetime(2024, 5, 1, tzinfo=UTC)), item("s"), None),
    ],
)
def test_filter_item(filters: ItemFilters, it: Item, skip: Skip | None) -> None:
    assert filter_item(it, filters) is skip


def test_batches_by_count_and_bytes() -> None:
    items = [item(str(i), size=10) for i in range(45)]
    assert [len(b) for b in batches(items, 20, 10_000)] == [20, 20, 5]
    sizes = [item("a", size=60), item("b", size=60), item("c", size=500), item("d", size=1)]
    assert [[i.id for i in b] for b in batches(sizes, 20, 100)] == [["a"], ["b"], ["c"], ["d"]]
