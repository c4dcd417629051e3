"""docs/configuration.md against the loader (``copyengine.config.load_job``): every key the
loader reads is in the page's tables, every key the tables give is one the loader reads, and
where both say a default as a plain value (a number, true or false, a word or a quoted
string), they say the same one.

The loader's keys are found by watching it: a job file that gives every table (``[[pairs]]``
with its own ``[pairs.folders]``, a wave, a webhook, ``[emulator]``, ...) is loaded while
``Table.get`` notes each key asked for, in which table, with which
default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from copyengine import config as config_module
from copyengine.controls import schedule
from copyengine.textfiles import Table

ROOT = Path(__file__).parent.parent
PAGE = ROOT / "docs" / "configuration.md"
NOT_GIVEN = object()

# what the page documents elsewhere (its own tables or pages): the rename rules' two keys (in
# `rename`'s row), an emulator mailbox's spec (docs/emulator.md)
ELSEWHERE = {"folders.rename", "emulator.mailboxes"}

JOB = """
pairs_csv = "pairs.csv"
pairs_encoding = "utf-8"

[job]
name = "probe"
report = "r.json"
keep_reports = 3
consolidate = false
log_format = "json"
log_level = "info"

[tenants.source]
tenant_id = "contoso.example"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret = "env:PROBE_SECRET"
graph_url = "emulator"
authority = "emulator"

[tenants.target]
tenant_id = "fabrikam.example"
client_id = "22222222-2222-2222-2222-222222222222"
client_secret = "env:PROBE_SECRET"
graph_url = "emulator"
authority = "emulator"

[network]
proxy = "direct"

[folders]
rename = [{ from = "^/A", to = "/B" }]

[items]
types = ["IPM.Note"]

[limits]
pairs_in_parallel = 2

[sync]
deletions = "keep"

[schedule]
timezone = "UTC"

[workers]
concurrency = 2

[notify]
queue_size = 10
[[notify.webhooks]]
url = "env:PROBE_WEBHOOK"

[emulator]
profile = "unlimited"
mailboxes = [{ upn = "adele@contoso.example", items = 1 }]

[[pairs]]
source = "adele@contoso.example"
target = "adele@fabrikam.example"
wave = 1
archive = false
priority = 2
start_after = 2026-12-07T20:00:00Z
complete_after = 2026-12-08T20:00:00Z
[pairs.folders]
rename = [{ from = "^/A", to = "/B" }]
[pairs.items]
types = ["IPM.Note"]

