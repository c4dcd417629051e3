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
    """One run's drain, as the waits of its requests see it; a pair's own (``child``),
    drained when the pair is held (suspended, its window closed) or with its run's."""

    def __init__(self, parent: Hold | None = None) -> None:
        self._draining = False
        self.parked = 0  # requests parked, unsent, by the drain (its children's too)
        self._parent = parent
        self._children: set[Hold] = set()
        self._scopes: set[anyio.CancelScope] = set()

    @property
    def draining(self) -> bool:
        return self._draining or (self._parent is not None and self._parent.draining)

    def drain(self) -> None:
        self._draining = True
        self._end_waits()

    def _end_waits(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()
        for child in list(self._children):
            child._end_waits()

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

    def _count(self, n: int) -> None:
        hold: Hold | None = self
        while hold is not None:
            hold.parked += n
            hold = hold._parent

    async def park(self) -> None:
        """While draining: stay here, unsent, until the run cuts this request short."""
        if self.draining:
            mark = _parked.get()
            if mark is not None:
                mark.now = True
            self._count(1)
            try:
                await anyio.sleep_forever()
            finally:
                self._count(-1)


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
    """A new hold for the tasks started inside (they inherit it); inside another's (a
    pair's inside its run's), it drains with that one too."""
    parent = _current.get()
    hold = Hold(parent)
    if parent is not None:
        parent._children.add(hold)
    token = _current.set(hold)
    try:
        yield hold
    finally:
        _current.reset(token)
        if parent is not None:
            parent._children.discard(hold)
