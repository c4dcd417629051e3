"""The Store protocol: everything the pipeline, ``status`` and the report ask of the durable
record of a job. Implementations: ``sqlite.py`` (one host); a PostgreSQL store for several
hosts implements the same protocol and passes the same contract suite
(``tests/test_store_contract.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self

import anyio
from anyio.abc import TaskGroup

from .pairpasses import PairPass
from .records import (
    Control,
    FolderRecord,
    Intent,
    ItemRecord,
    LostCopy,
    Outcome,
    Status,
    SyncRecord,
)


class Store(Protocol):
    """Intent before an import (durable when ``record_intents`` returns), outcome after
    (buffered, group-committed by the store itself while it is entered: ``async with store``).
    """

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    # pairs and folders
    async def pair_started(self, pair: str, source: str, target: str) -> None: ...
    async def pair_finished(self, pair: str, status: str, error: str | None) -> None: ...
    async def pairs(self) -> list[dict[str, Any]]: ...
    async def folder_mapped(
        self,
        pair: str,
        source_folder_id: str,
        source_path: str,
        target_folder_id: str,
        target_path: str,
        scope: str = "primary",
    ) -> None: ...
    async def map_folders(
        self,
        pair: str,
        maps: Sequence[FolderRecord],
        unlinked: Sequence[str] = (),
        forgotten: Sequence[str] = (),
    ) -> None: ...  # the mappings, the links of ``unlinked`` dropped, then the records of
    # ``forgotten`` (source folder ids) deleted: one transaction
    async def folders(self, pair: str) -> list[FolderRecord]: ...
    async def set_delta_links(
        self,
        pair: str,
        links: Sequence[tuple[str, str | None]],
        sync: tuple[str, SyncRecord] | None = None,
        began: Mapping[str, int] | None = None,
    ) -> None: ...  # (source folder id, link) pairs, then ``sync`` (scope, record): one transaction
    async def moment(self) -> int: ...  # R1b's clock (``moments``): later than every
    # moment this store gave any process before the call began (PostgreSQL: a sequence the
    # hosts share; SQLite: this host's clock, never going back within the process)
    async def set_listed(self, pair: str, began: Mapping[str, int]) -> None: ...
    # when each folder's last full listing began (``delta = false``: no link), by source
    # folder: ``FolderRecord.link_began`` (its link, if any, kept)
    async def forget_folder(self, pair: str, source_folder_id: str) -> None: ...
    async def sync_state(self, pair: str, scope: str) -> SyncRecord | None: ...
    async def set_sync_state(self, pair: str, scope: str, record: SyncRecord | None) -> None: ...

    # passes: one row per run of the job (kind: first, delta, full, cutover). Every item
    # write is stamped with ``pass_number`` (set by ``pass_started``, or given to the store
    # of a worker's segment) and with what it did (``rows.FATE``): ``pass_counts`` says from
    # the records what a pass created, updated, ... whatever happened to the processes.
    pass_number: int | None

    async def pass_started(self, kind: str) -> int: ...
    async def pass_finished(self, number: int, status: str, changes: dict[str, int]) -> None: ...
    async def passes(self) -> list[dict[str, Any]]: ...
    async def pass_counts(
        self, number: int, pairs: Sequence[str] | None = None
    ) -> dict[str, int]: ...

    # the operator's controls (``copyengine suspend`` / ``resume``), read and written without
    # the job's lock: by a run's gate every second, by the commands from another shell
    async def controls(self) -> list[Control]: ...
    async def set_control(self, c: Control, replace_all: bool = False) -> None: ...
    # a pair's statistics per pass (``pairpasses``): a row per pass, pair and run
    async def record_pair_pass(self, row: PairPass) -> None: ...
    async def record_pair_sign_off(self, number: int, pair: str, entry: dict[str, Any]) -> None: ...
    async def pair_passes(self, pair: str) -> list[PairPass]: ...
    async def pair_hints(self) -> dict[str, list[dict[str, Any]]]: ...
    async def pair_said(
        self,
    ) -> tuple[
        dict[str, list[dict[str, Any]]], dict[str, tuple[int, dict[str, dict[str, float]]]]
    ]: ...

    # items
    async def items_in_folder(self, pair: str, folder_id: str) -> dict[str, ItemRecord]: ...
    async def items_in_folders(
        self, pair: str, folder_ids: Sequence[str], at_most: int | None = None
    ) -> dict[str, dict[str, ItemRecord]] | None:
        """The records of several folders, by folder then source id, in one read; None when
        there are more than ``at_most`` of them (read folder by folder then)."""
        ...

    async def unsettled(self, pair: str) -> list[ItemRecord]: ...
    async def items_by_keys(self, pair: str, keys: Sequence[bytes]) -> list[ItemRecord]:
        """Every record of the pair with one of these search keys (any folder, any status):
        what a pass asks when it decides whether a departure is a move."""
        ...

    async def items_with_status(self, pair: str, status: Status) -> list[ItemRecord]: ...
    async def kept_beside_live(self, pair: str) -> list[bytes]:
        """The search keys of the pair's kept copies (``REMOVED`` with a copy: deleted at
        the source under ``keep``) that another record of the key names as settled: an item
        restored or moved back after its copy was kept, copied again by a pass that ended
        before it dropped the kept copy (killed, or the removal failed). Every pass asks, so
        that "the next pass tries again" holds for a pass that never reached its end; read
        through a partial index of the kept rows, never a scan of the pair's."""
        ...

    async def items_unmapped(self, pair: str) -> list[ItemRecord]:
        """The settled records whose source folder no folder record maps any more (its
        folder gone while a copy was not where it was recorded: ``passes._look_later``)."""
        ...

    async def note_lost_copies(self, pair: str, notes: Sequence[LostCopy]) -> None:
        """Remember copies the state stops naming though they may still be in the target:
        an update that met its recorded copy gone (404) and made a new one (the target's
        user may have moved the old one: then it is a second copy, and once the item's
        records are forgotten, nothing else would say whose). Durable when it returns."""
        ...

    async def lost_copies(self, pair: str, keys: Sequence[bytes]) -> list[LostCopy]:
        """The lost copies noted for the pair with one of these search keys."""
        ...

    async def forget_lost_copies(self, pair: str, keys: Sequence[bytes]) -> None: ...
    async def record_intents(self, pair: str, intents: Sequence[Intent]) -> None: ...
    async def forget_items(self, pair: str, source_ids: Sequence[str]) -> None: ...
    async def move_record(self, pair: str, source_id: str, to: str, folder_id: str) -> None:
        """The record of ``source_id`` becomes ``to``'s, in source folder ``folder_id``, the
        rest of it as it was (status, copy, moments), in one durable write; nothing written
        when ``to`` has a record already. A kept copy's record following its item moved at
        the source (``passes._moved_left_out``): a kill leaves one record or the other,
        never both, nor the new id's bare intent."""
        ...

    async def detach_items(
        self, pair: str, source_ids: Sequence[str], versions: Mapping[str, str] | None = None
    ) -> None:
        """The records become a create's intent with no copy (status INTENT, no target
        item), in one durable write: their copy is about to be made again where they live
        (``pipeline.rehome``), and until its outcome is recorded they are settled by search
        key like any create whose answer was lost. ``versions``: per source id, the source
        change key of the version exported for that copy (the record's from then on, as an
        intent's is; a source id not in it keeps its record's)."""
        ...

    def record_outcome(self, pair: str, outcome: Outcome) -> None: ...
    def needs_flush(self) -> bool: ...
    async def flush(self) -> None: ...
    async def summary(self, pair: str) -> dict[str, int]: ...
    async def pair_totals(self) -> dict[str, dict[str, int]]:
        """Per pair with records, across every pass: copied, current, already present,
        failed, unknown, not attempted, kept (``rows.pair_totals``); buffered outcomes
        committed first."""
        ...


class GroupCommitting:
    """What both stores do when entered: open, commit buffered outcomes every
    ``flush_interval`` until exited, then flush and close (shielded from cancellation)."""

    flush_interval: float
    _buffer: list[Any]
    _tg: TaskGroup | None = None

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def flush(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._flusher)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tg, self._tg = self._tg, None
        try:
            if tg is not None:
                tg.cancel_scope.cancel()
                await tg.__aexit__(None, None, None)
        finally:
            with anyio.CancelScope(shield=True):
                await self.close()

    async def _flusher(self) -> None:
        """Commit buffered outcomes every ``flush_interval`` until cancelled."""
        while True:
            await anyio.sleep(self.flush_interval)
            if self._buffer:
                await self.flush()
