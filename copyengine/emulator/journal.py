"""Durability for an emulator that must survive its own crash (a rehearsal runs for hours).

Every change to a mailbox is appended to a journal as it happens, before the request that
made it is answered (one ``write`` of a few hundred bytes: it survives the process being
killed, as the page cache keeps it; not a power cut). On start the last snapshot (the
``persist`` pickle) is loaded and the journal replayed on top; a graceful stop writes a new
snapshot and empties the journal. The CA and the token-signing key are kept beside them, so
a restarted emulator is the same service: same CA, tokens valid until they expire, every
acknowledged import present. Import sessions do not survive (clients renew them, as they
must when a session dies early).
"""

from __future__ import annotations

import os
import pickle
import secrets
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any

_LEN = struct.Struct(">I")


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, mailbox_id: str, record: tuple[Any, ...], seq: int, counter: int) -> None:
        blob = pickle.dumps((mailbox_id, record, seq, counter), protocol=pickle.HIGHEST_PROTOCOL)
        os.write(self._fd, _LEN.pack(len(blob)) + blob)

    def truncate(self) -> None:
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        os.close(self._fd)

    @staticmethod
    def read(path: Path) -> dict[str, list[tuple[tuple[Any, ...], int, int]]]:
        """Records by mailbox id, in order. A record cut short by a crash mid-write (the last
        one) is ignored: its request was never answered."""
        out: dict[str, list[tuple[tuple[Any, ...], int, int]]] = defaultdict(list)
        if not path.exists():
            return out
        data = path.read_bytes()
        pos = 0
        while pos + _LEN.size <= len(data):
            (n,) = _LEN.unpack_from(data, pos)
            if pos + _LEN.size + n > len(data):
                break
            mailbox_id, record, seq, counter = pickle.loads(
                data[pos + _LEN.size : pos + _LEN.size + n]
            )
            out[mailbox_id].append((record, seq, counter))
            pos += _LEN.size + n
        return out


def signing_key(path: Path) -> bytes:
    """The token-signing key kept at ``path`` (made once, private to the owner)."""
    if path.exists():
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key
