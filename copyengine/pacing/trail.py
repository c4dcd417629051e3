"""The log's trail of a mailbox's budgets in effect: one line per budget a 429 cut (an
episode's later 429s cut none), ``pacer.budget_cut``, and one when the mailbox is back at
``[limits]``, ``pacer.budget_restored``: the operator's record of what the service gave."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from .learn import Learned

log = structlog.get_logger("copyengine.pacer")


class Trail:
    __slots__ = ("cut", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self.cut = False  # a budget in effect is cut (said), not yet restored

    def throttled(
        self,
        before: dict[str, Learned],
        after: dict[str, Learned],
        reason: str,
        asked: float | None,
    ) -> None:
        """A 429 naming ``reason`` moved the budgets from ``before`` to ``after``."""
        for limit, lim in after.items():
            if lim.cuts > before[limit].cuts:
                self.cut = True
                log.info(
                    "pacer.budget_cut",
                    mailbox=self.key,
                    limit=limit,
                    reason=reason,
                    was=round(before[limit].share, 4),
                    share=round(lim.share, 4),
                    window_s=round(lim.window, 3),
                    retry_after_s=asked,
                )

    def answered(self, learned: Callable[[], dict[str, Learned]]) -> None:
        """A request was answered: said once when every budget is back at ``[limits]``."""
        if self.cut and not any(v.is_cut for v in learned().values()):
            self.cut = False
            log.info("pacer.budget_restored", mailbox=self.key)
