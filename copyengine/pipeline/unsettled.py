"""A mailbox's items between their export and a known outcome, in one object: queued (intent
recorded, import not sent), in flight (import sent, no answer yet), and waiting to be
settled (an unknown outcome or a transient failure: looked for in the target by search key
before anything is resent). The stages add to it, settlement takes from it, and a pair that
stops hands what is left in it to the next run through the ledger."""

from __future__ import annotations

from .ledger import Ledger
from .work import Exportable


class Unsettled:
    __slots__ = ("_errors", "_inflight", "_later", "_missing", "_queued", "_sent", "_settling")

    def __init__(self) -> None:
        self._later: list[Exportable] = []  # to settle, then perhaps resend
        self._errors: dict[str, tuple[str, str | None]] = {}  # item id -> last error
        self._inflight: dict[str, Exportable] = {}  # imports sent, no answer yet
        # intent recorded (or being written), import not yet sent
        self._queued: dict[str, Exportable] = {}
        # taken for settlement, no verdict yet (looked up, or on their way to be resent)
        self._settling: dict[str, Exportable] = {}
        self._sent: set[str] = set()  # items with at least one import sent in this run
        # requested ids an export answer left out (no row, no error): exported again, alone
        # once they have gone missing twice
        self._missing: dict[str, int] = {}

    # -- the stages, per item ------------------------------------------------------------------
    def queue(self, e: Exportable) -> None:
        """Its intent is about to be written; its import is not sent yet."""
        self._settling.pop(e.item.id, None)
        self._queued[e.item.id] = e

    def send(self, e: Exportable) -> None:
        """Its import is about to be sent."""
        item_id = e.item.id
        self._queued.pop(item_id, None)
        self._inflight[item_id] = e
        self._sent.add(item_id)

    def not_sent(self, e: Exportable, ledger: Ledger) -> None:
        """Queued, and the run stopped before its import was sent."""
        self._queued.pop(e.item.id, None)
        ledger.not_sent(e.folder, e.item)

    def parked(self, e: Exportable, sent_before: bool) -> None:
        """Its import was parked, never sent, when the run was cut short: not sent (unless
        an earlier import of it in this run may have landed: then it stays in flight)."""
        if sent_before:
            return
        item_id = e.item.id
        self._inflight.pop(item_id, None)
        self._sent.discard(item_id)
        self._queued[item_id] = e

    def answered(self, e: Exportable) -> None:
        """Its import has an answer (or raised): no longer in flight."""
        self._inflight.pop(e.item.id, None)

    def add(
        self, e: Exportable, reason: str, request_id: str | None, *, sent: bool = False
    ) -> None:
        """Not a failure yet: settled (and perhaps resent) at the end of the mailbox. The
        state keeps its intent, if any, so that a run stopped now settles it next time.
        ``sent``: an import of it may have gone out before this run (an earlier run's intent
        or unknown outcome)."""
        e.data = None
        self._settling.pop(e.item.id, None)
        if sent:
            self._sent.add(e.item.id)
        self._later.append(e)
        self._errors[e.item.id] = (reason, request_id)

    def missed(self, e: Exportable) -> None:
        """An export answer left it out (no row, no error)."""
        self._missing[e.item.id] = self._missing.get(e.item.id, 0) + 1

    # -- settlement ----------------------------------------------------------------------------
    def outstanding(self) -> int:
        """Items waiting to be settled."""
        return len(self._later)

    def take(self) -> list[Exportable]:
        """Every item waiting to be settled (no longer waiting): each is still this object's
        until ``settled`` (its verdict recorded) or queued again for a resend, so that a stop
        in between hands it to the next run (``leave``)."""
        todo, self._later = self._later, []
        for e in todo:
            self._settling[e.item.id] = e
        return todo

    def settled(self, e: Exportable) -> None:
        """Its verdict is recorded (found, failed, unknown, gone from the source)."""
        self._settling.pop(e.item.id, None)

    def alone(self, e: Exportable) -> bool:
        """Left out of export answers twice: exported alone from now on."""
        return self._missing.get(e.item.id, 0) >= 2

    def was_sent(self, e: Exportable) -> bool:
        return e.item.id in self._sent

    def last_error(self, e: Exportable) -> tuple[str, str | None] | None:
        """(reason, request id) of the item's last error, if it had one."""
        return self._errors.get(e.item.id)

    # -- a stop --------------------------------------------------------------------------------
    def cut_short(self, ledger: Ledger, why: str) -> None:
        """The pair stopped with work under way: imports in flight have an unknown outcome
        (their intents are durable; the next run settles them), items exported but not sent
        are marked so, what waits for settlement is left (``leave``)."""
        for e in list(self._inflight.values()):
            ledger.unknown(e.folder, e.item, f"{why}: the import was in flight", None)
        self._inflight.clear()
        for e in list(self._queued.values()):
            ledger.not_sent(e.folder, e.item)
        self._queued.clear()
        self.leave(ledger, why)

    def leave(self, ledger: Ledger, why: str) -> None:
        """Items waiting for settlement when the run stops: unknown when an import of theirs
        was sent, else simply not attempted; and so are the items taken for settlement that
        have no verdict yet."""
        self.take()
        left, self._settling = self._settling, {}
        for e in left.values():
            last = self._errors.get(e.item.id)
            if e.item.id in self._sent:
                reason = f"{why}; last error: {last[0]}" if last else why
                ledger.unknown(e.folder, e.item, reason, last[1] if last else None)
            else:
                ledger.not_attempted(e.folder)
