"""Storage quotas: how much a tenant may keep. At its plan's storage, or at the rows its plan allows
a module or a table, new records and changes are refused with a sentence (`QuotaFull`); reading,
exporting and deleting go on, so the tenant can get back under. From 80 % its admins and the
landlord are warned.

Storage is the space the tenant's data takes in its own store (services.usage.store_size). A tenant
of a shared store has no store of its own to measure, so only its rows quotas apply. Rows are the
whole tenant's, whoever asks (a member who sees only some units fills the same quota)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups.archive import describe_size
from services.errors import Conflict
from services.layers.catalogue import Catalogue, LayerKind
from services.layers.ownership import TENANT_COLUMN
from services.models import Plan, Tenant
from services.recently_used import LeastRecentlyUsed
from services.tenancy.sessions import scope_of
from services.tenancy.stores import StoreLocation
from services.tenant_data.records import RecordSchema, RecordTable
from services.usage import MEGABYTE, Allowance, Usage, store_size, tables_by_layer

#: From this share of a quota on, the tenant's admins and the landlord are warned.
WARN_AT_PERCENT = 80


class QuotaFull(Conflict):
    """The tenant keeps all its plan allows (storage, or a module's or table's rows): new records
    and changes are refused until it is under."""


@dataclass(frozen=True)
class RowLimits:
    """The rows a plan allows: in each module (its tables together), in named modules, in named
    tables. Read from the plan's `row_limits`: {"each_module": n, "modules": {key: n}, "tables":
    {name: n}}, every part optional."""

    each_module: int | None = None
    modules: Mapping[str, int] = field(default_factory=dict)
    tables: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, plan: Plan) -> RowLimits:
        found: dict[str, Any] = plan.row_limits or {}
        return cls(found.get("each_module"), found.get("modules", {}), found.get("tables", {}))

    def __bool__(self) -> bool:
        return self.each_module is not None or bool(self.modules) or bool(self.tables)

    def of_module(self, name: str) -> int | None:
        return self.modules.get(name, self.each_module)

    def describe(self) -> str:
        """In words, for the plan's line on the landlord's tenant page."""
        said = [f"{self.each_module:,} rows in each module"] if self.each_module is not None else []
        said += [f"{limit:,} rows in {name}" for name, limit in {**self.modules, **self.tables}.items()]
        return ", ".join(said)


@dataclass(frozen=True)
class RowsQuota:
    """One rows quota that applies to a table: what it covers in words, its limit, its tables."""

    what: str
    limit: int
    tables: frozenset[str]


async def rows_quotas(catalogue: Catalogue, tenant: Tenant, table: str) -> list[RowsQuota]:
    """The rows quotas of the tenant's plan that a new row of `table` counts towards."""
    limits = RowLimits.of(tenant.plan)
    if not limits:
        return []
    found = []
    if table in limits.tables:
        found.append(RowsQuota(f"in the {table} table", limits.tables[table], frozenset([table])))
    for layer, tables in await tables_by_layer(catalogue, tenant):
        limit = limits.of_module(layer.name) if layer.kind is LayerKind.MODULE else None
        if limit is not None and table in tables:
            found.append(RowsQuota(f"in the {layer.title or layer.name} module", limit, tables))
    return found


async def tenant_rows(data: AsyncSession, table: RecordTable) -> int:
    """The whole tenant's rows of `table`, whatever part of it the session's scope sees."""
    columns = table.table.c
    counted = select(func.count()).select_from(table.table)
    if TENANT_COLUMN in columns:
        counted = counted.where(columns[TENANT_COLUMN] == scope_of(data.sync_session).tenant_id)
    return int(await data.scalar(counted) or 0)


async def check_storage(data: AsyncSession, tenant: Tenant, location: StoreLocation) -> None:
    """Refuse (QuotaFull) a write when the tenant's store holds all the storage its plan allows."""
    plan = tenant.plan
    if plan.max_storage_mb is None:
        return
    used = await store_size(data, location)
    if used is not None and used >= plan.max_storage_mb * MEGABYTE:
        raise QuotaFull(
            f"{tenant.name} keeps {describe_size(used)}, all the storage the {plan.name} plan allows "
            f"({plan.max_storage_mb:,} MB). New records and changes are refused until it is under: "
            "delete records it no longer needs, or ask for a larger plan. Reading, exporting and "
            "deleting keep working."
        )


