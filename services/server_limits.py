"""At most so many jobs of one kind of store work at once on one database server: backups,
restores and migrations (TENANTRY_SERVER_JOBS, by default 4, 2 and 4), so that a fleet operation
never takes all of a server's connections, and one kind of work never crowds out the others.

A running job names the server it works on (`jobs.server`); the room left on a server is counted
from the landlord's running jobs (their lease alive) of the same kind of work. A tenant's job is
held back when it is claimed (services.jobs: it waits in the broker, holding no worker); a
rollout's lane, which moves from tenant to tenant, waits for room on each tenant's server before
it starts on it, and lets go of the server when it is done with the tenant. The same count serves
both, so rollouts and everything else share one limit per server. SQLite stores are all on one
server, "local": this machine's disk.

Deciding is serialised per server: on PostgreSQL by an advisory lock on the server's name, held to
the end of the deciding transaction; on SQLite by the database's write lock, which the deciding
UPDATE takes."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.db import Database
from services.errors import InvalidSetting
from services.models import Job, JobStatus
from services.models.types import utcnow


class ServerWork(enum.StrEnum):
    BACKUP = "backup"
    RESTORE = "restore"
    MIGRATE = "migrate"


#: Jobs of each kind of work at once on one server, unless TENANTRY_SERVER_JOBS says otherwise.
SERVER_JOBS: Mapping[ServerWork, int] = {ServerWork.BACKUP: 4, ServerWork.RESTORE: 2, ServerWork.MIGRATE: 4}
#: How often a lane waiting for room on a server looks again.
POLL_SECONDS = 0.25

_WORDS = {ServerWork.BACKUP: "backup", ServerWork.RESTORE: "restore", ServerWork.MIGRATE: "migration"}


def server_jobs_from_setting(variable: str, listed: str) -> dict[ServerWork, int]:
    """`backup=4,restore=2,migrate=4`; a kind left out keeps its default."""
    found = dict(SERVER_JOBS)
    for part in filter(None, (piece.strip() for piece in listed.split(","))):
        kind, _, number = (piece.strip() for piece in part.partition("="))
        if kind not in ServerWork.__members__.values() or not number.isdigit() or int(number) < 1:
            raise InvalidSetting(
                f"{variable} is a list like 'backup=4,restore=2,migrate=4' (jobs at once on one "
                f"database server, 1 or more); {part!r} is not one of those."
            )
        found[ServerWork(kind)] = int(number)
    return found


def server_jobs_as_setting(limits: Mapping[ServerWork, int]) -> str:
    return ",".join(f"{kind}={number}" for kind, number in limits.items())


class ServerFull(Exception):
    """The server has no room for another job of this kind of work: the job waits."""


def room_on(
    server: str, kinds: Collection[str], limit: int, now: datetime, job_id: int
) -> ColumnElement[bool]:
    """Fewer than `limit` jobs of `kinds` other than `job_id` run on `server` (lease alive)."""
    running = aliased(Job)
    count = (
        select(func.count())
        .where(running.server == server, running.kind.in_(kinds), running.status == JobStatus.RUNNING)
        .where(running.lease_expires_at >= now, running.id != job_id)
        .scalar_subquery()
    )
    return count < limit


async def decide_alone(session: AsyncSession, server: str) -> None:
    """Until the session's transaction ends, no other transaction decides for `server`."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('tenantry.server.' || :server))"), {"server": server}
        )


async def wait_for_room(
    database: Database,
    job_id: int,
    server: str,
    work: ServerWork,
    kinds: Collection[str],
    limit: int,
    *,
    waiting: Callable[[str], Awaitable[None]],
    patience: float,
) -> float:
    """The running job `job_id` takes room on `server` for its work, waiting while there is none
    (`waiting` is told so, in words, each time it looks). Returns the seconds waited; ServerFull
    once `patience` runs out."""
    started = time.monotonic()
    said = False
    while True:
        async with database.session() as session:
            await decide_alone(session, server)
            taken = await session.execute(
                update(Job)
                .where(Job.id == job_id, room_on(server, kinds, limit, utcnow(), job_id))
                .values(server=server)
            )
            if taken.rowcount:  # type: ignore[attr-defined]
                return time.monotonic() - started
        waited = time.monotonic() - started
        full = f"{server} runs at most {limit} {_WORDS[work]}{'' if limit == 1 else 's'} at once, and has that many running"
        if waited >= patience:
            raise ServerFull(f"waited {waited:.0f} s for room on {full}")
        if not said:
            await waiting(f"waiting for room: {full}")
            said = True
        await asyncio.sleep(POLL_SECONDS)


async def leave_server(session: AsyncSession, job_id: int) -> None:
    """The running job is done on its server for now (a lane between tenants)."""
    await session.execute(update(Job).where(Job.id == job_id).values(server=None))
