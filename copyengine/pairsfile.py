"""The pairs file (``pairs_csv``): the list of mailbox pairs as spreadsheets and migration
tools save it, read into plain rows that ``config`` turns into pairs.

What is read, deterministically:

- the encoding: a byte-order mark decides (UTF-8, UTF-16 LE/BE: Excel's "CSV UTF-8" and
  "Unicode Text"); without one, UTF-8, or the encoding the job declares
  (``pairs_encoding = "cp1252"``: Excel's "CSV (Comma delimited)" on a Western European
  Windows). Bytes that do not decode are refused with the file, the line and what to do,
  never guessed (a cp1252 file read as Latin-1 would silently change mailbox names).
- the delimiter: Excel's ``sep=;`` first line when there is one; else the first row that
  holds something is split by comma, semicolon and tab (quotes respected) and the one giving
  the most columns wins; a tie goes to tab, then semicolon, then comma (the one least likely
  to appear inside a value: "Müller, Hans" holds a comma).
- the header: a first row without an ``@`` in it names the columns. Source and target are
  found by name (aliases below, case, spaces, ``_``, ``-`` and ``.`` ignored); a ``wave``
  (or ``batch``) column and an ``archive`` column are read; other columns are ignored, except
  those named after a ``[[pairs]]`` key a pairs file does not carry (folder and item rules),
  which are refused so that a rule is never silently left out. A file without a header has
  exactly two columns, source then target.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .textfiles import decode_text, upn

DELIMITERS = ("\t", ";", ",")  # the order breaks a tie
DELIMITER_NAMES = {"\t": "tab", ";": "semicolon", ",": "comma"}

# Header names, normalised (``normal``). A source or target column is a prefix and a suffix:
# "Source Email" (MigrationWiz), "Source UPN"/"Target UPN" (Quest), "Destination Mailbox",
# "SourceIdentity"/"TargetIdentity" (Microsoft's Transporter lists), "sourceEmail"...
SOURCE_PREFIXES = ("source", "src", "from", "old")
TARGET_PREFIXES = ("target", "tgt", "destination", "dest", "dst", "to", "new")
ADDRESS_SUFFIXES = (
    "",
    "email",
    "emailaddress",
    "mail",
    "mailbox",
    "mailboxaddress",
    "address",
    "smtp",
    "smtpaddress",
    "primarysmtpaddress",
    "upn",
    "userprincipalname",
    "identity",
)
SOURCE_NAMES = frozenset(p + s for p in SOURCE_PREFIXES for s in ADDRESS_SUFFIXES)
TARGET_NAMES = frozenset(p + s for p in TARGET_PREFIXES for s in ADDRESS_SUFFIXES)
# A name that says "an address" but not which side (Microsoft's migration batch files say
# EmailAddress; Quest's mapping file may say userPrincipalName twice): the first such column
# is the source, the next the target, each only where no column names that side outright.
EITHER_NAMES = frozenset(
    (
        "emailaddress",
        "email",
        "mail",
        "mailbox",
        "upn",
        "userprincipalname",
        "primarysmtpaddress",
        "smtpaddress",
        "windowsemailaddress",
    )
)
WAVE_NAMES = frozenset(
    p + s
    for p in ("wave", "batch", "migrationwave", "migrationbatch")
    for s in ("", "name", "number", "no", "id")
)
ARCHIVE_NAMES = frozenset(
    ("archive", "archivemailbox", "includearchive", "migratearchive", "copyarchive")
)
# [[pairs]] keys a pairs file does not carry: a pair with its own rules is a [[pairs]] table.
TOML_ONLY = frozenset(
    (
        "folders",
        "items",
        "include",
        "exclude",
        "rename",
        "targetroot",
        "mapwellknown",
        "classes",
        "skiphidden",
        "createdafter",
        "createdbefore",
        "types",
        "maxsizemb",
    )
)
# Excel writes a boolean cell as its locale's word for it.
TRUE_WORDS = frozenset(
    ("true", "yes", "y", "1", "x", "wahr", "ja", "vrai", "oui", "verdadero", "vero", "waar")
)
FALSE_WORDS = frozenset(
    ("false", "no", "n", "0", "falsch", "nein", "faux", "non", "falso", "onwaar")
)
WAVE_WORD = re.compile(r"^(?:wave|batch)(?:[\s_-]+|(?=\d))(?=\S)")
SEP_LINE = re.compile(r"^\s*sep=(.)\s*$")
JUNK = "\ufeff\u200b"  # a byte-order mark or zero-width space pasted into a cell


@dataclass(frozen=True)
class PairRow:
    """One pair of the file: ``at`` is ``file:line``."""

    source: str
    target: str
    at: str
    wave: str = ""  # ``wave_label``'s form; "" when the row has none
    archive: bool | None = None  # None: no archive column, or its cell empty


def wave_label(value: str | int) -> str:
    """The form waves are compared in: case and spacing ignored, a leading "wave"/"batch"
    word dropped and numbers without leading zeros ("Wave 01", "wave1" and 1 are "1")."""
    text = " ".join(str(value).split()).casefold()
    text = WAVE_WORD.sub("", text)
    return str(int(text)) if text.isascii() and text.isdigit() else text


def check_encoding(name: str, where: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise ConfigError(
            where, f"unknown encoding {name!r} (for example cp1252, cp1250, latin-1, utf-8)"
        ) from None


def read_pairs_file(path: Path, encoding: str | None = None) -> list[PairRow]:
    """The pairs of the file at ``path`` (``encoding``: the one declared for files without a
    byte-order mark); a ConfigError naming ``file:line`` and what to do otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    has_bom = raw.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if not has_bom and encoding is None and b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}",
            "holds NUL bytes: it looks like UTF-16 without a byte-order mark; save it from "
            'Excel as "Unicode Text" or "CSV UTF-8", or set pairs_encoding = "utf-16-le" '
            "in the job file",
        )
    text = decode_text(raw, str(path), encoding, advice=ENCODING_ADVICE)
    return _rows(text, str(path))


