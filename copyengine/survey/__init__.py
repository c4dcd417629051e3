"""Reading a pair's mailboxes, above the Graph seam: which mailboxes a pair has (primary and
archive), the target's folder tree, the source selection placed in it, and a target folder's
items by search key. The copy, ``verify``, ``plan`` and the sign-off all read a pair through
this room, so none of them can forget the archive. Nothing here writes, except the
``TargetTree`` the copy extends as it creates folders."""

from .index import target_index
from .mailboxes import ARCHIVE_LABEL, MailboxSide, NoArchive, mailboxes
from .tree import TargetTree, survey

__all__ = [
    "ARCHIVE_LABEL",
    "MailboxSide",
    "NoArchive",
    "TargetTree",
    "mailboxes",
    "survey",
    "target_index",
]
