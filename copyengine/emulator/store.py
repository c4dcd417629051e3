"""Mailboxes, folders and items held by the emulator, and their deterministic synthesis.

Pure data: no HTTP here. Every change bumps the mailbox's sequence number; delta rounds are
windows over those numbers (see ``graph.py``). Items keep only metadata plus the recipe of
their payload (``stream.py``), so 100,000 items cost tens of megabytes.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .stream import ItemContent, data_length

MiB = 1024 * 1024

# (display name, wellKnownName, folder class); children of msgfolderroot.
WELL_KNOWN_TOP: tuple[tuple[str, str, str], ...] = (
    ("Inbox", "inbox", "IPF.Note"),
    ("Sent Items", "sentitems", "IPF.Note"),
    ("Drafts", "drafts", "IPF.Note"),
    ("Deleted Items", "deleteditems", "IPF.Note"),
    ("Junk Email", "junkemail", "IPF.Note"),
    ("Archive", "archive", "IPF.Note"),
    ("Outbox", "outbox", "IPF.Note"),
    ("Calendar", "calendar", "IPF.Appointment"),
    ("Contacts", "contacts", "IPF.Contact"),
    ("Tasks", "tasks", "IPF.Task"),
    ("Notes", "notes", "IPF.StickyNote"),
    ("Journal", "journal", "IPF.Journal"),
)

# User folders of the "standard" layout: (parent path, name, class, weight of items).
USER_FOLDERS: tuple[tuple[str, str, str], ...] = (
    ("/Inbox", "Projects", "IPF.Note"),
    ("/Inbox/Projects", "2024", "IPF.Note"),
    ("/Inbox/Projects/2024", "Q3 — Ausschreibung", "IPF.Note"),
    ("/Inbox", "Ünïcødé 日本語 📁", "IPF.Note"),
    ("/Inbox", "Receipts", "IPF.Note"),
    ("/Archive", "2019", "IPF.Note"),
    ("/Calendar", "Team Calendar", "IPF.Appointment"),
    ("/Contacts", "Suppliers", "IPF.Contact"),
    ("/Tasks", "Follow-ups", "IPF.Task"),
)

FOLDER_WEIGHTS: dict[str, float] = {
    "/Inbox": 30,
    "/Sent Items": 14,
    "/Drafts": 1,
    "/Deleted Items": 4,
    "/Junk Email": 2,
    "/Archive": 8,
    "/Calendar": 6,
    "/Contacts": 4,
    "/Tasks": 2,
    "/Notes": 1,
    "/Inbox/Projects": 6,
    "/Inbox/Projects/2024": 4,
    "/Inbox/Projects/2024/Q3 — Ausschreibung": 2,
    "/Inbox/Ünïcødé 日本語 📁": 3,
    "/Inbox/Receipts": 3,
    "/Archive/2019": 6,
    "/Calendar/Team Calendar": 2,
    "/Contacts/Suppliers": 1,
    "/Tasks/Follow-ups": 1,
}

ITEM_TYPES: dict[str, tuple[tuple[str, float], ...]] = {
    "IPF.Note": (
        ("IPM.Note", 0.88),
        ("IPM.Note.SMIME", 0.04),
        ("IPM.Schedule.Meeting.Request", 0.06),
        ("IPM.Schedule.Meeting.Resp.Pos", 0.02),
    ),
    "IPF.Appointment": (("IPM.Appointment", 1.0),),
    "IPF.Contact": (("IPM.Contact", 0.9), ("IPM.DistList", 0.1)),
    "IPF.Task": (("IPM.Task", 1.0),),
    "IPF.StickyNote": (("IPM.StickyNote", 1.0),),
    "IPF.Journal": (("IPM.Activity", 1.0),),
}

# Typical sizes per folder class: (median bytes, sigma of log-normal, cap).
CLASS_SIZES: dict[str, tuple[int, float, int]] = {
    "IPF.Note": (24_000, 1.6, 40 * MiB),
    "IPF.Appointment": (6_000, 1.2, 8 * MiB),
    "IPF.Contact": (3_000, 0.8, 2 * MiB),
    "IPF.Task": (2_500, 0.8, 2 * MiB),
    "IPF.StickyNote": (1_200, 0.5, 256 * 1024),
    "IPF.Journal": (1_500, 0.5, 256 * 1024),
}

CATEGORIES = ("Red category", "Blue category", "Finance", "Kundenprojekt", "顧客", "Follow up")
SUBJECT_WORDS = (
    "quarterly",
    "report",
    "invoice",
    "meeting",
    "re:",
    "fwd:",
    "budget",
    "Überprüfung",
    "contract",
    "draft",
    "launch",
    "résumé",
    "日程",
    "roadmap",
    "minutes",
    "offsite",
)


def iso(dt: datetime) -> str:
    """UTC ISO 8601 as Exchange writes it: seven fractional digits and a Z."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_iso(value: str) -> datetime:
    v = value.strip().rstrip("Z")
    if "." in v:
        head, frac = v.split(".", 1)
        v = f"{head}.{frac[:6]}"
    dt = datetime.fromisoformat(v)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def opaque_id(seed: bytes, n: int = 34) -> str:
    """A base64 id like Exchange's (``AAMk…``); contains ``/``, ``+`` and ``=`` often."""
    return "AAMk" + base64.b64encode(hashlib.sha256(seed).digest()[:n]).decode()


