"""Two source items sharing one search key (review R1, R1b): a user's copy of a message
(Outlook's "Copy to folder", MAPI CopyTo) keeps the original's PidTagSearchKey, so a key is
not an item. Each copy is an item to copy once, at its own folder: not a move of the other,
not a second copy of it. Replayed through the emulator's ``copy`` op (new id and change key,
same content and search key) and judged by the oracle item by item (``histories.oracle``:
a key two live items share wants two copies, each at its item's folder), with every copy
the engine removes held to ``removed_live`` by counts."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from copyengine.config import load_job
from copyengine.errors import NotFound
from copyengine.exitcodes import ExitCode
from copyengine.pipeline.spares import KeptOwn
from copyengine.state import ItemRecord, Status
from copyengine.verify.signoff import pair_entry
from copyengine.wiring import run_job, verify_content_job
from tests.emu import q
from tests.histories import oracle, removed_live, replay, wrong
from tests.jobs import write_job

pytestmark = pytest.mark.anyio


def _snap(items: list[tuple[str, str]]) -> dict[str, Any]:
    folders = sorted({p for p, _ in items} | {"/Inbox"})
    return {
        "items": [
            {"folderPath": p, "searchKey": k, "digest": "d", "type": "IPM.Note"} for p, k in items
        ],
        "folders": [{"path": p, "type": "IPF.Note"} for p in folders],
    }


def test_the_oracle_counts_items_not_keys() -> None:
    src = _snap([("/Inbox", "k1"), ("/Inbox/A", "k1"), ("/Inbox", "k2")])
    both = _snap([("/Inbox", "k1"), ("/Inbox/A", "k1"), ("/Inbox", "k2")])
    assert wrong(oracle(src, both, "mirror")) == []  # two items, two copies: no duplicate
    one = oracle(src, _snap([("/Inbox", "k1"), ("/Inbox", "k2"), ("/Inbox/A", "k3")]), "mirror")
    assert one["lost"] == 1 and one["duplicated"] == 0  # the copy in /Inbox/A never made
    three = oracle(
        src, _snap([*[("/Inbox", "k1")] * 2, ("/Inbox/A", "k1"), ("/Inbox", "k2")]), "mirror"
    )
    assert three["duplicated"] == 1 and three["lost"] == 0
    # one of two deleted at the source: under keep its copy is kept, under mirror extra
    gone = _snap([("/Inbox", "k1"), ("/Inbox", "k2")])
    assert oracle(gone, both, "keep", twins=Counter({"k1": 1}))["kept"] == 1
    assert wrong(oracle(gone, both, "keep", twins=Counter({"k1": 1}))) == []
    assert oracle(gone, both, "mirror", twins=Counter({"k1": 1}))["duplicated"] == 1
    # two items of one key in one folder, one edited: each paired with its own copy
    pair = _snap([("/Inbox", "k1"), ("/Inbox", "k1")])
    pair["items"][1]["digest"] = "edited"
    flipped = {**pair, "items": list(reversed(pair["items"]))}
    assert wrong(oracle(pair, flipped, "mirror")) == []


def test_a_removed_copy_of_one_of_two_items_is_removed_live() -> None:
    removal = [
        {"folderPath": "/Inbox/A", "searchKey": "k1", "call": "deleteItem", "disposal": "hard"}
    ]
    two, one = Counter({"k1": 2}), Counter({"k1": 1})
    assert removed_live(removal, two, two, one) == ["/Inbox/A k1 (deleteItem hard)"]
    assert removed_live(removal, two, one, one) == []  # one of them went: its copy may go
    assert removed_live(removal, {"k1"}, {"k1"}, {"k1"}) == []  # by keys, as before


# A copy of an /Inbox item in a new folder /Inbox/Twins and one in /Inbox itself, passes
# between: the copies made (delta), one moved, the original deleted, the cutover. Both (all
# three) copied, none removed but the deleted one's (mirror), none a duplicate.
def _copies(hard: bool) -> list[Any]:
    return [
        ("ops", [{"op": "createFolder", "parent": "inbox", "name": "Twins"}]),
        ("ops", [{"op": "copy", "id": "#/Inbox", "to": "@/Inbox/Twins"}]),
        ("pass", "delta"),
        ("ops", [{"op": "copy", "id": "#/Inbox", "to": "@/Inbox"}]),
        ("pass", "delta"),
        ("ops", [{"op": "createFolder", "parent": "archive", "name": "Moved"}]),
        ("ops", [{"op": "move", "id": "#/Inbox/Twins", "to": "@/Archive/Moved"}]),
        ("pass", "delta"),
        ("ops", [{"op": "delete", "id": "#/Inbox", "hard": hard}]),
        ("pass", "delta"),
        ("pass", "full"),
        ("pass", "cutover"),
    ]


@pytest.mark.parametrize("deletions", ["mirror", "keep"])
@pytest.mark.parametrize("hard", [True, False], ids=["hard", "soft"])
async def test_copies_of_one_item_in_selected_folders_are_each_copied_once(
    tmp_path: Path, deletions: str, hard: bool
) -> None:
    h = await replay(deletions, _copies(hard), tmp_path)
    assert not h.failures(), h.text()
    assert all(p.checked and not wrong(p.counts) for p in h.passes), h.text()
    assert h.passes[-1].signed is True, h.text()
    # the deleted original's copy: kept beside its two copies' copies under keep
    assert h.passes[-1].counts["kept"] == (1 if deletions == "keep" else 0), h.text()


# R1: the original in a folder the rules leave out (under keep its copy kept there), its
# copy in a selected folder, made before or after the folder was left out: the kept copy is
# no move's other half nor an item restored (its own item is still at the source). And after
# a switch to ``mirror`` (``then-mirror``): mirror keeps what keep kept, the twin's copy no
# second copy of it (soak seed 22302 keep, ``--p-samekey 0.3``: the oracle, not the engine,
# was wrong there: under ``mirror`` it allowed a shared key no kept copy, and dropped the
# key from the kept ones once the twin was selected; it said ``duplicated``, so the
# sign-off's "complete" read as ``signoff_complete_but_wrong``)
def _kept_beside_its_copy(after: bool, mirror: bool = False) -> list[Any]:
    copy = ("ops", [{"op": "copy", "id": "#/Sent Items", "to": "@/Inbox"}])
    rules = ("rules", {"exclude": ["^/Sent Items$"]})
    steps = [rules, ("pass", "delta"), copy] if after else [copy, ("pass", "delta"), rules]
    if mirror:  # switched once the copy is kept: before the twin is made, or after
        switch = [("rules", {"deletions": "mirror"}), ("pass", "delta")]
        steps = [*steps[:2], *switch, copy] if after else [*steps, ("pass", "delta"), *switch]
    return [*steps, ("pass", "delta"), ("pass", "full"), ("pass", "cutover")]


@pytest.mark.parametrize("mirror", [False, True], ids=["keep", "then-mirror"])
@pytest.mark.parametrize("after", [False, True], ids=["copied-before", "copied-after"])
async def test_a_kept_copy_in_a_folder_left_out_stays_beside_its_items_copy(
    tmp_path: Path, after: bool, mirror: bool
) -> None:
    h = await replay("keep", _kept_beside_its_copy(after, mirror), tmp_path)
    assert not h.failures(), h.text()
    assert all(p.checked and not wrong(p.counts) for p in h.passes), h.text()
    # /Sent Items' copies, left out, all kept: none taken for its twin's second copy
    kept = [p.counts["kept"] for p in h.passes[1 if after else 2 :]]
    assert kept[0] and len(set(kept)) == 1, h.text()


# The same with the original left out by an item filter, not a folder rule (soak seed 22302
# keep, r8, once the oracle's ``then-mirror`` error above was fixed: its /Contacts item
# older than ``created_after``, its copy kept; the owner's copy of it, created now, in
# /Deleted Items): the original's kept copy lies in a selected, listed folder. Nothing but
# its own record tells it from a copy the target's user moved there, so both the sign-off
# (``check._kept_own``, then ``judge``'s ``own``) and a full pass's second copies
# (``spares.KeptOwn``) ask the source whether its own item is still there under its id
# (``survey.still_at_source``, one ``getItem``): it is, so the kept copy is its own item's,
# kept. Before, the sign-off named it a second copy of the twin's (``duplicated``, r4) and
# the next full pass hard-deleted it (kept 60, then 59).
# (the emulator seeds items before today's midnight, UTC; its ``copy`` creates one now)
TODAY = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
LEFT_OUT_BY_A_FILTER = [
    ("rules", {"created_after": TODAY}),  # every seeded item left out
    ("pass", "delta"),
    ("ops", [{"op": "copy", "id": "#/Inbox", "to": "@/Junk Email"}]),  # created now: selected
    ("pass", "delta"),
    ("pass", "full"),
    ("pass", "cutover"),
]


# ``then-mirror``: the job switched to ``mirror`` once the copies are kept, before the twin
# is made: mirror keeps what keep kept, so the kept copy stays beside the twin's as well.
@pytest.mark.parametrize("mirror", [False, True], ids=["keep", "then-mirror"])
async def test_a_kept_copy_of_an_item_left_out_by_a_filter_stays_beside_its_items_copy(
    tmp_path: Path, mirror: bool
) -> None:
    steps = LEFT_OUT_BY_A_FILTER
    if mirror:
        steps = [*steps[:2], ("rules", {"deletions": "mirror"}), ("pass", "delta"), *steps[2:]]
    h = await replay("keep", steps, tmp_path)
    assert not h.failures(), h.text()  # signoff_names_duplicated_not_wrong
    # every seeded item's copy kept, the removal included (the oracle allows a shared key's
    # kept copies up to its items, so it cannot tell the kept copy gone)
    kept = [p.counts["kept"] for p in h.passes[1:]]
    assert len(set(kept)) == 1, h.text()


# The same kept copy in a folder the owner then moves at the source (/Inbox/Receipts under
# /Archive): its old target copy is swept (``passes._sweep_old``), where a copy whose key a
# live item's copy elsewhere has goes (``rehome.Rehome.sort``: the twin's copy in /Junk
# Email found) unless it is the kept copy of an item still at the source (``KeptOwn``):
# before, the sweep hard-deleted it (kept 60, then 59; the oracle allows a shared key's kept
# copies up to its items, so only the count tells), now it stays in the old folder, kept.
MOVED_AWAY = [
    ("rules", {"created_after": TODAY}),
    ("pass", "delta"),
    ("ops", [{"op": "copy", "id": "#/Inbox/Receipts", "to": "@/Junk Email"}]),
    ("pass", "delta"),
    ("ops", [{"op": "moveFolder", "id": "@/Inbox/Receipts", "to": "@/Archive"}]),
    ("pass", "delta"),
    ("pass", "full"),
    ("pass", "cutover"),
]


async def test_a_kept_copy_of_an_item_left_out_stays_when_its_folder_s_old_copy_is_swept(
    tmp_path: Path,
) -> None:
    h = await replay("keep", MOVED_AWAY, tmp_path)
    assert not h.failures(), h.text()
    kept = [p.counts["kept"] for p in h.passes[1:]]
    assert len(set(kept)) == 1, (kept, h.text())


# The left-out item itself moved at the source (to /Archive, a selected folder; still older
# than ``created_after``, so still left out) is still there, under a new id: the recorded
# one answers 404 (``survey.still_at_source``: "gone"). Before, the pass that saw it leave
# took it for a move "seen in two halves" whose other half is the twin
# (``passes._drop_kept_moves``): the kept copy was hard-deleted (kept 60, then 59 at r6) and
# the cutover signed off complete, the content left only in the twin's copy (review10,
# question c). Now the pass's listing of /Archive met it, left out, under an id no record
# names (``survey.moved_left_out``): the kept copy stays and its record follows the item
# (``passes._moved_left_out``), so later passes that list nothing (delta), a full pass's
# sweep and the sign-off find it there by one ``getItem``. ``full``: the move met first by
# a full pass, whose second-copy sweep (``spares.KeptOwn``) runs before the departures.
# ``lifted``: then the filter lifted (every folder listed in full again): the moved item,
# selected now in /Archive under the id its record was moved to, has its copy there.
LEFT_OUT_THEN_MOVED: list[tuple[str, Any]] = [
    ("rules", {"created_after": TODAY}),
    ("pass", "delta"),
    ("ops", [{"op": "copy", "id": "#/Inbox", "to": "@/Junk Email"}]),
    ("pass", "delta"),
    ("ops", [{"op": "move", "id": "#/Inbox", "to": "@/Archive"}]),
]
MOVED_THEN: dict[str, list[tuple[str, Any]]] = {
    "delta": [("pass", "delta"), ("pass", "delta"), ("pass", "full"), ("pass", "cutover")],
    "full": [("pass", "full"), ("pass", "delta"), ("pass", "cutover")],
    "lifted": [
        ("pass", "delta"),
        ("pass", "delta"),
        ("rules", {"created_after": None}),
        ("pass", "delta"),
        ("pass", "full"),
        ("pass", "cutover"),
    ],
}


@pytest.mark.parametrize("then", list(MOVED_THEN))
async def test_a_kept_copy_of_an_item_left_out_stays_when_the_item_moves_at_the_source(
    tmp_path: Path, then: str
) -> None:
    h = await replay("keep", [*LEFT_OUT_THEN_MOVED, *MOVED_THEN[then]], tmp_path)
    assert not h.failures(), h.text()
    assert h.passes[-1].signoff_complete, h.text()
    kept = [p.counts["kept"] for p in h.passes[1:]]
    if then == "lifted":  # (none kept once every item is selected again)
        kept, after = kept[:-3], kept[-3:]
        assert after == [0, 0, 0], (after, h.text())
    assert len(set(kept)) == 1, (kept, h.text())


async def _every_item_left_out(emu: Any, tmp_path: Path) -> tuple[list[tuple[str, str]], Any]:
    """A pair copied whole, then a pass under ``created_after`` today: every seeded item
    left out, its copy kept (the job's pair and its config under the filter)."""
    pair = [("adele@contoso.example", "adele@fabrikam.example")]
    assert (await run_job(load_job(write_job(tmp_path, emu.ep, pair)))).exit_code() == 0
    cfg = load_job(write_job(tmp_path, emu.ep, pair, extra=f'[items]\ncreated_after = "{TODAY}"\n'))
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    return pair, cfg


# What the sign-off's question costs (``check._kept_own``): a ``getItem`` per kept copy whose
# search key a selected item shares, and none without one. Every seeded item left out by
# ``created_after`` (its copy kept): the sign-off asks nothing, its requests call by call
# those of before this check; once its owner copies one of them into a selected folder (the
# copy created now, selected), one ``getItem`` more and nothing else, and the kept copy is
# told kept, not named a second copy (before: ``duplicated`` 1, and no request more).
async def _signoff_calls(emu: Any, cfg: Any) -> tuple[Any, Counter[str]]:
    await emu.src.control("POST", "/stats/reset")
    (check,) = await verify_content_job(cfg)
    body = (await emu.src.control("GET", "/stats")).body
    return check, Counter({c: sum(n.values()) for c, n in body["requests"].items()})


async def test_the_sign_off_asks_the_source_only_for_kept_copies_sharing_a_selected_key(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair, cfg = await _every_item_left_out(emu, tmp_path)
    check, before = await _signoff_calls(emu, cfg)
    kept = len(check.verdict.kept)
    assert check.ok and kept > 1 and before["getItem"] == 0, (check.as_dict(), before)
    box = emu.state.require_mailbox(pair[0][0])
    inbox = box.well_known["inbox"]
    r = await emu.src.control(
        "POST",
        f"/mailboxes/{q(box.id)}/changes",
        {"ops": [{"op": "copy", "id": next(iter(inbox.live_items())).id, "to": "junkemail"}]},
    )
    assert r.status == 200, r.body
    assert (await run_job(cfg)).exit_code() == ExitCode.OK
    check, after = await _signoff_calls(emu, cfg)
    assert check.ok and not check.verdict.duplicated, check.as_dict()
    assert len(check.verdict.kept) == kept and check.verdict.selected == 1, check.as_dict()
    assert after - before == Counter({"getItem": 1}) and not before - after, (before, after)


# The sign-off asks about every such kept copy, however many. Before, 500 at most
# (``survey.MAX_ASKED``) were asked per mailbox and every one beyond them was named a second
# copy at every sign-off, so a cutover with more could never sign off complete: here that
# bound is made 1 (as main read it, ``check.MAX_ASKED``) with three such copies, and main
# named two of them duplicated. Each is asked once (``KEPT_ASK_AT_ONCE`` at a time). Out of
# time (``check.KEPT_ASK_S``, here 0) none is named a second copy nor told its item's: the
# sign-off says them not checked (not complete, in its words and its counts).
async def test_the_sign_off_asks_about_every_kept_copy_and_says_those_not_checked(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair, cfg = await _every_item_left_out(emu, tmp_path)
    box = emu.state.require_mailbox(pair[0][0])
    ops = [
        {"op": "copy", "id": it.id, "to": "junkemail"}
        for it in list(box.well_known["inbox"].live_items())[:3]
    ]
    r = await emu.src.control("POST", f"/mailboxes/{q(box.id)}/changes", {"ops": ops})
    assert r.status == 200, r.body
    assert (await run_job(cfg)).exit_code() == ExitCode.OK  # the twins copied
    monkeypatch.setattr("copyengine.verify.check.MAX_ASKED", 1, raising=False)
    check, calls = await _signoff_calls(emu, cfg)
    assert check.ok and not check.verdict.duplicated, check.as_dict()
    assert calls["getItem"] == 3 and not check.verdict.kept_unchecked, (calls, check.as_dict())
    kept = len(check.verdict.kept)
    monkeypatch.setattr("copyengine.verify.check.KEPT_ASK_S", 0.0)
    with capture_logs() as logs:
        check, _ = await _signoff_calls(emu, cfg)
    v = check.verdict
    assert not check.ok and not v.duplicated and len(v.kept) == kept, check.as_dict()
    assert len(v.kept_unchecked) == 3 and check.as_dict()["kept_unchecked"] == 3
    entry = pair_entry(cfg.pairs[0], check)
    assert not entry["complete"] and entry["duplicated"] == 0, entry
    assert entry["said"].startswith("not complete: 3 kept copies not checked"), entry["said"]
    said = [e for e in logs if e["event"] == "verify.kept_copies_unchecked"]
    assert said and said[0]["unchecked"] == 3 and said[0]["timed_out"], said


# What a full pass's question costs: one ``getItem`` per kept copy of an item left out whose
# key a selected item's copy shares. The second-copy sweep (``spares.KeptOwn``) asks first;
# ``passes._drop_kept_moves`` (which asks for every kept copy beside a live one's, every
# pass) takes its "there" (``MailboxPass.at_source``): before, each pass asked twice for the
# same copy (getItem 2). Past KeptOwn's bound (``survey.MAX_ASKED`` 0) it is not asked there
# (``item.kept_copy_unasked``: kept), and ``_drop_kept_moves`` asks. Either way the copy is
# kept and the sign-off finds nothing duplicated.
async def test_a_full_pass_asks_once_whether_a_kept_copy_s_item_is_still_there(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair, cfg = await _every_item_left_out(emu, tmp_path)
    box = emu.state.require_mailbox(pair[0][0])
    original = next(iter(box.well_known["inbox"].live_items())).id
    r = await emu.src.control(
        "POST",
        f"/mailboxes/{q(box.id)}/changes",
        {"ops": [{"op": "copy", "id": original, "to": "junkemail"}]},
    )
    assert r.status == 200, r.body
    assert (await run_job(cfg)).exit_code() == ExitCode.OK  # the twin copied
    check, _ = await _signoff_calls(emu, cfg)
    kept = len(check.verdict.kept)
    assert check.ok and kept > 1 and not check.verdict.duplicated, check.as_dict()
    for bound, past in ((500, []), (0, [original])):
        monkeypatch.setattr("copyengine.pipeline.spares.MAX_ASKED", bound)
        await emu.src.control("POST", "/stats/reset")
        with capture_logs() as logs:
            assert (await run_job(cfg, full=True)).exit_code() == ExitCode.OK
        body = (await emu.src.control("GET", "/stats")).body
        asked = sum(body["requests"].get("getItem", {}).values())
        unasked = [e["item"] for e in logs if e["event"] == "item.kept_copy_unasked"]
        assert asked == 1 and unasked == past, (bound, body["requests"], unasked)
        check, _ = await _signoff_calls(emu, cfg)
        assert check.ok and not check.verdict.duplicated, check.as_dict()
        assert len(check.verdict.kept) == kept, check.as_dict()  # the kept copy never removed


class _Source:
    """A source whose every item is gone (404), counting the questions."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def get_item(self, mailbox_id: str, folder_id: str, item_id: str) -> None:
        self.asked.append(item_id)
        raise NotFound("gone", status=404)


# ``KeptOwn``'s bound: a candidate beyond ``MAX_ASKED`` questions is not asked and says
# "there" (the copy stays, ``item.kept_copy_unasked``; the sign-off asks again and names it);
# one this pass found there already is "there" without a question; within the bound a 404
# says gone. A copy no kept record names, or one under another key, is never asked about.
async def test_kept_own_asks_within_its_bound_and_keeps_what_it_did_not_ask(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = _Source()
    ctx = SimpleNamespace(src=src, log=structlog.get_logger("t"))
    records = {
        f"t{n}": ItemRecord(f"s{n}", "f", Status.REMOVED, b"k", "tf", f"t{n}") for n in range(4)
    }
    monkeypatch.setattr("copyengine.pipeline.spares.MAX_ASKED", 2)
    own = KeptOwn(ctx, "m", records, known={"s0"})  # type: ignore[arg-type]
    with capture_logs() as logs:
        said = [await own.still_there(f"t{n}", b"k") for n in range(4)]
    assert said == [True, False, False, True], said
    assert src.asked == ["s1", "s2"], src.asked
    assert [e["item"] for e in logs if e["event"] == "item.kept_copy_unasked"] == ["s3"]
    assert not await own.still_there("t9", b"k") and not await own.still_there("t1", b"x")
    assert src.asked == ["s1", "s2"], src.asked


# soak seeds 21005 and 21006 keep (``--p-samekey 0.5``): an item and its copy both deleted in
# one round (a refill): under keep both copies are kept, each its own item's; the pass took
# the two departures for one item that left twice (``second_copies``) and removed both
# copies (``removed_live``'s ``kept copy``), the sign-off naming a second copy before that
BOTH_DELETED = [
    ("ops", [{"op": "createFolder", "parent": "inbox", "name": "Twins"}]),
    ("ops", [{"op": "copy", "id": "#/Inbox", "to": "@/Inbox/Twins"}]),
    ("pass", "delta"),
    ("ops", [{"op": "delete", "id": "#/Inbox/Twins", "hard": False}]),
    ("ops", [{"op": "delete", "id": "#/Inbox", "hard": True}]),
    ("pass", "delta"),
    ("pass", "cutover"),
]


async def test_an_item_and_its_copy_deleted_together_are_both_kept(tmp_path: Path) -> None:
    h = await replay("keep", BOTH_DELETED, tmp_path)
    assert not h.failures(), h.text()
    assert all(p.checked and not wrong(p.counts) for p in h.passes), h.text()
    assert [p.counts["kept"] for p in h.passes[-2:]] == [2, 2], h.text()


# soak seed 19009 keep (hunt6's pin in test_histories.py; 1 run in 7 there, 1 in 12 here): one
# item recorded twice (a move during a churn pass that saw only its arrival: the arrival
# copied, the old record left), then gone again; a pass listing both folders in full saw both
# records leave. ``remove_second_copies`` took the old record's copy, unclaimed in its listed
# folder, for a second copy of the new record's (there) and hard-deleted it; the departures
# then took the two for one item that left twice (``second_copies``), kept the old record's
# copy (gone) and removed the new one's as a move: the item kept no copy. Two items of one
# search key deleted together under ``delta = false`` meet the same: a departing item's own
# copy is left to its departure now. Both copies kept (R1b) once a full listing that began
# after the copy's first listing found the original there (``delta = false`` keeps no link:
# the folder's listing moment is kept instead, ``Store.set_listed``): ``listed`` passes one
# more pass between the copy and the deletions. Without it, the two are one item to the state
async def test_a_departing_item_s_own_copy_is_no_second_copy(tmp_path: Path) -> None:
    h = await replay("keep", BOTH_DELETED, tmp_path, delta=False)
    assert not h.failures(), h.text()
    assert all(p.checked and not wrong(p.counts) for p in h.passes), h.text()
    assert all(p.counts["kept"] >= 1 for p in h.passes[-2:]), h.text()


async def test_an_item_and_its_copy_deleted_together_are_both_kept_without_delta(
    tmp_path: Path,
) -> None:
    script = [*BOTH_DELETED[:3], ("pass", "delta"), *BOTH_DELETED[3:]]
    h = await replay("keep", script, tmp_path, delta=False)
    assert not h.failures(), h.text()
    assert all(p.checked and not wrong(p.counts) for p in h.passes), h.text()
    assert [p.counts["kept"] for p in h.passes[-2:]] == [2, 2], h.text()


# soak seed 22303 keep (``--p-samekey 0.3``, r3-r7): a /Contacts item copied by its owner to
# /Archive (same search key), then both left out by ``types = ["IPM.Note"]`` under keep (two
# items, each its own kept copy: they coexisted), then a switch to ``mirror``, which keeps
# what keep kept. The departures were taken for one item that left twice (``second_copies``)
# and one kept copy removed (``removed_live``: kept copy); with R1b both stay, and the oracle
# allowed a twin's kept copies only under ``keep`` (it said ``duplicated`` after the switch)
BOTH_LEFT_OUT = [
    ("ops", [{"op": "copy", "id": "#/Contacts", "to": "@/Archive"}]),
    ("pass", "delta"),
    ("pass", "delta"),  # each folder's link now began after both were listed
    ("rules", {"types": ["IPM.Note"]}),
    ("pass", "delta"),
    ("rules", {"deletions": "mirror"}),
    ("pass", "delta"),
    ("pass", "full"),
    ("pass", "cutover"),
]


async def test_an_item_and_its_copy_left_out_together_are_both_kept(tmp_path: Path) -> None:
    h = await replay("keep", BOTH_LEFT_OUT, tmp_path)
    assert not h.failures(), h.text()
    assert all(p.checked and not wrong(p.counts) for p in h.passes), h.text()
    # nothing removed: each left-out item's copy kept (the twin's too), all kept after it
    held = [p.counts["target_items"] for p in h.passes[2:]]
    assert len(set(held)) == 1, h.text()
    kept = [p.counts["kept"] for p in h.passes[3:]]
    assert kept[0] == held[0] - h.passes[3].counts["source_items"], h.text()
    assert len(set(kept)) == 1, h.text()


# The same move, the pass that moves the kept copy's record to the item's new id killed
# right after (``passes._moved_left_out``). Before, the new id's record was written as an
# intent, then its outcome, and the old id's forgotten only with the pass's other forgotten
# records, after every departure and sweep: killed in between, two kept records named the
# one copy (or the new id's a bare intent), and the next pass took the old record for a
# move's first half beside the twin's copy (``_drop_kept_moves``: its item gone, no left-out
# item without a record met) and hard-deleted the copy (kept 60, then 59). Now the record
# moves in one write (``Store.move_record``): a kill leaves one record or the other.
async def test_a_kept_copy_stays_when_the_pass_moving_its_record_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from copyengine.pipeline.passes import MailboxPass

    real = MailboxPass._moved_left_out
    killed: list[str] = []

    async def killed_after(self: MailboxPass, r: ItemRecord, *rest: Any) -> bool:
        moved = await real(self, r, *rest)
        if moved and not killed:
            killed.append(r.source_id)
            raise RuntimeError("killed after the kept copy's record moved")
        return moved

    monkeypatch.setattr(MailboxPass, "_moved_left_out", killed_after)
    steps = [*LEFT_OUT_THEN_MOVED, *MOVED_THEN["delta"]]
    h = await replay("keep", steps, tmp_path)
    assert killed, h.text()
    crashed = [p for p in h.passes if p.exit_code not in (0, None)]
    assert len(crashed) == 1, h.text()
    after = h.passes[h.passes.index(crashed[0]) + 1 :]
    assert all(not p.every_pass() and not wrong(p.counts) for p in after), h.text()
    assert h.passes[-1].signoff_complete, h.text()
    kept = [p.counts["kept"] for p in h.passes[1:]]
    assert len(set(kept)) == 1, (kept, h.text())


# The sign-off's reads refused (every ``getItem`` of the cutover answered 503, its retries
# spent): the kept copy beside its twin's is not checked, and the sign-off says so (not
# complete, exit 1). The histories' honesty oracle counts that as named (``NAMED``): before,
# it took a sign-off incomplete only for copies not checked as one that names nothing
# (``signoff_incomplete_names_nothing``, a dishonest sign-off), which it is not.
async def test_a_sign_off_whose_reads_fail_says_the_kept_copy_not_checked(tmp_path: Path) -> None:
    refused = ("fault", {"kind": "http_503", "calls": ["getItem"], "count": 40})
    h = await replay("keep", [*LEFT_OUT_BY_A_FILTER[:-1], refused, ("pass", "cutover")], tmp_path)
    cut = h.passes[-1]
    assert cut.kind == "cutover" and cut.signoff_complete is False, h.text()
    assert cut.exit_code == ExitCode.ITEMS_FAILED and cut.said == ["kept_unchecked"], h.text()
    assert not cut.every_pass() and not wrong(cut.counts), h.text()
