"""The seams hold: which parts of the engine may import which (read from the source)."""

from __future__ import annotations

import ast
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


@pytest.mark.parametrize("path", _files("pipeline"), ids=str)
def test_the_pipeline_is_handed_its_sign_off_not_verify(path: Path) -> None:
    assert not any(m.startswith("copyengine.verify") for m in _imports(path))


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
