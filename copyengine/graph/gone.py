"""A folder's 404 confirmed before it is taken for the folder gone (issue 26): one
``getFolder``, as a pass confirms a source folder gone. Shared by the folder walk
(``GraphClient.walk_folders``) and the listings of a folder's items (``survey.unless_gone``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import NotFound, ServiceError

T = TypeVar("T")
TRIES = 3  # reads of a listing whose folder is still found, before it fails


async def unless_gone(
    get_folder: Callable[[str, str], Awaitable[object]],
    mailbox_id: str,
    folder_id: str,
    read: Callable[[], Awaitable[T]],
    tries: int = TRIES,
    listing: str = "its listing",
) -> T | None:
    """``read()``, a listing of folder ``folder_id``; None when the folder is gone: the
    listing answered 404 and so did ``get_folder``. A 404 from a folder that is still found
    is a transient one: the listing is read again (``tries`` in all), then a
    ``ServiceError`` is raised, never the 404 itself (every caller reads ``NotFound`` as the
    folder gone). ``listing`` names what was read, in that error."""
    for n in range(tries):
        try:
            return await read()
        except NotFound as exc:
            try:
                await get_folder(mailbox_id, folder_id)
            except NotFound:
                return None
            if n == tries - 1:
                raise ServiceError(
                    f"folder {folder_id} is there (getFolder) but {listing} answered 404 "
                    f"{tries} times",
                    **exc.facts(),
                ) from exc
    raise AssertionError("unreachable")
