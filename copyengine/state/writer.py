"""One thread that runs an embedded store's statements, in the order they were asked for.

``anyio.to_thread.run_sync`` per statement took a worker from a pool, a token from a capacity
limiter and a cancel scope each time: a pair's setup and listing read and write the state a
few dozen times, and with hundreds of pairs that plumbing cost more CPU on the event loop
than the statements did in their thread. Here the event loop puts each call on a queue and
awaits a bare future; the one thread runs the calls in turn and hands each result back.

As with ``run_sync``, a caller that is cancelled waits for its statement to finish first
(the cancellation takes effect after): a write asked for is written, or has failed, before
its caller goes on, so an intent is durable before the import it covers is sent."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")
_Job = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class StatementThread:
    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def _serve(self) -> None:
        while True:  # until told to stop (``stop``)
            job = self._jobs.get()
            if job is None:
                return
            fn, fut, loop = job
            try:
                result = fn()
            except BaseException as exc:  # handed to the caller, raised there
                loop.call_soon_threadsafe(_settle, fut, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, fut, result, None)
            del job, fn, fut  # hold nothing of a finished call while waiting for the next

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in the thread, after every call asked for before it."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, fut, loop))
        with anyio.CancelScope(shield=True):
            result = await fut
        return result

    def stop(self) -> None:
        """The thread ends once the calls already asked for have run."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None
