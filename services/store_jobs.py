"""A store job: a job whose steps work on one tenant's store (provisioning, module changes, custom
layers, backups, restores, copies, moves). Its run is what every step is given:
the job, the tenant and where its store is, read from the job's row when the job starts. Rows are
read again in each step's own landlord session, so a step sees what the steps before it committed.

Backups, restores, module changes and moves hold the tenant's lock (services.tenant_locks) from their
first step, `lock`, to their end (`run_holding_the_lock`): one of them works on a tenant at a time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.jobs import KeepsPayload, StepFunction, run_steps, say_in_step
from services.models import Job, Tenant, TenantStatus
from services.settings import Settings
from services.tenancy.barrier import wait_for_writes_in_flight
from services.tenancy.stores import StoreLocation, location_of, release_kept_stores
from services.tenant_locks import PATIENCE_SECONDS, acquire_tenant_lock, release_tenant_lock

#: The step of a store job that takes the tenant's lock.
LOCK_STEP = "lock"
#: The step after a job closes the tenant to writes, before it copies the store.
WRITES_DRAINED = "writes drained"


@dataclass
class StoreJob(KeepsPayload):
    """What every step of one job on a tenant's store works with."""

    settings: Settings
    landlord: Database
    job_id: int
    tenant_id: int

    @classmethod
    def of(cls, database: Database, job: Job, settings: Settings) -> Self:
        """The run of `job`, over the tenant its row names (and what else its payload names for
        this kind of run)."""
        if job.tenant_id is None:
            raise ValueError(f"job #{job.id} ({job.kind}) names no tenant to work on")
        return cls(settings, database, job.id, job.tenant_id, **cls.named_in(job.payload))

    @classmethod
    def named_in(cls, payload: dict[str, Any]) -> dict[str, Any]:
        """The run's own fields, beyond the job's and the tenant's, as the job's payload names them."""
        return {}

    async def tenant(self, session: AsyncSession) -> Tenant:
        return await session.get_one(Tenant, self.tenant_id)

    def store(self, tenant: Tenant) -> StoreLocation:
        """Where the tenant's store is, as the landlord records it now."""
        return location_of(self.settings, tenant)

    async def take_lock(self, purpose: str, *, why: str, patience: float = PATIENCE_SECONDS) -> str:
        """The lock step's work: take the tenant's lock, saying in the step which job it waits for
        (and `why`) meanwhile. Says what it did."""

        async def waiting(holder: Job) -> None:
            detail = f"waiting for {holder.kind.replace('_', ' ')} job #{holder.id} to finish{why}"
            await say_in_step(self.landlord, self.job_id, LOCK_STEP, detail)

        waited = await acquire_tenant_lock(
            self.landlord, self.tenant_id, self.job_id, purpose, waiting=waiting, patience=patience
        )
        return f"tenant locked after waiting {waited:.1f} s" if waited >= 0.5 else "tenant locked"

    async def run_holding_the_lock(
        self,
        steps: Sequence[tuple[str, StepFunction[Self]]],
        *,
        on_failure: Callable[[Self, Exception], Awaitable[None]] | None = None,
    ) -> None:
        """Run the job's steps, and let go of the tenant's lock when they end, well or badly (after
        a failure, once `on_failure` has put back what it can). Not when the work is interrupted (a
        worker stopping raises no Exception): the job resumes later, past its lock step, and must
        still hold the lock then."""
        try:
            await run_steps(self.landlord, self.job_id, steps, self)
        except Exception as failure:
            try:
                if on_failure is not None:
                    await release_kept_stores()  # what puts the store back may swap or drop it
                    await on_failure(self, failure)
            finally:
                await release_tenant_lock(self.landlord, self.tenant_id, self.job_id)
            raise
        await release_tenant_lock(self.landlord, self.tenant_id, self.job_id)


async def writes_drained(run: StoreJob, session: AsyncSession) -> str:
    """The step after a job puts the tenant in maintenance and before it copies the store: every
    write let in before ends first (the tenant's write barrier, services.tenancy.barrier); later
    ones are refused with a 503."""
    tenant = await run.tenant(session)
    await wait_for_writes_in_flight(run.store(tenant), tenant.id)
    return "every write that began before the maintenance page has ended; later ones are refused"


def maintenance_until(done: str) -> StepFunction[StoreJob]:
    """The step that puts the tenant in maintenance (its portal's maintenance page, its API's 503)
    until `done` ("the move is done")."""

    async def maintenance_on(run: StoreJob, session: AsyncSession) -> str:
        tenant = await run.tenant(session)
        tenant.status = TenantStatus.MAINTENANCE
        return f"{tenant.slug} shows a maintenance page and its API answers 503: writes wait until {done}"

    return maintenance_on
