"""What a pair still has to upload to its target mailbox, for that mailbox's pacer.

The pacer shapes a mailbox's upload window (``pacing.shape``: only the part of the room the
last window will carry goes at once, the rest evenly over the window) and for that needs the
bytes still to upload, within a few percent of the window's budget. Counted here: the
bodies of the items the producer decided to copy or update, from their listed sizes,
scaled by what the exported bodies have measured against those sizes so far, less those
whose import was answered or that left the pipeline. Not known (None: the pacer then
bursts, as without a plan) while a folder of the pass is not listed to its end, unless a
full listing has already listed as many items as the folder walk counted in it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..graph import Item
from ..plan import encoded_size
from .ready import body_estimate
from .work import Exportable, FolderJob


class Backlog:
    __slots__ = ("_all", "_done", "_listed", "_measured", "_sized", "folders")

    def __init__(self, folders: list[FolderJob]) -> None:
        self.folders = folders
        self._listed = 0  # estimated bodies of the items to copy listed so far
        self._done = 0  # ... of those answered or gone
        self._sized = 0  # estimated bodies of the items exported so far ...
        self._measured = 0  # ... and their bodies as exported
        self._all = False  # every folder listed: it stays so (the pacer asks often)

    def listed(self, items: Iterable[Item]) -> None:
        """The producer decided to copy (or update) ``items``."""
        self._listed += sum(encoded_size(i.size) for i in items)

    def exported(self, e: Exportable) -> None:
        """``e``'s data arrived: its body is known."""
        self._sized += encoded_size(e.item.size)
        self._measured += body_estimate(e)

    def done(self, e: Exportable) -> None:
        """``e`` was answered, or left the pipeline unsent."""
        self._done += encoded_size(e.item.size)

    def _all_listed(self) -> bool:
        if self._all:
            return True
        for job in self.folders:
            if job.complete:
                continue
            count = job.plan.source.folder.item_count  # None: not known, nor what is left
            if job.mode != "full" or count is None or job.stats.source_items < count:
                return False
        self._all = True
        return True

    def __call__(self) -> float | None:
        """Bytes of bodies still to upload (those in flight included); None: not known."""
        if not self._all_listed():
            return None
        scale = self._measured / self._sized if self._sized else 1.0
        return max(0, self._listed - self._done) * scale
