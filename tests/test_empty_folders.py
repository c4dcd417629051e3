"""Folders the walk counts empty are not read (issue 26: 11 of 12 folders of a new mailbox, a
request each), and every pass stays exact: seeded histories aimed at moves into such folders
during a pass (timed to another folder's item round, before or after the folder the item
leaves) and between passes, of items with a record and of items new since the last pass,
in delta, ``--full`` and cutover passes, both deletion modes. The oracle of
``tests/histories.py`` runs after every pass; no copy of a live item may be removed.

The rules they hold (``pipeline/produce.py`` ``_skip``, ``pipeline/reread.py``): a skipped
folder is a round read at the walk that returned nothing and made no link; a departure that
looks like a deletion makes the first reading again read it from nothing, so does a count
changed since the walk, and an arrival found there whose search key a record no round saw
leave holds makes the folders read before read again; a folder with no link makes the next
pass read the tree fresh (its count) instead of reusing the mapping."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from copyengine.config import load_job
from copyengine.exitcodes import ExitCode
from copyengine.wiring import run_job
from tests.histories import replay
from tests.jobs import write_job
from tests.modes import modes
from tests.test_incremental import ADELE, MIRROR, T_ADELE, _calls, _selected_path, assert_same

pytestmark = pytest.mark.anyio

# folders of the seeded source mailbox (60 items) that hold items from the start
FULL = ["/Inbox", "/Sent Items", "/Archive", "/Inbox/Projects", "/Archive/2019"]
# created empty before the second pass, under varied parents (read early or late)
EMPTY = ["/Inbox/E1", "/Sent Items/E2", "/Archive/E3", "/E4", "/Journal/E5", "/Notes/E6"]


def _parent(path: str) -> str:
    return "@" + (path.rsplit("/", 1)[0] or "/")


def history(seed: int) -> list[Any]:
    """A seeded script: empty folders made, then four passes, each with moves into folders
    still empty (one between passes, one during the pass, timed to the first item round of
    a folder that holds items), sometimes of an item added since the last pass (in a new
    folder of its own, so that it is the one moved), sometimes on out of a folder filled
    earlier into another empty one."""
    rng = random.Random(seed)
    ops: list[dict[str, Any]] = [
        {"op": "createFolder", "parent": _parent(p), "name": p.rsplit("/", 1)[1]} for p in EMPTY
    ]
    script: list[Any] = [("ops", ops), ("pass", "delta")]
    empty = list(EMPTY)
    rng.shuffle(empty)
    filled: list[str] = []
    for rnd in range(4):
        if not empty:
            break
        if rng.random() < 0.5:  # between passes: moved in, or added there
            to = empty.pop()
            if rng.random() < 0.7:
                src = rng.choice(FULL)
                script.append(("ops", [{"op": "move", "id": f"#{src}", "to": f"@{to}"}]))
            else:
                script.append(("ops", [{"op": "add", "folder": f"@{to}", "count": 1}]))
            filled.append(to)
        if not empty:
            break
        to = empty.pop()
        new = rng.random() < 0.35
        if new:  # an item with no record: added since the last pass, in a folder of its own
            src = f"/Inbox/N{rnd}"
            script.append(
                (
                    "ops",
                    [
                        {"op": "createFolder", "parent": "@/Inbox", "name": f"N{rnd}"},
                        {"op": "add", "folder": f"@{src}", "count": 1},
                    ],
                )
            )
        elif filled and rng.random() < 0.3:
            src = filled.pop(rng.randrange(len(filled)))  # on out of a folder filled before
        else:
            src = rng.choice(FULL)
        when = rng.choice([f for f in FULL if f != src] + [src])
        script.append(
            (
                "trigger",
                {
                    "calls": ["itemDelta"],
                    "folder": f"@{when}",
                    "after": 1,
                    "ops": [{"op": "move", "id": f"#{src}", "to": f"@{to}"}],
                },
            )
        )
        filled.append(to)
        kind = rng.choices(["delta", "full", "cutover"], [6, 2, 1])[0]
        script.append(("pass", kind))
    script.append(("pass", "delta"))
    return script


# seed 1 mirror in the default run; keep and the other seeds, the same kinds of history drawn
# again, in the slow tier (``pytest -m slow``): the moves they aim at are each a deterministic
# case of ``test_a_move_into_a_folder_counted_empty_during_a_pass`` below (mirror by default,
# keep in the slow tier: a move taken for a deletion removes a copy under mirror)
SEEDS = [1, *(pytest.param(s, marks=pytest.mark.slow) for s in (2, 3, 4, 5, 6))]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("deletions", modes("mirror"))
@pytest.mark.parametrize("seed", SEEDS)
async def test_moves_into_folders_counted_empty(tmp_path: Path, seed: int, deletions: str) -> None:
    h = await replay(deletions, history(seed), tmp_path)
    assert not h.failures(), h.text()
    assert all(p.live_removed == [] for p in h.passes), h.text()


def _into_empty(moved: str) -> list[Any]:
    """A folder made empty in a first pass; in the next, an item of ``moved`` (a folder)
    moved into it during the round of /Sent Items."""
    return [
        ("ops", [{"op": "createFolder", "parent": "@/Inbox", "name": "Empty"}]),
        ("pass", "delta"),
        (
            "trigger",
            {
                "calls": ["itemDelta"],
                "folder": "@/Sent Items",
                "after": 1,
                "ops": [{"op": "move", "id": f"#{moved}", "to": "@/Inbox/Empty"}],
            },
        ),
        ("pass", "delta"),
    ]


# an item with a record moved during a pass into a folder the walk counted empty (not read),
# timed to the round of the folder it leaves: that round shows it leaving, the first reading
# again must read the empty folder from nothing (the move found), else a deletion
INTO_EMPTY_SEEN_LEAVING = _into_empty("/Sent Items")
# the same timed to a folder read after the one it leaves: no round shows it leaving; the
# empty folder's count changed since the walk, it is read, the arrival's search key names
# a record no round saw leave: the folders read before are read again (else two copies)
INTO_EMPTY_UNSEEN = _into_empty("/Inbox")


@pytest.mark.parametrize("deletions", modes("mirror"))
@pytest.mark.parametrize(
    "script",
    [
        pytest.param(INTO_EMPTY_SEEN_LEAVING, id="seen-leaving"),
        pytest.param(INTO_EMPTY_UNSEEN, id="unseen"),
        pytest.param([*INTO_EMPTY_SEEN_LEAVING[:-1], ("pass", "full")], id="seen-leaving-full"),
        pytest.param([*INTO_EMPTY_UNSEEN[:-1], ("pass", "full")], id="unseen-full"),
    ],
)
async def test_a_move_into_a_folder_counted_empty_during_a_pass(
    tmp_path: Path, deletions: str, script: list[Any]
) -> None:
    h = await replay(deletions, script, tmp_path)
    assert not h.failures(), h.text()
    assert all(p.live_removed == [] for p in h.passes), h.text()


async def test_folders_counted_empty_are_not_read(emu: Any, tmp_path: Path) -> None:
    """The saving: a first pass and a quiet one ask an item round only of the folders that
    hold items (the walk counts the others empty at both sides), and read none again."""
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)], extra=MIRROR))
    box = emu.state.require_mailbox(ADELE)
    held = {f.id for f in box.walk() if f is not box.root and f.live and _selected_path(f.path())}
    for _ in range(2):
        await emu.src.control("POST", "/stats/reset")
        stats = await run_job(cfg)
        assert stats.exit_code() == ExitCode.OK
        assert_same(emu.state, ADELE, T_ADELE)
        calls = await _calls(emu)
        folders = len(stats.pairs[next(iter(stats.pairs))].folders)
        assert 0 < len(held) < folders
        assert calls.get("itemDelta", 0) == len(held), (calls, len(held), folders)


async def test_a_folder_whose_count_the_service_omits_is_read(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder row without ``totalItemCount`` (contract §3 lists it, nothing says every row
    carries it) is of unknown count, not empty: never skipped, so its items are copied (it
    was taken for 0: every folder skipped at both sides, nothing copied, pass after pass,
    the recount saying 0 too)."""
    from copyengine.emulator import delta, resources

    real = resources.folder_json

    def without_count(ctx: Any, f: Any, select: Any) -> dict[str, Any]:
        d = real(ctx, f, select)
        d.pop("totalItemCount", None)
        return d

    monkeypatch.setattr(resources, "folder_json", without_count)
    monkeypatch.setattr(delta, "folder_json", without_count)
    cfg = load_job(write_job(tmp_path, emu.ep, [(ADELE, T_ADELE)], extra=MIRROR))
    for _ in range(2):
        stats = await run_job(cfg)
        assert stats.exit_code() == ExitCode.OK
        assert_same(emu.state, ADELE, T_ADELE)
