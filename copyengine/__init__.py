"""copyengine: bulk, full-fidelity Exchange Online mailbox copies through Microsoft Graph."""

import sys

__version__ = "0.1.0"


def _structlog_without_rich() -> None:
    """structlog's ``dev`` module, imported with structlog itself, loads rich's traceback
    renderer and through it pygments when rich is installed (it is: the live table's),
    ~0.1-0.2 s of every process's start-up, for a renderer the engine never uses: the
    console sink names its own (``logs.plain_traceback``). Imported first here, with rich
    hidden for that moment; nothing to do once either is loaded."""
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # ImportError for structlog.dev
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


_structlog_without_rich()
