"""The two ways a run stops early: a drain (stop taking work, finish what is in flight) and
an abort (a cancellation)."""

from __future__ import annotations

import anyio


class StopFlag:
    """Drain: stop taking new work, finish what is in flight. Abort is a cancellation.
    ``reason`` says why in-flight work was cut short (the drain's deadline passed, or the
    service stopped answering), for the report."""

    def __init__(self) -> None:
        self.draining = False
        self.reason: str | None = None
        self._event: anyio.Event | None = None

    def drain(self) -> None:
        self.draining = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Until a drain is asked for."""
        if self.draining:
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()
