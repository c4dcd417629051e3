"""The ways a run stops early: a drain (stop taking work, finish what is in flight), an abort
(a cancellation), and a hold (one pair drains while the job goes on: suspended by the
operator, its schedule window closed; see ``pipeline.gate``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from .gate import Hold


class StopFlag:
    """Drain: stop taking new work, finish what is in flight. Abort is a cancellation.
    ``reason`` says why in-flight work was cut short (the drain's deadline passed, or the
    service stopped answering), for the report.

    A pair's flag is a ``child()`` of the job's: it drains when the job's does, or alone
    when the pair is held (``hold`` says why; the job goes on).

    ``pause(why)``: the job's drain that the operator's own controls asked for (a run's cap
    reached), not an interruption: the job ends with exit 8 (``PAUSED``) unless something
    failed; ``interrupted`` says whether a ``drain`` without a hold (a signal, a worker's
    stop) came too."""

    def __init__(self, parent: StopFlag | None = None) -> None:
        self._draining = False
        self._reason: str | None = None
        self.hold: Hold | None = None  # a pair's own drain: why it was held
        self.interrupted = False
        self.paused: str | None = None
        self._parent = parent
        self._children: set[StopFlag] = set()
        self._event: anyio.Event | None = None
        self.settled = False  # ``settle()``: the work is over, a stop has nothing to cut
        self.late: int = 0  # drains and pauses asked for since (said in the log, no more)

    @property
    def draining(self) -> bool:
        return self._draining or (self._parent is not None and self._parent.draining)

    def root(self) -> StopFlag:
        """The job's flag (this one, or the parent of its parents)."""
        return self if self._parent is None else self._parent.root()

    @property
    def held(self) -> bool:
        """Drained for a hold of its own, not by the job's drain."""
        return self.hold is not None and not (self._parent is not None and self._parent.draining)

    def settle(self) -> None:
        """The work is over (a pass's pairs copied, a cutover's sign-off taken): what is
        left is saying so. A drain or pause asked for from here on has nothing to cut
        short: counted in ``late`` only, so that the pass, the report, ``job.finished`` and
        the exit code say what happened (a SIGTERM in the last instant of a sign-off said
        "complete", then "interrupted", exit 130)."""
        self.settled = True

    def drain(self, hold: Hold | None = None) -> None:
        if self.settled:
            self.late += 1
            return
        if hold is not None and not self._draining:
            self.hold = hold
        if hold is None:
            self.interrupted = True
        self._stop()

    def pause(self, why: str) -> None:
        """Stop taking work because of ``why`` (the first reason is kept)."""
        if self.settled:
            self.late += 1
            return
        self.paused = self.paused or why
        self._stop()

    def _stop(self) -> None:
        self._draining = True
        self._wake()
        for child in list(self._children):
            child._wake()

    def _wake(self) -> None:
        if self._event is not None:
            self._event.set()

    def child(self) -> StopFlag:
        """A flag that drains with this one, or alone (``drain(hold)``); ``close()`` it."""
        c = StopFlag(self)
        self._children.add(c)
        return c

    def close(self) -> None:
        if self._parent is not None:
            self._parent._children.discard(self)

    async def wait(self) -> None:
        """Until a drain is asked for (this flag's or its parent's)."""
        if self.draining:
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()

    @property
    def reason(self) -> str | None:
        """Why in-flight work was cut short: the job's reason, else this flag's own."""
        if self._parent is not None and self._parent.reason is not None:
            return self._parent.reason
        return self._reason

    @reason.setter
    def reason(self, value: str | None) -> None:
        self._reason = value
