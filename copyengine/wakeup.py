"""A wake-up call that can be waited on again and again."""

from __future__ import annotations

import anyio


class Wakeup:
    """``wait()`` until the next ``set()``. A new event is made only when someone waits: the
    hot paths that call ``set()`` after every request or item pay nothing when nobody does
    (with thousands of pairs, an event per call cost measurable CPU)."""

    __slots__ = ("_event", "waiters")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self.waiters = 0

    def set(self) -> None:
        if self.waiters:
            event, self._event = self._event, anyio.Event()
            event.set()

    async def wait(self) -> None:
        self.waiters += 1
        try:
            await self._event.wait()
        finally:
            self.waiters -= 1
