"""The seams hold: which parts of the engine may import which (read from the source)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).parent.parent / "copyengine"


def _imports(path: Path) -> set[str]:
    """Absolute names of the copyengine modules ``path`` imports."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    here = list(rel.parts[:-1])  # the package the module is in (for relative imports)
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("copyengine")}


def _files(*parts: str) -> list[Path]:
    files: list[Path] = []
    for p in parts:
        target = PKG / p
        files.extend(
            sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
        )
    return files


@pytest.mark.parametrize("path", _files("pipeline", "graph", "state", "plan"), ids=str)
def test_the_engine_never_imports_the_emulator(path: Path) -> None:
    assert not any(m.startswith("copyengine.emulator") for m in _imports(path))


@pytest.mark.parametrize("path", _files("pipeline"), ids=str)
def test_the_pipeline_is_handed_built_clients(path: Path) -> None:
    bad = {
        m
        for m in _imports(path)
        if m.startswith(("copyengine.auth", "copyengine.pacing", "copyengine.wiring"))
    }
    assert not bad


@pytest.mark.parametrize("path", _files("verify"), ids=str)
def test_verify_does_not_import_the_pipeline(path: Path) -> None:
    assert not any(m.startswith("copyengine.pipeline") for m in _imports(path))


@pytest.mark.parametrize("path", _files("graph"), ids=str)
def test_the_seam_knows_nothing_of_the_job(path: Path) -> None:
    """The Graph seam is below everything: it reads no job config, no decisions, no
    pipeline, and reports to nobody above it."""
    above = (
        "copyengine.config",
        "copyengine.plan",
        "copyengine.pipeline",
        "copyengine.survey",
        "copyengine.verify",
        "copyengine.console",
        "copyengine.report",
        "copyengine.state",
        "copyengine.cluster",
    )
    assert not {m for m in _imports(path) if m.startswith(above)}


@pytest.mark.parametrize("path", _files("pipeline"), ids=str)
def test_the_pipeline_neither_judges_nor_renders(path: Path) -> None:
    """The sign-off is handed to the job by ``wiring``; screens and files are the console's;
    the notifier reaches it as a protocol (``pipeline.notices``)."""
    bad = ("copyengine.verify", "copyengine.console", "copyengine.cli", "copyengine.notify")
    assert not {m for m in _imports(path) if m.startswith(bad)}


@pytest.mark.parametrize("path", _files("notify"), ids=str)
def test_the_notifier_only_tells(path: Path) -> None:
    """Webhooks hear of the job; they neither copy, judge nor render."""
    bad = (
        "copyengine.pipeline",
        "copyengine.cluster",
        "copyengine.verify",
        "copyengine.console",
        "copyengine.cli",
        "copyengine.wiring",
    )
    assert not {m for m in _imports(path) if m.startswith(bad)}


@pytest.mark.parametrize(
    "path", _files("pipeline", "plan", "state", "graph", "pacing", "report", "verify"), ids=str
)
def test_nothing_below_the_face_renders(path: Path) -> None:
    """Renderers are handed down by ``wiring`` (the report's HTML and CSV files, too)."""
    assert not {m for m in _imports(path) if m.startswith("copyengine.console")}


@pytest.mark.parametrize("path", _files("survey"), ids=str)
def test_the_reading_room_does_not_copy(path: Path) -> None:
    bad = ("copyengine.pipeline", "copyengine.verify", "copyengine.console", "copyengine.cli")
    assert not {m for m in _imports(path) if m.startswith(bad)}


# SQL as this code base writes it: upper-case keywords (English prose in messages is not
# matched: "select the folders from …" is lower case)
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|SELECT\s+[\w.]+\s*\(|SELECT\s+\d|INSERT\s+INTO|UPDATE\s+\S+\s+SET|"
    r"DELETE\s+FROM|CREATE\s+(TABLE|INDEX|UNIQUE)|ALTER\s+TABLE|DROP\s+(TABLE|INDEX)|"
    r"TRUNCATE\s|PRAGMA\s+\w+)",
    re.DOTALL,
)


