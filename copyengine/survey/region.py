"""The copied region of a target mailbox: the folders ``verify`` and the sign-off list to
judge a copy (every folder the copy maps to, and every other folder under the target root,
or in the whole mailbox without one), the ones of them that can never be leftovers, and the
path a person reads for a folder of the tree."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from ..config import Pair
from ..folderpath import display
from ..graph import Folder
from ..plan import TargetRef, root_names
from .tree import TargetTree


def folder_path(folders: Mapping[str, Folder], fid: str) -> str:
    """The display path of folder ``fid`` from the folders of its tree (pure)."""
    names: list[str] = []
    seen: set[str] = set()
    f = folders.get(fid)
    while f is not None and f.id not in seen:
        seen.add(f.id)
        names.append(f.name)
        f = folders.get(f.parent_id or "")
    return display(tuple(reversed(names)))


def region(
    folders: Mapping[str, Folder], mapped: set[str], root: str | None, has_root: bool
) -> tuple[list[str], set[str]]:
    """The copied region of a target tree (pure): the folders to list (mapped folders, and
    every folder under the target root, or in the whole mailbox without one, that is not
    hidden nor a well-known folder the copy does not map to), and of those the ones that
    are never leftovers (well-known folders, ancestors of mapped folders)."""
    kids: dict[str | None, list[str]] = defaultdict(list)
    for f in folders.values():
        parent = f.parent_id if f.parent_id in folders else None
        kids[parent].append(f.id)
    ancestors = _ancestors(folders, mapped)
    listed: list[str] = []
    allowed: set[str] = set()
    if has_root and root is None:
        starts: list[str | None] = []
    else:
        starts = [root]
    stack = [fid for s in starts for fid in (kids[s] if s is None else [s])]
    seen: set[str] = set()
    while stack:
        fid = stack.pop()
        if fid in seen:
            continue
        seen.add(fid)
        f = folders[fid]
        if f.hidden and fid not in mapped:
            continue
        if f.well_known and fid not in mapped:
            allowed.add(fid)  # not copied into unless mapped: its items are not ours
            stack.extend(kids[fid])
            continue
        listed.append(fid)
        if fid in ancestors:
            allowed.add(fid)
        stack.extend(kids[fid])
    for fid in mapped:
        if fid not in seen and fid in folders:
            listed.append(fid)
    return listed, allowed


def _ancestors(folders: Mapping[str, Folder], mapped: set[str]) -> set[str]:
    """Every folder above a mapped folder (pure)."""
    ancestors: set[str] = set()
    for fid in mapped:
        up = folders[fid].parent_id if fid in folders else None
        while up is not None and up in folders and up not in ancestors:
            ancestors.add(up)
            up = folders[up].parent_id
    return ancestors


async def copied_region(
    tree: TargetTree, pair: Pair, mapped: set[str]
) -> tuple[list[str], set[str]]:
    """``region`` of a loaded target tree for ``pair``, its target root looked up (a root
    the pair names but the target lacks: nothing beyond the mapped folders)."""
    root: str | None = None
    names = root_names(pair.folders.target_root, pair.source, pair.target)
    if names:
        root = (await tree.find(TargetRef(None, names), names[0])).existing
    return region(tree.folders, mapped, root, bool(names))
