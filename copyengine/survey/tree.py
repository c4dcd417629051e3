"""A target mailbox's folder tree as the copy and ``verify`` see it: loaded once, extended as
folders are created. Where a folder goes is decided by ``plan.place`` (pure); this class only
does the I/O around it, for both callers alike."""

from __future__ import annotations

from collections import defaultdict

import structlog

from ..config import Pair
from ..errors import NotFound
from ..graph import Folder, MailboxApi, gone
from ..plan import FolderPlan, Placement, TargetRef, TNode, place, plan_folders
from .fromdelta import read_tree
from .mailboxes import MailboxSide

log = structlog.get_logger("copyengine.survey")


class TargetTree:
    def __init__(self, client: MailboxApi, mailbox_id: str) -> None:
        self.client = client
        self.mailbox_id = mailbox_id
        self.children: dict[str | None, dict[str, str]] = defaultdict(dict)
        self.folders: dict[str, Folder] = {}
        self.anchors: dict[str, str] = {}  # well-known name -> folder id
        self.parent: dict[str, str | None] = {}  # folder id -> parent id (None: the root)
        self._missing_anchors: set[str] = set()

    async def load(self) -> None:
        for node in await read_tree(self.client, self.mailbox_id):
            f = node.folder
            parent = None if node.depth == 1 else f.parent_id
            self._add(parent, f)
            if f.well_known:
                self.anchors[f.well_known] = f.id

    def _add(self, parent: str | None, f: Folder) -> None:
        self.children[parent][f.name.casefold()] = f.id
        self.folders[f.id] = f
        self.parent[f.id] = parent

    async def rename(self, folder_id: str, name: str) -> Folder:
        """Rename a target folder in place (its items and children stay)."""
        folder = await self.client.rename_folder(self.mailbox_id, folder_id, name)
        for names in self.children.values():
            for k, v in list(names.items()):
                if v == folder_id:
                    del names[k]
                    names[name.casefold()] = folder_id
        self.folders[folder_id] = folder
        return folder

    def nodes(self) -> list[TNode]:
        """The tree as the folder planner reads it."""
        return [
            TNode(f.id, f.name, self.parent.get(f.id), f.well_known)
            for f in self.folders.values()
            if f.id in self.parent
        ]

    async def resolve_anchor(self, anchor: str | None) -> None:
        await self._resolve_anchor(anchor)

    async def _resolve_anchor(self, anchor: str | None) -> None:
        """A well-known folder not seen in the walk (hidden under another parent, say) is
        asked for by name; the answer is remembered either way. It is taken for missing only
        once ``getFolder`` answers 404 ``gone.TRIES`` times in a row, as every other 404 of
        a folder that may be there: the service answers transient 404s, and one taken for
        the anchor missing placed the folder under a top folder named like the source's
        (made for the pass, its items copied there), and the next pass moved it back."""
        if not anchor or anchor in self.anchors or anchor in self._missing_anchors:
            return
        for n in range(gone.TRIES):
            try:
                f = await self.client.get_folder(self.mailbox_id, anchor)
            except NotFound:
                if n == gone.TRIES - 1:
                    self._missing_anchors.add(anchor)
                    return
                log.info("folder.anchor_404_again", anchor=anchor, tries=n + 1)
                continue
            self.anchors[anchor] = f.id
            self.folders[f.id] = f
            return

    async def find(self, ref: TargetRef, fallback_top: str) -> Placement:
        await self._resolve_anchor(ref.anchor)
        return place(ref, fallback_top, self.anchors, self.children)

    async def ensure(
        self, ref: TargetRef, folder_type: str, fallback_top: str
    ) -> tuple[Folder, bool]:
        """The target folder for ``ref``, created (with parents) if missing; (folder, new)."""
        where = await self.find(ref, fallback_top)
        if where.existing is not None:
            return self.folders[where.existing], False
        parent = where.parent
        folder: Folder | None = None
        for k, name in enumerate(where.missing):
            kind = folder_type if k == len(where.missing) - 1 else "IPF.Note"
            folder = await self.client.create_folder(self.mailbox_id, parent, name, kind)
            self._add(parent, folder)
            parent = folder.id
        assert folder is not None
        return folder, True


async def survey(
    src: MailboxApi, dst: MailboxApi, pair: Pair, side: MailboxSide
) -> tuple[list[FolderPlan], TargetTree]:
    """One mailbox of a pair as ``plan`` reads it (nothing written): the source folders
    selected and placed, the target tree loaded."""
    folders = await src.walk_folders(side.source_id)
    plans = plan_folders(folders, pair.folders, pair.source, pair.target)
    tree = TargetTree(dst, side.target_id)
    await tree.load()
    return plans, tree
