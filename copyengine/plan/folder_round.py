"""The folder round of a pass, decided before anything is written: the three trees.

Inputs are the source's selected folders (placed by the job's rules), the **synced tree**
(what the state recorded: source folder id -> target folder id) and the **target tree as it
is**. The output is an ordered list of renames and creations that cannot collide, and, per
selected source folder, the target folder its items go to. Folders are matched by identity,
never by name: the copy of a source folder is the target folder recorded for its id; a name
seen in the target is never taken for another folder's copy.

The rules, in the order a folder is met (parents before children):

- its recorded copy still exists under the parent it should have: kept (``same``), or renamed
  when the name differs at all (a case-only rename included);
- its recorded copy exists elsewhere (the source folder moved, or a rename rule now sends it
  elsewhere): a folder is made at the new place (``moved``); its items are re-homed there and
  the old copy is swept once they are (Graph cannot move a folder);
- no record, or its copy was deleted in the target: a folder is made (``new``/``remade``).

A name needed at a place is freed first when the folder holding it is still to be renamed or
moved away (a swap, a chain, a rename onto the name of a folder deleted at the source, the
old place of a moved folder): that folder is renamed out of the way (a temporary name; a
kept deleted folder gets a lasting one), and gets its own final name when its turn comes. A
target folder that is nobody's copy (made by someone else, or by a pass cut short before it
recorded it) is adopted where a folder is needed; its items are then matched by search key.

A crash between any two actions leaves a state from which this same function derives the
rest: a mapping is recorded only once its action is confirmed (a moved folder's only once
its old copy is swept)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..state.records import RETIRED, FolderRecord
from .changes import parse_target_path
from .folders import FolderPlan, TargetRef

KEPT_SUFFIX = " (removed at source)"  # a kept folder deleted at the source, moved aside
TEMP_SUFFIX = " ~copyengine"  # a folder moved aside for one pass, renamed or deleted after


def retired_id(source_folder_id: str, target_folder_id: str) -> str:
    """The record id of an old target folder left in place (it holds copies kept under
    ``keep``, or folders): checked by every later pass, deleted once empty, moved aside when
    its name is needed, never taken for a source folder's copy."""
    return f"{RETIRED}{source_folder_id}:{target_folder_id}"


# the source part of the retired record of a folder the engine made only as the path of a
# selected folder (``FolderRound.paths``: a rename rule's ``/Inbox/Migrated``, an excluded
# parent made again): ours, deleted once no selected folder is under it and it is empty
PATH_SOURCE = "path"


def path_id(target_folder_id: str) -> str:
    """The record id of a folder the engine made only as a path (``PATH_SOURCE``)."""
    return retired_id(PATH_SOURCE, target_folder_id)


def retired_source(record_id: str) -> str | None:
    """The source folder a retired record's copies came from (None: not a retired record)."""
    if not record_id.startswith(RETIRED):
        return None
    return record_id[len(RETIRED) :].split(":", 1)[0]


def is_path(record_id: str) -> bool:
    """A record of a folder the engine made only as a path (``path_id``)."""
    return retired_source(record_id) == PATH_SOURCE


def under(path: str, above: str) -> bool:
    """Whether the place ``path`` (``TargetRef.path``) lies strictly under ``above``."""
    a, b = parse_target_path(path), parse_target_path(above)
    if a.anchor != b.anchor or len(a.parts) <= len(b.parts):
        return False
    return all(x.casefold() == y.casefold() for x, y in zip(a.parts, b.parts, strict=False))


@dataclass(frozen=True, slots=True)
class TNode:
    """A target folder as the planner sees it (``parent`` None: under the root)."""

    id: str
    name: str
    parent: str | None
    well_known: str | None = None


@dataclass(frozen=True, slots=True)
class Rename:
    folder: str  # a target folder id
    name: str
    aside: bool = False  # moved out of the way of another folder's name


@dataclass(frozen=True, slots=True)
class Create:
    ref: str  # placeholder ("new:N"), replaced by the created folder's id
    parent: str | None  # a target folder id, a placeholder, or None for the root
    name: str
    type: str


Action = Rename | Create


@dataclass
class Placed:
    """One selected source folder: where its items go this pass."""

    plan: FolderPlan
    target: str  # a target folder id, or a Create's placeholder
    kind: str  # same | renamed | moved | new | remade | adopted
    record: FolderRecord | None = None
    old: str | None = None  # moved: the old copy, swept once the items are re-homed

    @property
    def created(self) -> bool:
        return self.target.startswith("new:")