@dataclass(frozen=True)
class SizeSpec:
    """How item sizes are drawn: ``realistic`` (log-normal per folder class, long tail),
    ``fixed`` (every item ``value`` bytes) or ``uniform`` (``min``..``max``)."""

    distribution: str = "realistic"
    value: int = 100_000
    min: int = 1_000
    max: int = 40 * MiB

    @classmethod
    def parse(cls, raw: Any) -> SizeSpec:
        if raw is None:
            return cls()
        if isinstance(raw, str):
            return cls(distribution=raw)
        if isinstance(raw, int):
            return cls(distribution="fixed", value=raw)
        if not isinstance(raw, dict):
            raise ValueError("sizes must be a string, an integer or a table")
        _known_keys(cls, raw, "sizes.")
        spec = cls(**raw)
        if spec.distribution not in ("realistic", "fixed", "uniform"):
            raise ValueError(f"unknown size distribution {spec.distribution!r}")
        return spec

    def draw(self, rng: random.Random, folder_class: str) -> int:
        if self.distribution == "fixed":
            return self.value
        if self.distribution == "uniform":
            return rng.randint(self.min, self.max)
        median, sigma, cap = CLASS_SIZES.get(folder_class, CLASS_SIZES["IPF.Note"])
        size = int(median * math.exp(rng.gauss(0.0, sigma)))
        return max(300, min(size, cap, self.max))


