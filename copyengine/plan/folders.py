"""Pure folder decisions: which source folders are copied, where each goes in the target,
and how a target path is found in (or added to) the target's tree. The copy and ``verify``
both call ``plan_folders`` and ``place``, so they cannot disagree about a folder."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..config import FOLDER_CLASSES, FolderRules
from ..folderpath import display, split
from ..graph.models import FolderNode


@dataclass(frozen=True)
class TargetRef:
    """Where a folder goes in the target: under the target's well-known folder ``anchor``
    (or the root when None), then down the ``parts`` names, creating what is missing."""

    anchor: str | None
    parts: tuple[str, ...]

    @property
    def path(self) -> str:
        head = f"<{self.anchor}>" if self.anchor else ""
        return head + (display(self.parts) if self.parts else "")


@dataclass(frozen=True)
class FolderPlan:
    source: FolderNode
    target: TargetRef
    type: str


def folder_class(folder_type: str) -> str | None:
    """The class name (mail, calendar, ...) of a folder type such as ``IPF.Appointment.X``."""
    t = folder_type or ""
    best: tuple[int, str] | None = None
    for name, prefixes in FOLDER_CLASSES.items():
        for p in prefixes:
            if p and (t == p or t.startswith(p + ".")) and (best is None or len(p) > best[0]):
                best = (len(p), name)
    if best is not None:
        return best[1]
    return "mail" if t in ("", "IPF") else None


def root_names(target_root: str, source_upn: str, target_upn: str = "") -> tuple[str, ...]:
    """The names of ``target_root`` with its placeholders filled (checked at load)."""
    if not target_root:
        return ()
    filled = target_root.format(
        source=source_upn.split("@")[0],
        source_upn=source_upn,
        target=target_upn.split("@")[0],
    )
    return split(filled)


def plan_folders(
    tree: Iterable[FolderNode], rules: FolderRules, source_upn: str, target_upn: str = ""
) -> list[FolderPlan]:
    """Select and place source folders. ``tree`` lists parents before children.

    Folders are handled as chains of names; rules match the display path (``/`` inside a
    name escaped as ``\\/``), and a renamed path is split back on unescaped ``/`` only."""
    plans: list[FolderPlan] = []
    hidden: list[tuple[str, ...]] = []
    wk_top: dict[str, str] = {}  # top-level source folder name -> its well-known name
    root = root_names(rules.target_root, source_upn, target_upn)
    for node in tree:
        f = node.folder
        names = node.names
        if node.depth == 1 and f.well_known:
            wk_top[names[0]] = f.well_known
        if any(names[: len(h)] == h for h in hidden):
            continue
        if rules.skip_hidden and f.hidden:
            hidden.append(names)
            continue
        if folder_class(f.type) not in rules.classes:
            continue
        path = node.path
        if rules.include and not any(r.search(path) for r in rules.include):
            continue
        if any(r.search(path) for r in rules.exclude):
            continue
        if rules.rename:
            for rule in rules.rename:
                path = rule.pattern.sub(rule.to, path)
            parts = split(path)
        else:
            parts = names
        if not parts:
            continue
        if root:
            ref = TargetRef(None, root + parts)
        elif rules.map_well_known and parts[0] in wk_top:
            ref = TargetRef(wk_top[parts[0]], parts[1:])
        else:
            ref = TargetRef(None, parts)
        plans.append(FolderPlan(node, ref, f.type or "IPF.Note"))
    return plans


@dataclass(frozen=True)
class Placement:
    """Where a TargetRef lands in a known target tree: the deepest existing folder
    (``parent``, None for the root) and the names still to create under it, in order.
    ``existing`` is the folder itself when nothing is missing."""

    parent: str | None
    missing: tuple[str, ...]

    @property
    def existing(self) -> str | None:
        return None if self.missing else self.parent


def place(
    ref: TargetRef,
    fallback_top: str,
    anchors: Mapping[str, str],
    children: Mapping[str | None, Mapping[str, str]],
) -> Placement:
    """Place ``ref`` in a tree given as ``anchors`` (well-known name -> folder id) and
    ``children`` (parent id or None for the root -> case-folded name -> folder id). A
    well-known folder the target does not have is replaced by a top folder named like the
    source's (``fallback_top``)."""
    parent: str | None = None
    parts = ref.parts
    if ref.anchor:
        anchor = anchors.get(ref.anchor)
        if anchor is None:
            parts = (fallback_top, *parts)
        else:
            parent = anchor
    for k, name in enumerate(parts):
        child = children.get(parent, {}).get(name.casefold())
        if child is None:
            return Placement(parent, parts[k:])
        parent = child
    return Placement(parent, ())
