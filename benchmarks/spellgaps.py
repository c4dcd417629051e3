"""Diagnostics: where a ``pacetrace`` run's budget-bound spells lost their time (``fleet``,
issue 26).

``python -m benchmarks.spellgaps DIR`` reads the traces ``benchmarks.pacetrace`` wrote and,
for every spell of a target mailbox under 95% of its ceiling that the upload budget or the
slots bound (the account's budget bound or its schedule through the slots at least its
readiness; since the schedule waits for the window's room too, ``Activity._place``, a
budget-bound spell's bound is mostly the schedule's),
replays the spell's own bodies, in the order they went, through two clients that send each
the moment it is ready, one of the 4 slots is free and the sliding window has room for the
whole body, with the durations the service gave:

- ``at send``: the window counts a body from its send (what the service sees, give or take
  its arrival); against the account's shortest time (the budget's bytes as a fluid, each
  window's room used whole) the difference is the packing of whole bodies in that order;
- ``at answer``: the window counts a body from its answer, the only moment a client that
  cannot see the service's arrival knows it was counted (``step.Budgets.release``: the
  pacer gives no room back before the service does); against ``at send`` the difference
  is one duration or so a window.

What ``taken`` has beyond ``at answer`` is the engine's own: its sleeps waking late, a slot
freed and not taken at once, bodies not ready. Totals over the spells, in seconds.
"""

from __future__ import annotations

import heapq
import json
import sys
from pathlib import Path
from typing import Any

try:
    from benchmarks.pacetrace import mailboxes
except ImportError:  # run as a script
    from pacetrace import mailboxes  # type: ignore[no-redef]

MB = 1024 * 1024
LIMIT = 2.5 * MB  # the time-scaled profile's upload budget (``harness.TIME_SCALED_LIMITS``)
WINDOW = 5.0
SLOTS = 4


def replay(
    sends: list[tuple[float, int, float]],
    old: list[tuple[float, int]],
    since: float,
    at_answer: bool,
    limit: float = LIMIT,
    window: float = WINDOW,
    slots: int = SLOTS,
) -> float:
    """Seconds from ``since`` to the last send of a client that sends ``sends`` (ready at,
    bytes, duration), in order, each as soon as it is ready, the one before it has gone, a
    slot is free and the window (``old``: (counted at, bytes) found in it) has room for it;
    counted from its send, or (``at_answer``) from its answer."""
    win = [e for e in old if e[0] + window > since]
    lanes = [since] * slots
    t = last = since
    for ready, nbytes, duration in sends:
        t = max(t, ready, lanes[0])
        while True:
            win = [e for e in win if e[0] + window > t]
            if not win or sum(n for _, n in win) + nbytes <= limit:
                break
            t = min(c for c, _ in win) + window
        win.append((t + duration if at_answer else t, nbytes))
        heapq.heapreplace(lanes, t + duration)
        last = t
    return last - since


def _groups(ups: list[list[Any]], spells: list[list[Any]]) -> list[list[list[Any]]]:
    """The uploads of each spell: in send order, as many as carry the bytes it sent (the
    trace's send is after the app-wide rate, the account's before: times do not split them)."""
    out, i = [], 0
    for s in spells:
        group: list[list[Any]] = []
        carried = 0
        while i < len(ups) and carried < s[2]:
            group.append(ups[i])
            carried += ups[i][3]
            i += 1
        out.append(group)
    return out


def gaps(d: dict[str, Any], under: float = 0.95) -> dict[str, float]:
    """Totals over the budget- or slot-bound spells of the mailboxes under ``under``: spells, taken,
    the account's shortest, ``at send``, ``at answer`` (see the module)."""
    low = {r["key"] for r in mailboxes(d) if r["share"] < under}
    tot = dict.fromkeys(("spells", "taken", "shortest", "at_send", "at_answer"), 0.0)
    for key, spells in d["spells"].items():
        if key.split("/")[-1][:12] not in low:
            continue
        ups = sorted(
            (u for u in d["uploads"][key] if u[1] is not None and u[2] is not None),
            key=lambda u: u[1],
        )
        for s, group in zip(spells, _groups(ups, spells), strict=False):
            since, _, _, best, taken = s[:5]
            bound = s[6] if len(s) > 6 else None
            if bound is None or not group or max(bound[0], bound[5]) < bound[2]:
                continue  # bound by its readiness (or traced before the bounds were)
            first = group[0][1]
            mine = {id(u) for u in group}
            before = [u for u in ups if u[1] < first and id(u) not in mine]
            sends = [(max(since, u[7] or since), u[3], u[2] - u[1]) for u in group]
            tot["spells"] += 1
            tot["taken"] += taken
            tot["shortest"] += best
            tot["at_send"] += replay(sends, [(u[1], u[3]) for u in before], since, False)
            tot["at_answer"] += replay(sends, [(u[2], u[3]) for u in before], since, True)
    return tot


def report(folder: Path) -> None:
    for f in sorted(folder.glob("*.json")):
        t = gaps(json.loads(f.read_text()))
        taken = t["taken"] or 1.0
        print(
            f"{f.name}: {t['spells']:.0f} budget- or slot-bound spells of the mailboxes under 95%, "
            f"taken {t['taken']:.1f} s; shortest {t['shortest']:.1f} s "
            f"({t['shortest'] / taken:.1%}), the same bodies in the same order counted at send "
            f"{t['at_send']:.1f} s ({t['at_send'] / taken:.1%}), at answer {t['at_answer']:.1f} s "
            f"({t['at_answer'] / taken:.1%})"
        )
        print(
            f"  lost {t['taken'] - t['shortest']:.1f} s: packing whole bodies in that order "
            f"{t['at_send'] - t['shortest']:.1f}, counting at the answer "
            f"{t['at_answer'] - t['at_send']:.1f}, the engine's own "
            f"{t['taken'] - t['at_answer']:.1f}"
        )


if __name__ == "__main__":
    report(Path(sys.argv[1]))