def _known_keys(cls: type, raw: dict[str, Any], prefix: str = "") -> None:
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    extra = sorted(set(raw) - known)
    if extra:
        raise ValueError(f"unknown key {prefix}{extra[0]}; known: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class MailboxSpec:
    seed: int = 1
    items: int = 100
    sizes: SizeSpec = field(default_factory=SizeSpec)
    layout: str = "standard"  # standard | flat (every item in the Inbox) | empty
    years: int = 6
    # The export stream's length over the item's size (properties and stream structure):
    # Exchange's data is larger than the size it reports. 1.0 = no overhead.
    data_ratio: float = 1.1

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> MailboxSpec:
        if raw is not None and not isinstance(raw, dict):
            raise ValueError("must be a table")
        raw = dict(raw or {})
        _known_keys(cls, raw)
        sizes = SizeSpec.parse(raw.pop("sizes", None))
        spec = cls(sizes=sizes, **raw)
        if spec.layout not in ("standard", "flat", "empty"):
            raise ValueError(f"unknown mailbox layout {spec.layout!r}")
        if spec.items < 0:
            raise ValueError("items must be >= 0")
        if not 1.0 <= spec.data_ratio <= 4.0:
            raise ValueError("data_ratio must be between 1.0 and 4.0")
        return spec


@dataclass(slots=True, eq=False)
class Item:
    id: str
    folder: Folder
    content: ItemContent
    change_key: str
    modified: str
    seq: int
    ord: int
    deleted: bool = False
    # What the service reports, when it differs from what the item's data carries: an
    # imported item gets a new createdDateTime and a size Exchange computes for its own
    # storage (the search key is preserved). None: the content's own.
    created: str | None = None
    size: int | None = None

    @property
    def api_created(self) -> str:
        return getattr(self, "created", None) or self.content.created

    @property
    def api_size(self) -> int:
        size = getattr(self, "size", None)
        return self.content.size if size is None else size


def stored_size(content_size: int) -> int:
    """The size Exchange reports for an imported item: its own storage, not the source's
    figure (properties added on import, different compression)."""
    return content_size + 384 + content_size // 40


@dataclass(slots=True, eq=False)
class Folder:
    id: str
    name: str
    type: str
    parent: Folder | None
    well_known: str | None
    hidden: bool
    seq: int
    ord: int
    children: list[Folder] = field(default_factory=list)
    # Items in creation order (``ord`` increases); deleted ones are dropped lazily.
    items: list[Item] = field(default_factory=list)
    live: int = 0
    tombstones: list[tuple[int, str]] = field(default_factory=list)
    deleted: bool = False

    def names(self) -> list[str]:
        """The chain of names from the mailbox root (the recoverable-items root included)."""
        parts: list[str] = []
        f: Folder | None = self
        while f is not None and f.parent is not None:
            parts.append(f.name)
            f = f.parent
        if f is not None and f.well_known != "msgfolderroot":
            parts.append(f.name)
        return list(reversed(parts))

    def path(self) -> str:
        """The names joined by ``/``, a ``/`` or ``\\`` inside a name escaped by ``\\``:
        unambiguous (``a/b`` under Inbox is ``/Inbox/a\\/b``)."""
        return (
            "".join("/" + n.replace("\\", "\\\\").replace("/", "\\/") for n in self.names()) or "/"
        )

    def live_children(self) -> list[Folder]:
        return [c for c in self.children if not c.deleted]

    def live_items(self) -> Iterator[Item]:
        return (i for i in self.items if not i.deleted)

    def items_after(self, ord_: int) -> Iterator[Item]:
        start = bisect.bisect_right(self.items, ord_, key=lambda i: i.ord)
        for k in range(start, len(self.items)):
            it = self.items[k]
            if not it.deleted:
                yield it

    def compact(self) -> None:
        if len(self.items) > 64 and self.live * 2 < len(self.items):
            self.items = [i for i in self.items if not i.deleted]


class Mailbox:
    """One mailbox: a folder tree, items, and a sequence number per change."""

    # an in-place archive is a mailbox of its own (own id, folders, items and throttling
    # budgets), reached through its owner's inPlaceArchiveMailboxId on /beta
    is_archive = False
    archive_id: str | None = None
    # an auto-expanding archive (``expand.py``): its auxiliary mailbox, the folders whose
    # items live there, and the switch's settings; on the auxiliary, the archive it serves
    auxiliary: Mailbox | None = None
    aux_of: Mailbox | None = None
    expanded: frozenset[str] = frozenset()
    expand_spec: Any = None  # expand.ExpandSpec

    def __init__(self, mailbox_id: str, upn: str, tenant_id: str, id_seed: str) -> None:
        self.id = mailbox_id
        self.upn = upn
        self.tenant_id = tenant_id
        self._id_seed = id_seed
        self._counter = 0
        self.seq = 0
        self.delta_epoch = 1
        self.folders: dict[str, Folder] = {}
        self.items: dict[str, Item] = {}
        self.well_known: dict[str, Folder] = {}
        self.folder_tombstones: list[tuple[int, str, str]] = []  # (seq, id, parent id)
        self.root = self._new_folder("Top of Information Store", "", None, "msgfolderroot")
        self.recoverable_root = self._new_folder(
            "Recoverable Items", "", None, "recoverableitemsroot", hidden=True
        )
        self._new_folder(
            "Deletions", "", self.recoverable_root, "recoverableitemsdeletions", hidden=True
        )
        for name, wkn, cls in WELL_KNOWN_TOP:
            self._new_folder(name, cls, self.root, wkn)

    # -- ids and sequence -------------------------------------------------------------------
    def _next_id(self, kind: str) -> str:
        self._counter += 1
        return opaque_id(f"{self._id_seed}/{kind}/{self._counter}".encode())

    def change_key(self) -> str:
        self._counter += 1
        raw = hashlib.sha256(f"{self._id_seed}/ck/{self._counter}".encode()).digest()[:12]
        return "CQAAAB" + base64.b64encode(raw).decode()

    def bump(self) -> int:
        self.seq += 1
        return self.seq

    # -- folders -----------------------------------------------------------------------------
    def _new_folder(
        self,
        name: str,
        cls: str,
        parent: Folder | None,
        well_known: str | None = None,
        hidden: bool = False,
    ) -> Folder:
        seq = self.bump()
        folder = Folder(
            id=self._next_id("folder"),
            name=name,
            type=cls,
            parent=parent,
            well_known=well_known,
            hidden=hidden,
            seq=seq,
            ord=seq,
        )
        self.folders[folder.id] = folder
        if well_known:
            self.well_known[well_known] = folder
        if parent is not None:
            parent.children.append(folder)
        self._log_folder(folder)
        return folder

    def find_folder(self, ref: str) -> Folder | None:
        """A folder by id or by well-known name (case-insensitive), live only."""
        folder = self.folders.get(ref) or self.well_known.get(ref.lower())
        if folder is None or folder.deleted:
            return None
        return folder

    def child_named(self, parent: Folder, name: str) -> Folder | None:
        low = name.casefold()
        for c in parent.children:
            if not c.deleted and c.name.casefold() == low:
                return c
        return None

    def create_folder(self, parent: Folder, name: str, cls: str) -> Folder:
        return self._new_folder(name, cls, parent)

    def rename_folder(self, folder: Folder, name: str) -> None:
        folder.name = name
        folder.seq = self.bump()
        self._log_folder(folder)

    def delete_folder(self, folder: Folder) -> None:
        for child in folder.live_children():
            self.delete_folder(child)
        for item in list(folder.live_items()):
            self.delete_item(item)
        folder.deleted = True
        parent_id = folder.parent.id if folder.parent else ""
        seq = self.bump()
        self.folder_tombstones.append((seq, folder.id, parent_id))
        self._log(("folder_del", folder.id, seq, parent_id))

    def folder_by_path(self, path: str) -> Folder | None:
        folder = self.root
        for part in [p for p in path.split("/") if p]:
            nxt = self.child_named(folder, part)
            if nxt is None:
                return None
            folder = nxt
        return folder

    def walk(self, start: Folder | None = None) -> Iterator[Folder]:
        stack = [start or self.root]
        while stack:
            f = stack.pop()
            yield f
            stack.extend(reversed(f.live_children()))

    # -- items -------------------------------------------------------------------------------
    def add_item(
        self,
        folder: Folder,
        content: ItemContent,
        modified: str | None = None,
        *,
        created: str | None = None,
        size: int | None = None,
    ) -> Item:
        seq = self.bump()
        item = Item(
            id=self._next_id("item"),
            folder=folder,
            content=content,
            change_key=self.change_key(),
            modified=modified or iso(datetime.now(UTC)),
            seq=seq,
            ord=seq,
            created=created,
            size=size,
        )
        self.items[item.id] = item
        folder.items.append(item)
        folder.live += 1
        self._log_item(item)
        return item

    def update_item(self, item: Item, content: ItemContent, *, size: int | None = None) -> None:
        item.content = content
        item.change_key = self.change_key()
        item.modified = iso(datetime.now(UTC))
        item.seq = self.bump()
        if size is not None:
            item.size = size
        self._log_item(item)

    # -- durability: every change journaled as it happens (see ``journal.py``) ----------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_journal", None)  # an open file, not state
        return state

    def attach_journal(self, write: Any) -> None:
        self.__dict__["_journal"] = write

    def _log(self, record: tuple[Any, ...]) -> None:
        write = self.__dict__.get("_journal")
        if write is not None:
            write(self.id, record, self.seq, self._counter)

    def _log_item(self, it: Item) -> None:
        self._log(
            (
                "item",
                it.id,
                it.folder.id,
                it.content,
                it.change_key,
                it.modified,
                it.seq,
                it.ord,
                getattr(it, "created", None),
                getattr(it, "size", None),
            )
        )

    def _log_folder(self, f: Folder) -> None:
        parent = f.parent.id if f.parent is not None else None
        self._log(("folder", f.id, f.name, f.type, parent, f.well_known, f.hidden, f.seq, f.ord))

    def replay(self, record: tuple[Any, ...], seq: int, counter: int) -> None:
        """Apply one journaled change (as recorded: ids, sequence numbers and all)."""
        kind = record[0]
        if kind == "item":
            _, iid, fid, content, ck, modified, iseq, iord, created, size = record
            it = self.items.get(iid)
            if it is None:
                folder = self.folders[fid]
                it = Item(iid, folder, content, ck, modified, iseq, iord, False, created, size)
                self.items[iid] = it
                folder.items.append(it)
                folder.live += 1
            else:
                it.content, it.change_key, it.modified, it.seq = content, ck, modified, iseq
                it.created, it.size = created, size
        elif kind == "item_del":
            it = self.items.pop(record[1], None)
            if it is not None and not it.deleted:
                it.deleted = True
                it.folder.live -= 1
                it.folder.tombstones.append((record[2], it.id))
                it.folder.compact()
        elif kind == "folder":
            _, fid, name, cls, parent_id, wk, hidden, fseq, ford = record
            parent = self.folders.get(parent_id) if parent_id else None
            f = self.folders.get(fid)
            if f is None:
                f = Folder(fid, name, cls, parent, wk, hidden, fseq, ford)
                self.folders[fid] = f
                if wk:
                    self.well_known[wk] = f
                if parent is not None:
                    parent.children.append(f)
            else:
                if f.parent is not parent and f.parent is not None and parent is not None:
                    f.parent.children.remove(f)
                    parent.children.append(f)
                    f.parent = parent
                f.name, f.seq = name, fseq
        elif kind == "folder_del":
            f = self.folders.get(record[1])
            if f is not None and not f.deleted:
                f.deleted = True
                self.folder_tombstones.append((record[2], f.id, record[3]))
        self.seq = max(self.seq, seq)
        self._counter = max(self._counter, counter)

    def move_item(self, item: Item, to: Folder) -> Item:
        """As Exchange moves an item: a new item (new id) in ``to`` with the same content and
        search key, the old one gone (delta: a removal and an addition)."""
        moved = self.add_item(
            to,
            item.content,
            modified=item.modified,
            created=getattr(item, "created", None),
            size=getattr(item, "size", None),
        )
        self.delete_item(item)
        return moved

    def copy_item(self, item: Item, to: Folder) -> Item:
        """As Exchange copies an item (MAPI CopyTo): a new item (new id, new change key,
        created now) in ``to`` with the same content and search key; ``item`` stays."""
        return self.add_item(
            to,
            item.content,
            modified=item.modified,
            created=iso(datetime.now(UTC)),
            size=getattr(item, "size", None),
        )

    def move_folder(self, folder: Folder, to: Folder) -> None:
        node: Folder | None = to
        while node is not None:
            if node is folder:
                raise ValueError("a folder cannot move under itself")
            node = node.parent
        assert folder.parent is not None
        folder.parent.children.remove(folder)
        to.children.append(folder)
        folder.parent = to
        folder.seq = self.bump()
        self._log_folder(folder)

    def delete_item(self, item: Item) -> None:
        if item.deleted:
            return
        item.deleted = True
        del self.items[item.id]
        folder = item.folder
        folder.live -= 1
        seq = self.bump()
        folder.tombstones.append((seq, item.id))
        folder.compact()
        self._log(("item_del", item.id, seq))

    # -- ground truth ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        folders = []
        items = []
        for root in (self.root, self.recoverable_root):
            for f in self.walk(root):
                if f is self.root:
                    continue
                path = f.path()
                names = f.names()
                folders.append(
                    {
                        "path": path,
                        "names": names,
                        "id": f.id,
                        "type": f.type,
                        "wellKnownName": f.well_known,
                        "isHidden": f.hidden,
                        "itemCount": f.live,
                    }
                )
                for it in f.live_items():
                    c = it.content
                    items.append(
                        {
                            "reportedSize": it.api_size,
                            "folderPath": path,
                            "folderNames": names,
                            "id": it.id,
                            "type": c.type,
                            "size": c.size,
                            # the length of the export's data string (base64 of the stream)
                            "dataLength": data_length(c),
                            "searchKey": base64.b64encode(c.search_key).decode(),
                            "internetMessageId": c.message_id,
                            "createdDateTime": it.api_created,
                            "digest": c.digest(),
                        }
                    )
        return {
            "mailboxId": self.id,
            "userPrincipalName": self.upn,
            "folders": folders,
            "items": items,
        }


def mailbox_guid(tenant_id: str, upn: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"copyengine-emulator/{tenant_id}/{upn.lower()}"))


