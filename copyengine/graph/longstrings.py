"""An export's long strings cut out of its JSON before it is decoded, found at ``memchr``
speed.

An exportItems answer is ~1.8 MB for 20 items, nearly all of it the items' ``data`` strings
(base64). A JSON decoder walks every string byte by byte to find where it ends, even one it
only skips (``msgspec.Raw``): ~20 us of CPU per item in a microbenchmark (505 against 89 us
per 20-item export), 9% of the engine's CPU samples in a loaded ``throughput`` run. Here ``bytes.find`` (memchr) finds each string's quotes; each string
longer than ``LONG`` is replaced by a short placeholder, and the decoder reads only the
small rest. Outside strings JSON has no ``"``, so the next quote after a string's end opens
the next string: the strings are found exactly, escapes included.

The result says which placeholder stands for which cut string; the caller takes a cut
string back for each placeholder it finds where it expects one (``Cut.restore``) and, if
any placeholder is left elsewhere (a long error message, say), decodes the whole answer as
before. A placeholder's text (``"\\u0000"`` and a number) cannot be told from a real string
that reads the same, so an answer that already holds ``\\u0000`` outside its long strings is
not cut at all. The one thing not done for a cut string is what the decoder did while it
skipped it: check each of its characters (no control character, no unknown escape). It is
sent on as it came, as it always was, and the import host judges it (a corrupt item's
import fails, with the service's reason, and is retried by a later run).
"""

from __future__ import annotations

LONG = 1024  # bytes, quotes included: shorter strings stay where they are
_BACKSLASH = 0x5C
_MARK = b'"\\u0000'  # a placeholder: this, its number, a quote


class Cut:
    """A JSON document with its long strings cut out (``cut``; None: nothing was cut)."""

    __slots__ = ("rest", "strings")

    def __init__(self, rest: bytes, strings: list[memoryview]) -> None:
        self.rest = rest  # the document with a placeholder for each cut string
        self.strings = strings  # the cut string tokens, quotes included: views of the input

    def restore(self, token: memoryview) -> memoryview | None:
        """The cut string a placeholder token stands for (None: ``token`` is none)."""
        if len(token) > len(_MARK) + 8 or token[: len(_MARK)] != _MARK:
            return None
        return self.strings[int(bytes(token[len(_MARK) : -1]))]


def cut(buf: bytes | bytearray) -> Cut | None:
    """``buf`` with its strings longer than ``LONG`` cut out; None when there is none to cut,
    when a string does not end (the decoder names the fault) or when the rest already holds
    a placeholder's text."""
    find = buf.find
    view = memoryview(buf)
    rest: list[bytes | memoryview] = []
    strings: list[memoryview] = []
    copied = at = 0  # up to where ``rest`` holds the document; where to look next
    while (start := find(b'"', at)) >= 0:
        end = find(b'"', start + 1)
        while end > 0 and buf[end - 1] == _BACKSLASH:
            # escaped unless the backslashes before it pair up (``\\"`` ends the string)
            k = end - 1
            while buf[k] == _BACKSLASH:
                k -= 1
            if (end - 1 - k) % 2 == 0:
                break
            end = find(b'"', end + 1)
        if end < 0:
            return None
        at = end + 1
        if at - start > LONG:
            rest.append(view[copied:start])
            rest.append(b"%s%d%s" % (_MARK, len(strings), b'"'))
            strings.append(view[start:at])
            copied = at
    if not strings:
        return None
    rest.append(view[copied:])
    doc = b"".join(rest)
    if doc.count(b"\\u0000") != len(strings):
        return None
    return Cut(doc, strings)
