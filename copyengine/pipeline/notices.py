"""What the job announces as it happens (a pass finished, a pair failed or stopped at its
bad-item limit, a cutover signed off): a protocol the job is handed (``wiring`` passes
``notify.Notifier``), so that the pipeline knows nothing of webhooks. Every method returns at
once and never raises: an announcement must not slow or stop the copy."""

from __future__ import annotations

from typing import Any, Protocol

from ..report import JobStats, PairStats


class Notices(Protocol):
    def pass_finished(self, stats: JobStats) -> None:
        """A run's pass ended (``stats``: its accounts, the exit code they give)."""

    def pair_failed(self, key: str, pair: PairStats, limit: int | None) -> None:
        """A pair stopped on an error (``limit``: the job's bad-item limit)."""

    def signed_off(self, stats: JobStats) -> None:
        """A cutover's sign-off was taken (``stats.sign_off``)."""

    def shared_pass_finished(self, summary: dict[str, Any]) -> None:
        """The last group of a shared job's pass ended (``state.groups``' summary)."""


class Quiet:
    """No announcements (a job without ``[notify]`` webhooks, and tests)."""

    def pass_finished(self, stats: JobStats) -> None:
        pass

    def pair_failed(self, key: str, pair: PairStats, limit: int | None) -> None:
        pass

    def signed_off(self, stats: JobStats) -> None:
        pass

    def shared_pass_finished(self, summary: dict[str, Any]) -> None:
        pass


QUIET = Quiet()