def new_mailbox(tenant_id: str, upn: str, *, archive: bool = False) -> Mailbox:
    guid = mailbox_guid(tenant_id, upn + ("#archive" if archive else ""))
    mbx = Mailbox(f"MBX:{guid}@{tenant_id}", upn, tenant_id, id_seed=guid)
    mbx.is_archive = archive
    return mbx


def seed_mailbox(mbx: Mailbox, spec: MailboxSpec) -> None:
    """Fill a mailbox deterministically from ``spec`` (same spec, same content)."""
    rng = random.Random(f"{spec.seed}/{mbx.upn.lower()}")
    if spec.layout == "empty":
        return
    if spec.layout == "standard":
        for parent_path, name, cls in USER_FOLDERS:
            parent = mbx.folder_by_path(parent_path)
            assert parent is not None
            if mbx.child_named(parent, name) is None:
                mbx.create_folder(parent, name, cls)
        weighted = [(mbx.folder_by_path(p), w) for p, w in FOLDER_WEIGHTS.items()]
        targets = [f for f, _ in weighted if f is not None]
        weights = [w for f, w in weighted if f is not None]
    else:
        targets = [mbx.well_known["inbox"]]
        weights = [1.0]
    # the day, not the second: one seed gives the same mailbox all day (two mailboxes
    # seeded across a second boundary differed, and the determinism test flaked)
    now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    span = timedelta(days=365 * spec.years).total_seconds()
    domain = mbx.upn.split("@")[-1]
    folders = rng.choices(targets, weights=weights, k=spec.items)
    for n, folder in enumerate(folders):
        types = ITEM_TYPES.get(folder.type, ITEM_TYPES["IPF.Note"])
        (item_type,) = rng.choices([t for t, _ in types], weights=[w for _, w in types])
        created = now - timedelta(seconds=rng.random() * span)
        is_mail = item_type.startswith("IPM.Note") or item_type.startswith("IPM.Schedule")
        k = rng.choice((0, 0, 0, 1, 1, 2))
        content = ItemContent(
            type=item_type,
            created=iso(created),
            categories=tuple(rng.sample(CATEGORIES, k)),
            search_key=rng.randbytes(16),
            message_id=f"<{rng.getrandbits(64):016x}.{n}@{domain}>" if is_mail else None,
            subject=" ".join(rng.choices(SUBJECT_WORDS, k=rng.randint(2, 6))),
            payload_key=rng.getrandbits(48),
            size=(size := spec.sizes.draw(rng, folder.type)),
            overhead=round(size * (spec.data_ratio - 1.0)),
        )
        mbx.add_item(folder, content, modified=iso(created))
