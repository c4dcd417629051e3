"""Auto-expanding archives (contract §8; Microsoft's "Handle archive mailbox redirects"): an
item of an expanded folder lives in an auxiliary archive, a mailbox of its own with its own
throttling budgets. ``exportItems`` on the main archive answers such an item with the
per-item error ``ErrorArchiveFolderMovedPermanently`` whose message is the URL to export it
from; the import host answers 409 ``{"Message": "… expected in mailbox MBX:…"}`` (see
``transport.mailbox_named`` and ``sessions``).

Pure decisions: which redirect URL may be followed. A URL is followed only when it is the
``exportItems`` call of a mailbox on the job's own Graph endpoint (same scheme, host, port
and base path, no user info, no query): the client then makes that call itself, with the
mailbox's own pacer, so the bearer token never goes to a host that is not the tenant's."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from yarl import URL

MOVED = "ErrorArchiveFolderMovedPermanently"
REFUSED = "ArchiveRedirectRefused"  # the URL points outside the tenant's Graph endpoint
LOOP = "ArchiveRedirectLoop"  # redirected again and again (or back where it came from)
MAX_HOPS = 3


@dataclass(frozen=True, slots=True)
class Redirect:
    """Where a redirected export goes: ``mailbox_id``, or None with ``why`` it is refused."""

    mailbox_id: str | None
    why: str = ""


def host_of(url: str) -> str:
    """The host a URL names, for messages (never its path or query: they may carry secrets)."""
    try:
        return URL(url).host or "a URL without a host"
    except ValueError:
        return "an unreadable URL"


def export_redirect(url: str, graph_url: str) -> Redirect:
    """The mailbox whose ``exportItems`` the redirect ``url`` names, if it is on ``graph_url``
    (the job's endpoint for this tenant)."""
    refused = Redirect(
        None,
        f"the export was redirected to {host_of(url)}, which is not this tenant's Graph "
        f"endpoint ({host_of(graph_url)}): not followed (the token is never sent elsewhere)",
    )
    try:
        u, base = URL(url.strip()), URL(graph_url)
    except ValueError:
        return refused
    if not u.is_absolute() or (u.scheme, u.host, u.port) != (base.scheme, base.host, base.port):
        return refused
    if u.user is not None or u.password is not None or u.query_string or u.fragment:
        return refused
    prefix = base.raw_path.rstrip("/") + "/admin/exchange/mailboxes/"
    path = u.raw_path
    if not path.startswith(prefix) or not path.endswith("/exportItems"):
        return Redirect(
            None,
            f"the export was redirected to a path that is not a mailbox's exportItems on "
            f"{host_of(graph_url)}: not followed",
        )
    mailbox = unquote(path[len(prefix) : -len("/exportItems")])
    if not mailbox or "/" in mailbox:
        return Redirect(None, "the export redirect names no mailbox: not followed")
    return Redirect(mailbox)
