"""The job queue: procrastinate's app on the job's database, with the one task a worker
runs (``tasks.copy_group``; a cutover's sign-off, ``signoff.sign_off_task``), and the queue's schema with the group table's."""

from __future__ import annotations

import hashlib
import json

import psycopg
import structlog
from procrastinate import App, exceptions, jobs
from procrastinate.manager import JobManager

from ..errors import StateError
from ..secrets import Secret
from ..state.groups import GroupStore, connection_kwargs
from ..state.postgres import RECONNECT_S, explain
from .connect import PatientConnector, outage_s
from .signoff import sign_off_task
from .tasks import SIGN_OFF_TASK, TASK, copy_group

log = structlog.get_logger("copyengine.cluster")
NOT_OURS = "Job was not found or not in"  # procrastinate's refusal to end a job not running


class FinishOnce(JobManager):
    """procrastinate's job manager, to which a job already ended by another worker is not an
    error. A worker paused past ``stalled_after_s`` (SIGSTOP, a starved loop, a paused VM)
    has its job queued again by another worker's reaper and run there; whichever of the two
    ends it second is refused by the database (the job is no longer running), and
    procrastinate let that refusal out as an unretrieved task exception with its traceback.
    The group's own record (``ce_groups``) says where the group is, so nothing is lost: the
    second end is said in one warning line, ``job.ended_elsewhere``."""

    async def finish_job_by_id_async(
        self, job_id: int, status: jobs.Status, delete_job: bool
    ) -> None:
        try:
            await super().finish_job_by_id_async(job_id, status, delete_job)
        except exceptions.ConnectorException as exc:
            cause = exc.__cause__
            if not (isinstance(cause, psycopg.errors.RaiseException) and NOT_OURS in str(cause)):
                raise
            log.warning(
                "job.ended_elsewhere",
                job=job_id,
                status=status.value,
                why="queued again while its worker was silent, and ended by another worker",
            )


def queue_name(cfg_identity: dict[str, str], name: str) -> str:
    """The job's own queue: several jobs may share one database server (not one database).
    Named by the tenants and apps and the ``[job] name`` only (``name``), as before the job
    file's name was part of the identity: groups queued by an earlier version still run."""
    key = {**cfg_identity, "name": name}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return f"copyengine-{digest[:12]}"


def make_app(url: str, password: Secret | None) -> App:
    connector = PatientConnector(
        outage_s=outage_s(),
        conninfo=url,
        kwargs=connection_kwargs(password),
        min_size=1,
        max_size=8,
        timeout=10.0,
        reconnect_timeout=RECONNECT_S,
    )
    app = App(connector=connector)
    app.job_manager = FinishOnce(connector)
    app.task(name=TASK, pass_context=True)(copy_group)
    app.task(name=SIGN_OFF_TASK, pass_context=True)(sign_off_task)
    return app


async def apply_schema(url: str, password: Secret | None) -> None:
    """procrastinate's schema and the group table, once (concurrent callers wait; a server
    that is not reachable yet is waited for, up to ``outage_s``)."""

    async def queue_schema() -> None:
        app = make_app(url, password)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()

    try:
        await GroupStore(url, password, outage_s=outage_s()).prepare(queue_schema)
    except exceptions.ProcrastinateException as exc:
        raise StateError(f"state store {url}: {explain(exc)}") from exc
