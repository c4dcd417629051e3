"""Folder paths shown to operators and matched by rules, built so that no name is taken apart.

A folder is identified by its id and by its chain of names; a joined string is only for
display and for the rules' regular expressions. In that display path, ``/`` separates names
and a ``/`` or ``\\`` inside a name is escaped with a backslash: the folder ``a/b`` under
Inbox is ``/Inbox/a\\/b``, never the same string as ``/Inbox/a/b``. Names keep leading and
trailing spaces and any unicode.
"""

from __future__ import annotations

from collections.abc import Iterable


def escape(name: str) -> str:
    return name.replace("\\", "\\\\").replace("/", "\\/")


def display(names: Iterable[str]) -> str:
    """``("Inbox", "a/b")`` -> ``/Inbox/a\\/b``; the root is ``/``."""
    joined = "".join("/" + escape(n) for n in names)
    return joined or "/"


def split(path: str) -> tuple[str, ...]:
    """The names of a display path (the inverse of ``display``). Empty names (``//``, a
    leading or trailing ``/``) are dropped: a folder name is never empty."""
    names: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(path):
        c = path[i]
        if c == "\\" and i + 1 < len(path):
            cur.append(path[i + 1])
            i += 2
            continue
        if c == "/":
            if cur:
                names.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    if cur:
        names.append("".join(cur))
    return tuple(names)
