"""Pure: the unit of work of a shared job. Exchange's budgets are per app and mailbox, so the
pairs that share a mailbox (a source copied to two targets, two sources consolidated into one
target) are one **group**, run by one worker, one pair after the other."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..config import Pair


@dataclass(frozen=True)
class Group:
    key: str
    pairs: tuple[Pair, ...]

    @property
    def priority(self) -> int:
        """The highest of its pairs' (a VIP's group is taken first)."""
        return max(p.priority for p in self.pairs)

    @property
    def mailboxes(self) -> list[str]:
        return sorted(
            {p.source.lower() for p in self.pairs} | {p.target.lower() for p in self.pairs}
        )


def mailbox_groups(pairs: tuple[Pair, ...] | list[Pair]) -> list[Group]:
    """The connected components of pairs joined by a shared mailbox (a source mailbox and a
    target mailbox are never the same one: they live in different tenants). Keys are stable
    for the same set of pairs, whatever their order in the job file."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        a, b = find(("s", p.source.lower())), find(("t", p.target.lower()))
        if a != b:
            parent[max(a, b)] = min(a, b)
    members: dict[tuple[str, str], list[Pair]] = {}
    for p in pairs:
        members.setdefault(find(("s", p.source.lower())), []).append(p)
    out = []
    for ps in members.values():
        ps.sort(key=lambda p: p.key)
        digest = hashlib.sha256("\n".join(p.key for p in ps).encode()).hexdigest()[:16]
        out.append(Group(f"g-{digest}", tuple(ps)))
    out.sort(key=lambda g: g.pairs[0].key)
    return out