def _strings(path: Path) -> list[str]:
    """The string literals of a module (docstrings aside); an f-string is read whole, each
    placeholder written as ``x`` (``f"UPDATE {t}groups SET"`` is SQL too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    out: list[str] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.JoinedStr):
            out.append(
                "".join(
                    v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "x"
                    for v in n.values
                )
            )
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            out.append(n.value)
    return out


@pytest.mark.parametrize(
    "text",
    [
        'c.execute(f"UPDATE {t}groups SET state = 1")',
        'Q = "SELECT pg_advisory_lock(%s)"',
        'Q = "SELECT 1 FROM ce_passes"',
        'Q = "PRAGMA journal_mode = WAL"',
        'Q = f"DELETE FROM {table} WHERE pair = ?"',
    ],
)
def test_the_sql_rule_sees_sql(tmp_path: Path, text: str) -> None:
    (tmp_path / "m.py").write_text(text + "\n", encoding="utf-8")
    assert [s for s in _strings(tmp_path / "m.py") if SQL.search(s)]


def _within(path: Path) -> tuple[str, ...]:
    """The path's parts inside the package (where the checkout lies does not matter)."""
    return path.relative_to(PKG).parts


_ENGINE = [p for p in sorted(PKG.rglob("*.py")) if _within(p)[0] != "emulator"]


@pytest.mark.parametrize("path", [p for p in _ENGINE if _within(p)[0] != "state"], ids=str)
def test_only_the_state_writes_sql(path: Path) -> None:
    """One owner for SQL: the stores in ``state/`` (the cluster's tables included)."""
    assert not [s for s in _strings(path) if SQL.search(s)]


def _private(name: str) -> bool:
    return any(p.startswith("_") and not p.startswith("__") for p in name.split("."))


def _private_imports(path: Path) -> list[str]:
    """Private names (or modules) a module imports: ``from x import _y``, ``from x._m import
    y``, ``import x._m``."""
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            out.extend(
                f"{module}.{a.name}" for a in node.names if _private(module) or _private(a.name)
            )
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names if _private(a.name))
    return out


def test_the_private_rule_sees_private_modules(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "from copyengine.pipeline._hidden import thing\nimport copyengine._x\n", encoding="utf-8"
    )
    assert len(_private_imports(tmp_path / "m.py")) == 2


@pytest.mark.parametrize(
    "path",
    sorted(PKG.rglob("*.py")) + sorted((PKG.parent / "benchmarks").rglob("*.py")),
    ids=str,
)
def test_no_private_name_crosses_a_module(path: Path) -> None:
    """A leading underscore means "this module's own": nobody else imports it."""
    assert not _private_imports(path)


MAX_FUNCTION_LINES = 80


@pytest.mark.parametrize("path", _ENGINE, ids=str)
def test_no_function_is_a_file(path: Path) -> None:
    long = [
        f"{n.name} ({n.end_lineno - n.lineno + 1} lines)"  # type: ignore[operator]
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES  # type: ignore[operator]
    ]
    assert not long


@pytest.mark.parametrize(
    ("module", "limit"),
    [("cli.py", 350), ("cluster/app.py", 400), ("pacing/pacer.py", 320)],
)
def test_the_face_and_the_pacer_stay_slim(module: str, limit: int) -> None:
    assert len((PKG / module).read_text(encoding="utf-8").splitlines()) < limit


@pytest.mark.parametrize("path", _files("plan"), ids=str)
def test_plan_is_pure(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "async def" not in text and "await " not in text
    allowed = (
        "copyengine.plan",
        "copyengine.config",
        "copyengine.folderpath",
        "copyengine.graph.models",
        "copyengine.state",
        "copyengine.timefmt",
    )
    assert all(m.startswith(allowed) for m in _imports(path)), _imports(path)
