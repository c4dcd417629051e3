"""Before a pass applies what left the source: the folders read before a departure was seen
are read once more, so that a move made during the pass is never taken for a deletion.

One delta round of one folder cannot tell a move from a deletion: an item moved (a new id,
the same search key) into a folder whose round this pass had already read shows only as
leaving its old folder. Applied at once, that departure would soft-delete the copy under
``mirror`` (or keep it as deleted under ``keep``) and the next pass would import the item
again: a copy's identity lost, one left in Recoverable Items, and at a cutover the item
missing. So once every folder's round is read and its imports settled, the departures that
would be deletions (``plan.unexplained``) make the folders whose round began before they
were seen read again from the links that closed their rounds (``plan.to_reread``: cheap,
one delta request per folder when nothing changed). An arrival found then is copied like
any, and the departure becomes a move. A departure seen in a round read again (a move
during this reading) brings another reading, at most ``MAX_REREADS``, and only while each
reading hands on fewer items than the rounds or reading before it, or only a few
(``converging``: a source changing at least as fast as the pass copies would make each
reading as long as the last or longer); one that is still unexplained after that is put
off to the next pass (its folder keeps its old link), never taken for a deletion.

An item with no record (new since the last pass) that moves during the pass leaves no
departure to explain, yet it may have gone into a folder whose round had begun: its own
folder's round tells only an ``@removed`` of an id nobody knew (from a link), or nothing (a
round from nothing: a new folder, a --full pass, a link refused; it returns fewer items than
the pass's walk counted there). Either makes the folders whose round began before it was
seen read again the same way (``_strays``); a quiet pass has neither and pays nothing.

With ``[sync] delta = false`` there is no link to read again from: those folders are listed
again in full at the source (``Relisting``), compared with their last listing as a delta
round would be: what arrived since (and the unexplained departures' search keys) is handed
on (an arrival nobody saw: copied like any), what left since is a departure. A departure
points at nothing when its item has no record (new since the last pass) or when it left a
folder already listed (the item copied again where it went): so the folders whose item
count changed after their listing are listed again too (``_changed_since_listed``, one walk
of the tree, only in a pass whose listings already differed from its walk's counts), and
those listed before a folder whose listing returned fewer items than the walk counted
(``_fewer_than_counted``: an item with no record that left may have gone into one, with
another change there hiding it in its count) or before an arrival whose search key a record
no listing saw leave holds (``_unseen_departures``: an item moved out of a folder listed
before, maybe swapped with one moved in). That costs a listing of those folders (a page
per 250 items) only in a pass that has such a departure or change, and no listing of the
target; the other way, putting the departure off a pass, would need to remember across
passes which departures were put off already (the next pass's full listing sees the same
departure after the same folders), would delay every deletion a pass, and would still need
this reading for the cutover, which has no next pass."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from ..errors import Fatal, ServiceError
from ..graph import Item, MailboxApi
from ..plan import to_reread, unexplained
from ..state import ItemRecord, Status
from ..survey import MailboxSide
from ..survey.fromdelta import read_tree
from .backlog import Backlog
from .context import PairContext
from .enumerate import Enumerator, FullListing, Moments
from .passes import MailboxPass
from .produce import Producer
from .settle import Settler
from .stages import Stages
from .unsettled import Unsettled
from .work import Exportable, FolderJob

MAX_REREADS = 3  # readings again per pass; a departure still unexplained waits a pass
CHASE_FLOOR = 25  # items a reading again hands on below which it is not said to chase churn


def converging(handed: list[int]) -> bool:
    """Whether one more reading again may follow the readings so far, given how many items
    each handed on to be copied (oldest first): while the source keeps changing, a reading
    copies what changed during the one before (the first, what changed during the pass's
    rounds), so a reading that handed on no fewer items than the rounds or reading before
    it (and some) is not catching up: the source changes at least as
    fast as the pass copies, and each further reading would be as long or longer (soak seed
    10019 mirror: a churn pass at 20 changes a second more than 13 minutes under load; at
    300 a second, each reading half as long again as the one before, the third held by the
    import budget's window). Its departures are put off to the next pass instead, as after
    ``MAX_REREADS`` readings. One that handed on fewer than ``CHASE_FLOOR`` is cheap
    whatever the trend (a move found in a reading: the readings after it go on as before).
    Pure."""
    return len(handed) < 2 or handed[-1] < max(handed[-2], CHASE_FLOOR)


@dataclass
class Copied:
    """One mailbox of the pair, its items copied and settled: what reading again needs."""

    this: MailboxPass
    folders: list[FolderJob]
    side: MailboxSide
    stages: Stages
    unsettled: Unsettled
    backlog: Backlog
    enumerator: Enumerator
    handed: int = 0  # items its rounds handed on to be copied (``converging``)


async def _unexplained(
    ctx: PairContext, jobs: list[FolderJob]
) -> list[tuple[FolderJob, ItemRecord]]:
    """This pass's departures (over the pair's mailboxes: a move between the primary mailbox
    and the archive is a move too) that no other record of their search key explains."""
    departing = [(job, r) for job in jobs for r in job.removed]
    if not departing:
        return []
    await ctx.store.flush()  # this pass's outcomes, read back below
    keys = list({r.search_key for _, r in departing if r.search_key})
    known = await ctx.store.items_by_keys(ctx.key, keys) if keys else []
    which = {r.source_id for r in unexplained((r for _, r in departing), known)}
    return [(job, r) for job, r in departing if r.source_id in which]


async def _changed_since_listed(ctx: PairContext, done: list[Copied]) -> set[str]:
    """The folders read from nothing this pass (a full listing, ``delta = false``; a round
    with no link: a first or ``--full`` pass, a new folder, a link refused) whose item count
    (a walk of the source's tree now, after every round) differs from what their round
    returned: changed after it. A departure points at the folders to read again only when
    the item that left has a record: an item new since the last pass moved during the pass
    into a folder read before (seeds 1802, 1807) leaves none, and with one created where it
    left (seeds 2305, 2325: a ``--full`` pass) not even a count that differs from the first
    walk's; an item moved out of a folder read before into one read later leaves none either
    (copied again there: two copies). Either way the count of a folder it went to changed
    after its round. The tree read once more in a pass that read some folder from nothing
    (a fresh folder delta round: a request per 200 folders, ``survey.read_tree``); not in a
    pass that read every folder from a link."""
    ids: set[str] = set()
    for c in done:
        mine = [(j, _returned(j)) for j in c.folders if j.complete]
        mine = [(j, n) for j, n in mine if n is not None]
        if not mine:
            continue
        try:
            now = {
                n.folder.id: n.folder.item_count for n in await read_tree(ctx.src, c.side.source_id)
            }
        except Fatal:
            raise
        except ServiceError as exc:  # not known: the next pass reads them again anyway
            ctx.log.warning("pass.recount_failed", error=exc.message)
            continue
        # a count the service did not give (None) differs: read again
        ids |= {j.source_id for j, n in mine if j.source_id in now and now[j.source_id] != n}
    return ids


def _returned(job: FolderJob) -> int | None:
    """How many items the folder's round from nothing returned (None: read from a link)."""
    if job.listed is not None:
        return len(job.listed)
    return job.counted


def _strays(jobs: list[FolderJob], first: bool, incremental: set[str]) -> list[int]:
    """``delta = true``: when an item with no record may have left for a folder whose round
    had already begun, so that no round brought it: a round saw an id leave that no record
    knows (an item new since the last pass, moved on during it, ``FolderJob.stray_at``), or,
    in the first reading, a round from nothing told no removal at all: one that returned
    another number of items than the pass's walk counted in its folder, or, in a pass that
    reads links (``incremental``: the folders of such a mailbox), any whose folder the walk
    found holding items (a new folder, a link refused: rare; its count may hide an item moved
    out behind one created there). Each is taken once; a quiet pass has none (nor a quiet
    --full pass: every round is from nothing there, each count is the walk's)."""
    seen = [job.stray_at for job in jobs if job.stray_at]
    for job in jobs:
        job.stray_at = 0
    if first:
        seen += [
            job.round_ended
            for job in jobs
            if job.complete
            and job.counted is not None
            and _maybe_stray(job, job.source_id in incremental)
        ]
    return seen


def _maybe_stray(job: FolderJob, incremental: bool) -> bool:
    """``_strays``: a round from nothing that returned another number than the walk counted,
    or any holding items in a pass that reads links; a count the service did not give
    (``Folder.item_count`` None) says nothing, so it is taken as one."""
    count = job.plan.source.folder.item_count
    return count is None or job.counted != count or (incremental and count > 0)


def _fewer_than_counted(jobs: list[FolderJob]) -> list[int]:
    """``delta = false``, the first listing: when an item with no record (new since the last
    pass) may have left for a folder listed before: a folder whose listing returned
    fewer items than the pass's walk counted there (something left it after the walk; what
    had a record is a departure already, what had none is told by nothing else: moved into a
    folder listed before, as an item there was deleted, it leaves every other count as it
    was). The moment is the end of that listing. Only a net loss counts: mail arriving while
    a folder is listed costs nothing."""
    return [
        job.round_ended
        for job in jobs
        if job.complete
        and job.listed is not None
        and _fewer(len(job.listed), job.plan.source.folder.item_count)
    ]


def _fewer(listed: int, count: int | None) -> bool:
    """Fewer listed than the walk counted; a count not given (None) may hide one."""
    return count is None or listed < count


async def _unseen_departures(
    ctx: PairContext, done: list[Copied], late: set[str] | None = None
) -> list[int]:
    """When an item may have left a folder whose round (or listing, ``delta = false``) had
    already begun, its departure told by no round: an arrival of this pass (a new id) whose
    search key a copied record in another folder read this pass holds, that record's id
    seen leaving by no round (an item moved during the pass out of a folder read before into
    one read after: copied there, its old copy left: two copies until the next pass; with
    ``delta = false`` also the sign of a swap, an item moved the other way at the same time
    leaving every count as it was). The moment is the end of the arrival's round. Only the
    pass's arrivals are looked up (one read of the state, none in a pass with no arrival).

    ``late``: only the arrivals in those folders: folders the walk counted empty, not read
    (``FolderJob.skipped``) until a reading again took them (a count that changed since the
    walk): an item moved into one out of a folder read before is told by that reading only,
    after the first one looked at the pass's arrivals."""
    arrivals = {
        k: v
        for c in done
        for k, v in c.this.arrived.items()
        if late is None or v[2].source_id in late
    }
    if not arrivals:
        return []
    jobs = {job.source_id: job for c in done for job in c.folders}
    leaving = {i for job in jobs.values() for i in job.removed_ids} | {
        r.source_id for job in jobs.values() for r in job.removed
    }
    await ctx.store.flush()  # this pass's outcomes, read back below
    seen: list[int] = []
    for r in await ctx.store.items_by_keys(ctx.key, list(arrivals)):
        came = arrivals.get(r.search_key) if r.search_key else None
        if (
            came is not None
            and r.source_id != came[0]
            and r.source_id not in leaving
            and r.target_id
            and r.status is not Status.REMOVED
            and r.folder_id in jobs
        ):
            seen.append(came[2].round_ended)
    return seen


async def reread(
    ctx: PairContext, done: list[Copied], watch: Callable[[Unsettled], None] | None = None
) -> None:
    """Read again the folders that may hold an arrival nobody saw, until no departure that
    looks like a deletion was seen after a round it concerns began (``MAX_REREADS`` at
    most); what is still unexplained then is put off to the next pass. ``watch`` is told
    whose items are being copied (the pair hands them on if it stops)."""
    jobs = [job for c in done for job in c.folders]
    late: set[str] = set()  # folders skipped (counted empty at the walk) read in this reading
    # items the pass's rounds, then each reading again, handed on (``converging``)
    handed: list[int] = [sum(c.handed for c in done)]
    for n in range(MAX_REREADS + 1):
        if ctx.stop.draining:
            return
        gone = await _unexplained(ctx, jobs)
        seen = [job.removed_at.get(r.source_id, job.round_ended) for job, r in gone]
        if n == 0 and seen:
            # a departure is seen when its item has left the folder its record names; it may
            # arrive, or move on again, anywhere until the pass's reading ends (seed 1703:
            # moved before the pass, seen leaving early, then moved again during the pass into
            # a folder read after that): the first reading again takes every folder read
            seen = [max(job.round_started for job in jobs) + 1]
        relist = not ctx.sync.delta  # no link: listed again in full
        if not relist:
            incremental = {j.source_id for c in done if c.this.incremental for j in c.folders}
            seen += _strays(jobs, n == 0, incremental)
        if n == 0:
            if relist:
                seen += _fewer_than_counted(jobs)
            seen += await _unseen_departures(ctx, done)
        elif late:
            seen += await _unseen_departures(ctx, done, late)
            late = set()
        rounds = [
            (
                job.source_id,
                job.round_started,
                bool((job.next_link or relist) and job.complete) or job.skipped,
            )
            for job in jobs
        ]
        again = set(to_reread(seen, rounds))
        if n == 0 and not {sid for sid, _, ok in rounds if ok} <= again:
            # (every folder read again anyway: no walk needed to say which changed)
            again |= await _changed_since_listed(ctx, done) & {sid for sid, _, ok in rounds if ok}
        if not again:
            return
        if n == MAX_REREADS or not converging(handed):
            if n < MAX_REREADS:
                ctx.log.info("pass.reread_put_off", handed=handed, departures=len(gone))
            _put_off(ctx, gone, rounds)
            return
        ctx.log.info("pass.reread", folders=len(again), departures=len(gone), round=n + 1)
        late = {job.source_id for job in jobs if job.skipped and job.source_id in again}
        keys = None if ctx.sync.delta else {r.search_key for _, r in gone if r.search_key}
        handed.append(0)
        for c in done:
            mine = [job for job in c.folders if job.source_id in again]
            if mine:
                if watch is not None:
                    watch(c.unsettled)
                handed[-1] += await _read_again(ctx, c, mine, keys)


async def _read_again(
    ctx: PairContext, c: Copied, jobs: list[FolderJob], keys: set[bytes] | None = None
) -> int:
    """One more round of each of ``jobs``, from the link that closed its last one: its
    changes copied and settled like the first round's; its departures join the first's.
    How many items it handed on to be copied.
    ``keys`` (``delta = false``): each folder listed again in full instead, only the items
    of those search keys handed on, as a round's new rows are (``Relisting``)."""
    before: dict[str, list[ItemRecord]] = {}
    modes = {job.source_id: job.mode for job in jobs}
    # a first round whose stored link was refused (410) listed the folder in full and closed
    # with a fresh link, read from now: left set, the producer would list the folder in full
    # once more after this round (its items counted twice: "not done", exit 1)
    expired = {job.source_id for job in jobs if job.expired}
    for job in jobs:
        before[job.source_id] = job.removed
        if job.skipped:  # never read (counted empty at the walk): read from nothing, in full
            job.skipped = job.empty_at_walk = job.complete = False
            job.counted = job.link = None
            continue
        job.mode, job.complete, job.expired = "delta", False, False
        if keys is None:
            job.link = job.next_link
    ledger = ctx.ledger
    ledger.arrived.clear()  # this mailbox's arrivals: kept on its pass (``items_done``)
    ledger.left_out.clear()
    ledger.track_arrivals = True
    enumerator = (
        c.enumerator
        if keys is None
        else Relisting(ctx.src, c.side.source_id, keys, ctx.store.moment)
    )
    producer = Producer(ctx, c.side, jobs, enumerator, c.unsettled, c.backlog, retake=False)
    handed = [0]
    try:
        await c.stages.run(counted(producer.batches(), handed))
    finally:
        if keys is not None:
            for job in jobs:
                job.mode = modes[job.source_id]
    await Settler(ctx, c.side, c.stages, c.unsettled).settle()
    c.this.arrived.update(ledger.arrived)
    for k, seen in ledger.left_out.items():
        c.this.left_out_seen.setdefault(k, []).extend(seen)
    for job in jobs:
        job.expired = job.expired or job.source_id in expired  # (the old link: not kept)
    for job in jobs:  # a first round listed in full noted its departures itself
        now = {r.source_id for r in job.removed}
        # listed again in full: an earlier departure whose item this listing found in the
        # folder was none (``$skip`` paging: an item deleted from a page already read shifts
        # the rest, and the next page's first item is never listed)
        back = job.listed if keys is not None and job.complete else None
        job.removed = job.removed + [
            r
            for r in before[job.source_id]
            if r.source_id not in now and (back is None or r.source_id not in back)
        ]
    return handed[0]


async def counted(
    batches: AsyncIterator[list[Exportable]], n: list[int]
) -> AsyncIterator[list[Exportable]]:
    """``batches`` as they come, their items counted into ``n[0]``."""
    async for batch in batches:
        n[0] += len(batch)
        yield batch


def _put_off(
    ctx: PairContext,
    gone: list[tuple[FolderJob, ItemRecord]],
    rounds: list[tuple[str, int, bool]],
) -> None:
    """Departures seen after a round they concern began, still unexplained after every
    reading: not applied in this pass (their folder keeps its old link, so the next pass
    sees them again, with the arrival if it was a move)."""
    for job, r in gone:
        seen = job.removed_at.get(r.source_id, job.round_ended)
        if to_reread([seen], rounds):
            job.removed = [x for x in job.removed if x.source_id != r.source_id]
            job.deferred = True
            ctx.log.info("item.departure_put_off", item=r.source_id)


class Relisting(FullListing):
    """A folder listed again in full (``delta = false``: no link to read again from), as a
    delta round from its last listing would tell it: handed on, the items that arrived since
    (an id that listing did not return: an item moved here during the pass, new or not, or
    added) and those of ``keys`` (the search keys of departures that look like deletions);
    noted as departures (``job.gone``), the items that listing returned and this one
    does not (moved on, or deleted, during the pass). An item handed on has no record (else
    its departure would be explained, or the last listing returned it): a new row, copied
    like one."""

    def __init__(self, api: MailboxApi, mailbox_id: str, keys: set[bytes], moment: Moments) -> None:
        super().__init__(api, mailbox_id, moment)
        self.keys = keys

    async def items(self, job: FolderJob) -> AsyncIterator[list[Item]]:
        before, job.removed_ids, job.gone = job.listed, set(), frozenset()
        async for page in super().items(job):
            found = [
                it
                for it in page
                if it.search_key in self.keys or (before is not None and it.id not in before)
            ]
            if found:
                yield found
        if before is not None and job.listed is not None and job.complete:
            job.gone = before.gone(job.listed)
