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

Bounded: at most ``CAP`` answered amounts are kept, flat in an array (a few KB per mailbox
and limit, at a thousand pairs too); the sums over them are folded into ``most`` before the
older half is merged two by two (an amount sent when the first was and answered when the
last was: every sum over merged amounts is still a proof, every bound from them looser).
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the answers proved: ``amount`` within a window of ``lo`` to ``hi`` seconds
    (``hi`` infinite: no upper bound proved)."""

    amount: float
    lo: float
    hi: float


class Proof:
    """One limit of one mailbox (upload bytes, or requests); see the module's docstring."""

    CAP = 64  # amounts kept (the older merged, ``_merge``): a few KB per mailbox and limit

    CLEAN = 16  # refusals kept to bound the window more tightly (``_tighten``)

    __slots__ = (
        "_clean",
        "_done",
        "_last",
        "_s0",
        "_since_s0",
        "hi",
        "lo",
        "most",
        "period",
        "refusals",
    )

    def __init__(self, period: float) -> None:
        self.period = period  # the configured window: the longest the service's can be
        # (answered, sent, amount) of each amount answered, flat (a mailbox's few KB)
        self._done = array("d")
        self.lo = 0.0
        self.hi = math.inf
        self.most = 0.0
        self.refusals = 0
        self._s0: float | None = None  # the first send after a quiet spell
        self._since_s0 = 0.0  # ours accepted since then
        self._last = -math.inf  # the latest answer of ours
        # refusals while all of ours since ``s0`` was in the service's window:
        # (s0, sent, answered, amount, retry_after)
        self._clean: list[tuple[float, float, float, float, float]] = []

    def accepted(self, sent: float, answered: float, amount: float) -> None:
        """An amount sent at ``sent`` was answered at ``answered`` and accepted (a 2xx: an
        answer that failed or was refused proves nothing taken)."""
        if amount <= 0:
            return
        if len(self._done) >= 3 * self.CAP:
            self._fold()
            self._merge()
        self._start(sent)
        self._done.extend((answered, sent, amount))
        self._since_s0 += amount
        self._last = max(self._last, answered)

    def _records(self) -> Iterator[tuple[float, float, float]]:
        """(answered, sent, amount), in the order answered."""
        d = self._done
        for i in range(0, len(d), 3):
            yield d[i], d[i + 1], d[i + 2]

    def _merge(self) -> None:
        """The older half of the kept amounts merged two by two: each pair one amount sent
        when the first of them was and answered when the last was (every sum over them
        still a proof, of a little less; every bound from them a little looser)."""
        d = self._done
        half = (len(d) // 3 // 2) // 2 * 2  # an even count of the oldest
        merged = array("d")
        for i in range(0, 3 * half, 6):
            merged.extend((max(d[i], d[i + 3]), min(d[i + 1], d[i + 4]), d[i + 2] + d[i + 5]))
        self._done = merged + d[3 * half :]

    def _start(self, sent: float) -> None:
        if self._s0 is None or sent > self._last + self.period:
            self._s0, self._since_s0 = sent, 0.0

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
            by = self._answered_by(s0, amount)
            if by is not None and by <= sent:
                lo = retry_after + sent - by
            if len(self._clean) < self.CLEAN:
                self._clean.append((s0, sent, answered, amount, retry_after))
        self.lo = max(self.lo, min(lo, self.period))
        if self._s0 is not None and self._since_s0 >= amount:
            # ours in the window (not only another writer's): the window is at most this
            self.hi = min(self.hi, retry_after + answered - self._s0)
        if self.hi < self.lo:
            self.hi = math.inf  # another writer's (or an earlier run's) older bytes

    def _answered_by(self, s0: float, amount: float) -> float | None:
        """When ``amount`` of ours sent since ``s0`` had been answered (None: not yet)."""
        total = 0.0
        for answered, sent, a in self._records():
            if sent >= s0:
                total += a
                if total >= amount:
                    return answered
        return None

    def _fold(self) -> None:
        """``most``: the largest sum of amounts all sent after ``a - lo`` and answered by
        ``a``, over the kept amounts (each ``a`` an answer)."""
        lo = self.lo
        if lo <= 0:
            return
        self._tighten()
        heap: list[tuple[float, float]] = []  # (sent, amount) of the amounts in the sum
        total = 0.0
        for answered, sent, amount in self._records():
            heapq.heappush(heap, (sent, amount))
            total += amount
            while heap and heap[0][0] <= answered - lo:
                total -= heapq.heappop(heap)[1]
            if len(heap) > 1:  # one amount alone may be larger than the whole budget
                self.most = max(self.most, total)

    def _tighten(self) -> None:
        """A tighter ``hi`` from the refusals while only our own amounts were in the
        service's window (``_clean``), now that what was in flight then is answered.

        The service refuses when what its window holds plus the amount exceeds its budget
        ``B``, and the room comes back when the oldest amounts (by arrival) that make up
        that excess have left. ``B`` is less than what any of these refusals found plus
        its amount (``u``: at most all of ours sent before its answer), so a refusal's
        excess is at least what had surely arrived (answered before it was sent) plus its
        amount less ``u``; the amount whose leaving made room arrived no earlier than
        the send by which that much of ours had gone, so the window is at most the
        Retry-After plus the time from that send to the refusal's answer."""
        for s0 in {c[0] for c in self._clean}:
            ours = [(sent, a, answered) for answered, sent, a in self._records() if sent >= s0]
            if not ours or min(sent for sent, _, _ in ours) > s0:
                continue  # the spell's first amounts are no longer kept
            clean = [c for c in self._clean if c[0] == s0]
            u = min(sum(a for sent, a, _ in ours if sent < c[2]) + c[3] for c in clean)
            if u <= self.most:
                continue  # not our amounts alone: another writer's were in the window
            ours.sort()
            for _, sent_r, answered_r, amount, ask in clean:
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
        self._fold()
        return Evidence(self.most, self.lo, self.hi)
