"""copyengine: bulk, full-fidelity Exchange Online mailbox copies through Microsoft Graph."""

import sys

__version__ = "0.1.0"


class _NoRichForStructlog:
    """structlog's ``dev`` module, imported with structlog itself, loads rich's traceback
    renderer and through it pygments when rich is installed (it is: the live table's),
    ~0.1-0.2 s of every process's start-up, for a renderer the engine never uses: the
    console sink names its own (``logs.plain_traceback``). This finder, first on the import
    path, refuses rich to ``structlog.dev`` while it loads (its ``import rich`` is in a
    ``try``: it goes without); anyone else's ``import rich`` is not its business. Nothing is
    imported here: importing structlog at once (as this once did) put ~0.1 s before
    ``launch`` could take over the stop signals, a Ctrl-C there a KeyboardInterrupt's
    traceback, a SIGTERM the process killed (exit -15)."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name == "rich" and _loading("structlog.dev"):
            raise ImportError("rich: not for structlog.dev (copyengine renders its own)")


def _loading(name: str) -> bool:
    spec = getattr(sys.modules.get(name), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


if not any(isinstance(f, _NoRichForStructlog) for f in sys.meta_path):
    sys.meta_path.insert(0, _NoRichForStructlog())