class RecentRowCounts:
    """The rows each quota covers, as counted a moment ago. Counting grows with the tables (every
    row, on every new row), so a count far below its limit is used again for a few seconds, with
    one added for each row admitted since; near its limit, every new row is counted afresh. Several
    web processes may then overshoot a quota by a few rows, never by a tenth of it."""

    FRESH_SECONDS = 10.0

    def __init__(self, limit: int = 10_000) -> None:
        self._counts: LeastRecentlyUsed[tuple[str, int, str], tuple[float, int]] = LeastRecentlyUsed(limit)

    async def rows(self, data: AsyncSession, tenant: Tenant, quota: RowsQuota, schema: RecordSchema) -> int:
        key, now = _key(tenant, quota), time.monotonic()
        found = self._counts.get(key)
        if found is not None and now - found[0] < self.FRESH_SECONDS and found[1] < _far_below(quota.limit):
            return found[1]
        rows = 0
        for name in sorted(quota.tables & schema.tables.keys()):
            rows += await tenant_rows(data, schema.tables[name])
        self._counts.put(key, (now, rows))
        return rows

    def admitted(self, tenant: Tenant, quota: RowsQuota) -> None:
        found = self._counts.get(_key(tenant, quota))
        if found is not None:
            self._counts.put(_key(tenant, quota), (found[0], found[1] + 1))


def _key(tenant: Tenant, quota: RowsQuota) -> tuple[str, int, str]:
    """The tenant's quota, told apart by its store too (one process may serve several
    installations: the tests)."""
    return (tenant.store_name or "", tenant.id, quota.what)


def _far_below(limit: int) -> int:
    return limit - max(1, limit // 10)


_ROW_COUNTS = RecentRowCounts()


async def check_rows(
    data: AsyncSession, tenant: Tenant, catalogue: Catalogue, schema: RecordSchema, table: RecordTable
) -> None:
    """Refuse (QuotaFull) a new row of `table` when a rows quota it counts towards is full."""
    quotas = await rows_quotas(catalogue, tenant, table.name)
    for quota in quotas:
        rows = await _ROW_COUNTS.rows(data, tenant, quota, schema)
        if rows >= quota.limit:
            raise QuotaFull(
                f"The {tenant.plan.name} plan allows {quota.limit:,} rows {quota.what}, and "
                f"{tenant.name} has {rows:,}. Delete rows it no longer needs, or ask for a larger "
                "plan, before adding more."
            )
    for quota in quotas:
        _ROW_COUNTS.admitted(tenant, quota)


@dataclass(frozen=True)
class QuotaUse:
    """One quota of the tenant's plan, in words, and how much of it is used."""

    what: str
    allowance: Allowance
    unit: str = "rows"

    @property
    def warned(self) -> bool:
        percent = self.allowance.percent
        return percent is not None and percent >= WARN_AT_PERCENT


def storage_quotas_in_use(usage: Usage) -> list[QuotaUse]:
    """The tenant's storage and rows quotas, with what it keeps of each (rows counted in `usage`)."""
    found = [QuotaUse("Storage", usage.storage, "MB")] if usage.storage is not None else []
    limits = RowLimits.of(usage.plan)
    for entry in usage.layers:
        limit = limits.of_module(entry.layer.name) if entry.layer.kind is LayerKind.MODULE else None
        if limit is not None:
            found.append(
                QuotaUse(
                    f"Rows in the {entry.layer.title or entry.layer.name} module",
                    Allowance(entry.rows, limit),
                )
            )
    rows_of = {name: rows for entry in usage.layers for name, rows in entry.tables}
    for name, limit in limits.tables.items():
        if name in rows_of:
            found.append(QuotaUse(f"Rows in the {name} table", Allowance(rows_of[name], limit)))
    return found


def quota_warnings(tenant: Tenant, usage: Usage) -> list[str]:
    """A sentence for each storage or rows quota used to 80 % or more."""
    said = []
    for quota in storage_quotas_in_use(usage):
        used, plan = quota.allowance, usage.plan.name
        if not quota.warned:
            continue
        if quota.unit == "MB":
            said.append(
                f"Storage is full: {tenant.name} keeps all the {used.limit:,} MB the {plan} plan allows, so "
                "new records and changes are refused until it is under."
                if used.reached
                else f"Storage: {used.percent} % of the {used.limit:,} MB the {plan} plan allows. At 100 %, "
                "new records and changes are refused."
            )
        else:
            said.append(
                f"{quota.what}: all {used.limit:,} the {plan} plan allows are used, so new rows there are "
                "refused until some are deleted."
                if used.reached
                else f"{quota.what}: {int(used.used):,} of the {used.limit:,} the {plan} plan allows "
                f"({used.percent} %). At {used.limit:,}, new rows there are refused."
            )
    return said
