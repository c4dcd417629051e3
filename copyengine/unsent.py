"""What a drain (Ctrl-C, SIGTERM, a segment's time box) does to requests that have not been
sent: they wait no more. A run (``pipeline.job.run_pairs``) opens its own ``Hold`` for the
tasks it starts (a context variable, so runs side by side in one process, as a worker's
segments, each drain only their own); the pacers read it whenever a request would wait on the service (a budget, a Retry-After):
once draining, the wait ends at once and the request stays parked, unsent, until the run
cuts it short. A request that may go at
once still goes: a drain still finishes what is in flight."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import anyio


class Hold:
    """One run's drain, as the waits of its requests see it."""

    def __init__(self) -> None:
        self.draining = False
        self.parked = 0  # requests parked, unsent, by the drain
        self._scopes: set[anyio.CancelScope] = set()

    def drain(self) -> None:
        self.draining = True
        for scope in list(self._scopes):
            scope.cancel()

    @contextmanager
    def waiting(self) -> Iterator[anyio.CancelScope]:
        """A wait that a drain ends (``cancelled_caught`` then says so)."""
        with anyio.CancelScope() as scope:
            if self.draining:
                scope.cancel()
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)

    async def park(self) -> None:
        """While draining: stay here, unsent, until the run cuts this request short."""
        if self.draining:
            mark = _parked.get()
            if mark is not None:
                mark.now = True
            self.parked += 1
            try:
                await anyio.sleep_forever()
            finally:
                self.parked -= 1


class Parked:
    """Whether the request a task is making is parked now (``watched``): when its run is cut
    short then, it was never sent."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = False


_current: ContextVar[Hold | None] = ContextVar("copyengine_hold", default=None)
_parked: ContextVar[Parked | None] = ContextVar("copyengine_parked", default=None)


@contextmanager
def watched() -> Iterator[Parked]:
    """Whether this task's requests are parked, for as long as it is inside."""
    mark = Parked()
    token = _parked.set(mark)
    try:
        yield mark
    finally:
        _parked.reset(token)


def going() -> None:
    """This task's request has its pacer's go: it is no longer parked (it is sent)."""
    mark = _parked.get()
    if mark is not None:
        mark.now = False


NEVER = Hold()  # outside a run (plan, verify): nothing drains


def current() -> Hold:
    """The hold of the run this task belongs to."""
    return _current.get() or NEVER


@contextmanager
def opened() -> Iterator[Hold]:
    """A new hold for the tasks started inside (they inherit it)."""
    hold = Hold()
    token = _current.set(hold)
    try:
        yield hold
    finally:
        _current.reset(token)
