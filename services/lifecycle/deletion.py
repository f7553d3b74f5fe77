"""Deleting a tenant, so that nothing is lost by mistake:

1. Asked for by the platform's staff, who type the tenant's slug to confirm: the tenant is closed
   at once (status `archived`: nothing its people write can miss the backup) and a deletion job is
   recorded (`tenant.delete`).
2. The job takes the tenant's lock, a backup of its store and verifies it, then sets when the
   store may go: `delete_after`, the grace period from now. A failure deletes nothing: the tenant
   is open again as it was, and nothing is ever dropped without that verified backup.
3. Until the store is dropped, the deletion can be undone (`tenant.undelete`): the tenant is as it
   was, active, or suspended with its reason.
4. Once the grace period is over, the workers' sweep records a drop job (`request_due_drops`):
   the store is dropped (a shared store's rows of the tenant removed), its people's memberships
   and its tokens go, and the tenant is `deleted` (`tenant.drop`). Its backups stay: the verified
   one can be restored into a new tenant."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.audit import Actor, Caller, record, record_by
from services.backups.safety import SAFETY_BACKUP_ID, record_safety_backup, safety_backup_steps, safety_run
from services.backups.steps import record_backup_failure
from services.db import Database
from services.errors import Conflict, InvalidInput
from services.jobs import StepFunction
from services.models import ApiToken, Job, JobStatus, Membership, Tenant, TenantStatus
from services.models.types import utcnow
from services.server_limits import ServerWork
from services.settings import Settings
from services.store_jobs import LOCK_STEP, StoreJob
from services.tenancy.stores import drop_store, location_of, remove_tenant_rows

DELETE_TENANT = "delete_tenant"
DROP_STORE = "drop_store"
SCHEDULE_DROP_STEP = "schedule drop"
#: Who drops a store once its grace period is over, as the audit trail names it.
GRACE_PERIOD = Actor(email="system:deletion")
#: After a failed drop, when the sweep tries again.
RETRY_DROP_AFTER = timedelta(hours=1)


async def request_deletion(session: AsyncSession, caller: Caller, tenant: Tenant, typed: str) -> Job:
    """Close the tenant and record its deletion job (`tenant.delete`). `typed` must be its slug.
    Refused for a tenant that is not active or suspended."""
    if typed.strip() != tenant.slug:
        raise InvalidInput(
            f"Type {tenant.slug} to confirm that {tenant.name} is to be deleted.", field="confirm"
        )
    if tenant.status not in (TenantStatus.ACTIVE, TenantStatus.SUSPENDED) or not tenant.store_name:
        raise Conflict(f"{tenant.name} is {tenant.status}; only an active or suspended tenant is deleted.")
    tenant.status = TenantStatus.ARCHIVED
    steps = [LOCK_STEP, *(name for name, _ in safety_backup_steps()), SCHEDULE_DROP_STEP]
    payload = {"requested_by": caller.actor.email}
    job = await jobs.record_job(session, DELETE_TENANT, tenant_id=tenant.id, payload=payload, steps=steps)
    await record_by(
        session, caller, "tenant.delete", tenant=tenant, detail=caller.with_token({"job": job.id})
    )
    return job


async def undo_deletion(session: AsyncSession, caller: Caller, tenant: Tenant) -> Tenant:
    """The tenant as it was before its deletion was asked for (`tenant.undelete`): active, or
    suspended with its reason. Refused once its store is being dropped or is gone, and while the
    deletion's backup is still being taken."""
    if tenant.status != TenantStatus.ARCHIVED:
        raise Conflict(f"{tenant.name} is {tenant.status}, not being deleted: there is nothing to undo.")
    under_way = await _unfinished(session, tenant, DELETE_TENANT, DROP_STORE)
    if under_way is not None and under_way.kind == DROP_STORE:
        raise Conflict(f"{tenant.name}'s store is being dropped; its deletion can no longer be undone.")
    if under_way is not None:
        raise Conflict(
            f"{tenant.name}'s backup is being taken (job #{under_way.id}); undo once it has finished."
        )
    tenant.status = TenantStatus.SUSPENDED if tenant.status_reason else TenantStatus.ACTIVE
    tenant.delete_after = None
    await record_by(session, caller, "tenant.undelete", tenant=tenant, detail=caller.with_token({}))
    return tenant


async def _unfinished(session: AsyncSession, tenant: Tenant, *kinds: str) -> Job | None:
    return await session.scalar(
        select(Job)
        .where(Job.tenant_id == tenant.id, Job.kind.in_(kinds), Job.status.in_(JobStatus.unfinished()))
        .order_by(Job.id.desc())
        .limit(1)
    )


async def deletion_backup_id(session: AsyncSession, tenant: Tenant) -> int | None:
    """The verified backup the tenant's latest deletion took, if it took one."""
    job = await session.scalar(
        select(Job)
        .where(Job.tenant_id == tenant.id, Job.kind == DELETE_TENANT)
        .order_by(Job.id.desc())
        .limit(1)
    )
    backup_id = job.payload.get(SAFETY_BACKUP_ID) if job is not None else None
    return int(backup_id) if backup_id is not None else None


# The deletion job ----------------------------------------------------------------------------------


class Deletion(StoreJob):
    """What every step of a deletion job works with."""


