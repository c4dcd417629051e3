"""Tables that fit where they are read. A table as wide as its widest cells when there is room
(always in a file or a pipe: the console there is as wide as the table needs); one block per
row otherwise (a narrow terminal: 80 columns): its name on a line, folded where it is longer
than the screen, then ``heading value`` pairs filling the lines. No cell is ever cut short.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from ..logs import silence

# A console that is no terminal (a file, a pipe) is this wide: wide enough for any table
# the engine prints, so a table goes to a file whole, never squeezed or stacked.
FILE_WIDTH = 4000


@dataclass
class Fitted:
    """A table of ``columns`` (headings) and ``rows`` of cells (rich markup allowed; None
    for a section line). The first ``names`` columns name a row; the others are counts,
    right-aligned in the table, ``heading value`` in a block."""

    columns: Sequence[str]
    names: int = 1
    title: str | None = None
    caption: str | None = None
    rows: list[Sequence[str] | None] = field(default_factory=list)

    def add_row(self, *cells: str) -> None:
        self.rows.append(cells)

    def add_section(self) -> None:
        self.rows.append(None)

    def width(self) -> int:
        """The table's width with every cell on one line (rich's box: a bar and a space
        either side of each cell)."""
        widths = [cell_len(c) for c in self.columns]
        for row in self.rows:
            for i, cell in enumerate(row or ()):
                widths[i] = max(widths[i], Text.from_markup(cell).cell_len)
        return sum(widths) + 3 * len(widths) + 1

    def table(self) -> Table:
        t = Table(title=self.title, caption=self.caption)
        for i, col in enumerate(self.columns):
            t.add_column(col, justify="left" if i < self.names else "right", no_wrap=True)
        for row in self.rows:
            if row is None:
                t.add_section()
            else:
                t.add_row(*row)
        return t

    def blocks(self, width: int) -> Iterator[Text]:
        """One block per row: its name, then its counts filling lines of ``width``."""
        if self.title:
            yield Text(self.title, style="bold", overflow="fold")
        for row in self.rows:
            if row is None:
                yield Text("─" * min(width, 40))
                continue
            name = "  ".join(c for c in row[: self.names] if c)
            indent = " " * (len(name) - len(name.lstrip()) + 2)
            yield Text.from_markup(name, overflow="fold")
            said = [
                f"{head} {cell}"
                for head, cell in zip(self.columns[self.names :], row[self.names :], strict=False)
                if cell
            ]
            yield from _fill(said, indent, width)
        if self.caption:
            yield Text(self.caption, style="dim", overflow="fold")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.width() <= options.max_width:
            yield self.table()
        else:
            yield from self.blocks(options.max_width)


def _fill(said: list[str], indent: str, width: int) -> Iterator[Text]:
    """``heading value`` pairs, two spaces apart, on as few lines of ``width`` as they take;
    a pair is never split across lines unless it is wider than a line (then it folds)."""
    line = ""
    for part in said:
        plain = Text.from_markup(part).plain
        if line and cell_len(indent + Text.from_markup(line).plain + "  " + plain) > width:
            yield Text.from_markup(indent + line, overflow="fold")
            line = ""
        line = f"{line}  {part}" if line else part
    if line:
        yield Text.from_markup(indent + line, overflow="fold")


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader has gone (``| head``): the rest goes nowhere and the command goes on
        to its own end (rich's default exits the process with 1)."""
        self.quiet = True
        silence(self.file)


def console_for(stream: Any = None, **kw: Any) -> Console:
    """A console on ``stream`` (stdout when None; a console given is used as it is): the
    terminal's width on one; on a file or a pipe as wide as any table needs (nothing cut,
    nothing stacked)."""
    if isinstance(stream, Console):
        return stream
    out = stream or sys.stdout
    console: Console = _Console(file=out, **kw)
    if not console.is_terminal:
        console = _Console(file=out, width=FILE_WIDTH, **kw)
    return console
