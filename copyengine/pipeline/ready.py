"""Exported items waiting for an importer, and which one an importer takes next.

A target mailbox's upload budget is a sliding window: whatever room it has now and is not
used is lost. Importers that each hold one item and wait until it fits leave room unused
whenever every held item is bigger than the room (the window then ran at 70-90% of its
budget). Here an importer chooses when it is free, from every item ready:

- the oldest item, when every ready item fits now (first in, first out whenever the budget
  does not bind: the unthrottled order is unchanged);
- else the largest that fits (large items start early, while there is room for them, and
  small ones fill the gaps);
- else the smallest (it fits soonest; the importer waits for it in the pacer, which counts
  that wait as throttling and the mailbox as active);
- an item passed over for ``overdue_s`` (two upload windows) is taken first whatever its size,
  so no item waits for ever behind smaller ones;
- while the pacer says the order does not change what is sent (``in_order``: a budget the
  service cut, spent through a token bucket at its rate, sends as much whichever body goes
  first), whatever the room: the oldest while more items are to come, and once every
  item is here the largest, however long the oldest waited (nothing more comes to pass
  it), so that the smallest are left for the job's tail, where one or two mailboxes send
  their last bodies one at a time at the rate (the pacer then lets them go in the order
  they began to wait: ``step.Budgets._ahead``).
  Taking the largest that fits the bucket's small room, else the smallest, left the
  largest there (issue 26: the last 8 uploads of a mailbox 192 KB against 82 KB over the
  job; first in, first out still left some; taken oldest first once overdue, 84-266 KB).
  Then, too, the pool holds one item more than its capacity per item taken so, up to
  ``DEEP`` times its capacity, and keeps the smallest of what it holds beyond its capacity
  for the tail, taking the oldest of the others (deepened at once, the others were the
  largest of the first hundred items, every mailbox's at the same time: 32 service s with
  all 8 mailboxes left in ``stricter``): with the
  capacity only, the last exports brought large bodies to the very end, each alone at the
  rate (a 293 KB body 70 service s beside the other writer), and the wait before each came
  back a window later in the window full of the mailbox's own bytes (``stricter``: 38-52
  service s without an import with 1-3 mailboxes left). Largest first throughout, from
  the deep pool, sent only large bodies mid-job (spans of 30-36 service s with all 8
  mailboxes left in ``learn_model`` and ``stricter``); holding the smallest back changes
  little of the mix the others send.
- ``MIXED``: once the pool has deepened by its capacity (as many items taken while the
  order sends as much), the largest and the smallest in turn instead, until every item is
  here. Taking the oldest beside the smallest kept, every mailbox sent the larger half
  mid-job, all 8 at once waiting on a large body for their own bytes at the rate (issue
  26, helper tail5's traces), and the last items to arrive, large ones among them, were
  still in the pool when every item was here: sent largest first with one mailbox left,
  each alone at the rate the writer leaves (200 KB: 48 service s; ``learn_model``, 12
  jobs of 8 mailboxes beside the writer: up to 71 service s after the first window).
  In turn, a large body leaves as soon as it is among the pool's largest, a small one
  between each two keeps the mailbox's answers coming, and what is left when every item
  is here is the middle of the sizes: 28 service s at most in the same 12 jobs (36 jobs
  over 1/2, 1/10, 1/60), the share of the real budget and the 429s as before. Taken in
  turn from the start, while the pool deepens, the largest of every mailbox went at the
  same time just after the first window (33 service s with all 8 left).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..readiness import READY
from ..wakeup import Turns
from .work import Exportable

# An import's body is the export's data plus the folder id and a few JSON keys.
BODY_OVERHEAD = 96
# while the order does not change what is sent (``in_order``), the pool holds up to this
# many times its capacity, and keeps the smallest of them for the pair's tail
DEEP = 4


def body_estimate(e: Exportable) -> int:
    data = e.data
    if data is None:
        n = 0
    elif isinstance(data, str):
        n = len(data)
    else:
        n = len(memoryview(data))
    return n + len(e.folder.target.id) + BODY_OVERHEAD


@dataclass(eq=False, slots=True)
class Ready:
    """An item waiting for an importer: its body's estimated size, and since when it waits."""

    e: Exportable
    nbytes: int
    since: float
    # it waited for room in the pool: held back by the engine's own importers, not late
    pressed: bool = False


