"""One of a mailbox's request slots, held for one request (``MailboxPacer.slot``).

A class with ``__aenter__``/``__aexit__`` rather than an ``@asynccontextmanager`` function:
every request through a pacer takes one, and the decorated form builds an async generator
and its context manager around it and steps the generator on entry and exit (2-3% of the
engine's CPU in ``fleet``). What it does is the same, in the same order.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from .. import unsent
from ..readiness import READY
from .step import Kind, step

if TYPE_CHECKING:
    from .pacer import MailboxPacer


class Slot:
    """Entered: the step said go, the body's room is taken and the app-wide rate allows the
    request; left (answered, failed or cancelled, also while the app-wide rate is awaited):
    the slot and the room go back and the tasks waiting on them are woken."""

    __slots__ = ("_body", "_pacer", "_sent")

    def __init__(self, pacer: MailboxPacer, body_bytes: int) -> None:
        self._pacer = pacer
        self._body = body_bytes
        self._sent = 0.0  # when the step let it go

    async def __aenter__(self) -> None:
        p, body_bytes = self._pacer, self._body
        acct, b = p.account, p.budgets
        now = p._clock()
        acct.enter(now, body_bytes)
        p._shape(now, body_bytes)
        # the common case (nothing holds it back) goes without the loop
        first = step(b, now, body_bytes, 0, None)
        if first.kind is not Kind.GO:
            await p._wait_turn(body_bytes, first)
        # No await between the step's GO and the take: this is atomic.
        self._sent = now = p._clock()
        b.take(body_bytes)
        unsent.going()
        acct.sent(now, body_bytes, READY.get() if body_bytes else None)
        if p._app is not None:
            try:
                await p._app.acquire()
            except BaseException:
                self._release()
                raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def _release(self) -> None:
        p, body_bytes = self._pacer, self._body
        acct = p.account
        done = p._clock()
        p.budgets.release(done, body_bytes)
        acct.answered(done - self._sent, body_bytes)
        p._released.set()
        p._slot_free.wake_one()
        if p._on_free:
            p._freed()
        acct.leave(done, body_bytes)