ENCODING_ADVICE = (
    'it was probably saved by Excel as "CSV (Comma delimited)" in a Windows code page: set '
    'pairs_encoding = "cp1252" in the job file (Western Europe; "cp1250" Central Europe, '
    '"cp1251" Cyrillic), or save it as UTF-8 (Excel: "CSV UTF-8") and run again'
)


def _rows(text: str, name: str) -> list[PairRow]:
    lines = text.splitlines()
    sep = SEP_LINE.match(lines[0]) if lines else None
    if sep:  # Excel's own hint; blanked so that line numbers stay the file's
        text = text[len(lines[0]) :]
    delimiter = sep.group(1) if sep else _delimiter(lines)
    split = delimiter or ","  # "": the first row has none (one column)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=split, strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for record in reader:
            cells = [c.strip().strip(JUNK).strip() for c in record]
            if any(cells) and not cells[0].startswith("#"):
                rows.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ConfigError(
            f"{name}:{start}",
            f'not valid CSV from this line on ({exc}): check the quotes (") of this row',
        ) from None
    if not rows:
        return []
    first_line, first = rows[0]
    if any("@" in c for c in first):
        return [_headless(f"{name}:{n}", cells, delimiter) for n, cells in rows]
    columns = Columns.of(first, f"{name}:{first_line}")
    return [columns.row(f"{name}:{n}", cells) for n, cells in rows[1:]]


def _delimiter(lines: list[str]) -> str:
    """The delimiter of the first line that holds something (see the module's docstring);
    "" when that line is one column."""
    for line in lines:
        if line.strip() and not line.lstrip().startswith("#"):
            widths = {d: len(next(csv.reader([line], delimiter=d), [])) for d in DELIMITERS}
            best = max(DELIMITERS, key=lambda d: widths[d])  # max keeps the first of a tie
            return best if widths[best] > 1 else ""
    return ""


def _headless(at: str, cells: list[str], delimiter: str) -> PairRow:
    while cells and not cells[-1]:
        cells = cells[:-1]  # Excel pads short rows with empty cells
    if len(cells) < 2 or not cells[0] or not cells[1]:
        found = _count(len([c for c in cells if c]))
        how = (
            f"when split by the file's delimiter, {DELIMITER_NAMES.get(delimiter, repr(delimiter))}"
            if delimiter
            else "(the file's first row holds no comma, semicolon or tab)"
        )
        raise ConfigError(
            at,
            "expected: source,target (two columns separated by a comma, semicolon or tab); "
            f"this row has {found} {how}",
        )
    if len(cells) > 2:
        raise ConfigError(
            at,
            f"expected 2 columns (source,target), found {len(cells)}: the file has no header "
            "row, so extra columns cannot be read; add a first row naming the columns "
            "(source,target,wave,archive; other names are ignored) or remove them",
        )
    return PairRow(_address(cells[0], at, "A", "source"), _address(cells[1], at, "B", "target"), at)


