"""Driving provisioning the way a worker does, in this process: a landlord database, tenants
requested through services.provisioning, their jobs performed inside their tenant's context, and
what a landlord admin then sees (the tenant, its job and steps, its history, its snapshot, its
store). Custom layers are written into a copy of layers/ the way developers write them."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, text

from services import jobs
from services.db import Database
from services.layers.catalogue import Catalogue, load_catalogue
from services.layers.landlord import migrate_landlord
from services.layers.snapshot import VERSION_TABLE_PREFIX, take_snapshot
from services.models import IsolationMode, Job, JobStep, MigrationHistory, SchemaSnapshot, Tenant
from services.provisioning import custom as _custom_jobs  # noqa: F401  (registers the custom job kinds)
from services.provisioning.tenants import TenantRequest, request_tenant
from services.settings import PROJECT_ROOT, Settings
from services.tenancy.context import tenant_context
from services.tenancy.stores import SQLITE, StoreLocation, copy_sqlite_file, location_of, store_exists
from tests.support import installation_settings, landlord_copy, requires_postgres

T = TypeVar("T")

LAYERS = PROJECT_ROOT / "layers"


def catalogue() -> Catalogue:
    return load_catalogue(LAYERS)


@dataclass(frozen=True)
class Installation:
    """One Tenantry installation: its settings and the isolation its tenants are given."""

    settings: Settings
    isolation: str

    def with_layers(self, layers_dir: Path) -> Installation:
        return replace(self, settings=replace(self.settings, layers_dir=layers_dir))

    def run(self, scenario: Callable[[Landlord], Awaitable[T]]) -> T:
        async def go() -> T:
            database = Database(self.settings.database_url)
            try:
                return await scenario(Landlord(database, self.settings, self.isolation))
            finally:
                await database.dispose()

        return asyncio.run(go())


@dataclass
class Landlord:
    """The landlord database of an installation, seen through the services a worker and the
    landlord pages use."""

    database: Database
    settings: Settings
    isolation: str

    def with_settings(self, **changes: Any) -> Landlord:
        return Landlord(self.database, replace(self.settings, **changes), self.isolation)

    async def request(
        self,
        slug: str,
        template: str = "political_party",
        modules: list[str] | None = None,
        *,
        name: str | None = None,
    ) -> tuple[Tenant, Job]:
        """What the "new tenant" form does; the template's default modules unless told."""
        if modules is None:
            modules = list(load_catalogue(self.settings.layers_dir).template(template).default_modules)
        request = TenantRequest(
            slug, name or slug.replace("-", " ").title(), template, modules, self.isolation
        )
        async with self.database.session() as session:
            requested = await request_tenant(session, self.settings, request)
        return requested.tenant, requested.job

    async def perform(self, job_id: int, tenant_id: int | None) -> Job:
        """What a worker does with a delivered job id: run it inside its tenant's context."""
        with tenant_context(tenant_id):
            await jobs.perform_job(self.database, job_id, self.settings)
        return await self.job(job_id)

    async def provision(self, slug: str, *args: Any, **kwargs: Any) -> tuple[Tenant, Job]:
        tenant, job = await self.request(slug, *args, **kwargs)
        job = await self.perform(job.id, tenant.id)
        return await self.tenant(tenant.id), job

    async def tenant(self, tenant_id: int) -> Tenant:
        async with self.database.session() as session:
            return await session.get_one(Tenant, tenant_id)

    async def job(self, job_id: int) -> Job:
        async with self.database.session() as session:
            return await session.get_one(Job, job_id)

    async def steps(self, job_id: int) -> dict[str, JobStep]:
        job = await self.job(job_id)
        return {step.name: step for step in job.steps}

    async def history(self, tenant_id: int) -> list[tuple[str, str, str, str]]:
        """The tenant's migration history, oldest first: (layer, revision, direction, outcome)."""
        async with self.database.session() as session:
            rows = await session.scalars(
                select(MigrationHistory)
                .where(MigrationHistory.tenant_id == tenant_id)
                .order_by(MigrationHistory.id)
            )
            return [(row.layer, row.revision, row.direction, row.outcome) for row in rows]

    async def snapshots(self, tenant_id: int) -> list[SchemaSnapshot]:
        async with self.database.session() as session:
            statement = select(SchemaSnapshot).where(SchemaSnapshot.tenant_id == tenant_id)
            return list(await session.scalars(statement.order_by(SchemaSnapshot.id)))

    async def count(self, model: type[Any]) -> int:
        async with self.database.session() as session:
            return await session.scalar(select(func.count()).select_from(model)) or 0

    def store(self, tenant: Tenant) -> StoreLocation:
        return location_of(self.settings, tenant)


async def store_snapshot(location: StoreLocation) -> tuple[dict[str, Any], str]:
    """The store's schema as it actually is, and its hash."""
    store = location.open()
    try:
        return await take_snapshot(store)
    finally:
        await store.dispose()


async def business_tables(location: StoreLocation) -> set[str]:
    description, _ = await store_snapshot(location)
    return {name for name in description["tables"] if not name.startswith(VERSION_TABLE_PREFIX)}


async def query(location: StoreLocation, sql: str) -> list[tuple[Any, ...]]:
    store = location.open()
    try:
        async with store.engine.connect() as connection:
            return [tuple(row) for row in await connection.execute(text(sql))]
    finally:
        await store.dispose()


