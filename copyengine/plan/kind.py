"""The kind of a pass, decided once from the run's options and the job's history: what the
pass is called (the state's ``ce_passes`` and the report say it) and how its pairs read their
folders."""

from __future__ import annotations

from enum import Enum


class PassKind(Enum):
    FIRST = "first"  # the job's first pass: every folder listed (no links yet)
    DELTA = "delta"  # a later pass: what changed since the stored links
    FULL = "full"  # ``run --full``: every folder listed in full, reconciled, new links
    RETRY = "retry"  # ``run --retry-failed``: only items that failed or stayed unknown
    CUTOVER = "cutover"  # ``run --cutover``: a delta pass, then the sign-off

    @classmethod
    def of(cls, *, cutover: bool, full: bool, retry: bool, earlier: bool) -> PassKind:
        """``earlier``: the job has run a pass before. The options are exclusive (the CLI
        refuses two); were two given, the first of cutover, full, retry wins."""
        if cutover:
            return cls.CUTOVER
        if full:
            return cls.FULL
        if retry:
            return cls.RETRY
        return cls.DELTA if earlier else cls.FIRST

    @property
    def lists_in_full(self) -> bool:
        """Every folder listed in full and reconciled by search key, stored links unused."""
        return self is PassKind.FULL

    @property
    def retry_only(self) -> bool:
        """Only the items whose last outcome was not settled; nothing that left the source
        is applied and no link is stored."""
        return self is PassKind.RETRY
