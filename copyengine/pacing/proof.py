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
budget that passes alone into an empty window) (``most``, the largest such sum seen). Only accepted amounts
(2xx answers) count: a refused one (the service may count a throttled call against its
limit, but not as something it let through), a 5xx, a dropped connection or a timeout
proves nothing taken, so leaving them out keeps the sum a lower bound.
Only our own amounts count: another writer's share is not ours to advise.

Bounded: the sums over the accepted amounts are kept at every window length at once in a
fixed-size aggregate (``Spans``: a proof within a few % of the exact one, however many
bodies a window holds and however long the job runs), and only a spell's first ``CAP``
amounts as they were (for the bounds from a spell's first sends: ``_answered_by``,
``_tighten``; past them those bounds are looser, never wrong).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass


class Spans:
    """The most of the amounts accepted within any span shorter than ``L``, for every
    ``L`` up to the configured window, in a fixed size (``OCTAVES`` x ``SLOTS``).

    ``L`` (the longest Retry-After, ``Proof.lo``) is known only after the first refusal and
    grows afterwards, while the amounts it must be asked of arrive from the job's first
    send (the first window's burst is often the largest proof). So the sums are kept at
    every scale at once: octave ``o`` counts the amounts by the time they were answered in
    buckets ``period / (SLOTS * 2**o)`` seconds wide, the last ``SLOTS`` of them in a ring,
    each bucket with its sum, its count and the earliest send of its amounts. When a bucket
    closes, every run of buckets ending with it (``n`` of them, back to the ring's oldest) is
    a proof: its amounts were all answered by the bucket's end and all sent after its
    earliest send, so they arrived within less than that span of each other; the run's sum
    goes into ``best`` under the number of bucket widths the span needs. Asked for ``L``,
    each octave offers its best over spans of fewer than ``L / width`` buckets; the largest
    is the answer. Exact up to the buckets at the run's two ends: against the best sum over
    any span under ``L``, at most what was sent in two bucket widths is left out, and the
    octave asked has ``L`` between ``SLOTS / 2`` and ``SLOTS`` widths, so at most ``4 /
    SLOTS`` of a steady stream (about 3% on average), nothing of a burst that fits.

    The size: ``SLOTS = 64`` keeps that loss to a few % (a steady sender's proof within 3-6%
    of what it took); ``OCTAVES = 6`` covers windows from the configured one down to a
    64th of it (Exchange's 300 s down to 4.7 s: its time-scaled profile's 5 s window is
    one, and the pacer's learned window is never shorter than a hundredth). A proof under
    a 64th of the configured window is not kept (no hint speaks of it: the pacer's budget
    in effect does). 4 x 64 x 6 doubles: 12 KB per mailbox and limit, however many bodies
    a window holds and however long the job runs."""

    SLOTS = 64
    OCTAVES = 6

    __slots__ = ("_at", "_best", "_ring", "_width")

    def __init__(self, period: float) -> None:
        size = self.SLOTS * self.OCTAVES
        # per octave and bucket: sum, count, earliest send (inf: empty)
        self._ring = array("d", [0.0, 0.0, math.inf]) * size
        self._best = array("d", bytes(8 * size))  # per octave: the best sum over n buckets
        self._width = [period / (self.SLOTS * 2**o) for o in range(self.OCTAVES)]
        self._at = [-1] * self.OCTAVES  # the open bucket's index per octave (-1: none yet)

    def add(self, sent: float, answered: float, amount: float) -> None:
        """An amount accepted (answers come in the order answered)."""
        slots, ring = self.SLOTS, self._ring
        for o, width in enumerate(self._width):
            k, cur = int(answered // width), self._at[o]
            if k > cur:
                if cur >= 0:
                    self._close(o, cur)
                    for t in range(cur + 1, min(k, cur + slots) + 1):
                        i = 3 * (o * slots + t % slots)
                        ring[i], ring[i + 1], ring[i + 2] = 0.0, 0.0, math.inf
                self._at[o] = cur = k
            i = 3 * (o * slots + cur % slots)
            ring[i] += amount
            ring[i + 1] += 1
            if sent < ring[i + 2]:
                ring[i + 2] = sent

    def _close(self, o: int, j: int) -> None:
        """The runs of buckets of octave ``o`` ending with bucket ``j``, into ``best``."""
        slots, ring, best, width = self.SLOTS, self._ring, self._best, self._width[o]
        end = (j + 1) * width
        base = o * slots
        total = count = 0.0
        first = math.inf
        for t in range(j, j - slots, -1):
            i = 3 * (base + t % slots)
            if not ring[i + 1]:
                continue  # an empty bucket: a longer run of the same sum (``most`` takes it)
            total += ring[i]
            count += ring[i + 1]
            if ring[i + 2] < first:
                first = ring[i + 2]
            if count < 2:  # one amount alone may be larger than the whole budget
                continue
            n = math.ceil((end - first) / width * (1 + 1e-12))
            if n > slots:
                break
            b = base + max(n, 1) - 1
            if total > best[b]:
                best[b] = total

    def most(self, span: float) -> float:
        """The largest sum proved within less than ``span`` seconds."""
        out = 0.0
        for o, width in enumerate(self._width):
            if self._at[o] >= 0:
                self._close(o, self._at[o])
            n = min(self.SLOTS, math.ceil(span / width * (1 - 1e-12)) - 1)
            if n >= 1:
                out = max(out, max(self._best[o * self.SLOTS : o * self.SLOTS + n]))
        return out


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

    CLEAN = 16  # refusals kept to bound the window more tightly (``_tighten``)

    __slots__ = (
        "_clean",
        "_done",
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
        self._spans = Spans(period)  # the sums over every amount accepted
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
        return self._spans.most(self.lo) if self.lo > 0 else 0.0

    def accepted(self, sent: float, answered: float, amount: float) -> None:
        """An amount sent at ``sent`` was answered at ``answered`` and accepted (a 2xx: an
        answer that failed or was refused proves nothing taken)."""
        if amount <= 0:
            return
        self._start(sent)
        self._spans.add(sent, answered, amount)
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
