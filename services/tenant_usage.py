"""A tenant's usage of its plan, measured through a session of its store: the request's own (its
settings page), or, for the landlord's tenant page, one from entering the tenant read-only through
the process's store connections, as a request into it would. Every measure is kept as the day's
sample (services.usage_history), and the workers measure every active tenant once a day."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.db import Database
from services.layers.catalogue import load_catalogue
from services.models import Job, Tenant, TenantStatus
from services.models.types import utcnow
from services.settings import Settings
from services.tenancy.connections import TenantConnections
from services.tenancy.entry import enter_tenant
from services.tenancy.stores import location_of
from services.tenant_data.changes import tenant_record_schema
from services.tenant_settings import keep_clock, read_settings
from services.usage import Usage, measure_usage
from services.usage_history import remember_usage

log = logging.getLogger(__name__)


async def measure_tenant_usage(
    landlord: AsyncSession, settings: Settings, tenant: Tenant, data: AsyncSession
) -> Usage:
    """The tenant's usage of its plan, its rows counted through `data`, a session of its store;
    kept as today's sample, with `landlord`'s transaction."""
    usage = await measure_usage(
        landlord,
        data,
        tenant,
        location=location_of(settings, tenant),
        catalogue=load_catalogue(settings.layers_dir),
        schema=await tenant_record_schema(landlord, settings, tenant, data),
    )
    await remember_usage(landlord, tenant.id, usage, utcnow().date())
    return usage


async def usage_from_outside(
    landlord: AsyncSession, settings: Settings, tenant: Tenant, connections: TenantConnections
) -> Usage | None:
    """The tenant's usage of its plan; None while it has no store in service to measure."""
    if tenant.status != TenantStatus.ACTIVE or tenant.schema_snapshot_id is None:
        return None
    location = location_of(settings, tenant)
    async with (
        enter_tenant(tenant.id, location, connections=connections, writes=False) as entered,
        entered.session() as data,
    ):
        return await measure_tenant_usage(landlord, settings, tenant, data)


# The daily round ----------------------------------------------------------------------------------

SAMPLE_USAGE = "sample_usage"


async def request_due_usage_round(database: Database, settings: Settings) -> Job | None:
    """The round of every active tenant, when its slot has come (every `usage_round_hours`)."""
    return await jobs.record_when_due(
        database,
        SAMPLE_USAGE,
        settings.usage_round_hours,
        lambda session: jobs.record_job(session, SAMPLE_USAGE),
    )


@jobs.job_handler(SAMPLE_USAGE)
async def sample_every_tenant(database: Database, job: Job, settings: Settings) -> None:
    """Every active tenant measured and kept as today's sample, one after the other (its clock
    kept in line with its settings on the way); a tenant that cannot be measured is left for
    tomorrow (logged), the others are not held up by it."""
    async with database.session() as session:
        tenant_ids = list(
            await session.scalars(
                select(Tenant.id).where(
                    Tenant.status == TenantStatus.ACTIVE, Tenant.schema_snapshot_id.is_not(None)
                )
            )
        )
    for tenant_id in tenant_ids:
        try:
            async with database.session() as landlord:
                tenant = await landlord.get_one(Tenant, tenant_id)
                async with (
                    enter_tenant(tenant_id, location_of(settings, tenant), writes=False) as entered,
                    entered.session() as data,
                ):
                    await measure_tenant_usage(landlord, settings, tenant, data)
                    await keep_clock(landlord, tenant_id, (await read_settings(data, tenant)).timezone)
        except Exception:
            log.exception("could not measure the usage of tenant %s; trying again tomorrow", tenant_id)
