"""Item and folder delta: rounds, pages, links, and what production has shown of them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from aiohttp import web

from . import odata
from .http import FOLDER_PROPS, ITEM_FILTERS, ITEM_PROPS, Ctx, GraphError, json_response
from .resources import folder_json, folder_or_404, item_get, item_json
from .store import Folder


# -- delta -------------------------------------------------------------------------------------
@dataclass
class Cursor:
    """Where a delta round stands, carried in its links (``$skiptoken`` within a round,
    ``$deltatoken`` to start the next): changes with ``since < seq <= snap`` are this round's;
    rows are walked in creation order past ``after``, then removals from index ``ri``."""

    since: int
    snap: int
    after: int = 0
    phase: str = "rows"  # rows | removed
    ri: int = 0
    n: int = 0  # rows returned so far in this round
    sel: str | None = None
    flt: str | None = None  # $filter, kept for the whole sync (capped rounds)
    ct: str | None = None  # changeType custom option
    exp: str | None = None  # $expand (message delta documents it), kept for the whole sync
    t: float = field(default_factory=time.time)

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Cursor:
        return cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})

    def next_round(self, snap: int) -> Cursor:
        return Cursor(self.snap, snap, sel=self.sel, flt=self.flt, ct=self.ct, exp=self.exp)


def _delta_state(ctx: Ctx, kind: str, scope: str) -> Cursor:
    """The round's cursor from $skiptoken/$deltatoken, or a fresh one."""
    q = ctx.request.query
    mbx = ctx.mailbox
    assert mbx is not None
    raw = q.get("$skiptoken") or q.get("$deltatoken")
    if raw is None:
        select = q.get("$select")
        odata.parse_select(select, ITEM_PROPS if kind == "items" else FOLDER_PROPS)
        flt = q.get("$filter") if kind == "items" else None
        if flt:
            odata.parse_filter(flt, ITEM_FILTERS)
        change = (q.get("changeType") or "").lower() or None
        if change not in (None, "created", "updated", "deleted"):
            raise GraphError(
                400, "ErrorInvalidRequest", "changeType must be created, updated or deleted."
            )
        expand = q.get("$expand") if kind == "items" else None
        odata.parse_expand(expand)
        return Cursor(0, mbx.seq, sel=select, flt=flt, ct=change, exp=expand)
    st = odata.unpack_token(raw)
    ttl = ctx.emu.config.delta_token_ttl
    if (
        st is None
        or st.get("k") != kind
        or st.get("m") != mbx.id
        or st.get("s") != scope
        or st.get("e") != mbx.delta_epoch
        or time.time() - float(st.get("t", 0)) > ttl
        or "delta_expire" in ctx.faults
    ):
        raise GraphError(
            410, "syncStateNotFound", "The sync state generation is not found or has expired."
        )
    cursor = Cursor.of(st)
    return cursor.next_round(mbx.seq) if "$deltatoken" in q else cursor


def _delta_page(
    ctx: Ctx,
    kind: str,
    scope: str,
    tail: str,
    rows: Callable[[int], Iterator[Any]],
    ord_of: Callable[[Any], int],
    seq_of: Callable[[Any], int],
    render: Callable[[Any, set[str] | None, set[str] | None], dict[str, Any]],
    removals: list[tuple[int, str]],
) -> web.Response:
    mbx = ctx.mailbox
    assert mbx is not None
    st = _delta_state(ctx, kind, scope)
    size = odata.page_size({}, ctx.request.headers.get("Prefer"), 100)
    select = odata.parse_select(st.sel, ITEM_PROPS if kind == "items" else FOLDER_PROPS)
    since, snap = st.since, st.snap
    clauses = odata.parse_filter(st.flt, ITEM_FILTERS) if st.flt else None
    change = st.ct
    expand = odata.parse_expand(st.exp)
    out: list[dict[str, Any]] = []
    if st.phase == "rows" and change == "deleted":
        st.phase = "removed"
    if st.phase == "rows":
        for r in rows(st.after):
            if not since < seq_of(r) <= snap:
                continue
            st.after = ord_of(r)
            if clauses is not None and not odata.matches(clauses, item_get, r):
                continue
            created = ord_of(r) > since
            if (change == "created" and not created) or (change == "updated" and created):
                continue
            out.append(render(r, select, expand))
            st.n += 1
            if clauses is not None and st.n >= FILTERED_DELTA_CAP:
                # documented for message delta: a filtered round stops at 5,000 rows; what
                # it did not return is not returned by later rounds either
                st.phase, st.ri = "removed", len(removals)
                break
            if len(out) >= size:
                break
        else:
            st.phase = "removed"
        if out and "delta_duplicate" in ctx.faults:
            out.append(out[0])  # the same item twice in one round (seen in production)
    if st.phase == "removed" and since > 0 and len(out) < size and change in (None, "deleted"):
        while st.ri < len(removals) and len(out) < size:
            seq, rid = removals[st.ri]
            st.ri += 1
            if since < seq <= snap:
                out.append({"id": rid, "@removed": {"reason": "deleted"}})
    body: dict[str, Any] = {"@odata.context": ctx.context(tail + "/delta"), "value": out}
    token = {"k": kind, "m": mbx.id, "s": scope, "e": mbx.delta_epoch}
    base_url = ctx.request.url.with_query(None)
    finished = st.phase == "removed" and (
        since == 0 or st.ri >= len(removals) or change in ("created", "updated")
    )
    if finished:
        body["@odata.deltaLink"] = str(
            base_url.with_query(
                {
                    # the closed round: the next starts where this one's snapshot ends
                    "$deltatoken": odata.pack_token({**token, **asdict(replace(st, t=time.time()))})
                }
            )
        )
    else:
        body["@odata.nextLink"] = str(
            base_url.with_query({"$skiptoken": odata.pack_token({**token, **asdict(st)})})
        )
    return json_response(body)


FILTERED_DELTA_CAP = 5000


async def item_delta(ctx: Ctx) -> web.Response:
    f = folder_or_404(ctx, ctx.request.match_info["folder"])
    return _delta_page(
        ctx,
        "items",
        f.id,
        f"{ctx.mailbox_path()}/folders('{f.id}')/items",
        rows=f.items_after,
        ord_of=lambda i: i.ord,
        seq_of=lambda i: i.seq,
        render=item_json,
        removals=f.tombstones,
    )


async def folder_delta(ctx: Ctx) -> web.Response:
    mbx = ctx.mailbox
    assert mbx is not None
    ref = ctx.request.match_info.get("folder")
    parent = folder_or_404(ctx, ref) if ref else None
    if parent is None:
        scope = "*"
        candidates = [f for f in mbx.walk() if f is not mbx.root]
        removals = [(s, i) for s, i, _ in mbx.folder_tombstones]
        tail = f"{ctx.mailbox_path()}/folders"
    else:
        scope = parent.id
        candidates = parent.live_children()
        removals = [(s, i) for s, i, p in mbx.folder_tombstones if p == parent.id]
        tail = f"{ctx.mailbox_path()}/folders('{parent.id}')/childFolders"
    candidates.sort(key=lambda f: f.ord)

    def rows(after: int) -> Iterator[Folder]:
        return (f for f in candidates if f.ord > after)

    return _delta_page(
        ctx,
        "folders",
        scope,
        tail,
        rows,
        lambda f: f.ord,
        lambda f: f.seq,
        lambda f, sel, _exp: folder_json(ctx, f, sel),
        removals,
    )