async def lock_for_deletion(run: Deletion, session: AsyncSession) -> str:
    """The tenant's lock, and the row of the backup taken next."""
    said = await run.take_lock("deletion", why=" with this tenant")
    tenant = await run.tenant(session)
    await record_safety_backup(run, session, tenant, f"deleting {tenant.slug} (job #{run.job_id})")
    return said


async def schedule_drop(run: Deletion, session: AsyncSession) -> str:
    """With the backup verified, when the store may be dropped."""
    tenant = await run.tenant(session)
    backup_id = (await run.payload(session))[SAFETY_BACKUP_ID]
    tenant.delete_after = utcnow() + timedelta(days=run.settings.deletion_grace_days)
    return (
        f"backup #{backup_id} holds its data; its store is dropped after "
        f"{tenant.delete_after:%Y-%m-%d %H:%M} UTC unless the deletion is undone before"
    )


DELETION_STEPS: list[tuple[str, StepFunction[Deletion]]] = [
    (LOCK_STEP, lock_for_deletion),
    *safety_backup_steps(),
    (SCHEDULE_DROP_STEP, schedule_drop),
]


async def _reopen(run: Deletion, failure: Exception) -> None:
    """A deletion whose backup failed deletes nothing: the backup is marked failed and the tenant
    is as it was before, open again (or suspended)."""
    async with run.landlord.session() as session:
        backup_id = (await run.payload(session)).get(SAFETY_BACKUP_ID)
        tenant = await run.tenant(session)
        if tenant.status == TenantStatus.ARCHIVED and tenant.delete_after is None:
            tenant.status = TenantStatus.SUSPENDED if tenant.status_reason else TenantStatus.ACTIVE
    if backup_id is not None and isinstance(failure, jobs.StepFailed):
        await record_backup_failure(safety_run(run, int(backup_id)), failure.error)


@jobs.job_handler(DELETE_TENANT, server_work=ServerWork.BACKUP)
async def delete_tenant(database: Database, job: Job, settings: Settings) -> None:
    await Deletion.of(database, job, settings).run_holding_the_lock(DELETION_STEPS, on_failure=_reopen)


# Dropping the store --------------------------------------------------------------------------------


async def request_due_drops(database: Database, *, now: datetime) -> list[Job]:
    """A drop job for each tenant whose grace period is over. Each tenant is claimed in one
    statement (its `delete_after` cleared), so that of the workers looking at once one records it."""
    recorded = []
    async with database.session() as session:
        due = await session.scalars(
            select(Tenant.id).where(Tenant.status == TenantStatus.ARCHIVED, Tenant.delete_after <= now)
        )
        for tenant_id in list(due):
            claimed = await session.execute(
                update(Tenant)
                .where(Tenant.id == tenant_id, Tenant.delete_after.is_not(None))
                .values(delete_after=None)
            )
            if claimed.rowcount:  # type: ignore[attr-defined]
                recorded.append(
                    await jobs.record_job(
                        session, DROP_STORE, tenant_id=tenant_id, steps=[LOCK_STEP, "drop", "close"]
                    )
                )
    return recorded


class Drop(StoreJob):
    """What every step of a drop job works with."""


async def lock_for_drop(run: Drop, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    if tenant.status != TenantStatus.ARCHIVED:
        raise Conflict(
            f"{tenant.name} is {tenant.status} now: its deletion was undone, and nothing is dropped."
        )
    return await run.take_lock("deletion", why=" with this tenant")


async def drop(run: Drop, session: AsyncSession) -> str:
    """The store dropped, or in a shared store the tenant's rows removed (again, after a crash:
    both are idempotent)."""
    tenant = await run.tenant(session)
    location = location_of(run.settings, tenant)
    if location.is_shared:
        await remove_tenant_rows(location, tenant.id)
        return "its rows are gone from the shared store"
    await drop_store(location)
    return f"its store {location.name} is gone"


async def close(run: Drop, session: AsyncSession) -> str:
    """Nobody gets in any more: memberships and tokens go, and the tenant is deleted."""
    tenant = await run.tenant(session)
    members = await session.execute(delete(Membership).where(Membership.tenant_id == tenant.id))
    await session.execute(
        update(ApiToken)
        .where(ApiToken.tenant_id == tenant.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    tenant.status, tenant.store_name = TenantStatus.DELETED, None
    backup_id = await deletion_backup_id(session, tenant)
    detail = {"job": run.job_id, "backup": backup_id}
    await record(
        session,
        action="tenant.drop",
        actor=GRACE_PERIOD,
        tenant_id=tenant.id,
        target=tenant.slug,
        detail=detail,
    )
    return f"{members.rowcount} membership(s) ended; {tenant.slug} is deleted"  # type: ignore[attr-defined]


async def _drop_again_later(run: Drop, failure: Exception) -> None:
    """A failed drop is tried again by a later sweep; the store, if still there, is untouched."""
    async with run.landlord.session() as session:
        tenant = await run.tenant(session)
        if tenant.status == TenantStatus.ARCHIVED:
            tenant.delete_after = utcnow() + RETRY_DROP_AFTER


@jobs.job_handler(DROP_STORE, server_work=ServerWork.MIGRATE)
async def drop_tenant_store(database: Database, job: Job, settings: Settings) -> None:
    steps: list[tuple[str, StepFunction[Drop]]] = [
        (LOCK_STEP, lock_for_drop),
        ("drop", drop),
        ("close", close),
    ]
    await Drop.of(database, job, settings).run_holding_the_lock(steps, on_failure=_drop_again_later)
