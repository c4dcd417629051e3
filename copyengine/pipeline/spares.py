"""Target drift, the source wins: second copies. A target item of a folder listed in full
that no source item there claimed, with the search key of an item whose settled copy is
another target item, is a copy the target's user moved there (Outlook's delete moves it to
Deleted Items) after which the item was copied again where it belongs: a second copy,
removed and reported. Judged at the end of the pass, once its imports are settled and
recorded (the item's own copy may be made again in the same pass, in another folder, after
this folder was listed); copies kept as deleted at the source and items nobody copied are
left alone, and nothing is removed while the item's other copy is unsettled."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import Fatal, NotFound, ServiceError
from ..plan import TargetIndex
from ..state import SETTLED
from .context import PairContext
from .work import FolderJob


def spare_copies(index: TargetIndex) -> dict[str, bytes]:
    """The target items of a listed folder that no source item claimed, by id: search key."""
    return {
        tid: key for key, ids in index.by_key.items() for tid in ids if tid not in index.claimed
    }


async def remove_second_copies(ctx: PairContext, dst_id: str, jobs: Sequence[FolderJob]) -> None:
    """Remove the spare items of ``jobs`` that are second copies (see the module)."""
    spare = [(job, tid, key) for job in jobs for tid, key in job.spare.items()]
    if not spare:
        return
    copies: dict[bytes, set[str]] = {}
    for r in await ctx.store.items_by_keys(ctx.key, list({key for _, _, key in spare})):
        if r.search_key and r.status in SETTLED and r.target_id:
            copies.setdefault(r.search_key, set()).add(r.target_id)
    for job, tid, key in spare:
        if not copies.get(key, set()) - {tid}:
            continue
        try:
            await ctx.dst.delete_item(dst_id, job.target.id, tid, hard=True)
        except NotFound:
            continue
        except Fatal:
            raise
        except ServiceError as exc:
            ctx.log.warning("item.second_copy_kept", item=tid, error=exc.message)
            continue
        job.stats.drift.append(
            {"id": tid, "reason": "a second copy (moved here in the target): removed"}
        )
    for job in jobs:
        job.spare = {}


async def forget_unmapped(ctx: PairContext) -> None:
    """After a pass that listed the target in full, its second copies removed: the settled
    records whose source folder is gone (kept for this pass by ``passes._look_later``, or
    left by a folder deleted on both sides) have nothing left to find: forgotten."""
    gone = await ctx.store.items_unmapped(ctx.key)
    if gone:
        ctx.log.info("pair.records_forgotten", items=len(gone))
        await ctx.store.forget_items(ctx.key, [r.source_id for r in gone])