async def execute(location: StoreLocation, sql: str) -> None:
    store = location.open()
    try:
        async with store.engine.begin() as connection:
            await connection.execute(text(sql))
    finally:
        await store.dispose()


async def store_is_gone(location: StoreLocation) -> bool:
    if location.backend == SQLITE:
        files = [Path(location.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
        return not any([await asyncio.to_thread(file.exists) for file in files])
    return not await store_exists(location)


# Layers on disk -----------------------------------------------------------------------------------


def copy_layers(folder: Path) -> Path:
    """A copy of layers/ this test may add custom layers to."""
    target = folder / "layers"
    shutil.copytree(LAYERS, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def revision_id(slug: str, number: int) -> str:
    return f"{slug.replace('-', '_')}_{number:04d}"


def write_custom_revision(
    layers: Path, slug: str, number: int, title: str, upgrade: str, downgrade: str
) -> str:
    """Write layers/custom/<slug>/versions/<slug>_<number>_<title>.py as a developer would: its
    revision follows revision number-1. `upgrade` and `downgrade` are the functions' bodies."""
    revision = revision_id(slug, number)
    previous = revision_id(slug, number - 1) if number > 1 else None
    write_revision(layers / "custom" / slug, revision, previous, title, upgrade, downgrade)
    return revision


def write_revision(
    layer: Path,
    revision: str,
    previous: str | None,
    title: str,
    upgrade: str,
    downgrade: str,
    *,
    declare: str = "",
) -> None:
    """Write a revision into the layer at `layer` (a folder of a copy of layers/, for example
    layers/modules/events) as a developer would: `revision` follows `previous`. `upgrade` and
    `downgrade` are the functions' bodies; `declare`, lines after Alembic's own (`needs_quiet = True`)."""

    def body(code: str) -> str:
        return textwrap.indent(textwrap.dedent(code).strip(), "    ")

    source = f"""\
\"\"\"{title}.

Revision ID: {revision}
Revises: {previous or ""}
\"\"\"

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {previous!r}
branch_labels = None
depends_on = None
{declare}


def upgrade() -> None:
{body(upgrade)}


def downgrade() -> None:
{body(downgrade)}
"""
    versions = layer / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    (versions / f"{revision}_{title.lower().replace(' ', '_')}.py").write_text(source)


# PostgreSQL ---------------------------------------------------------------------------------------


# Installations ------------------------------------------------------------------------------------

SQLITE_DATABASE = "sqlite-database"
POSTGRES_DATABASE = "postgres-database"
POSTGRES_SCHEMA = "postgres-schema"
SQLITE_SHARED = "sqlite-shared"
POSTGRES_SHARED = "postgres-shared"

_SQLITE = pytest.param(SQLITE_DATABASE, id=SQLITE_DATABASE)
_DATABASES = pytest.param(POSTGRES_DATABASE, id=POSTGRES_DATABASE, marks=requires_postgres)
_SCHEMAS = pytest.param(POSTGRES_SCHEMA, id=POSTGRES_SCHEMA, marks=requires_postgres)
#: Tenants in SQLite files, in PostgreSQL databases, in PostgreSQL schemas.
EVERY_MODE = [_SQLITE, _DATABASES, _SCHEMAS]
#: Tenants whose rows share one store: a SQLite file, a PostgreSQL database with row-level security.
SHARED_MODES = [
    pytest.param(SQLITE_SHARED, id=SQLITE_SHARED),
    pytest.param(POSTGRES_SHARED, id=POSTGRES_SHARED, marks=requires_postgres),
]
#: For what depends on the landlord's backend rather than on where the store is.
SQLITE_AND_POSTGRES_LANDLORDS = [_SQLITE, _DATABASES]
#: For migrations written by hand: a schema store is where a stray table name would escape.
SQLITE_AND_POSTGRES_SCHEMAS = [_SQLITE, _SCHEMAS]


async def migrate(settings: Settings) -> None:
    database = Database(settings.database_url)
    try:
        await migrate_landlord(settings, database)
    finally:
        await database.dispose()


@contextmanager
def fresh_installation(mode: str, folder: Path, pristine: Path | str) -> Iterator[Installation]:
    """A new installation in `folder`, its landlord copied from `pristine` (a migrated landlord:
    a SQLite file, or the name of a PostgreSQL database). With PostgreSQL the landlord's server
    is the tenant server (as when TENANTRY_TENANT_POSTGRES_URL is not set)."""
    if mode in (SQLITE_DATABASE, SQLITE_SHARED):
        assert isinstance(pristine, Path)
        folder.mkdir(parents=True, exist_ok=True)
        copy_sqlite_file(pristine, folder / "landlord.db")
        url = f"sqlite+aiosqlite:///{folder / 'landlord.db'}"
        isolation = IsolationMode.SHARED if mode == SQLITE_SHARED else IsolationMode.DATABASE
        yield Installation(installation_settings(folder / "data", url), isolation)
        return
    assert isinstance(pristine, str)
    isolation = {
        POSTGRES_DATABASE: IsolationMode.DATABASE,
        POSTGRES_SCHEMA: IsolationMode.SCHEMA,
        POSTGRES_SHARED: IsolationMode.SHARED,
    }[mode]
    with landlord_copy(pristine) as url:
        yield Installation(installation_settings(folder / "data", url), isolation)
