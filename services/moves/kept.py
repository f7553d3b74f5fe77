"""The store a tenant moved out of is kept for TENANTRY_MOVE_RETENTION_DAYS, so that it can move
back to it; then the workers' sweep records a `drop_left_store` job for it (`request_due_drops`),
which drops it (from a shared store, the tenant's rows) unless the tenant is in it again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.db import Database
from services.jobs import StepFunction
from services.models import Job, OldStore, TenantMove
from services.server_limits import ServerWork
from services.settings import Settings
from services.store_jobs import LOCK_STEP, StoreJob
from services.tenancy.stores import drop_store, location_of, remove_tenant_rows, stored_location

DROP_LEFT_STORE = "drop_left_store"


async def request_due_drops(database: Database, *, now: datetime) -> list[Job]:
    """A drop job for each store left by a move whose retention is over. Each is claimed in one
    statement (its `kept_until` cleared), so that of the workers looking at once one records it."""
    recorded = []
    async with database.session() as session:
        due = await session.execute(
            select(TenantMove.id, TenantMove.tenant_id).where(
                TenantMove.old_store == OldStore.KEPT, TenantMove.kept_until <= now
            )
        )
        for move_id, tenant_id in list(due):
            claimed = await session.execute(
                update(TenantMove)
                .where(TenantMove.id == move_id, TenantMove.kept_until.is_not(None))
                .values(kept_until=None)
            )
            if claimed.rowcount:  # type: ignore[attr-defined]
                job = await jobs.record_job(
                    session,
                    DROP_LEFT_STORE,
                    tenant_id=tenant_id,
                    payload={"move_id": move_id},
                    steps=[LOCK_STEP, "drop"],
                )
                recorded.append(job)
    return recorded


@dataclass
class DropLeft(StoreJob):
    move_id: int = 0

    @classmethod
    def named_in(cls, payload: dict[str, Any]) -> dict[str, Any]:
        return {"move_id": int(payload["move_id"])}


async def lock(run: DropLeft, session: AsyncSession) -> str:
    return await run.take_lock("move", why=" with this tenant")


async def drop(run: DropLeft, session: AsyncSession) -> str:
    """The store dropped, or from a shared store the tenant's rows removed; neither when the tenant
    is in that store again (both idempotent after a crash)."""
    tenant, move = await run.tenant(session), await session.get_one(TenantMove, run.move_id)
    left = stored_location(
        run.settings, move.from_backend, move.from_isolation, move.from_store, move.from_server
    )
    in_use = tenant.store_name is not None and location_of(run.settings, tenant).key == left.key
    if move.old_store == OldStore.IN_USE or in_use:
        move.old_store = OldStore.IN_USE
        return f"{tenant.slug} is in {left.name} again: nothing is dropped"
    if left.is_shared:
        await remove_tenant_rows(left, tenant.id)
        said = f"{tenant.slug}'s rows left in the shared store {left.name} are gone"
    else:
        await drop_store(left)
        said = f"the store {tenant.slug} left, {left.name}, is gone"
    move.old_store = OldStore.DROPPED
    return said


@jobs.job_handler(DROP_LEFT_STORE, server_work=ServerWork.MIGRATE)
async def drop_left_store(database: Database, job: Job, settings: Settings) -> None:
    steps: list[tuple[str, StepFunction[DropLeft]]] = [(LOCK_STEP, lock), ("drop", drop)]
    await DropLeft.of(database, job, settings).run_holding_the_lock(steps)