def _count(n: int) -> str:
    return {0: "no column", 1: "one column"}.get(n, f"{n} columns")


def _address(value: str, at: str, letter: str, side: str) -> str:
    try:
        return upn(value, at)
    except ConfigError as exc:
        raise ConfigError(at, f"{exc.message}, in column {letter} ({side})") from None


def normal(header: str) -> str:
    """A header name as aliases are compared: case, spaces, ``_``, ``-`` and ``.`` ignored."""
    return re.sub(r"[\s_.\-]+", "", header.strip(JUNK)).casefold()


def letter(index: int) -> str:
    """The spreadsheet's name of column ``index`` (0: A, 26: AA)."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


@dataclass(frozen=True)
class Columns:
    """What the header row says: where source, target, wave and archive are."""

    names: tuple[str, ...]
    source: int
    target: int
    wave: int | None
    archive: int | None

    @classmethod
    def of(cls, header: list[str], at: str) -> Columns:
        keys = [normal(h) for h in header]
        for i, k in enumerate(keys):
            if k in TOML_ONLY:
                raise ConfigError(
                    at,
                    f"column {letter(i)} ({header[i]}) is a rule a pairs file does not carry: "
                    "give that pair as a [[pairs]] table with [pairs.folders] or "
                    "[pairs.items] in the job file, and remove the column",
                )
        source = _one(keys, header, SOURCE_NAMES, "the source", at)
        target = _one(keys, header, TARGET_NAMES, "the target", at)
        either = [i for i, k in enumerate(keys) if k in EITHER_NAMES]
        if source is None and either:
            source = either.pop(0)
        if target is None and either:
            target = either.pop(0)
        if source is None or target is None:
            side = "source" if source is None else "target"
            raise ConfigError(at, _no_column(side, header))
        return cls(
            tuple(header),
            source,
            target,
            _one(keys, header, WAVE_NAMES, "the wave", at),
            _one(keys, header, ARCHIVE_NAMES, "archive", at),
        )

    def cell(self, cells: list[str], index: int | None) -> str:
        return cells[index] if index is not None and index < len(cells) else ""

    def row(self, at: str, cells: list[str]) -> PairRow:
        values = []
        for side, index in (("source", self.source), ("target", self.target)):
            value = self.cell(cells, index)
            where = f"column {letter(index)} ({self.names[index]})"
            if not value:
                raise ConfigError(at, f"no {side}: {where} is empty")
            values.append(_address(value, at, letter(index), self.names[index]))
        archive = self.cell(cells, self.archive)
        return PairRow(
            values[0],
            values[1],
            at,
            wave=wave_label(self.cell(cells, self.wave)),
            archive=_flag(archive, at, letter(self.archive or 0)) if archive else None,
        )


def _one(
    keys: list[str], header: list[str], names: frozenset[str], what: str, at: str
) -> int | None:
    found = [i for i, k in enumerate(keys) if k in names]
    if len(found) > 1:
        both = " and ".join(f"{letter(i)} ({header[i]})" for i in found)
        each = "both" if len(found) == 2 else "all"
        raise ConfigError(at, f"columns {both} {each} name {what}: keep one, rename the others")
    return found[0] if found else None


def _no_column(side: str, header: list[str]) -> str:
    found = ", ".join(h for h in header if h) or "nothing"
    if side == "target" and any(normal(h) == "emailaddress" for h in header):
        return (
            f"the header row names no target column (found: {found}); a Microsoft migration "
            "batch file names only the mailbox to move (EmailAddress, read as the source): "
            "add a column Target with each mailbox's address in the target tenant"
        )
    example = "Source Email, Source UPN, From" if side == "source" else "Destination Email, To"
    return (
        f"the header row names no {side} column (found: {found}); name it {side} (also "
        f"understood: {example}, ...), or, if this row is a pair, write each mailbox as "
        "name@domain"
    )


def _flag(value: str, at: str, column: str) -> bool:
    word = value.casefold()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(
        at, f"{value!r} in column {column} (archive) is not true or false: write yes or no"
    )
