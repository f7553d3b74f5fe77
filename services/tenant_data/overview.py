"""What a tenant's home page shows: how much there is, and what changed lately.

Everyone sees the units and rows their scope sees, counted through the request's scoped session
(the rows by the template or module whose tables hold them). A tenant's admins see the whole
tenant, and more: its active people, its latest backup, and the latest changes on its audit trail
(to records, units, people, settings and modules), said in words with the page each concerns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import func, null, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import ACTIONS
from services.backups.requests import backups_of
from services.layers.catalogue import Catalogue
from services.models import AuditEntry, Backup, Tenant
from services.models.tenant import Unit
from services.people.people import count_active_people
from services.tenancy.access import TENANT_ADMIN, TenantAccess
from services.tenant_data.forms import label_column, row_name, titled
from services.tenant_data.records import RecordSchema, RecordTable, in_zone
from services.usage import tables_by_layer

#: How many of the latest changes the home page lists; the audit page has them all.
LATEST = 8
#: The entries of a tenant's trail that are changes its people made to it, in its portal or API.
CHANGES = tuple(
    action
    for action in ACTIONS
    if action.split(".")[0] in ("record", "unit", "person", "module") or action == "tenant.setting"
)


@dataclass(frozen=True)
class TableCount:
    table: RecordTable
    rows: int


@dataclass(frozen=True)
class LayerCounts:
    """The rows of the tables one layer adds (the template, or a module), as the scope sees them."""

    title: str
    tables: list[TableCount]

    @property
    def rows(self) -> int:
        return sum(count.rows for count in self.tables)


@dataclass(frozen=True)
class Change:
    """An entry of the trail as the home page says it: "added Party member: Anna de Vries"."""

    at: datetime
    who: str
    what: str
    #: The portal page it concerns, inside the tenant ("/data/party_members/26"); None when gone.
    path: str | None


@dataclass(frozen=True)
class LatestBackup:
    backup: Backup
    #: When it was asked for, on the tenant's clock.
    at: datetime


@dataclass(frozen=True)
class TenantOverview:
    units: int
    layers: list[LayerCounts]
    #: The admins' alone (None, or empty, for a member): active people, the latest backup and the
    #: latest changes.
    people: int | None = None
    latest_backup: LatestBackup | None = None
    changes: list[Change] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(layer.rows for layer in self.layers)


async def tenant_overview(
    landlord: AsyncSession,
    data: AsyncSession,
    access: TenantAccess,
    schema: RecordSchema,
    catalogue: Catalogue,
    zone: tzinfo,
) -> TenantOverview:
    """The home page's figures for `access` (its scope is `data`'s); times on the clock of `zone`."""
    units, counts = await _counts(data, schema)
    layers = await _by_layer(catalogue, access, schema, counts)
    if not access.is_admin:
        return TenantOverview(units, layers)
    tenant = access.tenant
    backups = await backups_of(landlord, tenant, limit=1)
    latest = LatestBackup(backups[0], in_zone(backups[0].created_at, zone)) if backups else None
    return TenantOverview(
        units,
        layers,
        people=await count_active_people(landlord, tenant),
        latest_backup=latest,
        changes=await _latest_changes(landlord, data, tenant, schema, catalogue, zone),
    )


async def _counts(data: AsyncSession, schema: RecordSchema) -> tuple[int, dict[str, int]]:
    """The units and each table's rows the session's scope sees, counted in one statement."""
    tables = list(schema.tables.values())
    models: list[type[Any]] = [Unit, *(table.model for table in tables)]
    counted = [select(func.count()).select_from(model).scalar_subquery() for model in models]
    units, *rows = (await data.execute(select(*counted))).one()
    return units, {table.name: count for table, count in zip(tables, rows, strict=True)}


async def _by_layer(
    catalogue: Catalogue, access: TenantAccess, schema: RecordSchema, counts: dict[str, int]
) -> list[LayerCounts]:
    """`counts` by the template or module whose tables they are, in the order those apply; the
    tenant's own tables (a custom layer's) last."""
    layers = []
    left = dict(schema.tables)
    for layer, names in await tables_by_layer(catalogue, access.tenant):
        tables = [TableCount(left.pop(name), counts[name]) for name in sorted(names) if name in left]
        if tables:
            layers.append(LayerCounts(layer.title or layer.name, tables))
    if left:
        own = [TableCount(table, counts[name]) for name, table in sorted(left.items())]
        layers.append(LayerCounts(f"{access.tenant.name}'s own", own))
    return layers


async def _latest_changes(
    landlord: AsyncSession,
    data: AsyncSession,
    tenant: Tenant,
    schema: RecordSchema,
    catalogue: Catalogue,
    zone: tzinfo,
    *,
    limit: int = LATEST,
) -> list[Change]:
    """The latest changes on the tenant's trail, newest first, each said in words (a record by
    its title, as it is now) with the page it concerns."""
    entries = list(
        await landlord.scalars(
            select(AuditEntry)
            .where(AuditEntry.tenant_id == tenant.id, AuditEntry.action.in_(CHANGES))
            .order_by(AuditEntry.seq.desc())
            .limit(limit)
        )
    )
    names = await _record_names(data, schema, entries)
    return [
        Change(in_zone(entry.at, zone), entry.actor_email, *_said(entry, schema, names, catalogue))
        for entry in entries
    ]


#: For each table, the names of its rows still there, by id (None for a row nothing names).
RecordNames = dict[str, dict[Any, str | None]]


async def _record_names(
    data: AsyncSession, schema: RecordSchema, entries: Sequence[AuditEntry]
) -> RecordNames:
    """The rows the record entries name that are still there: one statement per table."""
    wanted: dict[str, set[Any]] = defaultdict(set)
    for entry in entries:
        if entry.action.startswith("record.") and entry.detail.get("table") in schema.tables:
            wanted[entry.detail["table"]].add(entry.detail.get("id"))
    names: RecordNames = {}
    for name, ids in wanted.items():
        table = schema.tables[name]
        key = getattr(table.model, table.primary_key.key)
        label = label_column(table.table)
        named = getattr(table.model, label.key) if label is not None else null()
        found = await data.execute(select(key, named).where(key.in_(ids)))
        names[name] = {record_id: row_name(value) for record_id, value in found}
    return names


def _said(
    entry: AuditEntry, schema: RecordSchema, names: RecordNames, catalogue: Catalogue
) -> tuple[str, str | None]:
    """What `entry` did, in words, and the page it concerns."""
    action, detail = entry.action, entry.detail
    area = action.split(".")[0]
    if area == "record":
        return _said_of_record(action, detail, schema, names)
    if area == "unit":
        return _UNIT_CHANGES[action].format_map(_Blank(detail)), "/units"
    if area == "person":
        role = "an admin" if detail.get("role") == TENANT_ADMIN else "a member"
        units = ", ".join(detail.get("units") or []) or "no unit"
        said = _PERSON_CHANGES[action].format(person=entry.target or "someone", role=role, units=units)
        return said, "/people"
    if area == "module":
        return _said_of_module(action, detail, catalogue)
    setting = str(detail.get("setting", "")).replace("_", " ")
    return f"changed the {setting} from “{detail.get('from')}” to “{detail.get('to')}”", "/settings"


class _Blank(dict[str, Any]):
    """An entry's detail for `str.format_map`: what an older entry lacks is left blank."""

    def __missing__(self, key: str) -> str:
        return ""


