"""What the commands that act on the landlord share (rollouts, moves): the options selecting a
fleet's tenants; the landlord database,
refused while its migrations are behind; its jobs sent to the workers when a request commits, or,
with the embedded broker, left for the command to run here (and run here, its steps said); and
the operator as the trail names them."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services import jobs
from services.audit import Caller, command_line_actor
from services.db import Database
from services.errors import DomainError
from services.layers.landlord import landlord_is_current
from services.models import Job, JobStatus
from services.selection import Selection
from services.settings import Settings
from services.tenancy.context import tenant_context
from workers.runner import JobQueue


async def open_landlord(settings: Settings) -> Database:
    database = Database(settings.database_url)
    if not await landlord_is_current(settings, database):
        await database.dispose()
        raise DomainError("The landlord database is not up to date: run `tenantry migrate` first.")
    return database


@asynccontextmanager
async def landlord_sending_jobs(settings: Settings) -> AsyncIterator[tuple[Database, JobQueue | None]]:
    """The landlord database, its jobs sent to the workers on commit; with the embedded broker no
    queue (None): the jobs are left for this process to run."""
    database = await open_landlord(settings)
    queue = None if settings.broker_is_embedded else JobQueue(settings)
    if queue is not None:
        jobs.send_jobs_on_commit(database, queue)
    try:
        yield database, queue
    finally:
        if queue is not None:
            queue.stop()
        await database.dispose()


def operator() -> Caller:
    """Whoever runs the command, as the trail names them."""
    return Caller(command_line_actor())


def add_selection_options(parser: argparse.ArgumentParser, *, servers_flag: str, servers_help: str) -> None:
    """The repeatable options that select a fleet command's tenants (read by `selection_of`); its
    servers under `servers_flag` (a move plan's `--server` names where the tenants go)."""
    for criterion in ("template", "module", "plan", "isolation", "tenant"):
        parser.add_argument(
            f"--{criterion}",
            action="append",
            default=[],
            help=f"only tenants with this {criterion} (repeatable)",
        )
    parser.add_argument(
        servers_flag,
        dest="selected_servers",
        action="append",
        default=[],
        metavar="SERVER",
        help=servers_help,
    )


def selection_of(args: argparse.Namespace) -> Selection:
    return Selection(
        templates=tuple(args.template),
        modules=tuple(args.module),
        plans=tuple(args.plan),
        isolation=tuple(args.isolation),
        servers=tuple(args.selected_servers),
        tenants=tuple(args.tenant),
    )


def print_steps(job: Job) -> None:
    """Each step and what it did; a step that did not succeed, its status and error."""
    for step in job.steps:
        if step.status == JobStatus.SUCCEEDED:
            print(f"  {step.name}: {step.detail or 'done'}")
        else:
            print(f"  {step.name}: {step.status}" + (f": {step.error}" if step.error else ""))


async def run_job_here(database: Database, settings: Settings, job_id: int, tenant_id: int, what: str) -> Job:
    """A tenant's job run in this process, as a worker runs it, and its steps said; when it failed,
    one line on stderr naming `what` failed and the failed step's error."""
    # A failure is said from the job's record (the failed step's error): the traceback the job
    # logs as it fails would bury it in the operator's terminal.
    logging.disable(logging.ERROR)
    try:
        with tenant_context(tenant_id):
            await jobs.perform_job(database, job_id, settings)
    finally:
        logging.disable(logging.NOTSET)
    async with database.session() as session:
        job = await session.get_one(Job, job_id)
    print_steps(job)
    if job.status != JobStatus.SUCCEEDED:
        failed = next((step for step in job.steps if step.status == JobStatus.FAILED), None)
        said = f" at its {failed.name} step: {failed.error}" if failed is not None else f": {job.error}"
        print(f"tenantry: {what} failed{said}", file=sys.stderr)
    return job
