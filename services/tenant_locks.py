"""One store job per tenant at a time (a backup, a restore, a module change): the job working on a
tenant's store holds a row in `tenant_locks` (the tenant is its primary key, so a second holder is
refused by the database itself). A job that finds the lock taken waits (services.store_jobs says
for which job in its lock step); a lock left by a job that has finished is stale and taken over. A
job whose worker died keeps its lock: it resumes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.errors import Conflict
from services.models import Job, TenantLock
from services.models.types import utcnow

#: How often a waiting job looks at the lock again.
POLL_SECONDS = 0.25
#: How long a job waits for another before it gives up (and fails, saying why). Below Dramatiq's
#: ten-minute time limit for an actor, so the wait ends in a message rather than an interruption.
PATIENCE_SECONDS = 5 * 60.0


class TenantBusy(Conflict):
    """Another backup or restore held the tenant's lock for longer than this job would wait."""


async def try_tenant_lock(database: Database, tenant_id: int, job_id: int, purpose: str) -> Job | None:
    """Take the tenant's lock for the job (or find it already ours): None. Otherwise the job
    holding it."""
    async with database.session() as session:
        if await take_tenant_lock_if_free(session, tenant_id, job_id, purpose):
            return None
        lock = await session.get(TenantLock, tenant_id)
        if lock is not None and lock.job_id == job_id:
            return None
        if lock is not None:
            holder = await session.get(Job, lock.job_id)
            if holder is not None and not holder.finished:
                return holder
            await session.execute(  # stale: its job ended without letting go
                delete(TenantLock).where(TenantLock.tenant_id == tenant_id, TenantLock.job_id == lock.job_id)
            )
        try:
            async with session.begin_nested():
                session.add(TenantLock(tenant_id=tenant_id, job_id=job_id, purpose=purpose))
        except IntegrityError:  # another job took it between our look and our insert
            taken = await session.scalar(
                select(TenantLock)
                .where(TenantLock.tenant_id == tenant_id)
                .execution_options(populate_existing=True)
            )
            return await session.get(Job, taken.job_id) if taken is not None else None
        return None


async def take_tenant_lock_if_free(session: AsyncSession, tenant_id: int, job_id: int, purpose: str) -> bool:
    """The lock taken for the job in one statement, with the rest of `session`'s transaction,
    when nobody holds it (the usual case). False when anybody does, the job itself included."""
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    row = {"tenant_id": tenant_id, "job_id": job_id, "purpose": purpose, "acquired_at": utcnow()}
    taken = await session.execute(insert(TenantLock).values(row).on_conflict_do_nothing())
    return bool(taken.rowcount)  # type: ignore[attr-defined]


async def acquire_tenant_lock(
    database: Database,
    tenant_id: int,
    job_id: int,
    purpose: str,
    *,
    waiting: Callable[[Job], Awaitable[None]],
    patience: float = PATIENCE_SECONDS,
) -> float:
    """Take the tenant's lock, waiting while another job holds it (`waiting` is told which, each
    time it looks). Returns the seconds waited; raises TenantBusy when patience runs out."""
    started = time.monotonic()
    while (holder := await try_tenant_lock(database, tenant_id, job_id, purpose)) is not None:
        waited = time.monotonic() - started
        if waited >= patience:
            raise TenantBusy(
                f"Waited {waited:.0f} s for {holder.kind} job #{holder.id} to finish with this tenant; "
                "it is still running. Request it again when that job is done."
            )
        await waiting(holder)
        await asyncio.sleep(POLL_SECONDS)
    return time.monotonic() - started


async def release_tenant_lock(database: Database, tenant_id: int, job_id: int) -> None:
    async with database.session() as session:
        await let_go(session, tenant_id, job_id)


async def let_go(session: AsyncSession, tenant_id: int, job_id: int) -> None:
    """The job's lock on the tenant let go with the rest of `session`'s transaction."""
    await session.execute(
        delete(TenantLock).where(TenantLock.tenant_id == tenant_id, TenantLock.job_id == job_id)
    )
