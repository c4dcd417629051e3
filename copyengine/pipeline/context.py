"""What every room of one pair's pass shares, in one frozen value: the pair, both sides' API,
the state, the limits, the pair's statistics and ledger, its share of the byte budget, the
stop flag, the kind of pass and the ``[sync]`` rules. The rooms (``MailboxPass``,
``Producer``, ``Stages``, ``Settler``) take it instead of long argument lists; what changes
during the pass lives in the rooms (and in ``Unsettled``), never here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from ..config import Limits, Pair, SyncOptions
from ..graph import MailboxApi
from ..plan import PassKind
from ..report import PairStats
from ..state import Store
from .budget import ByteBudget
from .caps import Bandwidth, RunQuota
from .ledger import Ledger
from .stop import StopFlag
from .work import ByteShares

# the pair is bound per task (contextvars) by the pair's runner
log = structlog.get_logger("copyengine.pipeline")
DEFAULT_SYNC = SyncOptions()


@dataclass(frozen=True, slots=True)
class PairContext:
    pair: Pair
    src: MailboxApi
    dst: MailboxApi
    store: Store
    limits: Limits
    stats: PairStats
    stop: StopFlag
    ledger: Ledger  # the one writer of the pair's outcomes and counts
    shares: ByteShares  # the pair's shares of the job-wide byte budget
    kind: PassKind = PassKind.DELTA
    sync: SyncOptions = DEFAULT_SYNC
    log: Any = log
    quota: RunQuota | None = None  # ``run --max-items`` / ``--max-mb`` (``caps``)
    bandwidth: Bandwidth | None = None  # the process's upload cap (``--bwlimit``)

    @property
    def key(self) -> str:
        return self.pair.key

    @classmethod
    def of(
        cls,
        pair: Pair,
        src: MailboxApi,
        dst: MailboxApi,
        store: Store,
        *,
        stats: PairStats,
        limits: Limits,
        budget: ByteBudget,
        stop: StopFlag,
        kind: PassKind = PassKind.DELTA,
        sync: SyncOptions = DEFAULT_SYNC,
        quota: RunQuota | None = None,
        bandwidth: Bandwidth | None = None,
    ) -> PairContext:
        """A pair's context, with its ledger and its shares of ``budget`` made here."""
        ledger = Ledger(pair.key, store, log, limits.max_failed_items_per_pair)
        shares = ByteShares(budget)
        return cls(
            pair,
            src,
            dst,
            store,
            limits,
            stats,
            stop,
            ledger,
            shares,
            kind,
            sync,
            log,
            quota,
            bandwidth,
        )
