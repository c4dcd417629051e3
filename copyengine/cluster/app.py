"""One job shared by many hosts, on procrastinate and PostgreSQL.

``submit`` plans the job's mailbox groups (``groups.py``) and enqueues one procrastinate job
per unfinished group, with ``lock`` = ``queueing_lock`` = the group's key: the database runs
a group on one worker at a time and queues it once. ``worker`` processes on every host run
groups, ``[workers] concurrency`` at once, each in time-boxed **segments**: when a segment's
time is up (or the worker is asked to stop) the group drains like a run does (in-flight work
finishes and is committed), and its continuation is queued under the same lock. Workers send
heartbeats; every worker also looks for jobs whose worker has been silent longer than
``[workers] stalled_after_s`` and queues them again: a group whose worker died (kill -9, host
lost) resumes elsewhere, and the state's intents make that safe (every unknown outcome is
settled by search key before anything is resent).

The group table ``ce_groups`` says, for ``status`` and ``report``, where each group is:
queued, running (host, heartbeat), done, failed (why). Its counters, and the pass's, are
computed from the item records (``Store.pass_counts``), so they include what every segment
did, even one killed with -9.

Where it lives: ``connect.py`` (the patient connector, the job's stores), ``jobqueue.py``
(procrastinate's app and schema), ``tasks.py`` (a group's segment; ``outcome.py`` decides
what becomes of the group after it), ``worker.py`` (the worker, its reaper, signals),
``submit.py``; the group table's statements in ``copyengine/state/groups.py`` (all SQL
lives in ``state/``). This module is what the command line calls.

**The database going away** (restart, failover, network) is waited out: every statement of
the store, of the group table and of procrastinate is tried again with backoff while the
server is unreachable, for at most ``OUTAGE_S`` (``COPYENGINE_STORE_OUTAGE_S``); meanwhile
segments stop sending imports (no intent can be made durable). Past that limit the worker
leaves with a clear error (exit 5) and its groups are queued again by the reaper of any
worker once the server is back. After an outage the reaper waits for heartbeats to resume
before it calls anyone dead, and it queues again any unfinished group of the pass that has
no procrastinate job waiting or running (so a group never stays behind a failed job).
"""

from __future__ import annotations

from typing import Any

from ..config import JobConfig
from .connect import group_store
from .jobqueue import apply_schema, make_app, queue_name
from .submit import submit
from .worker import run_worker

__all__ = [
    "apply_schema",
    "group_runs",
    "make_app",
    "queue_name",
    "read_groups",
    "run_worker",
    "submit",
]


async def read_groups(cfg: JobConfig) -> list[dict[str, Any]]:
    """Every group of the job: where it is, its counters and pace (``status``, ``report``)."""
    return await group_store(cfg).read()


async def group_runs(cfg: JobConfig) -> list[dict[str, Any]]:
    """When each pair of each group ran, and on which host."""
    return await group_store(cfg).runs()
