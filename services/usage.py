"""A tenant's usage against its plan: active people, storage, and the rows of each enabled module.

Storage is the space the tenant's data takes in its own store: the pages of its SQLite file in use
(a deleted row's space counts no more at once), or what its PostgreSQL database or schema takes on
disk (a deleted row's space there is reused by new rows, and given back to the disk only by a
`VACUUM FULL`). A tenant of a shared store has no store of its own to measure, so its storage is not
measured and its rows are what it uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.layers.catalogue import Catalogue, Layer
from services.layers.footprint import layer_tables
from services.models import Plan, Tenant
from services.modules.requests import module_tables
from services.people.people import count_active_people
from services.quotas import backups_by_hand
from services.tenancy.stores import SQLITE, StoreLocation
from services.tenant_data.records import RecordSchema

MEGABYTE = 1024 * 1024
_SCHEMA_SIZE = text(
    "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relkind = 'r'"
)
_DATABASE_SIZE = text("SELECT pg_database_size(current_database())")
_SQLITE_PAGES_IN_USE = text(
    "SELECT (page_count - freelist_count) * page_size "
    "FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()"
)


@dataclass(frozen=True)
class Allowance:
    """How much of something is used, and how much the plan allows (None: no limit)."""

    used: float
    limit: int | None

    @property
    def percent(self) -> int | None:
        if self.limit is None:
            return None
        if self.limit == 0:
            return 0 if self.used == 0 else 100
        return round(100 * self.used / self.limit)

    @property
    def reached(self) -> bool:
        return self.limit is not None and self.used >= self.limit


@dataclass(frozen=True)
class LayerRows:
    """The rows of one layer's tables (the template's, or one module's) visible in the scope."""

    layer: Layer
    tables: tuple[tuple[str, int], ...]

    @property
    def rows(self) -> int:
        return sum(rows for _, rows in self.tables)


@dataclass(frozen=True)
class Usage:
    plan: Plan
    people: Allowance
    modules: Allowance
    #: Backups asked for by hand in the last 24 hours, of the plan's a day.
    backups: Allowance
    #: Bytes the tenant's own store takes; None for a tenant of a shared store.
    storage_bytes: int | None
    layers: list[LayerRows]

    @property
    def storage(self) -> Allowance | None:
        """Megabytes used of the plan's; None when not measured."""
        if self.storage_bytes is None:
            return None
        return Allowance(self.storage_bytes / MEGABYTE, self.plan.max_storage_mb)


async def store_size(data: AsyncSession, location: StoreLocation) -> int | None:
    """Bytes the tenant's store takes, asked through its session; None for a shared store."""
    if location.is_shared:
        return None
    if location.backend == SQLITE:
        return int(await data.scalar(_SQLITE_PAGES_IN_USE) or 0)
    if location.schema is not None:
        return int(await data.scalar(_SCHEMA_SIZE, {"schema": location.schema}) or 0)
    return int(await data.scalar(_DATABASE_SIZE) or 0)


async def tables_by_layer(catalogue: Catalogue, tenant: Tenant) -> list[tuple[Layer, frozenset[str]]]:
    """The tables the tenant's template adds to the basic layer's, then those each of its enabled
    modules creates, in the order they apply."""
    template = catalogue.template(tenant.template)
    found = [
        (template, await layer_tables([catalogue.basic, template]) - await layer_tables([catalogue.basic]))
    ]
    for name in tenant.modules:
        if name in catalogue.modules:
            tables = await module_tables(catalogue, tenant.template, name)
            found.append((catalogue.modules[name], frozenset(tables)))
    return found


async def measure_usage(
    landlord: AsyncSession,
    data: AsyncSession,
    tenant: Tenant,
    *,
    location: StoreLocation,
    catalogue: Catalogue,
    schema: RecordSchema,
) -> Usage:
    """Usage against the tenant's plan. Rows are counted through `data`, the scoped session."""
    plan = await landlord.get_one(Plan, tenant.plan_key)
    layers = []
    for layer, names in await tables_by_layer(catalogue, tenant):
        counts = []
        for name in sorted(names & schema.tables.keys()):
            rows = await data.scalar(select(func.count()).select_from(schema.tables[name].model))
            counts.append((name, rows or 0))
        layers.append(LayerRows(layer, tuple(counts)))
    return Usage(
        plan=plan,
        people=Allowance(await count_active_people(landlord, tenant), plan.max_users),
        modules=Allowance(len(tenant.modules), plan.max_modules),
        backups=Allowance(len(await backups_by_hand(landlord, tenant)), plan.max_backups_per_day),
        storage_bytes=await store_size(data, location),
        layers=layers,
    )
