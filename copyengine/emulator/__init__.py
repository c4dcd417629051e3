"""A faithful local stand-in for the Microsoft Graph mailbox import/export service.

See ``../shared/graph-mailbox-api.md`` (the contract) and the README's emulator section.
"""

from .config import EmulatorConfig, EmulatorConfigError, load_config, parse_config
from .server import EmulatorServer, Endpoints, build_app, write_ready_file
from .state import Emulator

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
