"""Pure decisions of a copy: which folders, where they go, which items, how to batch, and
what to do with an item given the state and the target. No I/O here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from ..config import FOLDER_CLASSES, FolderRules, ItemFilters
from ..folderpath import display, split
from ..graph.models import FolderNode, Item
from ..state import SETTLED, ItemRecord, Status
from ..timefmt import parse_graph_datetime


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


class Skip(Enum):
    TOO_LARGE = "larger than max_size"
    OUT_OF_RANGE = "created outside the date range"
    TYPE = "item type not selected"


def filter_item(item: Item, f: ItemFilters) -> Skip | None:
    if f.max_size is not None and item.size > f.max_size:
        return Skip.TOO_LARGE
    if f.types and not any(item.type == t or item.type.startswith(t + ".") for t in f.types):
        return Skip.TYPE
    if f.created_after or f.created_before:
        created = parse_graph_datetime(item.created) if item.created else None
        if created is not None:
            if f.created_after and created < f.created_after:
                return Skip.OUT_OF_RANGE
            if f.created_before and created >= f.created_before:
                return Skip.OUT_OF_RANGE
    return None


class Decision(Enum):
    COPY = "copy"
    ALREADY_DONE = "already done"  # state says it was copied
    ADOPT = "adopt"  # found in the target by search key: record, do not copy


@dataclass
class TargetIndex:
    """Target items of one folder by search key (several may share one key)."""

    by_key: dict[bytes, list[str]] = field(default_factory=lambda: defaultdict(list))
    claimed: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, items: Iterable[Item]) -> TargetIndex:
        idx = cls()
        for it in items:
            if it.search_key is not None:
                idx.by_key[it.search_key].append(it.id)
        return idx

    def claim(self, key: bytes | None, prefer: str | None = None) -> str | None:
        """Take one unclaimed target item with this search key (``prefer`` first)."""
        if key is None:
            return None
        ids = self.by_key.get(key)
        if not ids:
            return None
        if prefer is not None and prefer in ids and prefer not in self.claimed:
            self.claimed.add(prefer)
            return prefer
        for i in ids:
            if i not in self.claimed:
                self.claimed.add(i)
                return i
        return None


def decide(
    item: Item, record: ItemRecord | None, index: TargetIndex
) -> tuple[Decision, str | None]:
    """What to do with a source item, given its state record and the target folder's index.

    A settled record whose target item still exists is done. Anything else (no record, an
    intent left by a crash, an unknown outcome, a failure, or a record whose target copy is
    gone) is settled against the target first: a target item with the same search key is
    adopted; only an item absent from the target is copied."""
    if record is not None and record.status in SETTLED and record.status is not Status.SKIPPED:
        got = index.claim(item.search_key, prefer=record.target_id)
        if got is not None or item.search_key is None:
            return Decision.ALREADY_DONE, record.target_id
        return Decision.COPY, None  # the copy was deleted from the target: copy again
    got = index.claim(item.search_key)
    if got is not None:
        return Decision.ADOPT, got
    return Decision.COPY, None


@dataclass(frozen=True)
class Work:
    """One item to copy."""

    item: Item
    folder: FolderPlan
    target_folder_id: str


def batches(work: Iterable[Work], max_items: int, max_bytes: int) -> Iterator[list[Work]]:
    """Group items for exportItems: at most ``max_items`` and about ``max_bytes`` (from the
    listed sizes) per batch; an item larger than ``max_bytes`` travels alone."""
    batch: list[Work] = []
    size = 0
    for w in work:
        if batch and (len(batch) >= max_items or size + w.item.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(w)
        size += w.item.size
    if batch:
        yield batch


def encoded_size(size: int) -> int:
    """Bytes of a base64 ``data`` string for an item of ``size`` (plus stream overhead)."""
    return (size + 1024) * 4 // 3 + 256
