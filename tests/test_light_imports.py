"""What needs only the records loads light: ``plan`` (pure decisions), ``state`` and the graph
records do not load the HTTP stack (aiohttp) or the pacer, because ``copyengine.graph`` loads
its client, transport and session pool only when they are first named; and every package of
the engine imports on its own, in any order (no import cycle hidden by the order the
engine happens to load them in)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import copyengine

PKG = Path(copyengine.__file__).parent


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_records_and_the_pure_decisions_do_not_load_the_http_stack() -> None:
    out = _run(
        "import sys\n"
        "import copyengine.plan, copyengine.state, copyengine.graph.models\n"
        "from copyengine.graph import Folder, Item, MailboxApi, Clients\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiohttp'"
        " or m.startswith(('copyengine.graph.transport', 'copyengine.graph.client',"
        " 'copyengine.pacing'))))\n"
        "from copyengine.graph import GraphClient, Health, ImportSessionPool, Timeouts, Transport\n"
        "import copyengine.graph as g\n"
        "print(GraphClient.__module__, Transport.__module__, g.Health is Health)\n"
    )
    first, second = out.splitlines()
    assert first == "[]"
    assert second == "copyengine.graph.client copyengine.graph.transport True"


def test_an_unknown_name_of_the_graph_package_is_an_attribute_error() -> None:
    import copyengine.graph as g

    try:
        g.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_every_package_and_the_graph_and_plan_modules_import_on_their_own() -> None:
    """Each in a fresh copy of the package (the engine's other modules unloaded): a cycle
    between packages shows here whatever loads first in the engine."""
    paths = [*PKG.rglob("__init__.py"), *(PKG / "graph").glob("*.py"), *(PKG / "plan").glob("*.py")]
    names = sorted(
        {
            ".".join(("copyengine", *p.relative_to(PKG).with_suffix("").parts)).removesuffix(
                ".__init__"
            )
            for p in paths
        }
    )
    assert len(names) > 20
    code = (
        "import importlib, sys\n"
        f"names = {names!r}\n"
        "bad = []\n"
        "for n in names:\n"
        "    for m in [m for m in sys.modules if m == 'copyengine' or m.startswith('copyengine.')]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "    except Exception as exc:\n"
        "        bad.append(f'{n}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(bad))\n"
    )
    assert _run(code).strip() == ""
