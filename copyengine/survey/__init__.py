"""Reading a pair's mailboxes, above the Graph seam: which mailboxes a pair has (primary and
archive), the target's folder tree, the source selection placed in it, a folder's items (the
pair's selection at the source, by search key at the target), and the copied region of a
target tree that ``verify`` judges. The copy, ``verify``, ``plan`` and the sign-off all read a
pair through this room, so none of them can forget the archive. Nothing here writes, except
the ``TargetTree`` the copy extends as it creates folders."""

from .index import (
    MAX_ASKED,
    listed_items,
    moved_left_out,
    still_at_source,
    target_index,
    unless_gone,
)
from .mailboxes import ARCHIVE_LABEL, MailboxSide, PairMailboxes, mailboxes
from .region import copied_region, folder_path, region
from .tree import TargetTree, survey

__all__ = [
    "ARCHIVE_LABEL",
    "MAX_ASKED",
    "MailboxSide",
    "PairMailboxes",
    "TargetTree",
    "copied_region",
    "folder_path",
    "listed_items",
    "mailboxes",
    "moved_left_out",
    "region",
    "still_at_source",
    "survey",
    "target_index",
    "unless_gone",
]