class ReadyItems:
    def __init__(
        self,
        capacity: int,
        room: Callable[[], float],
        overdue_s: float,
        clock: Callable[[], float] = time.monotonic,
        in_order: Callable[[], bool] | None = None,
        slot_open: Callable[[], bool] | None = None,
    ) -> None:
        self.capacity = max(1, capacity)
        # whether a body taken now could take one of the mailbox's slots (None: always);
        # while it cannot, the items stay here and the importers wait (``get``)
        self._slot_open = slot_open
        self._room = room
        self._in_order = in_order
        self._overdue = overdue_s
        self._clock = clock
        self._items: list[Ready] = []  # oldest first
        self._largest = 0  # no ready item is larger (0 when none is ready)
        self._grown = 0  # items taken while the order sent as much: the pool deepens by them
        self._large_next = False  # the deep pool's next pick, the largest or the smallest
        self._producers = 0
        self._closed = False
        # importers waiting for an item and exporters waiting for room, woken one per item
        # put or taken (not all of them for one to win). A task that finds on waking that
        # another took what it was woken for waits again: that task used it, so nothing is lost.
        self._takers = Turns()
        self._putters = Turns()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def pool(self) -> list[Ready]:
        """The items waiting, oldest first (a model may drain it without awaiting, taking
        what ``choose`` picks, after filling it with ``add``)."""
        return self._items

    @property
    def idle(self) -> int:
        """Importers waiting for an item (not yet woken for one)."""
        return len(self._takers)

    def producer(self) -> None:
        """One more task will put items (``done`` when it has finished)."""
        self._producers += 1

    def done(self) -> None:
        self._producers -= 1
        if self._producers <= 0:
            self._closed = True
            self._takers.wake_all()

    def full(self) -> bool:
        """Whether the pool holds as many items as it may: ``capacity``, or, while the pacer
        says the order does not change what is sent (``in_order``), one more per item taken
        so, up to ``DEEP`` times that; a model fills the pool with ``add`` while this is
        False."""
        n = len(self._items)
        if n < self.capacity:
            return False
        deep = self.capacity + min(self._grown, self.capacity * (DEEP - 1))
        return n >= deep or self._in_order is None or not self._in_order()

    async def put(self, e: Exportable) -> None:
        pressed = False
        while self.full():
            pressed = True
            await self._putters.wait()
        self.add(Ready(e, body_estimate(e), self._clock(), pressed))
        self._takers.wake_one()

    def add(self, r: Ready) -> None:
        """``r`` joins the pool (room checked by the caller; a model fills the pool this way
        without awaiting, so ``choose`` sees the same bound on the largest item)."""
        self._items.append(r)
        if r.nbytes > self._largest:
            self._largest = r.nbytes

    def slot_freed(self) -> None:
        """One of the mailbox's slots may have come free (its pacer's ``on_free``): an
        importer waiting for one while items wait here takes the next."""
        if self._items:
            self._takers.wake_one()

    async def get(self) -> Exportable | None:
        """The next item to import, or None once every producer is done and nothing is left.

        With ``slot_open``, an item is taken only when its request could take a slot now:
        while every slot is in flight the items stay here, and the importer whose answer
        frees a slot takes the next in the same step and sends it. An importer that took
        its item while the slots were full waited in the pacer holding it, and when a slot
        came free the freeing importer found nothing here and went idle: the body went out
        one loop iteration later, behind everything the loop had queued (``fleet`` at 400
        pairs: 6,720 such hand-overs at 8.5 ms each, issue 26)."""
        items = self._items
        gate = self._slot_open
        while not items or (gate is not None and not gate()):
            if not items and self._closed:
                return None
            await self._takers.wait()
        r = items.pop(self.choose())
        if not items:
            self._largest = 0
            if self._closed:  # the last item: those waiting for a slot have nothing to take
                self._takers.wake_all()
        pressed = r.pressed or len(self._putters) > 0
        self._putters.wake_one()
        # when it was ready, for the pacer's account of this importer's upload (``READY``):
        # not known (no bound from it) where the pool held an exporter back, it or another
        # (the data was in hand; the mailbox's own pace held it). Told the time the item
        # entered a pool kept full by a slow mailbox, the account excused every spell up to
        # its last send (the demo job beside the writer: 91-93% of the ceiling at 64-78%
        # without the bound, one mailbox at a third of the room the writer left)
        READY.set(None if pressed else r.since)
        return r.e

    def _take_largest(self, items: list[Ready]) -> int:
        """The index of the largest item (the oldest of equals); the bound made exact."""
        best, best_n = 0, items[0].nbytes
        for i, r in enumerate(items):
            if r.nbytes > best_n:
                best, best_n = i, r.nbytes
        self._largest = best_n  # the bound made exact again
        return best

    def _oldest_beside_kept(self) -> int:
        """The oldest item but the smallest the pool holds beyond its ``capacity``: those
        are kept for the pair's tail (``DEEP``)."""
        items = self._items
        kept = len(items) - self.capacity
        by_size = sorted(range(len(items)), key=lambda i: (items[i].nbytes, -i))
        small = set(by_size[:kept])
        return next(i for i in range(len(items)) if i not in small)

    def choose(self) -> int:
        """The index in ``pool`` of the item an importer takes next."""
        items = self._items
        first = items[0]
        if len(items) == 1:
            return 0
        in_order = self._in_order is not None and self._in_order()
        if in_order:
            self._grown += 1
        if in_order and self._closed:
            # the order sends as much and every item is here: the largest first, whatever
            # the room and however long the oldest waited (nothing more comes to pass it:
            # the smallest are left for the tail; issue 26: taken oldest first once
            # overdue, the last mailbox's last bodies were 84-266 KB beside the writer)
            return self._take_largest(items)
        if in_order and self._grown >= self.capacity:
            # deepened by its capacity: the largest and the smallest in turn (``MIXED``)
            self._large_next = not self._large_next
            if self._large_next:
                return self._take_largest(items)
            return min(range(len(items)), key=lambda i: items[i].nbytes)
        if in_order and len(items) > self.capacity:
            return self._oldest_beside_kept()
        if self._clock() - first.since >= self._overdue:
            return 0
        room = self._room()
        if self._largest <= room:
            return 0  # everything fits: first in, first out (without looking at each)
        if self._in_order is not None and self._in_order():
            # the order sends as much: first in, first out while more items are to come
            # (sizes mixed: the bucket's depth lets a small body go beside a large one's
            # latency)
            return 0
        best, best_n = -1, -1
        large_n = 0
        small, small_n = 0, first.nbytes
        for i, r in enumerate(items):
            n = r.nbytes
            large_n = max(large_n, n)
            if best_n < n <= room:
                best, best_n = i, n
            if n < small_n:
                small, small_n = i, n
        self._largest = large_n  # the bound made exact again
        if large_n <= room:
            return 0  # everything fits: first in, first out
        return best if best >= 0 else small
