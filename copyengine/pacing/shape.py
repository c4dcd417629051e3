"""Which part of a mailbox's free upload room goes at once and which is spread over the
window (issue 26). Pure: values and functions over an explicit ``now``; ``step.Budgets``
keeps one ``Shape`` and the pacer loop applies ``plan``.

The service's upload budget is a sliding window (``budget`` bytes per ``window`` seconds):
room comes back exactly when what took it leaves the window, so the pattern in which a
mailbox fills its first window repeats in every later one. Filling the window at once (a
burst) finishes ``B`` bytes after ``(ceil(B / L) - 1) * W``, the shortest time any client
can take, but every window then bursts and idles for most of ``W`` (minutes at 0 MB/s on
Exchange's 5-minute window). Sending evenly at ``L / W`` has no gaps but finishes at
``B / L * W``, up to a window later.

The plan costs nothing: with ``R`` bytes still to upload, more than the free room ``F``,
only ``m = R mod L`` (what the last window will carry, in ``(0, L]``) goes at once and the
rest of ``F`` is given back evenly over the next ``W`` seconds. Every later window repeats
that shape, and the last one's burst of ``m`` finishes the mailbox at the burst bound (at
each window, ``m`` at once, ``L`` per window: the same bytes by the same instants as the
burst, whatever the window held when the plan was made). A window is idle for long only
when ``m`` is close to ``L`` (little left to spread): there a minimum flow
(``Smooth.flow`` of the budget spread) is kept where it costs at most ``Smooth.cost`` of a
window at the end (the last window then needs part of the spread: ``W (m - b) / (F - b)``
for a burst ``b < m``), else the burst is kept.

``R`` is an estimate (the listed sizes of what is still to upload, scaled by the bodies
exported); it may be off by ``Smooth.slack`` of the budget. And a window carries a little
less than its budget: its room comes back in parts, which the next bodies do not fill
exactly (about ``Smooth.drift`` of the budget per window, and up to the largest body). A
burst larger than ``m`` costs nothing but a shorter spread, a smaller one costs time at the
end, so the burst is ``m`` plus those slacks, and when ``m`` is within them of a whole
window or within the estimate's of none (which side of a window boundary the mailbox ends
on is not known), or ``R`` is not known (the listing is not done), everything goes at once,
as without a plan.

Why not keep a flow there anyway and win the burst back later (issue 26, beside another
writer, where the slack grows with the windows left and the burst cannot be placed in most
windows)? Because room held back at a window's start is never won back. With ``F_k`` free
at the start of window ``k`` and ``s_k`` of it held back (sent inside the window), the
bytes sent by the start of window ``k`` are at most those by the start of ``k - 1`` plus
``L - s_k``: what goes inside a window comes back inside the next one, not at its start.
Ending at the burst bound needs ``R - L`` sent by the start of the last window but one, so
``sum(s_k) <= L - m`` over the whole mailbox (the first window's burst a whole budget).
Holding room back later to grow a cut burst only moves bytes to a later window: the same
sum. The plan above spends that allowance once (``F - m``: its spread comes back evenly in
every later window); a flow kept where ``m`` is not known spends part of it blind, and
costs up to a window at the end whenever ``m`` turns out larger than ``L`` less the flow.
Tried (``learn_model``, 24 seeds; ``stricter`` with ``--base``, one run each): the burst
cut to ``free - flow`` every window lost 5-10 points of the real budget (the sum grows
every window); capped at ``(1 - flow) L`` every window, 87% -> 78% beside the writer (each
429 drops the shape and the next plan spends again); a single allowance of ``flow`` per
mailbox, at 1/2 87% -> 82% beside the writer and 91% -> 86% alone, the spans beside the
writer 200-240 s -> 130-150 s mid-job but one of 283 s at the tail (the last mailbox a
window late); at 1/10 beside it 87% either way, 267-279 s -> 221-234 s. None reached 30 s.

``step.Budgets.plan`` makes no plan for the configured budget before the service has let
90% of a window through: a service stricter than configured refuses the first window's
burst, and a plan for the configured budget would only slow the learning (the first window
of such a service is a physical limit: its Retry-After holds the mailbox until the first
bytes leave the service's window). A budget the service cut over the configured window is
planned for as it is (what the refused burst let through, ``step.FIRST``), not over a
shorter window (its even parts, ``learn.spread``), and not beside another writer that
takes the room in one piece (``step.LUMP``: whole windows there).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Smooth:
    """How the free room is shaped."""

    slack: float = 0.05  # of the budget: what the estimate of the bytes left may be off by
    # ... and per window left: a window gives back its room in parts of the sizes sent,
    # which the next bodies do not fill exactly, so each carries a little under the budget
    drift: float = 0.03
    flow: float = 0.25  # of the budget: the least spread over a window, where it is cheap
    cost: float = 0.1  # of a window: the most that minimum flow may cost the mailbox
    least: float = 0.02  # of the budget: a spread below this is not worth a plan
    soon: float = 0.1  # of the window: room coming back within this counts as free
    shown: float = 0.9  # of the budget: a window the service let through, before any plan


@dataclass(frozen=True, slots=True)
class Shape:
    """Room held back at ``start`` (``spread`` bytes), given back evenly over ``window``
    seconds."""

    start: float = -math.inf
    spread: float = 0.0
    window: float = 0.0

    @property
    def ends(self) -> float:
        return self.start + self.window

    def held(self, now: float) -> float:
        """The room still held back at ``now``."""
        if self.spread <= 0 or now >= self.ends:
            return 0.0
        return self.spread * min(1.0, (self.ends - now) / self.window)

    def wait(self, now: float, need: float, leaving: Iterable[tuple[float, int]] = ()) -> float:
        """Seconds until ``need`` more bytes of room have come back, from what the shape
        gives back and from ``leaving``: (when, amount) leaving the window, oldest first
        (``inf``: not from these; 0: nothing needed)."""
        if need <= 0:
            return 0.0
        held = self.held(now)
        rate = self.spread / self.window if held > 0 else 0.0
        end = self.ends - now  # seconds until the shape has given everything back
        freed, at = 0.0, 0.0
        for when, amount in leaving:
            d = max(0.0, when - now)
            # before this amount leaves, the shape alone may make up the rest
            if rate and freed + min(held, rate * d) >= need:
                return max(at, (need - freed) / rate)
            freed += amount
            at = d
            if freed + min(held, rate * d) >= need:
                return d
        if rate and freed + held >= need:
            return min(end, max(at, (need - freed) / rate))
        return math.inf


NONE = Shape()


def burst(
    free: float, remaining: float | None, budget: float, p: Smooth = Smooth(), largest: float = 0.0
) -> float:
    """Of ``free`` bytes of room, those to send at once, with ``remaining`` bytes still to
    upload (None: not known) under ``budget`` per window (see the module's docstring), the
    largest body seen ``largest`` bytes (the room a window gives back in parts is used in
    bodies, so each window may carry up to about one body less than its budget)."""
    if remaining is None or free <= 0 or budget <= 0 or remaining <= free:
        return free  # not known, nothing free, or everything fits now: all at once
    m = remaining % budget or budget  # what the last window carries
    # the estimate may be off by ``slack`` either way; and each window carries a little less
    # than the budget, so the last one carries more than ``m`` by about ``drift`` per window
    under = p.slack * budget
    slack = (p.slack + p.drift * math.ceil(remaining / budget)) * budget + largest
    if m <= under or m + slack >= budget:
        return free  # the estimate cannot tell where the last window's boundary falls
    b = m + slack
    if free - p.flow * budget < b < free:  # little left to spread: a minimum flow, if cheap
        # a burst b < m leaves the last window m - b to take from the spread (free - b over
        # the window): at most ``cost`` of a window late
        cheap = (b - p.cost * free) / (1.0 - p.cost)
        b = max(free - p.flow * budget, cheap)
    return min(free, max(0.0, b))


def plan(
    now: float,
    free: float,
    remaining: float | None,
    budget: float,
    window: float,
    p: Smooth = Smooth(),
    largest: float = 0.0,
) -> Shape:
    """The shape of the room free at ``now``: what of it is held back, over ``window``."""
    if window <= 0:
        return NONE
    spread = free - burst(free, remaining, budget, p, largest)
    if spread < p.least * budget:
        return NONE
    return Shape(now, spread, window)


def even_wait(
    now: float,
    sent: Iterable[tuple[float, int]],
    held: float,
    amount: float,
    rate: float,
    depth: float,
    inflight: float = 0.0,
    largest: float = 0.0,
) -> float:
    """Seconds until ``amount`` more bytes conform to a token bucket refilled at ``rate``
    bytes per second, ``depth`` deep, with no state of its own (0: it conforms now; ``rate``
    0: no bucket). A body larger than ``depth`` goes once the bucket holds all of it: the
    bucket is as deep as the body that goes, when it goes. So over every span from one of the
    ``sent`` amounts ((when, amount), oldest first) to ``now``, what went in it, ``held`` (as
    if sent at ``now``: ``inflight`` of it in flight, the rest kept for another body) and
    ``amount`` are at most the depth then (``depth``, or that amount when larger, up to
    ``largest``: an entry may be bodies answered together) above what the rate gave over
    it; and ``held`` and ``amount`` at most ``depth`` (or what is in flight, when larger)
    above nothing. A body after a large one waits for its own bytes, not also for the large
    one's excess over ``depth``, as when every span was held to the asking body's depth
    (issue 26: 0.86 s of 262 KB/s beside the other writer before an 85 KB body after a 266
    KB one, 52 service s at the job's tail, where an even client waits 19 s)."""
    if rate <= 0:
        return 0.0
    events = list(sent)
    total = held + amount
    wait = (total - max(depth, inflight)) / rate if held > 0 else 0.0
    for when, a in reversed(events):
        total += a
        deep = max(depth, min(float(a), largest))
        wait = max(wait, (total - deep) / rate - max(0.0, now - when))
    return max(0.0, wait)


def even_room(
    now: float,
    sent: Iterable[tuple[float, int]],
    held: float,
    rate: float,
    depth: float,
    inflight: float = 0.0,
    largest: float = 0.0,
) -> float:
    """The bytes that conform to that bucket now (``even_wait`` 0 for them), at most
    ``depth``."""
    events = list(sent)
    room, total = depth, held
    if held > 0:
        room = max(depth, inflight) - held
    for when, a in reversed(events):
        total += a
        deep = max(depth, min(float(a), largest))
        room = min(room, deep + rate * max(0.0, now - when) - total)
    return room
