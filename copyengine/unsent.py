"""What a drain (Ctrl-C, SIGTERM, a segment's time box) does to requests that have not been
sent: they wait no more. A run (``pipeline.job.run_pairs``) opens its own ``Hold`` for the
tasks it starts (a context variable, so runs side by side in one process, as a worker's
segments, each drain only their own); the pacers read it whenever a request would wait on the service (a budget, a Retry-After):
once draining, the wait ends at once and the request stays parked, unsent, until the run
cuts it short. A request that may go at
once still goes: a drain still finishes what is in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType

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
        self._naps: set[asyncio.Future[None]] = set()

    @property
    def draining(self) -> bool:
        return self._draining or (self._parent is not None and self._parent.draining)

    def drain(self) -> None:
        self._draining = True
        self._end_waits()

    def _end_waits(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()
        for nap in list(self._naps):
            if not nap.done():
                nap.set_result(None)
        for child in list(self._children):
            child._end_waits()

    def waiting(self) -> Waiting:
        """A wait that a drain ends (``cancelled_caught`` then says so)."""
        return Waiting(self)

    async def nap(self, seconds: float) -> bool:
        """Sleep ``seconds`` on asyncio's loop unless a drain ends it first (False then):
        ``asyncio.sleep``'s own future and timer, which the drain resolves, with no cancel
        scope (a pacer naps each time a request waits on a budget, thousands of times a
        second in a large fleet)."""
        if self.draining:
            return False
        loop = asyncio.get_running_loop()
        nap: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(seconds, _woken, nap)
        self._naps.add(nap)
        try:
            await nap
        finally:
            timer.cancel()
            self._naps.discard(nap)
        return not self.draining

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


def _woken(nap: asyncio.Future[None]) -> None:
    if not nap.done():
        nap.set_result(None)


class Waiting:
    """``Hold.waiting``: a cancel scope the hold's drain cancels. A class, not a generator,
    and its scope made without looking up the running async library: a pacer enters one
    each time a request waits on a budget, thousands of times a second in a large fleet."""

    __slots__ = ("_hold", "_scope")

    def __init__(self, hold: Hold) -> None:
        self._hold = hold
        self._scope = _cancel_scope()

    def __enter__(self) -> anyio.CancelScope:
        scope, hold = self._scope, self._hold
        scope.__enter__()
        if hold.draining:
            scope.cancel()
        hold._scopes.add(scope)
        return scope

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._hold._scopes.discard(self._scope)
        return bool(self._scope.__exit__(exc_type, exc, tb))


# The class ``anyio.CancelScope()`` makes on asyncio (the engine's loop: aiohttp ties it
# there), found once: ``anyio.CancelScope()`` looks up the running async library (sniffio)
# every time, which was most of the cost of a pacer's wait in a 200-pair ``fleet``.
_asyncio_scope: type[anyio.CancelScope] | None = None


def _cancel_scope() -> anyio.CancelScope:
    """``anyio.CancelScope()``, without the look-up of the async library on asyncio."""
    global _asyncio_scope
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # not on asyncio's loop: anyio finds its own
        return anyio.CancelScope()
    if _asyncio_scope is None:
        _asyncio_scope = type(anyio.CancelScope())
    return _asyncio_scope()


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
