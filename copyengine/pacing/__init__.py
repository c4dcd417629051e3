"""Per-mailbox pacing at Exchange's throttling ceiling, and retry decisions."""

from .pacer import MailboxPacer, Pacers
from .policy import AdaptiveRate, Backoff, Cause, PacerLimits, RetryPolicy, parse_retry_after

__all__ = [
    "AdaptiveRate",
    "Backoff",
    "Cause",
    "MailboxPacer",
    "PacerLimits",
    "Pacers",
    "RetryPolicy",
    "parse_retry_after",
]
