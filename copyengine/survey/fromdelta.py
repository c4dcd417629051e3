"""A source folder tree read from a fresh folder delta round instead of walked.

A pass reads the folder delta round anyway (to learn whether the tree changed). A fresh
round (no link) lists every folder of the mailbox with its parent, so the tree it describes
is the one ``walk_folders`` would give, without a request per folder that has children. The
tree is taken only when the rows describe it whole: one root (a parent id that is no row's
id), every folder reachable from it, and each folder's ``childFolderCount`` equal to the
rows under it. Anything else (a service that lists part of the tree in a round, a row
repeated with another parent) gives None, and the caller walks the tree as before."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import DeltaExpired
from ..graph import Folder, FolderNode, MailboxApi


def tree_from_rows(rows: Iterable[object], max_folders: int = 100_000) -> list[FolderNode] | None:
    """The folder tree (parents before children, siblings in the round's order, the order
    ``walk_folders`` gives) of a fresh round's rows; None when the rows are not a whole
    tree. Removal rows are ignored; a folder seen twice counts as its last row."""
    folders: dict[str, Folder] = {}
    for row in rows:
        if isinstance(row, Folder):
            folders.pop(row.id, None)  # a repeated row: its last place and contents
            folders[row.id] = row
    if len(folders) > max_folders:
        return None
    kids: dict[str | None, list[Folder]] = {}
    for f in folders.values():
        kids.setdefault(f.parent_id, []).append(f)
    roots = [p for p in kids if p is None or p not in folders]
    if len(roots) > 1 or any(f.child_count != len(kids.get(f.id, ())) for f in folders.values()):
        return None
    out: list[FolderNode] = []
    stack: list[tuple[str | None, tuple[str, ...], int]] = [(roots[0], (), 0)] if roots else []
    while stack:
        parent, prefix, depth = stack.pop()
        for f in kids.get(parent, ()):
            node = FolderNode(f, (*prefix, f.name), depth + 1)
            out.append(node)
            if f.id in kids:
                stack.append((f.id, node.names, depth + 1))
    return out if len(out) == len(folders) else None


async def read_tree(client: MailboxApi, mailbox_id: str) -> list[FolderNode]:
    """A mailbox's folder tree from one fresh folder delta round (a request per 200
    folders), or walked when its rows are not a whole tree (or the round was refused)."""
    rows: list[object] = []
    try:
        async for page in client.folder_delta(mailbox_id):
            rows += page.items
    except DeltaExpired:  # a later page's token refused: the walk reads it instead
        rows = []
    else:
        tree = tree_from_rows(rows)
        if tree is not None:
            return tree
    return await client.walk_folders(mailbox_id)
