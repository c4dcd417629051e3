"""The cutover's sign-off as the job sees it: a callable the job is handed (``wiring`` passes
``verify.sign_off``), so that the pipeline never imports ``verify``."""

from __future__ import annotations

from typing import Any, Protocol

from ..config import JobConfig, Pair
from ..graph import Clients
from ..report import JobStats
from ..state import Store


class SignOff(Protocol):
    """Judge ``pairs`` from the target as it is, after the pass ``stats`` describes; the
    sign-off's report entry (``complete``, and one entry per pair under ``pairs``)."""

    async def __call__(
        self,
        cfg: JobConfig,
        clients: Clients,
        store: Store,
        pairs: tuple[Pair, ...],
        stats: JobStats,
        /,
    ) -> dict[str, Any]: ...
