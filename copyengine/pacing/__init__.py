"""Per-mailbox pacing at Exchange's throttling ceiling, retry decisions, and the accounts
of what each mailbox's pacer let through."""

from .accounting import AccountView, MailboxAccount
from .pacer import MailboxPacer, Pacers
from .policy import AdaptiveRate, Backoff, Cause, PacerLimits, RetryPolicy, parse_retry_after

__all__ = [
    "AccountView",
    "AdaptiveRate",
    "Backoff",
    "Cause",
    "MailboxAccount",
    "MailboxPacer",
    "PacerLimits",
    "Pacers",
    "RetryPolicy",
    "parse_retry_after",
]
