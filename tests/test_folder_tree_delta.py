"""A source folder tree read from a fresh folder delta round (``survey.fromdelta``): the tree
``walk_folders`` gives, with no request per parent folder, exact after folders are made,
renamed, moved and deleted; and None (the pass walks) when the rows are not a whole tree."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from copyengine.graph import Folder, FolderNode, Removed
from copyengine.survey.fromdelta import tree_from_rows
from tests.clients import Clients, clients

pytestmark = pytest.mark.anyio
ADELE = "adele@contoso.example"


@pytest.fixture
async def cl(emu: Any) -> AsyncIterator[Clients]:
    async with clients(emu.ep) as c:
        yield c


async def _fresh_rows(cl: Clients, m: str, page_size: int = 200) -> list[object]:
    rows: list[object] = []
    async for page in cl.src.folder_delta(m, page_size=page_size):
        rows += page.items
    return rows


def _shape(tree: list[FolderNode]) -> list[tuple[str, str, int, str | None]]:
    return [(n.folder.id, n.path, n.depth, n.folder.parent_id) for n in tree]


async def test_a_fresh_round_gives_the_walked_tree_after_folder_changes(
    emu: Any, cl: Clients
) -> None:
    m = (await cl.src.resolve_mailbox(ADELE)).primary_id
    walked = await cl.src.walk_folders(m)
    tree = tree_from_rows(await _fresh_rows(cl, m, page_size=7))  # several pages
    assert tree is not None and _shape(tree) == _shape(walked)
    assert [n.folder for n in tree] == [n.folder for n in walked]
    box = emu.state.require_mailbox(ADELE)
    projects = next(f for f in box.walk() if f.names() == ["Inbox", "Projects"])
    receipts = next(f for f in box.walk() if f.names() == ["Inbox", "Receipts"])
    r = await emu.src.control(
        "POST",
        f"/mailboxes/{m}/changes",
        {
            "ops": [
                {"op": "createFolder", "parent": "inbox", "name": "Fresh"},
                {"op": "renameFolder", "id": projects.id, "name": "Projects (old)"},
                {"op": "moveFolder", "id": projects.id, "to": "archive"},
                {"op": "deleteFolder", "id": receipts.id},
            ]
        },
    )
    assert r.status == 200, r.body
    walked = await cl.src.walk_folders(m)
    tree = tree_from_rows(await _fresh_rows(cl, m))
    # the same tree; siblings may come in another order (the round's, as the service gives)
    assert tree is not None and sorted(_shape(tree)) == sorted(_shape(walked))
    seen: set[str | None] = {walked[0].folder.parent_id}
    for n in tree:  # parents before children
        assert n.folder.parent_id in seen
        seen.add(n.folder.id)
    paths = {n.path for n in tree}
    assert "/Archive/Projects (old)" in paths and "/Inbox/Fresh" in paths
    assert not any(
        p.startswith("/Inbox/Receipts") or p.startswith("/Inbox/Projects") for p in paths
    )


def _f(fid: str, parent: str | None, children: int = 0, name: str = "") -> Folder:
    return Folder(fid, name or fid, parent, "IPF.Note", None, children, 0)


def test_rows_that_are_not_a_whole_tree_give_none() -> None:
    whole = [_f("a", "root", 1), _f("b", "a"), _f("c", "root")]
    tree = tree_from_rows([*whole, Removed("gone", "deleted")])
    assert tree is not None and sorted(n.path for n in tree) == ["/a", "/a/b", "/c"]
    assert {n.path: n.depth for n in tree} == {"/a": 1, "/a/b": 2, "/c": 1}
    # a folder whose parent the round did not list: two roots
    assert tree_from_rows([_f("a", "root"), _f("b", "elsewhere")]) is None
    # a child count the rows do not add up to: part of the tree is missing
    assert tree_from_rows([_f("a", "root", 2), _f("b", "a")]) is None
    # folders that hang on each other and not on the root
    assert tree_from_rows([_f("a", "root"), _f("x", "y", 1), _f("y", "x", 1)]) is None
    # a repeated row counts as its last: moved under another parent
    moved = [_f("a", "root", 1), _f("b", "a"), _f("c", "root", 1), _f("b", "c")]
    assert tree_from_rows(moved) is None  # "a" says it still has a child: not a whole tree
    again = [_f("a", "root", 0), _f("b", "a"), _f("c", "root", 1), _f("b", "c")]
    got = tree_from_rows(again)
    assert got is not None and sorted(n.path for n in got) == ["/a", "/c", "/c/b"]
    assert tree_from_rows([]) == []
    assert tree_from_rows(whole, max_folders=2) is None