[waves.1]
priority = 1
start_after = 2026-12-07T20:00:00Z
complete_after = 2026-12-08T20:00:00Z
"""


def _table_of(where: str) -> str:
    """A table's path as the page names it: no list positions, a wave's name as ``<wave>``,
    a pair's own ``[pairs.folders]`` and ``[pairs.items]`` as the job's (their keys are)."""
    path = re.sub(r"\[\d+\]", "", where)
    path = re.sub(r"^pairs\.(folders|items)", r"\1", path)
    return re.sub(r"^waves\.[^.]+", "waves.<wave>", path)


def _loader_keys(tmp_path: Path, monkeypatch: Any) -> dict[tuple[str, str], Any]:
    """(table, key) -> the default the loader falls back on (``NOT_GIVEN``: required, or a
    table), for every key the loader reads."""
    seen: dict[tuple[str, str], Any] = {}
    get = Table.get

    def noted_get(
        self: Table, key: str, kind: Any, default: Any = None, required: bool = False
    ) -> Any:
        seen.setdefault((_table_of(self.where), key), NOT_GIVEN if required else default)
        return get(self, key, kind, default, required)

    controls = config_module.pair_controls

    def noted_controls(t: Table, tz: str | None = None) -> dict[str, Any]:
        for key in config_module.CONTROL_KEYS:  # read from the table as given, not by get
            seen.setdefault((_table_of(t.where), key), None)
        return controls(t, tz)

    monkeypatch.setattr(Table, "get", noted_get)
    monkeypatch.setattr(config_module, "pair_controls", noted_controls)
    (tmp_path / "pairs.csv").write_text(
        "source,target\nbianca@contoso.example,bianca@fabrikam.example\n"
    )
    job = tmp_path / "job.toml"
    job.write_text(JOB, encoding="utf-8")
    config_module.load_job(job, resolve_secrets=False)
    # the job file's schedule is read by the schedule's own parser, not key by key
    # (it requires the time zone only)
    for key in schedule.SCHEDULE_KEYS:
        seen.setdefault(("schedule", key), NOT_GIVEN if key == "timezone" else None)
    # a list of tables ([[pairs]], [[notify.webhooks]]) is a table of the page's, no key
    lists = {("", "pairs"), ("notify", "webhooks")}
    return {k: v for k, v in seen.items() if k[0] not in ELSEWHERE and k not in lists}


_HEADING_TABLES = re.compile(r"`\[\[?([\w.<>]+)\]\]?`")


def _page_keys() -> dict[tuple[str, str], str]:
    """(table, key) -> its default cell, from every table of the page whose first column
    is ``key`` (or ``section | key``)."""
    found: dict[tuple[str, str], str] = {}
    tables: list[str] = []
    header: list[str] = []
    section = ""
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or line.startswith("`[["):
            named = _HEADING_TABLES.findall(line)
            if named or line.startswith("#"):
                tables = named
            continue
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = cells
            continue
        if set(line) <= set("|-: ") or "key" not in header:
            continue
        row = dict(zip(header, cells, strict=False))
        if "section" in header:
            if row["section"]:
                section = "" if row["section"] == "top level" else row["section"]
            where = [_HEADING_TABLES.sub(r"\1", section)] if section else [""]
        else:
            where = tables
        keys = re.findall(r"`([^`]+)`", row["key"])
        defaults = [d.strip() for d in row["default"].split(",")]
        if len(defaults) != len(keys):
            defaults = [row["default"]] * len(keys)
        for key, default in zip(keys, defaults, strict=True):
            if key.startswith("["):
                continue  # a subtable ([pairs.folders]): its keys are its table's
            for t in where:
                found[(t, key)] = default
    return found


REQUIRED = "required"


def _plain(cell: str) -> Any:
    """The default a cell says as a plain value (``REQUIRED`` for "required"), else
    NOT_GIVEN (a sentence, a path made of the job's name)."""
    text = cell.strip("`")
    plain: dict[str, Any] = {"true": True, "false": False, "none": None, "[]": [], "{}": {}}
    if text in plain:
        return plain[text]
    if text == REQUIRED:
        return REQUIRED
    if re.fullmatch(r"-?\d+(\.\d+)?", text.replace(",", "")):
        return float(text.replace(",", ""))
    if re.fullmatch(r'"[^"]*"', text):
        return text.strip('"')
    if re.fullmatch(r"[a-z][a-z_-]*", text) or re.fullmatch(r"`[^`\s<>]+`", cell):
        return text
    return NOT_GIVEN


@pytest.fixture
def both(tmp_path: Path, monkeypatch: Any) -> tuple[dict[tuple[str, str], Any], dict[Any, str]]:
    return _loader_keys(tmp_path, monkeypatch), _page_keys()


def test_every_key_the_loader_reads_is_documented(both: Any) -> None:
    loader, page = both
    missing = sorted(f"[{t}] {k}" if t else k for t, k in loader if (t, k) not in page)
    assert not missing, f"read by the loader, not in docs/configuration.md: {missing}"


def test_every_documented_key_is_one_the_loader_reads(both: Any) -> None:
    loader, page = both
    unknown = sorted(f"[{t}] {k}" if t else k for t, k in page if (t, k) not in loader)
    assert not unknown, f"in docs/configuration.md, unknown to the loader: {unknown}"


def test_the_defaults_the_page_says_are_the_loaders(both: Any) -> None:
    loader, page = both
    wrong = []
    for where, cell in page.items():
        said = _plain(cell)
        if where not in loader or said is NOT_GIVEN:
            continue
        real = loader[where]
        if (said == REQUIRED) != (real is NOT_GIVEN):
            wrong.append(f"{where}: the page says {cell}, the loader {real!r}")
        elif isinstance(said, float) and isinstance(real, int | float):
            if isinstance(real, bool) or abs(said - real) > 1e-9:
                wrong.append(f"{where}: the page says {cell}, the loader {real!r}")
        elif said is None and real not in (None, ""):  # "": no wave
            wrong.append(f"{where}: the page says none, the loader {real!r}")
        elif said not in (None, REQUIRED) and real is not None and said != real:
            wrong.append(f"{where}: the page says {cell}, the loader {real!r}")
    # the loader's required keys say so on the page
    wrong += [
        f"{w}: required, the page says {page[w]!r}"
        for w, real in loader.items()
        if real is NOT_GIVEN and w in page and _plain(page[w]) != REQUIRED
    ]
    assert not wrong, wrong


# the pages whose ```toml blocks are pieces of a job file (docs/emulator.md's are the
# standalone emulator's own file)
JOB_PAGES = (
    "README.md",
    "docs/configuration.md",
    "docs/operator-guide.md",
    "docs/several-hosts.md",
)


def _keys_of(data: dict[str, Any], where: str = "") -> list[tuple[str, str]]:
    """(table, key) of every key in a parsed TOML piece, tables walked as the loader reads
    them (a list of tables: each entry as its table)."""
    out = []
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        tables = value if isinstance(value, list) and value and isinstance(value[0], dict) else []
        if isinstance(value, dict):
            tables = [value]
        if not tables or _table_of(path) in ELSEWHERE or (where, key) in (("emulator", "limits"),):
            out.append((_table_of(where), key))
            continue
        for t in tables:
            out += _keys_of(t, path)
    return out


def test_every_key_in_the_pages_job_file_examples_is_one_the_loader_reads(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import tomllib

    loader = _loader_keys(tmp_path, monkeypatch)
    tables = {t for t, _ in loader} | {"", "pairs", "notify.webhooks"}
    unknown = []
    for page in JOB_PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        for n, block in enumerate(re.findall(r"```toml\n(.*?)```", text, re.S)):
            for where, key in _keys_of(tomllib.loads(block)):
                if (where, key) not in loader and f"{where}.{key}".strip(".") not in tables:
                    unknown.append(f"{page} block {n + 1}: [{where}] {key}")
    assert not unknown, unknown


def test_the_example_job_names_every_key(tmp_path: Path, monkeypatch: Any) -> None:
    """config.example.toml "documents every key with comments" (the page says): each key the
    loader reads is named there, set or in a comment."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    loader = _loader_keys(tmp_path, monkeypatch)
    missing = sorted({k for _, k in loader if not re.search(rf"\b{re.escape(k)}\b", text)})
    assert not missing, f"not in config.example.toml: {missing}"
