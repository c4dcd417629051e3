"""When the body a task is about to send was ready to send: the moment its item entered the
ready pool (``pipeline.ready.ReadyItems.get`` sets it in the importer's task; the pacer's
account reads it as the body goes out, ``pacing.accounting``). Read only for request bodies
(uploads). Its own module: the pipeline is handed built pacers and imports nothing of
``pacing`` (``tests/test_boundaries.py``)."""

from __future__ import annotations

from contextvars import ContextVar

READY: ContextVar[float | None] = ContextVar("copyengine_ready", default=None)
