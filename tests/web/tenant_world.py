"""Real tenants for web tests: provisioned by the provisioning job, with units, people and rows
written through scoped tenant sessions, as the portal itself writes them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.db import Database
from services.models import Job, JobStatus, Tenant
from services.models.tenant import Unit
from services.modules.requests import request_disable
from services.people.people import add_person
from services.people.units import add_unit
from services.provisioning.tenants import TenantRequest, request_tenant
from services.settings import Settings
from services.tenancy.access import TENANT_ADMIN
from services.tenancy.context import Scope, tenant_context
from services.tenancy.sessions import scoped_session
from services.tenancy.stores import location_of
from services.tenant_data.records import record_schema
from tests.support import Credentials
from tests.workers.support import drop_tenant_databases

T = TypeVar("T")


@pytest.fixture(autouse=True)
def no_stores_left_behind(settings: Settings) -> Iterator[None]:
    """On PostgreSQL each tenant is a database beside the landlord's: dropped after each test of a
    module that imports this fixture."""
    yield
    drop_tenant_databases(settings.database_url)


async def _tenant_named(session: AsyncSession, slug: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    assert tenant is not None
    return tenant


def in_tenant(settings: Settings, slug: str, work: Callable[[AsyncSession, Any, Tenant], Awaitable[T]]) -> T:
    """What `work` returns, given a landlord session, a session of the tenant's store scoped to the
    tenant, and the tenant."""

    async def go() -> T:
        landlord = Database(settings.database_url)
        try:
            async with landlord.session() as session:
                tenant = await _tenant_named(session, slug)
                store = location_of(settings, tenant).open()
                try:
                    async with scoped_session(store.engine, Scope.of_tenant(tenant.id)) as data:
                        return await work(session, data, tenant)
                finally:
                    await store.dispose()
        finally:
            await landlord.dispose()

    return asyncio.run(go())


async def run_as_worker(landlord: Database, settings: Settings, job: Job) -> Job:
    """`job`, run here as a worker runs it; as it ended."""
    with tenant_context(job.tenant_id):
        await jobs.perform_job(landlord, job.id, settings)
    async with landlord.session() as session:
        return await session.get_one(Job, job.id)


def run_tenant_job(
    settings: Settings, slug: str, request: Callable[[AsyncSession, Tenant], Awaitable[Job]]
) -> Job:
    """The job `request` records for the tenant `slug`, run here as a worker runs it; as it ended."""

    async def go() -> Job:
        landlord = Database(settings.database_url)
        try:
            async with landlord.session() as session:
                job = await request(session, await _tenant_named(session, slug))
            return await run_as_worker(landlord, settings, job)
        finally:
            await landlord.dispose()

    return asyncio.run(go())


def provision(
    settings: Settings,
    slug: str,
    *,
    template: str = "community_group",
    isolation: str = "database",
    modules: list[str] | tuple[str, ...] = (),
) -> int:
    """A tenant built by the provisioning job, as a worker would build it; its id."""

    async def go() -> int:
        landlord = Database(settings.database_url)
        try:
            async with landlord.session() as session:
                tenant, job, _ = await request_tenant(
                    session,
                    settings,
                    TenantRequest(slug, slug.replace("-", " ").title(), template, list(modules), isolation),
                )
            done = await run_as_worker(landlord, settings, job)
            assert done.status == JobStatus.SUCCEEDED, done.error
            return tenant.id
        finally:
            await landlord.dispose()

    return asyncio.run(go())


def disable_module(settings: Settings, slug: str, module: str, *, keep_data: bool) -> None:
    """Disable `module` as a tenant admin's request and a worker do it (a backup first)."""

    async def disable(session: AsyncSession, tenant: Tenant) -> Job:
        return (await request_disable(session, settings, tenant, module, keep_data=keep_data)).job

    done = run_tenant_job(settings, slug, disable)
    assert done.status == JobStatus.SUCCEEDED, done.error


def add_units(settings: Settings, slug: str, names: list[tuple[str, str | None]]) -> dict[str, int]:
    """Units by (name, parent name); None for the parent means the root. Their ids by name."""

    async def work(_landlord: Any, data: Any, _tenant: Tenant) -> dict[str, int]:
        root = await data.scalar(select(Unit).where(Unit.parent_id.is_(None)))
        ids = {"root": root.id}
        for name, parent in names:
            ids[name] = (await add_unit(data, parent_id=ids[parent or "root"], name=name)).id
        return ids

    return in_tenant(settings, slug, work)


def add_member(
    settings: Settings,
    slug: str,
    email: str,
    *,
    role: str = "tenant_member",
    unit_ids: list[int] | None = None,
) -> Credentials:
    async def work(landlord: Any, data: Any, tenant: Tenant) -> Credentials:
        new = await add_person(
            landlord,
            data,
            tenant,
            email=email,
            display_name=email.split("@")[0],
            role=role,
            unit_ids=unit_ids or [],
        )
        return Credentials(new.user.email, new.password)

    return in_tenant(settings, slug, work)


def add_admin(settings: Settings, slug: str, email: str) -> Credentials:
    return add_member(settings, slug, email, role=TENANT_ADMIN)


def add_rows(settings: Settings, slug: str, table: str, rows: list[dict[str, Any]]) -> list[int]:
    """Rows of a template or module table, stamped by the scoped session; their ids."""

    async def work(landlord: Any, data: Any, tenant: Tenant) -> list[int]:
        schema = await record_schema(data, f"test-{tenant.id}-{table}")
        model = schema.table(table).model
        made: list[Any] = [model(**row) for row in rows]
        data.add_all(made)
        await data.flush()
        return [row.id for row in made]

    return in_tenant(settings, slug, work)
