"""What one run may copy (``run --max-items N``, ``run --max-mb M``) and the gate every upload
passes: that quota, reserved before an item is exported (so that no more than N items or M
MB are copied by this run; the item that would pass the cap is not begun, never split), and
the process's bandwidth cap (``pacing.bandwidth.BandwidthCap``, handed in: the pipeline does
not import ``pacing``) taken just before each import is sent.

When the quota is spent the run is paused (``StopFlag.pause``): it drains like a Ctrl-C
(what is in flight finishes, everything is settled into the state) and ends with exit 8,
``PAUSED``; a next run continues where it stopped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..config import MB
from .stop import StopFlag


class Bandwidth(Protocol):
    """The process's upload cap (``pacing.bandwidth.BandwidthCap``)."""

    @property
    def mb_s(self) -> float | None: ...

    async def take(self, nbytes: int, stop: StopFlag) -> bool: ...


@dataclass(frozen=True)
class RunCaps:
    """``run --max-items`` / ``--max-mb``: the most this run copies (None: no cap). Bytes are
    items' sizes, as the report's ``copied_bytes`` counts them."""

    max_items: int | None = None
    max_bytes: int | None = None

    @classmethod
    def of(cls, max_items: int | None, max_mb: float | None) -> RunCaps:
        return cls(max_items, int(max_mb * MB) if max_mb is not None else None)

    def said(self) -> str:
        """The caps as the operator gave them."""
        parts = []
        if self.max_items is not None:
            parts.append(f"--max-items {self.max_items:,}")
        if self.max_bytes is not None:
            parts.append(f"--max-mb {round(self.max_bytes / MB, 3):g}")
        return " and ".join(parts)


def admitted(items_left: int | None, bytes_left: int | None, sizes: list[int]) -> int:
    """How many of ``sizes`` (in order) fit in what is left (pure): the first that does not
    fit stops the count (items go in the order they were listed)."""
    n = 0
    for size in sizes:
        if items_left is not None and n >= items_left:
            break
        if bytes_left is not None:
            if size > bytes_left:
                break
            bytes_left -= size
        n += 1
    return n


class RunQuota:
    """What is left of this run's caps, shared by its pairs. An item is charged once per run
    (a settlement's resend of it is not charged again)."""

    def __init__(self, caps: RunCaps, stop: StopFlag) -> None:
        self.caps = caps
        self.stop = stop
        self.items = 0
        self.bytes = 0
        self._charged: set[tuple[str, str]] = set()  # (pair, item id): only while capped

    @property
    def active(self) -> bool:
        return self.caps.max_items is not None or self.caps.max_bytes is not None

    def reserve(self, pair: str, items: list[tuple[str, int]]) -> list[bool]:
        """Reserve ``items`` ((id, size) in order) for copying; returns, per item, whether
        it may go (one charged before in this run always may). Reaching a cap pauses the
        run."""
        if not self.active:
            return [True] * len(items)
        new = [(i, s) for i, s in items if (pair, i) not in self._charged]
        caps = self.caps
        left_items = None if caps.max_items is None else caps.max_items - self.items
        left_bytes = None if caps.max_bytes is None else caps.max_bytes - self.bytes
        fit = admitted(left_items, left_bytes, [s for _, s in new])
        for i, s in new[:fit]:
            self._charged.add((pair, i))
            self.items += 1
            self.bytes += s
        if fit < len(new) or self._spent():
            self.stop.pause(f"the run's cap was reached ({caps.said()})")
        refused = {i for i, _ in new[fit:]}
        return [i not in refused for i, _ in items]

    def _spent(self) -> bool:
        caps = self.caps
        return (caps.max_items is not None and self.items >= caps.max_items) or (
            caps.max_bytes is not None and self.bytes >= caps.max_bytes
        )


@dataclass(frozen=True)
class UploadCaps:
    """What every upload of a run passes: its quota and the process's bandwidth cap (not
    ``controls.Gates``, the operator's controls that open and close the whole run)."""

    quota: RunQuota | None = None
    bandwidth: Bandwidth | None = None


NO_UPLOAD_CAPS = UploadCaps()
