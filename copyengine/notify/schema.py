"""``[notify]``: webhooks told of a job's events, and when a job counts as stalled.

A webhook's URL carries its key (Teams, Slack and most receivers authenticate by the URL
alone), so it is given by reference like every other secret (``env:NAME``, ``file:PATH``),
held in a ``Secret``, and never shown: a ConfigError names the key, not the URL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..network import is_loopback
from ..secrets import Secret, resolve_secret
from ..textfiles import Table

# the events a job announces (``events = [...]`` filters on these names)
PASS_FINISHED = "pass.finished"
PAIR_FAILED = "pair.failed"
BAD_ITEM_LIMIT = "pair.bad_item_limit"
SIGNOFF_COMPLETE = "signoff.complete"
SIGNOFF_INCOMPLETE = "signoff.incomplete"
JOB_STALLED = "job.stalled"
EVENTS = (
    PASS_FINISHED,
    PAIR_FAILED,
    BAD_ITEM_LIMIT,
    SIGNOFF_COMPLETE,
    SIGNOFF_INCOMPLETE,
    JOB_STALLED,
)
FORMATS = ("generic", "teams", "slack")


@dataclass(frozen=True)
class Webhook:
    name: str
    url: Secret
    format: str = "generic"
    events: frozenset[str] = frozenset(EVENTS)

    @property
    def host(self) -> str:
        """What the log may say of where it goes: the host alone (the rest is the key)."""
        return urlsplit(self.url.reveal()).hostname or "?"

    def wants(self, event: str) -> bool:
        return event in self.events


@dataclass(frozen=True)
class NotifyConfig:
    webhooks: tuple[Webhook, ...] = ()
    # no progress (nothing copied or listed) this long while pairs are unfinished: job.stalled
    stalled_after_min: float = 30.0
    # the end of a run waits at most this long for the announcements still queued
    flush_timeout_s: float = 15.0
    # events waiting per webhook; past it new ones are dropped (and the drop logged)
    queue_size: int = 100


def parse_notify(t: Table, base: Path, resolve: bool) -> NotifyConfig:
    d = NotifyConfig()
    raw = t.get("webhooks", list, [])
    cfg = NotifyConfig(
        webhooks=tuple(
            _webhook(Table(w, f"{t.path('webhooks')}[{i}]"), i, base, resolve)
            for i, w in enumerate(raw)
        ),
        stalled_after_min=t.positive("stalled_after_min", float, d.stalled_after_min),
        flush_timeout_s=t.positive("flush_timeout_s", float, d.flush_timeout_s),
        queue_size=t.positive("queue_size", int, d.queue_size),
    )
    t.done()
    names = [w.name for w in cfg.webhooks]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise ConfigError(f"{t.path('webhooks')}[{i}].name", f"{n!r} is given twice")
    return cfg


def _webhook(t: Table, i: int, base: Path, resolve: bool) -> Webhook:
    ref = t.get("url", str, required=True)
    fmt = t.get("format", str, "generic")
    if fmt not in FORMATS:
        raise ConfigError(t.path("format"), f"must be one of {', '.join(FORMATS)}, not {fmt!r}")
    events = t.get("events", list)
    name = t.get("name", str, f"webhook{i + 1}")
    if not name.strip():
        raise ConfigError(t.path("name"), "must not be empty")
    t.done()
    chosen = frozenset(EVENTS)
    if events is not None:
        for j, e in enumerate(events):
            if e not in EVENTS:
                raise ConfigError(
                    f"{t.path('events')}[{j}]", f"unknown event {e!r}; one of {', '.join(EVENTS)}"
                )
        if not events:
            raise ConfigError(t.path("events"), "names no event (leave it out for all)")
        chosen = frozenset(events)
    url = resolve_secret(ref, t.path("url"), base) if resolve else Secret("", ref)
    if resolve:
        check_webhook_url(url.reveal(), t.path("url"))
    return Webhook(name, url, fmt, chosen)


def check_webhook_url(url: str, where: str) -> None:
    """https, or plain http to a loopback receiver only: the URL is the key, and a key must
    not travel in clear. The message never repeats the URL."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        raise ConfigError(where, "the referenced value is not a URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(where, "the referenced value is not an https:// URL")
    if parts.scheme == "http" and not is_loopback(host):
        raise ConfigError(
            where,
            f"the webhook to {host} is plain http: its key would travel in clear text; use "
            "https (plain http is accepted only for a receiver on a loopback address)",
        )