@dataclass
class FolderRound:
    actions: list[Action] = field(default_factory=list)
    placed: list[Placed] = field(default_factory=list)
    # mapped before, not selected now (deleted at the source or moved out of the selection)
    gone: list[FolderRecord] = field(default_factory=list)
    # old target folders to dispose of at the end (sweeps and gone folders), deepest first
    disposal: list[str] = field(default_factory=list)
    # the folders made only as the path of a selected folder (no selected folder's own
    # copy): their Create's placeholder (or, made by a pass cut short, their id) -> their
    # place (``TargetRef.path``), recorded as ours
    paths: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        kinds = [p.kind for p in self.placed]
        return {
            "created": kinds.count("new") + kinds.count("remade"),
            "renamed": kinds.count("renamed"),
            "moved": kinds.count("moved"),
            "deleted": len(self.gone),
        }


class _Model:
    """The target tree, changed as actions are planned."""

    def __init__(self, nodes: Iterable[TNode]) -> None:
        self.nodes: dict[str, TNode] = {}
        self.kids: dict[str | None, dict[str, str]] = defaultdict(dict)
        for n in nodes:
            self.nodes[n.id] = n
        for n in self.nodes.values():
            self.kids[n.parent][n.name.casefold()] = n.id
        self._new = 0

    def child(self, parent: str | None, name: str) -> str | None:
        return self.kids.get(parent, {}).get(name.casefold())

    def rename(self, fid: str, name: str) -> None:
        n = self.nodes[fid]
        sibs = self.kids[n.parent]
        if sibs.get(n.name.casefold()) == fid:
            del sibs[n.name.casefold()]
        sibs[name.casefold()] = fid
        self.nodes[fid] = TNode(fid, name, n.parent, n.well_known)

    def create(self, parent: str | None, name: str) -> str:
        self._new += 1
        ref = f"new:{self._new}"
        self.nodes[ref] = TNode(ref, name, parent)
        self.kids[parent][name.casefold()] = ref
        return ref

    def free_name(self, parent: str | None, base: str) -> str:
        for k in range(1, 10_000):
            name = base if k == 1 else f"{base} {k}"
            if self.child(parent, name) is None:
                return name
        raise ValueError(f"no free name like {base!r}")  # pragma: no cover

    def depth(self, fid: str) -> int:
        d, cur = 0, self.nodes.get(fid)
        for _ in range(10_000):
            if cur is None or cur.parent is None:
                return d
            d += 1
            cur = self.nodes.get(cur.parent)
        return d  # pragma: no cover


def plan_folder_round(
    plans: list[FolderPlan],
    stored: Iterable[FolderRecord],
    target: Iterable[TNode],
    anchors: Mapping[str, str],
    keep_deleted: bool,
    ours: Iterable[str] = (),
) -> FolderRound:
    """Decide this pass's folder changes. ``plans`` lists parents before children;
    ``anchors`` maps well-known names to target folder ids; ``keep_deleted``: a folder gone
    from the source keeps its copy (``deletions = "keep"``), so one moved aside gets a
    lasting name rather than a temporary one; ``ours``: target folders nobody's copy that a
    pass cut short made (its journal): one used as a path is said in ``paths`` as if made."""
    r = _Round(plans, stored, target, anchors, keep_deleted, frozenset(ours))
    for plan in plans:
        r.place(plan)
    return r.finish()


