"""Whatever a tenant holds comes back from its backup: Hypothesis fills a tenant's tables with random
rows (text in any script, edge-of-range integers, decimals, dates and times from year 1 with
microseconds, booleans, NULLs, CHAR(3), units whose parents come after them or form a loop), the
tenant is backed up with the backup job's steps (natively where its store allows, and portably;
the job's own verification is left out, the test restores instead), each archive is restored into
a scratch store with restore_into (a PostgreSQL tenant's portable one into a SQLite file as well),
and the restored store has every table's row count and checksum from the manifest, the same as
the tenant's store, and exactly the rows that were written.

Every isolation mode: SQLite files and a shared SQLite store; with TENANTRY_TEST_POSTGRES_URL,
PostgreSQL databases, schemas and a shared database with row-level security. In a shared store a
neighbouring tenant gets random rows too, and none of them may come back. Each world (landlord,
tenants) is made once per test and refilled for every example."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, Table, delete, insert, select, text, update
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Connection

from services.backups import request_backup
from services.backups.archive import check_archive, extract_archive
from services.backups.restore import differences, measure_store, restore_into
from services.backups.steps import BackupRun, checksum, dump, record_manifest, scratch_location
from services.backups.storage import backup_storage
from services.layers.ownership import TENANT_COLUMN
from services.models import Backup, BackupFormat, IsolationMode, JobStatus, Tenant, TenantStatus
from services.tenancy.stores import POSTGRESQL, SQLITE, StoreLocation, drop_store
from tests.services.backups.support import MODULES, TEMPLATE, backup_of
from tests.services.provisioning.installation import (
    EVERY_MODE,
    SHARED_MODES,
    Installation,
    Landlord,
    fresh_installation,
)

WORLDS = [*EVERY_MODE, *SHARED_MODES]
SQLITE_WORLDS = [world for world in WORLDS if str(world.id).startswith("sqlite")]
POSTGRES_WORLDS = [world for world in WORLDS if str(world.id).startswith("postgres")]
#: Examples per world; each is backed up in every format the world allows, and restored.
EXAMPLES = {"sqlite": 15, "postgres": 4}

#: Where each tenant's random rows start (one id space per table in a shared store).
OURS, NEIGHBOURS = 1000, 5000
#: Settings written by the test, apart from those provisioning seeds.
SETTING_PREFIX = "prop."

#: The tables the test writes rows to, parents first.
TABLES = (
    "units",
    "settings",
    "venues",
    "events",
    "event_registrations",
    "finance_accounts",
    "budgets",
    "transactions",
)


# Random tenant data ------------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=24)
INT32 = st.integers(-(2**31), 2**31 - 1)
MONEY = st.decimals(min_value=0, max_value=Decimal("9999999999.99"), places=2)
MOMENTS = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC))
DAYS = st.dates(max_value=date(9998, 12, 31))
KEYS = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
CURRENCY = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=3, max_size=3)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


Rows = dict[str, list[dict[str, Any]]]


@st.composite
def tenant_rows(draw: st.DrawFn, first_id: int, root_unit: int) -> Rows:
    """Rows for every table in TABLES that keep the schema's constraints (unique names, foreign keys,
    checks), ids from `first_id`."""
    ids = iter(range(first_id, first_id + 10_000))
    rows: Rows = {}

    names = draw(st.lists(TEXT, unique=True, max_size=4))
    unit_ids = [next(ids) for _ in names]
    rows["units"] = [
        {
            "id": unit_id,
            # Any unit: one that comes later, itself, a loop; the root; none.
            "parent_id": draw(st.sampled_from([root_unit, None, *unit_ids])),
            "name": name,
            "kind": draw(TEXT),
            "path": draw(TEXT),
            "created_at": draw(MOMENTS),
        }
        for unit_id, name in zip(unit_ids, names, strict=True)
    ]
    some_unit = maybe(st.sampled_from([root_unit, *unit_ids]))
    rows["settings"] = [
        {"key": SETTING_PREFIX + key, "value": draw(TEXT)}
        for key in draw(st.lists(KEYS, unique=True, max_size=3))
    ]
    venues = draw(st.lists(TEXT, unique=True, max_size=3))
    rows["venues"] = [
        {
            "id": next(ids),
            "name": name,
            "address": draw(maybe(TEXT)),
            "city": draw(maybe(TEXT)),
            "seats": draw(maybe(st.integers(0, 2**31 - 1))),
            "unit_id": draw(some_unit),
            "created_at": draw(MOMENTS),
        }
        for name in venues
    ]
    venue_ids = [venue["id"] for venue in rows["venues"]]
    rows["events"] = []
    for _ in range(draw(st.integers(0, 4))):
        starts_at = draw(MOMENTS)
        rows["events"].append(
            {
                "id": next(ids),
                "venue_id": draw(maybe(st.sampled_from(venue_ids))) if venue_ids else None,
                "title": draw(TEXT),
                "description": draw(maybe(TEXT)),
                "starts_at": starts_at,
                "ends_at": draw(
                    maybe(st.timedeltas(timedelta(0), timedelta(days=400)).map(starts_at.__add__))
                ),
                "status": draw(st.sampled_from(["draft", "published", "cancelled", "completed"])),
                "is_public": draw(st.booleans()),
                "unit_id": draw(some_unit),
                "capacity": draw(maybe(INT32)),
                "created_at": draw(MOMENTS),
            }
        )
    event_ids = [event["id"] for event in rows["events"]]
    attendees = (
        draw(st.lists(st.tuples(st.sampled_from(event_ids), TEXT), unique=True, max_size=5))
        if event_ids
        else []
    )
    rows["event_registrations"] = [
        {
            "id": next(ids),
            "event_id": event_id,
            "user_id": None,
            "attendee_name": draw(TEXT),
            "attendee_email": email,
            "status": draw(st.sampled_from(["registered", "waitlisted", "cancelled", "attended"])),
            "unit_id": draw(some_unit),
            "created_at": draw(MOMENTS),
        }
        for event_id, email in attendees
    ]
    rows["finance_accounts"] = [
        {
            "id": next(ids),
            "code": code,
            "name": draw(TEXT),
            "kind": draw(st.sampled_from(["asset", "liability", "equity", "income", "expense"])),
            "currency": draw(CURRENCY),
            "is_active": draw(st.booleans()),
            "unit_id": draw(some_unit),
            "created_at": draw(MOMENTS),
        }
        for code in draw(st.lists(TEXT, unique=True, max_size=3))
    ]
    account_ids = [account["id"] for account in rows["finance_accounts"]]
    periods = (
        draw(st.lists(st.tuples(st.sampled_from(account_ids), DAYS), unique=True, max_size=3))
        if account_ids
        else []
    )
    rows["budgets"] = [
        {
            "id": next(ids),
            "account_id": account_id,
            "name": draw(TEXT),
            "period_start": start,
            "period_end": start + timedelta(days=draw(st.integers(0, 366))),
            "amount": draw(MONEY),
            "currency": draw(CURRENCY),
            "notes": draw(maybe(TEXT)),
            "unit_id": draw(some_unit),
            "created_at": draw(MOMENTS),
        }
        for account_id, start in periods
    ]
    budget_ids = [budget["id"] for budget in rows["budgets"]]
    rows["transactions"] = [
        {
            "id": next(ids),
            "account_id": draw(st.sampled_from(account_ids)),
            "budget_id": draw(maybe(st.sampled_from(budget_ids))) if budget_ids else None,
            "occurred_on": draw(DAYS),
            "direction": draw(st.sampled_from(["debit", "credit"])),
            "amount": draw(MONEY.filter(lambda amount: amount > 0)),
            "currency": draw(CURRENCY),
            "description": draw(TEXT),
            "counterparty": draw(maybe(TEXT)),
            "reference": draw(maybe(TEXT)),
            "unit_id": draw(some_unit),
            "created_at": draw(MOMENTS),
        }
        for _ in range(draw(st.integers(0, 4) if account_ids else st.just(0)))
    ]
    return rows


# Reading and writing rows ------------------------------------------------------------------------


def _tables(connection: Connection) -> dict[str, Table]:
    metadata = MetaData()
    metadata.reflect(connection, only=list(TABLES))
    return {name: metadata.tables[name] for name in TABLES}


def _ours(table: Table, tenant_id: int) -> Any:
    """The condition that picks the rows this test wrote for the tenant."""
    condition = table.c.key.startswith(SETTING_PREFIX) if table.name == "settings" else table.c.id >= OURS
    if TENANT_COLUMN in table.c:
        condition = condition & (table.c[TENANT_COLUMN] == tenant_id)
    return condition


def _replace_rows(connection: Connection, tenant_id: int, rows: Rows) -> None:
    """Remove the rows a previous example wrote for the tenant, and write these."""
    tables = _tables(connection)
    connection.execute(
        update(tables["units"]).where(_ours(tables["units"], tenant_id)).values(parent_id=None)
    )
    for name in reversed(TABLES):
        connection.execute(delete(tables[name]).where(_ours(tables[name], tenant_id)))
    for name in TABLES:
        table = tables[name]
        if not rows[name]:
            continue
        stamped = [
            row | {TENANT_COLUMN: tenant_id} if TENANT_COLUMN in table.c else row for row in rows[name]
        ]
        if name == "units":  # parents may come later (or be themselves): linked once all are in
            connection.execute(insert(table), [row | {"parent_id": None} for row in stamped])
            connection.execute(
                update(table).where(table.c.id == text(":unit_id")).values(parent_id=text(":parent_id")),
                [{"unit_id": row["id"], "parent_id": row["parent_id"]} for row in stamped],
            )
        else:
            connection.execute(insert(table), stamped)


def _comparable(value: Any, column_type: Any) -> Any:
    """A stored value as the test wrote it: times in UTC, decimals without trailing zeros, CHAR(n)
    without padding."""
    if value is None:
        return None
    if isinstance(column_type, sqltypes.DateTime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(column_type, sqltypes.Numeric) and not isinstance(
        column_type, sqltypes.Float | sqltypes.Integer
    ):
        return Decimal(str(value)).normalize()
    if isinstance(column_type, sqltypes.CHAR):
        return value.rstrip(" ")
    return value


def _read_rows(connection: Connection, tenant_id: int | None) -> Rows:
    tables = _tables(connection)
    found: Rows = {}
    for name, table in tables.items():
        columns = [column for column in table.c if column.name != TENANT_COLUMN]
        statement = select(*columns)
        if tenant_id is not None:
            statement = statement.where(_ours(table, tenant_id))
        elif name == "units":
            statement = statement.where(table.c.id >= OURS)
        elif name == "settings":
            statement = statement.where(table.c.key.startswith(SETTING_PREFIX))
        found[name] = sorted(
            (
                {column.name: _comparable(row[column.name], column.type) for column in columns}
                for row in connection.execute(statement).mappings()
            ),
            key=lambda row: str(row.get("id", row.get("key"))),
        )
    return found


def as_written(rows: Rows) -> Rows:
    """The generated rows as _read_rows gives them back: CHAR(3) without trailing spaces, in id order."""
    return {
        name: sorted(
            (
                {
                    column: value.rstrip(" ") if column == "currency" else value
                    for column, value in row.items()
                }
                for row in written
            ),
            key=lambda row: str(row.get("id", row.get("key"))),
        )
        for name, written in rows.items()
    }


# Worlds --------------------------------------------------------------------------------------------


@dataclass
class World:
    """An installation with a tenant (and in a shared store, its neighbour), provisioned once."""

    installation: Installation
    tenant: Tenant
    neighbour: Tenant | None
    roots: dict[int, int]
    #: The formats the tenant can be backed up in.
    formats: list[str]


async def _root_unit(location: StoreLocation, tenant: Tenant) -> int:
    store = location.open()
    try:
        async with store.engine.connect() as connection:
            sql = "SELECT id FROM units WHERE parent_id IS NULL"
            if location.is_shared:
                sql += f" AND {TENANT_COLUMN} = {tenant.id}"
            return int((await connection.execute(text(sql))).scalar_one())
    finally:
        await store.dispose()


async def _provision(landlord: Landlord) -> World:
    tenant, job = await landlord.provision("harbour-club", TEMPLATE, MODULES)
    assert (tenant.status, job.error) == (TenantStatus.ACTIVE, None), job.error
    neighbour = None
    if landlord.isolation == IsolationMode.SHARED:
        neighbour, job = await landlord.provision("river-club", TEMPLATE, MODULES)
        assert job.error is None, job.error
    roots = {t.id: await _root_unit(landlord.store(t), t) for t in (tenant, neighbour) if t is not None}
    formats: list[str] = (
        [BackupFormat.PORTABLE] if neighbour else [BackupFormat.NATIVE, BackupFormat.PORTABLE]
    )
    return World(Installation(landlord.settings, landlord.isolation), tenant, neighbour, roots, formats)


@pytest.fixture(params=WORLDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    mode: str = request.param
    pristine = request.getfixturevalue(
        "migrated_sqlite_landlord" if mode.startswith("sqlite") else "migrated_postgres_landlord"
    )
    with fresh_installation(mode, tmp_path_factory.mktemp(mode), pristine) as installation:
        yield installation.run(_provision)


# The property --------------------------------------------------------------------------------------


async def _write(location: StoreLocation, tenant_id: int, rows: Rows) -> None:
    store = location.open()
    try:
        async with store.engine.begin() as connection:
            await connection.run_sync(_replace_rows, tenant_id, rows)
    finally:
        await store.dispose()


async def _read(location: StoreLocation, tenant_id: int | None) -> Rows:
    store = location.open()
    try:
        async with store.engine.connect() as connection:
            return await connection.run_sync(_read_rows, tenant_id)
    finally:
        await store.dispose()


async def back_up_unverified(landlord: Landlord, tenant: Tenant, format: str) -> Backup:
    """Back the tenant up as the backup job does up to its manifest (dump, checksum, manifest), in
    this process. Its verification would restore the archive once more: the test does that itself."""
    async with landlord.database.session() as session:
        requested = await request_backup(session, landlord.settings, tenant, format, requested_by="property")
        requested.job.status = JobStatus.SUCCEEDED  # run here, never sent to a worker
    run = BackupRun(landlord.settings, landlord.database, requested.job.id, tenant.id, requested.backup.id)
    for step in (dump, checksum, record_manifest):
        async with landlord.database.session() as session:
            await step(run, session)
    return await backup_of(landlord, requested.backup.id)


async def _restore(
    landlord: Landlord, backup: Backup, work: Path, target: StoreLocation
) -> tuple[list[str], dict[str, Any], Rows]:
    """Restore the stored archive into `target` (a store that does not exist yet); what differs
    from the manifest, the restored tables (counts and checksums) and rows. `target` is dropped."""
    storage = backup_storage(landlord.settings)
    await asyncio.to_thread(check_archive, storage, backup)
    assert backup.storage_key is not None and backup.manifest is not None and backup.tenant_id is not None
    try:
        await asyncio.to_thread(extract_archive, storage, backup.storage_key, work)
        await restore_into(landlord.settings, backup.manifest, work, target, tenant_id=backup.tenant_id)
        measured = await measure_store(target)
        rows = await _read(target, None)
    finally:
        await drop_store(target)
        shutil.rmtree(work, ignore_errors=True)
    same_mode = (target.backend, target.isolation) == (
        backup.manifest["store"]["backend"],
        backup.manifest["store"]["isolation"],
    )
    return differences(backup.manifest, measured, compare_schema=same_mode), measured.tables, rows


def _targets(landlord: Landlord, backup: Backup, work: Path) -> dict[str, StoreLocation]:
    """Where each backup is restored: a scratch store as verification makes one (a shared tenant's
    in a store of its own); a portable backup of a PostgreSQL tenant also into a SQLite file."""
    assert backup.manifest is not None
    source = backup.manifest["store"]
    targets = {"scratch store": scratch_location(landlord.settings, backup, source["isolation"])}
    if backup.format == BackupFormat.PORTABLE and source["backend"] == POSTGRESQL:
        path = work / f"copy-{backup.id}.db"
        targets["SQLite file"] = StoreLocation(
            SQLITE, IsolationMode.DATABASE, str(path), f"sqlite+aiosqlite:///{path}"
        )
    return targets


async def _round_trip(landlord: Landlord, world: World, ours: Rows, theirs: Rows | None, work: Path) -> None:
    tenant = world.tenant
    location = landlord.store(tenant)
    await _write(location, tenant.id, ours)
    if world.neighbour is not None and theirs is not None:
        await _write(landlord.store(world.neighbour), world.neighbour.id, theirs)
    written = await _read(location, tenant.id)
    assert written == as_written(ours), "the tenant's store holds what was written"
    source = await measure_store(location, tenant_id=tenant.id if location.is_shared else None)

    for format in world.formats:
        backup = await back_up_unverified(landlord, tenant, format)
        assert backup.status == JobStatus.SUCCEEDED and backup.manifest is not None
        manifest = backup.manifest["tables"]
        assert {name: (manifest[name]["rows"], manifest[name]["sha256"]) for name in TABLES} == {
            name: (source.tables[name].rows, source.tables[name].sha256) for name in TABLES
        }, f"{format}: the manifest does not describe the tenant's store"

        for where, target in _targets(landlord, backup, work).items():
            found, tables, rows = await _restore(landlord, backup, work / format, target)

            assert found == [], f"{format} into a {where}: differs from the manifest: {found}"
            assert tables == source.tables, f"{format} into a {where}: counts or checksums differ"
            assert rows == written, f"{format} into a {where}: the rows are not the tenant's rows"


def _check(world: World, ours: Rows, theirs: Rows | None) -> None:
    with tempfile.TemporaryDirectory(prefix="tenantry-property-") as work:
        world.installation.run(lambda landlord: _round_trip(landlord, world, ours, theirs, Path(work)))


def _draw(world: World, data: st.DataObject) -> tuple[Rows, Rows | None]:
    ours = data.draw(tenant_rows(OURS, world.roots[world.tenant.id]), label="the tenant's rows")
    theirs = None
    if world.neighbour is not None:
        theirs = data.draw(tenant_rows(NEIGHBOURS, world.roots[world.neighbour.id]), label="its neighbour's")
    return ours, theirs


QUICKLY = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


@pytest.mark.parametrize("world", SQLITE_WORLDS, indirect=True)
@settings(max_examples=EXAMPLES["sqlite"], deadline=None, suppress_health_check=QUICKLY)
@given(data=st.data())
def test_random_rows_come_back_from_every_backup_of_a_sqlite_tenant(
    world: World, data: st.DataObject
) -> None:
    _check(world, *_draw(world, data))


@pytest.mark.parametrize("world", POSTGRES_WORLDS, indirect=True)
@settings(max_examples=EXAMPLES["postgres"], deadline=None, suppress_health_check=QUICKLY)
@given(data=st.data())
def test_random_rows_come_back_from_every_backup_of_a_postgresql_tenant(
    world: World, data: st.DataObject
) -> None:
    _check(world, *_draw(world, data))
