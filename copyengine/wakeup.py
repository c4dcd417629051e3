"""Wake-up calls for the hot paths: one that wakes every waiter (``Wakeup``) and a queue
that wakes one waiter at a time, in turn (``Turns``).

Both are bare asyncio futures, not ``anyio.Event``: the engine runs on asyncio (aiohttp
ties it there), every request and every item passes through them, and an ``anyio.Event``
looks up the running async library each time one is made. Cancellation is asyncio's, which
is what anyio's cancel scopes use on this backend.
"""

from __future__ import annotations

import asyncio


class Turns:
    """Tasks waiting for something that only one of them can use (a free request slot, an
    item to take): ``wake_one()`` wakes the one that has waited longest, where a broadcast
    would wake them all for one to win and the rest to go back to sleep. A task woken and
    cancelled before it ran passes its turn on, so a wake-up is never lost; a task that was
    woken and finds it cannot use its turn after all calls ``wake_one()`` itself."""

    __slots__ = ("_queue",)
    _pass_on = True  # a turn woken and cancelled goes to the next waiter

    def __init__(self) -> None:
        # a list, not a deque: a pair holds a dozen of these, nearly always empty or with a
        # few waiters, and an empty deque takes 600 bytes against a list's 56
        self._queue: list[asyncio.Future[None]] = []

    def __len__(self) -> int:
        return len(self._queue)

    def wake_one(self) -> None:
        q = self._queue
        while q:
            f = q.pop(0)
            if not f.done():
                f.set_result(None)
                return

    def wake_all(self) -> None:
        if not self._queue:
            return
        q, self._queue = self._queue, []
        for f in q:
            if not f.done():
                f.set_result(None)

    async def wait(self) -> None:
        f: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(f)
        try:
            await f
        except BaseException:
            if f.done() and not f.cancelled():
                if self._pass_on:
                    self.wake_one()  # woken, then cancelled before it ran: the turn goes on
            else:
                try:
                    self._queue.remove(f)
                except ValueError:
                    pass
            raise


class Wakeup(Turns):
    """``wait()`` until the next ``set()``, which wakes every waiter (a waiter cancelled on
    the way out passes nothing on: everyone was woken). Nothing is made or kept when nobody
    waits: the hot paths that call ``set()`` after every request or item pay next to nothing
    then."""

    __slots__ = ()
    _pass_on = False

    set = Turns.wake_all