class _Round:
    """One folder round being decided: the target tree as it will be (``_Model``), and what
    has been chosen so far."""

    def __init__(
        self,
        plans: list[FolderPlan],
        stored: Iterable[FolderRecord],
        target: Iterable[TNode],
        anchors: Mapping[str, str],
        keep_deleted: bool,
        ours: frozenset[str] = frozenset(),
    ) -> None:
        self.model = _Model(target)
        self.ours = ours
        self.anchors = anchors
        self.keep_deleted = keep_deleted
        self.by_source = {r.source_folder_id: r for r in stored}
        self.selected = {p.source.folder.id for p in plans}
        self.owners: dict[str, list[FolderRecord]] = defaultdict(list)  # target id -> records
        for r in self.by_source.values():
            # a folder made only as a path is nobody's copy: used where a path needs it, never
            # moved aside for one made anew (17009: the rule's path made twice)
            if r.target_folder_id in self.model.nodes and not is_path(r.source_folder_id):
                self.owners[r.target_folder_id].append(r)
        self.out = FolderRound()
        self.chosen: dict[str, str] = {}  # source folder id -> target (id or placeholder)
        self.claimed: set[str] = set()  # targets chosen by a placed folder
        self.refs = {p.source.folder.id: p.target for p in plans}

    def still_to_place(self, fid: str) -> bool:
        """Held by the copy of a folder that will take another name or place, or by none
        that stays: it may be moved aside."""
        if fid in self.claimed or self.model.nodes[fid].well_known:
            return False  # a well-known folder cannot be renamed: never moved aside
        return bool(self.owners.get(fid))

    def aside(self, fid: str) -> None:
        node = self.model.nodes[fid]
        recs = self.owners.get(fid, [])
        lasting = self.keep_deleted and all(r.source_folder_id not in self.selected for r in recs)
        base = node.name + (KEPT_SUFFIX if lasting else TEMP_SUFFIX)
        name = self.model.free_name(node.parent, base)
        self.out.actions.append(Rename(fid, name, aside=True))
        self.model.rename(fid, name)

    def exact_name(self, fid: str, name: str) -> None:
        """``fid`` takes ``name`` exactly (case), unless claimed already or well-known."""
        node = self.model.nodes[fid]
        if node.name != name and fid not in self.claimed and not node.well_known:
            self.out.actions.append(Rename(fid, name))
            self.model.rename(fid, name)

    def slot(self, parent: str | None, name: str, ftype: str) -> tuple[str, bool]:
        """The folder to use for ``name`` under ``parent``: (id or placeholder, made now)."""
        there = self.model.child(parent, name)
        if there is not None and self.still_to_place(there):
            self.aside(there)
            there = None
        if there is None:
            ref = self.model.create(parent, name)
            self.out.actions.append(Create(ref, parent, name, ftype))
            return ref, True
        self.exact_name(there, name)
        return there, False

    def parent_of(self, plan: FolderPlan) -> tuple[str | None, str] | None:
        """(the target parent, the folder's own name); None when the folder is the anchor."""
        ref = plan.target
        parts = ref.parts
        base: str | None = None
        if ref.anchor:
            a = self.anchors.get(ref.anchor)
            if a is None:
                parts = (plan.source.names[0], *parts)
            else:
                base = a
        if not parts:
            return None
        if len(parts) == 1:
            return base, parts[0]
        up = plan.source.folder.parent_id
        if up is not None and up in self.chosen and self.refs.get(up) is not None:
            pref = self.refs[up]
            if pref.anchor == ref.anchor and pref.parts == ref.parts[:-1] and pref.parts:
                return self.chosen[up], parts[-1]
        cur: str | None = base
        shift = len(parts) - len(ref.parts)  # a missing anchor's stand-in, made first
        for k, name in enumerate(parts[:-1]):
            cur, made = self.slot(cur, name, "IPF.Note")
            if made or cur in self.ours:  # a path only (claimed later by a folder: not)
                self.out.paths[cur] = TargetRef(ref.anchor, ref.parts[: k + 1 - shift]).path
        return cur, parts[-1]

    def take(self, plan: FolderPlan, fid: str, kind: str, old: str | None = None) -> None:
        sid = plan.source.folder.id
        self.chosen[sid] = fid
        self.claimed.add(fid)
        self.out.paths.pop(fid, None)  # a selected folder's own copy after all
        self.out.placed.append(Placed(plan, fid, kind, self.by_source.get(sid), old=old))

    def place(self, plan: FolderPlan) -> None:
        """Choose the target folder of one selected source folder (its parent placed)."""
        rec = self.by_source.get(plan.source.folder.id)
        where = self.parent_of(plan)
        if where is None:  # a well-known folder mapped onto the target's own
            self.take(plan, self.anchors[plan.target.anchor], "same")  # type: ignore[index]
            return
        parent, name = where
        cur = rec.target_folder_id if rec is not None else None
        if cur is not None and cur not in self.model.nodes:
            cur = None  # deleted in the target
        if cur is not None and cur not in self.claimed and self.model.nodes[cur].parent == parent:
            self.keep_place(plan, cur, parent, name)
            return
        fid, made = self.slot(parent, name, plan.type)
        if cur is not None:
            self.take(plan, fid, "moved", old=cur)
        elif rec is not None:
            self.take(plan, fid, "remade")
        else:
            self.take(plan, fid, "new" if made else "adopted")

    def keep_place(self, plan: FolderPlan, cur: str, parent: str | None, name: str) -> None:
        """The folder's copy ``cur`` is already under the right parent: same, or renamed
        (or, when another folder there holds the name and stays, moved into that one)."""
        if self.model.nodes[cur].name == name:
            self.take(plan, cur, "same")
            return
        there = self.model.child(parent, name)
        if there is not None and there != cur:
            if self.still_to_place(there):
                self.aside(there)
            else:  # nobody's copy, or another selected folder's: items go there
                self.exact_name(there, name)  # its exact name
                self.take(plan, there, "moved", old=cur)
                return
        self.out.actions.append(Rename(cur, name))
        self.model.rename(cur, name)
        self.take(plan, cur, "renamed")

    def finish(self) -> FolderRound:
        out, model = self.out, self.model
        out.gone = [r for r in self.by_source.values() if r.source_folder_id not in self.selected]
        old = {p.old for p in out.placed if p.old is not None}
        old.update(r.target_folder_id for r in out.gone if r.target_folder_id in model.nodes)
        old -= self.claimed
        old -= {fid for fid in old if model.nodes[fid].well_known}  # never deleted: forgotten
        out.disposal = sorted(old, key=model.depth, reverse=True)
        return out
