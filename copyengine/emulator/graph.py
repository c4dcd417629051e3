"""The Graph mailbox surface (contract §2-§5) served under ``/v1.0`` and ``/beta``, and the
pre-authenticated import host under ``/api/gv1.0`` and ``/api/gbeta``; assembled from
``http`` (context, errors), ``resources`` (mailboxes, folders, items), ``delta``,
``transfer`` (export and import) and ``routes`` (dispatch, auth, admission)."""

from __future__ import annotations

from .delta import FILTERED_DELTA_CAP
from .http import EMU, Ctx, Dropped, GraphError, json_response
from .routes import ROUTES, Route, add_graph_routes

__all__ = [
    "EMU",
    "FILTERED_DELTA_CAP",
    "ROUTES",
    "Ctx",
    "Dropped",
    "GraphError",
    "Route",
    "add_graph_routes",
    "json_response",
]