_UNIT_CHANGES = {
    "unit.create": "added the unit {unit}",
    "unit.rename": "renamed the unit {was} to {unit}",
    "unit.move": "moved the unit {unit} into {parent}",
    "unit.delete": "deleted the unit {unit}",
}
_PERSON_CHANGES = {
    "person.invite": "invited {person} as {role}",
    "person.first_admin": "let in {person}, the first admin",
    "person.role": "made {person} {role}",
    "person.units": "assigned {person} to {units}",
    "person.deactivate": "deactivated {person}",
    "person.reactivate": "let {person} in again",
}


def _said_of_module(action: str, detail: dict[str, Any], catalogue: Catalogue) -> tuple[str, str | None]:
    """A module enabled or disabled, and the page of its job."""
    if action == "module.enable":
        said = f"enabled {catalogue.titles(detail.get('modules') or [])}"
    else:
        keeping = "keeping" if detail.get("keep_data") else "dropping"
        said = f"disabled {catalogue.title_of(str(detail.get('module')))}, {keeping} its data"
    return said, f"/modules/jobs/{detail['job']}" if "job" in detail else "/modules"


def _said_of_record(
    action: str, detail: dict[str, Any], schema: RecordSchema, names: RecordNames
) -> tuple[str, str | None]:
    """A record added, changed or deleted, by its title as it is now; "#id" once it is gone."""
    table_name, record_id = str(detail.get("table")), detail.get("id")
    verb = {"record.create": "added", "record.update": "changed", "record.delete": "deleted"}[action]
    table = schema.tables.get(table_name)
    if table is None:  # a module's table, hidden or dropped since
        return f"{verb} row #{record_id} of {table_name.replace('_', ' ')}", None
    if record_id not in names.get(table_name, {}):
        return f"{verb} {table.singular.lower()} #{record_id}", f"/data/{table_name}"
    return (
        f"{verb} {titled(table, record_id, names[table_name][record_id])}",
        f"/data/{table_name}/{record_id}",
    )
