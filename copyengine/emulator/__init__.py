"""A faithful local stand-in for the Microsoft Graph mailbox import/export service.

See ``../shared/graph-mailbox-api.md`` (the contract) and the README's emulator section.

The names below are imported on first use (PEP 562): the engine imports
``copyengine.emulator.process`` to start an embedded emulator, and must not pay for the
server, its store and its routes (about 25 MB) in every job that talks to a real service.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import EmulatorConfig, EmulatorConfigError, load_config, parse_config
    from .server import EmulatorServer, Endpoints, build_app, write_ready_file
    from .state import Emulator

_WHERE = {
    "Emulator": ".state",
    "EmulatorConfig": ".config",
    "EmulatorConfigError": ".config",
    "EmulatorServer": ".server",
    "Endpoints": ".server",
    "build_app": ".server",
    "load_config": ".config",
    "parse_config": ".config",
    "write_ready_file": ".server",
}

__all__ = [
    "Emulator",
    "EmulatorConfig",
    "EmulatorConfigError",
    "EmulatorServer",
    "Endpoints",
    "build_app",
    "load_config",
    "parse_config",
    "write_ready_file",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(where, __name__), name)
