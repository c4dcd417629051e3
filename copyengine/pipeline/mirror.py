"""The target's folder tree made to mirror the selected source folders (created where
missing, well-known folders mapped to the target's own), and target folders indexed by
search key."""

from __future__ import annotations

from ..config import Pair
from ..graph import Item, MailboxApi, TargetTree
from ..plan import TargetIndex, plan_folders
from ..report import PairStats
from ..state import Store
from .work import FolderJob


async def mirror(
    src: MailboxApi,
    dst: MailboxApi,
    src_id: str,
    dst_id: str,
    pair: Pair,
    store: Store,
    stats: PairStats,
    label: str = "",
) -> list[FolderJob]:
    """``label`` prefixes the report's folder paths (an archive's folders are apart)."""
    tree = await src.walk_folders(src_id)
    plans = plan_folders(tree, pair.folders, pair.source, pair.target)
    target = TargetTree(dst, dst_id)
    await target.load()
    jobs: list[FolderJob] = []
    for plan in plans:
        folder, new = await target.ensure(plan.target, plan.type, plan.source.names[0])
        fs = stats.folder(label + plan.source.path, plan.source.names)
        fs.target_path = plan.target.path
        await store.folder_mapped(
            pair.key, plan.source.folder.id, plan.source.path, folder.id, plan.target.path
        )
        jobs.append(FolderJob(plan, folder, fs, new))
    return jobs


async def target_index(
    dst: MailboxApi, dst_id: str, folder_id: str, exclude: frozenset[str] = frozenset()
) -> TargetIndex:
    """The target folder's items by search key (``exclude``: ids already accounted for)."""
    items: list[Item] = []
    async for page in dst.list_items(dst_id, folder_id, with_keys=True, select=("id", "size")):
        items.extend(page)
    return TargetIndex.of(items, exclude)
