"""Auto-expanding archives: an in-place archive whose expanded folders keep their items in an
auxiliary archive, a mailbox of its own (own id, own throttling budgets).

As Microsoft documents it ("Handle archive mailbox redirects"):

- ``exportItems`` on the main archive answers an item of an expanded folder with the per-item
  error ``ErrorArchiveFolderMovedPermanently`` whose ``message`` is the URL to export it from
  (``{graph}/{version}/admin/exchange/mailboxes/{auxiliary id}/exportItems``); there it exports.
- The import host answers an import into an expanded folder through the main archive's
  session (or into a folder that is not expanded through the auxiliary's) with **409**
  ``{"Message": "Invalid import session. The target session is expected in mailbox
  MBX:…."}``: nothing is imported; a session on the mailbox named takes it.

EMULATOR CHOICES: folders are listed, read, created and their items listed through the main
archive (the auxiliary answers only exportItems and imports; its own folder tree is empty);
what is expanded is decided per folder (``folders`` by path, or every ``every``-th folder
that holds items); ``session_uploads`` makes any import session of the archive answer 409
(naming its own mailbox: "make a new session") after that many imports, so a session must
be renewed however the folders lie; ``redirect_base`` puts another host in the redirect
URL (a test of a client that must refuse it)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .store import Folder, Item, Mailbox, MailboxSpec, new_mailbox, seed_mailbox

MOVED = "ErrorArchiveFolderMovedPermanently"


@dataclass(frozen=True)
class ExpandSpec:
    folders: tuple[str, ...] | None = None  # folder paths ("/Inbox/Projects") expanded
    every: int = 2  # without ``folders``: every n-th folder holding items, in walk order
    session_uploads: int = 0  # an import session answers 409 after this many imports (0: no)
    redirect_base: str | None = None  # "https://host/beta": the redirect URL's base

    @classmethod
    def parse(cls, raw: Any) -> ExpandSpec | None:
        if raw in (None, False):
            return None
        if raw is True:
            return cls()
        if not isinstance(raw, dict):
            raise ValueError(
                "expanded: true, or a table (folders, every, session_uploads, redirect_base)"
            )
        extra = sorted(set(raw) - set(cls.__dataclass_fields__))
        if extra:
            raise ValueError(f"expanded: unknown key {extra[0]!r}")
        folders = raw.get("folders")
        if folders is not None and (
            not isinstance(folders, list) or not all(isinstance(f, str) for f in folders)
        ):
            raise ValueError("expanded.folders: a list of folder paths")
        spec = cls(
            folders=tuple(folders) if folders is not None else None,
            every=_count(raw, "every", 2, 1, "every n-th folder holding items is expanded"),
            session_uploads=_count(
                raw,
                "session_uploads",
                0,
                0,
                "a session answers 409 after so many imports; 0: never",
            ),
            redirect_base=raw.get("redirect_base"),
        )
        base = spec.redirect_base
        if base is not None and (
            not isinstance(base, str) or not base.startswith(("https://", "http://"))
        ):
            raise ValueError("expanded.redirect_base: an http(s) URL, as 'https://host/beta'")
        return spec


def _count(raw: dict[str, Any], key: str, default: int, least: int, what: str) -> int:
    """``raw[key]``, a whole number of at least ``least`` (never a string, a fraction or a
    boolean); else a message naming the key."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"expanded.{key}: a whole number >= {least} ({what}), not {value!r}")
    return value


def check_folders(archive: MailboxSpec, spec: ExpandSpec, upn: str) -> None:
    """``folders`` must name folders the archive ``archive`` seeds: an unknown path is a
    configuration error where the spec is read, before any mailbox is made (the folder tree
    of a spec does not depend on its items)."""
    if spec.folders is None:
        return
    scratch = new_mailbox("check", upn, archive=True)
    seed_mailbox(scratch, replace(archive, items=0))
    for path in spec.folders:
        if scratch.folder_by_path(path) is None:
            raise ValueError(f"expanded.folders: no folder {path!r} in the archive")


def expand(archive: Mailbox, spec: ExpandSpec) -> Mailbox:
    """Make ``archive`` auto-expanded: its auxiliary mailbox (made once, kept across a
    restart by the archive it belongs to) and which folders live there."""
    aux = archive.auxiliary
    if aux is None:
        aux = new_mailbox(archive.tenant_id, archive.upn + "#aux1", archive=True)
        aux.aux_of = archive
        archive.auxiliary = aux
        archive.expanded = frozenset(_chosen(archive, spec))
    archive.expand_spec = spec
    return aux


def _chosen(archive: Mailbox, spec: ExpandSpec) -> list[str]:
    if spec.folders is not None:
        found = [archive.folder_by_path(p) for p in spec.folders]
        missing = [p for p, f in zip(spec.folders, found, strict=True) if f is None]
        if missing:
            raise ValueError(f"expanded.folders: no folder {missing[0]!r} in the archive")
        return [f.id for f in found if f is not None]
    holding = [f for f in archive.walk() if f.live > 0]
    return [f.id for f in holding[:: spec.every]]


def home_of(mbx: Mailbox) -> Mailbox:
    """The mailbox whose folders and items a call on ``mbx`` reaches (an auxiliary archive's
    are its main archive's)."""
    return mbx.aux_of or mbx


def lives_in(home: Mailbox, folder: Folder) -> Mailbox:
    """The mailbox a folder's items physically live in."""
    if home.auxiliary is not None and folder.id in home.expanded:
        return home.auxiliary
    return home


def redirect_row(base: str, home: Mailbox, item: Item, err_key: str) -> dict[str, Any]:
    """The per-item export error of an item that lives in the auxiliary archive."""
    assert home.auxiliary is not None
    spec = home.expand_spec
    root = spec.redirect_base if spec is not None and spec.redirect_base else base
    url = f"{root.rstrip('/')}/admin/exchange/mailboxes/{home.auxiliary.id}/exportItems"
    return {"itemId": item.id, err_key: {"message": url, "code": MOVED}}


def session_answer(home: Mailbox, asked: Mailbox, folder: Folder, uploads: int) -> str | None:
    """The import host's 409 message for an import into ``folder`` through a session on
    ``asked`` that has imported ``uploads`` items, or None when the import may go ahead."""
    expected = lives_in(home, folder)
    spec = home.expand_spec
    spent = spec is not None and 0 < spec.session_uploads <= uploads
    if expected is asked and not spent:
        return None
    return f"Invalid import session. The target session is expected in mailbox {expected.id}."
