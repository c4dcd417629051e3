"""The mailboxes of a pair: the primary mailbox, and the in-place archive when the pair asks
for it. One answer for the copy, ``verify``, ``plan`` and the sign-off."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..config import Pair
from ..errors import MailboxNotFound
from ..graph import MailboxApi, MailboxRef

ARCHIVE_LABEL = "[archive]"  # the folder paths of a pair's archive start with it


@dataclass(frozen=True, slots=True)
class MailboxSide:
    """One mailbox of a pair, both sides: the source and target mailbox ids, the label its
    folder paths carry (``""`` for the primary mailbox, ``[archive]`` for the archive) and the
    names the log and the live table give each side."""

    source_id: str
    target_id: str
    label: str
    source_name: str
    target_name: str

    @property
    def archive(self) -> bool:
        return self.label == ARCHIVE_LABEL

    @property
    def scope(self) -> str:
        """The state's name for this mailbox of the pair (its delta links are kept per scope)."""
        return "archive" if self.archive else "primary"


class PairMailboxes:
    """The mailboxes of a pair, in order: iterating yields the primary mailbox, then the
    archive; when the pair asks for an archive a side lacks, the iteration raises
    ``MailboxNotFound`` where the archive would come (so the copy has copied the primary
    mailbox first, and a drain that stops before the archive never asks for it)."""

    def __init__(self, found: list[MailboxSide], missing: MailboxNotFound | None) -> None:
        self.found = found
        self.missing = missing

    def __iter__(self) -> Iterator[MailboxSide]:
        yield from self.found
        if self.missing is not None:
            raise self.missing


def sides(pair: Pair, src: MailboxRef, dst: MailboxRef) -> PairMailboxes:
    """The mailboxes of ``pair`` from its two resolved references (pure): the primary always,
    the archive when the pair has ``archive`` (``MailboxNotFound`` at its place when a side
    has none)."""
    primary = MailboxSide(
        src.primary_id,
        dst.primary_id,
        "",
        f"{pair.source} (source)",
        f"{pair.target} (target)",
    )
    if not pair.archive:
        return PairMailboxes([primary], None)
    for ref, side in ((src, "source"), (dst, "target")):
        if ref.archive_id is None:
            return PairMailboxes(
                [primary],
                MailboxNotFound(
                    f"the {side} {ref.upn} has no in-place archive (the pair asks for "
                    "archive = true); enable it, or drop archive from this pair",
                    call="resolveMailbox",
                ),
            )
    assert src.archive_id is not None and dst.archive_id is not None
    archive = MailboxSide(
        src.archive_id,
        dst.archive_id,
        ARCHIVE_LABEL,
        f"{pair.source} (source archive)",
        f"{pair.target} (target archive)",
    )
    return PairMailboxes([primary, archive], None)


async def resolved(api: MailboxApi, pair: Pair, side: str) -> MailboxRef:
    """One side's mailbox of ``pair``; one its tenant lacks is named with its side, the place
    the job gives the pair (``pairs[i]`` or the pairs file's ``file:line``) and what to do,
    the service's code and request id kept."""
    upn = pair.source if side == "source" else pair.target
    try:
        return await api.resolve_mailbox(upn)
    except MailboxNotFound as exc:
        at = f" ({pair.origin})" if pair.origin else ""
        why = (
            "is not enabled for Graph (on-premises, inactive or without an Exchange Online licence)"
            if exc.code == "MailboxNotEnabledForRESTAPI"
            else "was not found in its tenant"
        )
        raise MailboxNotFound(
            f"the {side} mailbox {upn}{at} {why}: check the pairs file's address; "
            "`copyengine doctor` names every such mailbox before a run",
            **exc.facts(),
        ) from None


async def mailboxes(src: MailboxApi, dst: MailboxApi, pair: Pair) -> PairMailboxes:
    """Both mailboxes of ``pair`` resolved: its primary mailbox, then its archive if asked."""
    s = await resolved(src, pair, "source")
    d = await resolved(dst, pair, "target")
    return sides(pair, s, d)
