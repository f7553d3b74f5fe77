"""Tenants with rows in them, and backups taken the way a worker takes them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import inspect, text

from services.backups import request_backup
from services.backups.storage import DirectoryStorage
from services.layers.ownership import TENANT_COLUMN
from services.models import Backup, Job, Tenant
from services.settings import Settings
from services.tenancy.stores import StoreLocation
from tests.services.provisioning.installation import Landlord, business_tables, query

T = TypeVar("T")

#: A small template with two modules: dates, times, booleans, decimals, CHAR(3), a unit tree.
TEMPLATE = "community_group"
MODULES = ["events", "finance"]


class Sql(str):
    """A value written into the statement as it is (a sub-select)."""


def _literal(value: Any) -> str:
    if isinstance(value, Sql):
        return str(value)
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return f"'{value.isoformat(sep=' ') if isinstance(value, datetime) else value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


async def add(location: StoreLocation, tenant: Tenant, table: str, **values: Any) -> None:
    """INSERT one row with plain SQL, as any client of the store could; the row belongs to `tenant`
    where the table carries a tenant column."""
    store = location.open()
    try:
        async with store.engine.begin() as connection:
            columns = await connection.run_sync(
                lambda sync: {column["name"] for column in inspect(sync).get_columns(table)}
            )
            if TENANT_COLUMN in columns:
                values[TENANT_COLUMN] = tenant.id
            names = ", ".join(values)
            await connection.execute(
                text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(map(_literal, values.values()))})")
            )
    finally:
        await store.dispose()


async def execute(location: StoreLocation, sql: str) -> None:
    store = location.open()
    try:
        async with store.engine.begin() as connection:
            await connection.execute(text(sql))
    finally:
        await store.dispose()


async def _owned(location: StoreLocation, tenant: Tenant) -> str:
    """The condition that picks the tenant's own rows where the store may hold other tenants'."""
    store = location.open()
    try:
        async with store.engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: {column["name"] for column in inspect(sync).get_columns("units")}
            )
    finally:
        await store.dispose()
    return f"{TENANT_COLUMN} = {tenant.id}" if TENANT_COLUMN in columns else "1 = 1"


async def fill(location: StoreLocation, tenant: Tenant) -> None:
    """Rows in a dozen tables: units whose parent comes after them, a user, venues, events and
    registrations, accounts and a budget, a setting."""
    own = await _owned(location, tenant)
    member_role = Sql(f"(SELECT id FROM roles WHERE key = 'tenant_member' AND {own})")
    root = Sql(f"(SELECT id FROM units WHERE parent_id IS NULL AND {own})")
    await add(location, tenant, "units", parent_id=root, name="North ward", kind="ward", path="/n/")
    await add(location, tenant, "units", parent_id=root, name="North district", kind="district", path="/d/")
    # The ward now hangs under the district, which has the larger id: loading must not trip on it.
    await execute(
        location,
        f"UPDATE units SET parent_id = (SELECT id FROM units WHERE name = 'North district' AND {own}) "
        f"WHERE name = 'North ward' AND {own}",
    )
    await add(
        location,
        tenant,
        "users",
        account_id=101,
        email="zoe@harbour.example",
        display_name="Zoë Ünal — 'harbour'",
        role_id=member_role,
        is_active=False,
    )
    await add(location, tenant, "settings", key="motto", value="Tide\nand time")
    ward = Sql(f"(SELECT id FROM units WHERE name = 'North ward' AND {own})")
    await add(location, tenant, "venues", name="Boathouse", city="Hull", seats=120, unit_id=ward)
    await add(location, tenant, "venues", name="Pier hall", city=None, seats=None, unit_id=None)
    boathouse = Sql(f"(SELECT id FROM venues WHERE name = 'Boathouse' AND {own})")
    for number in range(1, 6):
        await add(
            location,
            tenant,
            "events",
            venue_id=boathouse,
            title=f"Regatta {number}",
            starts_at=datetime.fromisoformat(f"2026-0{number}-01T18:00:00+00:00"),
            ends_at=None,
            status="published",
            is_public=number % 2 == 0,
            unit_id=ward,
        )
    first = Sql(f"(SELECT id FROM events WHERE title = 'Regatta 1' AND {own})")
    for name in ("Ann", "Bo", "Cy"):
        await add(
            location,
            tenant,
            "event_registrations",
            event_id=first,
            attendee_name=name,
            attendee_email=f"{name.lower()}@harbour.example",
        )
    await add(
        location, tenant, "finance_accounts", code="4000", name="Donations", kind="income", currency="EUR"
    )
    account = Sql(f"(SELECT id FROM finance_accounts WHERE code = '4000' AND {own})")
    await add(
        location,
        tenant,
        "budgets",
        account_id=account,
        name="Season",
        period_start=date(2026, 1, 1),
        period_end=date(2026, 12, 31),
        amount=Decimal("1234.50"),
        currency="EUR",
    )


async def row_counts(location: StoreLocation) -> dict[str, int]:
    """Every business table's row count, counted with SQL."""
    counts = {}
    for table in sorted(await business_tables(location)):
        counts[table] = (await query(location, f"SELECT count(*) FROM {table}"))[0][0]
    return counts


async def back_up(landlord: Landlord, tenant: Tenant, format: str) -> tuple[Backup, Job]:
    """Request a backup and run its job to the end, as a worker does."""
    async with landlord.database.session() as session:
        requested = await request_backup(session, landlord.settings, tenant, format, requested_by="test")
    job = await landlord.perform(requested.job.id, tenant.id)
    return await backup_of(landlord, requested.backup.id), job


async def backup_of(landlord: Landlord, backup_id: int) -> Backup:
    async with landlord.database.session() as session:
        return await session.get_one(Backup, backup_id)


def archive_path(settings: Settings, backup: Backup) -> Path:
    assert backup.storage_key is not None
    return DirectoryStorage(settings.data_dir / "backups").path(backup.storage_key)


async def eventually(check: Callable[[], Awaitable[T | None]], *, what: str, within: float = 30) -> T:
    """Look again (every 50 ms) until `check` returns something truthy; fail after `within` s."""
    deadline = time.monotonic() + within
    while True:
        if value := await check():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {within}s waiting for {what}")
        await asyncio.sleep(0.05)
