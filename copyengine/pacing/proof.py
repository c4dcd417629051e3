"""What the service proved it gives one limit of one mailbox: the evidence a hint may name.

The pacer's budget in effect (``learn.Learned``) is a controller's state: cut below what
the service refused, crept back towards it, kept over a window a little longer than the
service's. Advising it made a job slower (about 75% of what the service gave, over 5.6 s
for a 5 s window). A hint must name what the service's own answers proved instead, and
only that: following it must never make a job slower. Kept apart from the pacer (the
account feeds it, nothing the pacer decides reads it).

**The window.** A Retry-After is the time until enough of what the service counted leaves
its window, so it is never longer than the window (``lo``: the longest Retry-After of the
limit). Above: when the mailbox began sending after a quiet spell (nothing of ours for a
configured window, the longest we believe), every amount in the service's window at a
refusal is ours and arrived no earlier than the first send of that spell (``s0``), so the
window is at most ``retry_after + answered - s0`` (``hi``: the least of these). Another
writer's bytes older than ``s0`` (or a run just before this one) break that premise; a
``hi`` under ``lo`` is such a contradiction and is dropped.

**The amount.** The service counts an amount when it arrives, at some moment between our
send and its answer. Amounts we sent no earlier than ``a - lo`` and that were all answered
(accepted) by ``a`` arrived within less than ``lo`` (hence less than the service's window)
of each other: the service held them all in one window at once and refused none, so its
budget is at least their sum, when there are two of them at least (whichever arrived last
found the others in the window, so went by the budget, not as a body larger than the whole
budget that passes alone into an empty window) (``most``, the largest such sum seen). Only
accepted amounts (2xx answers) count: a refused one (the service may count a throttled call against its
limit, but not as something it let through), a 5xx, a dropped connection or a timeout
proves nothing taken, so leaving them out keeps the sum a lower bound.
Only our own amounts count: another writer's share is not ours to advise.

Bounded: the sums over the accepted amounts are kept at every window length at once in a
fixed-size aggregate (``Spans``, 7 KB, made past the job's first ``FIRST`` amounts: a proof
within a few % of the definition, never above it, however many bodies a window holds and
however long the job runs; merging the older amounts instead widened their spans, and with
Exchange's 300 s window the proof fell to a sixth of what one window took), and only a
spell's first ``CAP`` amounts as they were (for the bounds from a spell's first sends:
``_answered_by``, ``_tighten``; past them those bounds are looser, never wrong).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate, compress, repeat
from operator import add, lt, sub


class Spans:
    """The most of the amounts accepted within any span of at most ``L`` seconds, for
    every ``L`` from a 120th of the configured window to all of it, in a fixed size.

    ``L`` (``Proof.lo``: the longest Retry-After, or a little more) is known only after
    the first refusal and grows afterwards, while the amounts it is asked of arrive from
    the job's first send (the first window's burst is often the largest proof). So the
    sums are kept at every scale at once: octave ``o`` counts each amount in the bucket,
    ``period / (SLOTS * 2**o)`` seconds wide, in which it was answered, apart (``early``)
    when it was sent in the bucket before (one sent earlier still is left out of that
    octave: less proved, never more). A run of ``n`` buckets, less the early amounts of its
    first, holds amounts all sent within it and answered by its end: they arrived less
    than ``n`` widths apart, so a service whose window is at least that long held them all
    at once. Each run of more than ``SLOTS / 2`` buckets and at most ``SLOTS`` (shorter
    ones the next finer octave holds at twice the detail; the finest, more than a quarter)
    goes into ``best`` under its ``n`` (two amounts at least: one body larger than the
    whole budget passes alone into an empty window); asked for ``L``, each octave offers its best over runs of at most ``L /
    width`` buckets, and the largest is the answer.

    Exact up to a bucket at each end of the span: against the best sum over any span of
    ``L``, what was sent in about two bucket widths at most is left out, and the octave
    that answers has ``L`` between ``SLOTS / 2`` and ``SLOTS`` widths: a steady stream's
    proof within a few % of the definition (2.4% on average, 10% at worst for a span of
    twenty log-normal bodies, where one body is a tenth of the sum:
    ``tests/test_hint_proof.py``), a burst that fits whole; never above it.

    Why this size: ``SLOTS = 64`` for that loss; ``OCTAVES = 6`` for windows down to about
    a 60th of the configured one at that precision (Exchange's 300 s to 4.7 s: the
    time-scaled profile's 5 s window is one; the pacer's learned window is never shorter
    than a hundredth), to a 120th coarser; a proof within less is not kept, and the hint
    then speaks of the budget in effect. The runs ending
    in a bucket are weighed in batches of ``BATCH`` buckets (C-level sums over the batch
    per run length: a few microseconds per bucket), so the ring holds ``SLOTS + BATCH``.
    Bucket sums as 32-bit floats rounded towards less proved, counts as bytes (only "at
    least two" is read): 7 KB per mailbox and limit, however many bodies a window holds
    and however long the job runs (``Proof`` makes it only past its first ``FIRST``
    amounts or at a refusal: small mailboxes never need it)."""

    SLOTS = 64
    OCTAVES = 6
    BATCH = 32
    RING = SLOTS + BATCH

    __slots__ = (
        "_at",
        "_best",
        "_due",
        "_early",
        "_fine",
        "_fresh",
        "_n",
        "_ne",
        "_open",
        "_sum",
        "_width",
    )

    def __init__(self, period: float) -> None:
        size = self.RING * self.OCTAVES
        self._sum = array("f", bytes(4 * size))  # per octave and bucket (ring): amounts
        self._early = array("f", bytes(4 * size))  # ... of them sent in the bucket before
        self._n = array("B", bytes(size))  # how many (at most 255), and of them early
        self._ne = array("B", bytes(size))
        self._best = array("f", bytes(4 * self.SLOTS * self.OCTAVES))  # per octave and n
        self._width = [period / (self.SLOTS * 2**o) for o in range(self.OCTAVES)]
        self._at = [-1] * self.OCTAVES  # the open bucket's index per octave (-1: none yet)
        self._due = [0] * self.OCTAVES  # closed buckets not weighed yet
        self._open = [0.0] * (4 * self.OCTAVES)  # the open bucket's sum, early, n, early n
        # per octave: an amount was stored since its last weighing (none: the runs ending in
        # the buckets since are shorter ones' sums, already weighed)
        self._fresh = [False] * self.OCTAVES
        # the finest octave's open bucket: (its index, its start; -1: none yet)
        self._fine = (-1, 0.0)

    def add(self, sent: float, answered: float, amount: float) -> None:
        """An amount accepted (answers come in the order answered)."""
        op = self._open
        k, start = self._fine
        if answered // self._width[-1] <= k and sent >= start:
            # The common case: answered in the finest octave's open bucket (or before it)
            # and sent in it: then in every coarser octave's open bucket too (each begins
            # no later: a width is twice the next finer's), so the loop below would add it
            # to each open bucket as sent in it, and nothing opens. The same additions,
            # without the loop's divisions and comparisons (4 answers per item).
            op[0] += amount
            op[2] += 1
            op[4] += amount
            op[6] += 1
            op[8] += amount
            op[10] += 1
            op[12] += amount
            op[14] += 1
            op[16] += amount
            op[18] += 1
            op[20] += amount
            op[22] += 1
            return
        for o, width in enumerate(self._width):
            k = int(answered // width)
            if k > self._at[o]:
                self._advance(o, k)
            k = self._at[o]  # an answer older than the open bucket counts in it
            if sent >= k * width:
                op[4 * o] += amount
                op[4 * o + 2] += 1
            elif sent >= (k - 1) * width:
                op[4 * o] += amount
                op[4 * o + 1] += amount
                op[4 * o + 2] += 1
                op[4 * o + 3] += 1
        k = self._at[-1]
        self._fine = (k, k * self._width[-1])

    def _advance(self, o: int, k: int) -> None:
        """Octave ``o``'s open bucket closes and ``k`` opens (the ones between empty)."""
        cur, ring, base = self._at[o], self.RING, o * self.RING
        self._at[o] = k
        if cur < 0:
            return
        self._store(o, cur)
        op = self._open
        op[4 * o : 4 * o + 4] = [0.0, 0.0, 0.0, 0.0]
        due = self._due[o] + 1
        if due + k - cur - 1 > self.BATCH:
            self._weigh(o, cur, due)
            due = 0
        else:
            due += k - cur - 1
        # the buckets between empty: ring places cur + 1 .. k - 1 (the whole ring at most),
        # as C-level slices (a loop here was a third of the proof's cost: a mailbox's
        # answers come in bursts a window apart, and its fine octaves cross the whole ring)
        m = min(k - 1 - cur, ring)
        if m > 0:
            start = (cur + 1) % ring
            head = min(m, ring - start)
            self._clear(base + start, head)
            if m > head:
                self._clear(base, m - head)
        if due >= self.BATCH:
            self._weigh(o, k - 1, due)
            due = 0
        self._due[o] = due

    def _clear(self, i: int, n: int) -> None:
        """Ring places ``i`` to ``i + n - 1`` (of one octave) empty."""
        zf, zb = _ZEROS_F[:n], _ZEROS_B[:n]
        self._sum[i : i + n] = zf
        self._early[i : i + n] = zf
        self._n[i : i + n] = zb
        self._ne[i : i + n] = zb

    def _store(self, o: int, t: int) -> None:
        """The open bucket ``t`` of octave ``o`` into its ring place (sums rounded down, the
        early ones up: what is subtracted; counts at most 255: only "two at least" is read)."""
        i, op = o * self.RING + t % self.RING, self._open
        _put(self._sum, i, op[4 * o], -1)
        _put(self._early, i, op[4 * o + 1], 1)
        n = self._n[i] = min(255, int(op[4 * o + 2]))
        self._ne[i] = min(255, int(op[4 * o + 3]))
        if n:
            self._fresh[o] = True

    def _weigh(self, o: int, end: int, due: int) -> None:
        """The runs of octave ``o`` ending with the last ``due`` buckets up to ``end``, of
        more than ``SLOTS / 2`` buckets (shorter ones the next finer octave holds at twice
        the detail; of the finest, more than ``SLOTS / 4``), into ``best``."""
        if not self._fresh[o]:
            return  # nothing stored since the last weighing (a mailbox between bursts)
        self._fresh[o] = False
        ring, base = self.RING, o * self.RING
        p = base + (end + 1) % ring
        c = list(accumulate(self._sum[p : base + ring] + self._sum[base:p], initial=0.0))
        k = list(accumulate(self._n[p : base + ring] + self._n[base:p], initial=0))
        if k[ring] == k[ring - due]:
            return  # nothing in these buckets: their runs are shorter ones' sums
        # what a run starting at a bucket leaves out: what went before, and its early ones
        ce = list(map(add, c, self._early[p : base + ring] + self._early[base:p]))
        ke = list(map(add, k, self._ne[p : base + ring] + self._ne[base:p]))
        cj, kj = c[ring - due + 1 :], k[ring - due + 1 :]
        best, b0 = self._best, o * self.SLOTS
        first = self.SLOTS // (4 if o == self.OCTAVES - 1 else 2) + 1
        # two amounts at least in every run (the shortest have the fewest): no run to skip
        few = min(map(sub, kj, ke[ring - due - first + 1 : ring - first + 1])) < 2
        for n in range(first, self.SLOTS + 1):
            lo, hi = ring - due - n + 1, ring - n + 1
            runs: Iterable[float] = map(sub, cj, ce[lo:hi])
            if few:
                runs = compress(runs, map(lt, repeat(1), map(sub, kj, ke[lo:hi])))
            m = max(runs, default=0.0)
            if m > best[b0 + n - 1]:
                _put(best, b0 + n - 1, m, -1)

    def nbytes(self) -> int:
        """The bytes its arrays hold (the same from the first amount to the last)."""
        arrays = (self._sum, self._early, self._n, self._ne, self._best)
        return sum(a.itemsize * len(a) for a in arrays)

    def most(self, span: float) -> float:
        """The largest sum proved within at most ``span`` seconds."""
        out = 0.0
        for o, width in enumerate(self._width):
            cur = self._at[o]
            if cur < 0:
                continue
            self._store(o, cur)  # the open bucket as it is now (stored again when it closes)
            self._weigh(o, cur, self._due[o] + 1)
            n = min(self.SLOTS, math.floor(span / width * (1 - 1e-12)))
            if n >= 1:
                b0 = o * self.SLOTS
                out = max(out, max(self._best[b0 : b0 + n]))
        return out


assert Spans.OCTAVES == 6  # ``add``'s common case names each octave's open bucket
_ZEROS_F = array("f", bytes(4 * Spans.RING))
_ZEROS_B = array("B", bytes(Spans.RING))


def _put(a: array[float], i: int, x: float, side: int) -> None:
    """``a[i] = x`` in a 32-bit float, rounded towards ``side`` (-1: never more than ``x``,
    1: never less) where ``x`` has no exact 32-bit value."""
    a[i] = x
    if (a[i] - x) * side < 0:
        a[i] = a[i] * (1 + side * 2.0**-22)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the answers proved: ``amount`` within a window of ``lo`` to ``hi`` seconds
    (``hi`` infinite: no upper bound proved)."""

    amount: float
    lo: float
    hi: float


NOTHING = Evidence(0.0, 0.0, math.inf)  # a limit none of whose answers proved anything


class Proof:
    """One limit of one mailbox (upload bytes, or requests); see the module's docstring."""

    CAP = 64  # a spell's first amounts kept as they were (``_done``): 1.5 KB

    # The job's first amounts kept as they were (``_first``, 6 KB: under the sums' 7 KB)
    # before the sums are made. The sums are the same whenever they are made (the amounts
    # go in in the order answered either way), but a mailbox answered a few times a second
    # paid 30-40 us per answer for them (its fine octaves weighed at nearly every answer):
    # 7% of the engine's CPU in ``fleet`` (100 imports per mailbox, never refused), where no
    # hint is ever asked for. Made at the first refusal, or past these.
    FIRST = 256

    CLEAN = 16  # refusals kept to bound the window more tightly (``_tighten``)

    __slots__ = (
        "_clean",
        "_done",
        "_first",
        "_last",
        "_s0",
        "_since_s0",
        "_spans",
        "_whole",
        "hi",
        "lo",
        "period",
        "refusals",
    )

    def __init__(self, period: float) -> None:
        self.period = period  # the configured window: the longest the service's can be
        # the sums over every amount accepted (``Spans``), made past the job's first
        # ``FIRST`` amounts (kept until then in ``_first``: answered, sent, amount) or at its
        # first refusal: a mailbox of a few items never needs it
        self._spans: Spans | None = None
        self._first: array[float] | None = array("d")
        # (answered, sent, amount) of the spell's first amounts answered, flat; ``_whole``:
        # all of the spell's so far (not past ``CAP``)
        self._done = array("d")
        self._whole = True
        self.lo = 0.0
        self.hi = math.inf
        self.refusals = 0
        self._s0: float | None = None  # the first send after a quiet spell
        self._since_s0 = 0.0  # ours accepted since then
        self._last = -math.inf  # the latest answer of ours
        # refusals of this spell while all of ours since ``s0`` was in the service's
        # window: (sent, answered, amount, retry_after)
        self._clean: list[tuple[float, float, float, float]] = []

    @property
    def most(self) -> float:
        """The largest sum proved within one of the service's windows (less than ``lo``
        apart) so far."""
        return self._sums().most(self.lo) if self.lo > 0 else 0.0

    def _sums(self) -> Spans:
        if self._spans is None:
            self._spans = Spans(self.period)
            first, self._first = self._first or array("d"), None
            for i in range(0, len(first), 3):
                self._spans.add(first[i + 1], first[i], first[i + 2])
        return self._spans

    def accepted(self, sent: float, answered: float, amount: float) -> None:
        """An amount sent at ``sent`` was answered at ``answered`` and accepted (a 2xx: an
        answer that failed or was refused proves nothing taken)."""
        if amount <= 0:
            return
        self._start(sent)
        if self._first is not None and len(self._first) < 3 * self.FIRST:
            self._first.extend((answered, sent, amount))
        else:
            self._sums().add(sent, answered, amount)
        if self._whole and len(self._done) >= 3 * self.CAP:
            self._tighten()  # the last time this spell's refusals can be weighed
            self._whole = False
        if self._whole:
            self._done.extend((answered, sent, amount))
        self._since_s0 += amount
        self._last = max(self._last, answered)

    def _records(self) -> Iterator[tuple[float, float, float]]:
        """(answered, sent, amount) of the spell's first amounts, in the order answered."""
        d = self._done
        for i in range(0, len(d), 3):
            yield d[i], d[i + 1], d[i + 2]

    def _start(self, sent: float) -> None:
        if self._s0 is None or sent > self._last + self.period:
            if self._whole:
                self._tighten()  # the spell that ends
            self._s0, self._since_s0 = sent, 0.0
            self._done, self._whole, self._clean = array("d"), True, []

    def refused(self, sent: float, answered: float, amount: float, retry_after: float) -> None:
        """A 429 naming this limit for ``amount`` sent at ``sent``, answered at ``answered``,
        the service asking ``retry_after`` seconds."""
        self._start(sent)
        self._sums()
        self.refusals += 1
        if retry_after <= 0:
            return
        lo = retry_after
        s0 = self._s0
        if s0 is not None and answered - s0 <= retry_after:
            # all of ours since ``s0`` is still in the service's window (it is at least
            # ``retry_after`` long): the room came back when an amount left that arrived
            # before ``amount`` of ours had (else fewer than ``amount`` bytes would have to
            # leave), that is by the time that much of ours was answered
            by = self._answered_by(amount)
            if by is not None and by <= sent:
                lo = retry_after + sent - by
            if self._whole and len(self._clean) < self.CLEAN:
                self._clean.append((sent, answered, amount, retry_after))
        self.lo = max(self.lo, min(lo, self.period))
        if self._s0 is not None and self._since_s0 >= amount:
            # ours in the window (not only another writer's): the window is at most this
            self.hi = min(self.hi, retry_after + answered - self._s0)
        if self.hi < self.lo:
            self.hi = math.inf  # another writer's (or an earlier run's) older bytes

    def _answered_by(self, amount: float) -> float | None:
        """When ``amount`` of ours sent in this spell had been answered (None: not yet, or
        not among its first amounts kept: a looser bound)."""
        total = 0.0
        for answered, _, a in self._records():
            total += a
            if total >= amount:
                return answered
        return None

    def _tighten(self) -> None:
        """A tighter ``hi`` from the refusals of this spell while only our own amounts were
        in the service's window (``_clean``), now that what was in flight then is answered
        (while the spell's amounts are all kept: ``_whole``).

        The service refuses when what its window holds plus the amount exceeds its budget
        ``B``, and the room comes back when the oldest amounts (by arrival) that make up
        that excess have left. ``B`` is less than what any of these refusals found plus
        its amount (``u``: at most all of ours sent before its answer), so a refusal's
        excess is at least what had surely arrived (answered before it was sent) plus its
        amount less ``u``; the amount whose leaving made room arrived no earlier than
        the send by which that much of ours had gone, so the window is at most the
        Retry-After plus the time from that send to the refusal's answer."""
        if not self._clean or not self._whole:
            return
        ours = sorted((sent, a, answered) for answered, sent, a in self._records())
        if not ours:
            return
        u = min(sum(a for sent, a, _ in ours if sent < c[1]) + c[2] for c in self._clean)
        if u <= self.most:
            return  # not our amounts alone: another writer's were in the window
        for sent_r, answered_r, amount, ask in self._clean:
            surely = sum(a for _, a, answered in ours if answered <= sent_r)
            excess = surely + amount - u
            total = 0.0
            for sent, a, _ in ours:
                total += a
                if excess > 0 and total >= excess:
                    bound = ask + answered_r - sent
                    if bound >= self.lo:
                        self.hi = min(self.hi, bound)
                    break

    def evidence(self) -> Evidence | None:
        """What the answers proved so far; None before a refusal (no window known)."""
        if self.lo <= 0:
            return None
        self._tighten()
        return Evidence(self.most, self.lo, self.hi)
