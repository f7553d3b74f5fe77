"""A row id is never handed out twice, in any isolation mode, restores included; and a verified
backup of a tenant in a shared store restores whatever the other tenants did since, telling it
nothing about them: where another tenant's row holds one of its ids, its row gets a fresh one and
its references follow."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Connection

from services.backups.content import TableSummary, id_column, tenant_tables
from services.backups.restore import measure_store
from services.models import BackupFormat, IsolationMode, Job, JobStatus, Tenant, Verification
from services.tenancy.stores import POSTGRESQL, StoreLocation, remove_tenant_rows
from tests.services.backups.support import MODULES, TEMPLATE, add, back_up
from tests.services.backups.test_backups import provision_with_rows
from tests.services.backups.test_restores import restore
from tests.services.provisioning.installation import (
    EVERY_MODE,
    SHARED_MODES,
    Installation,
    Landlord,
    execute,
    query,
)


def _tables_reusing_ids(connection: Connection) -> list[str]:
    """Tables with an id of their own whose ids come from no generator that never goes back."""
    tables = [table for table in tenant_tables(connection) if id_column(table) is not None]
    if connection.dialect.name == POSTGRESQL:
        return [
            table.name
            for table in tables
            if connection.exec_driver_sql(f"SELECT pg_get_serial_sequence('{table.name}', 'id')").scalar()
            is None
        ]
    counted = set(
        connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%'"
        ).scalars()
    )
    return [table.name for table in tables if table.name not in counted]


async def tables_reusing_ids(location: StoreLocation) -> list[str]:
    store = location.open()
    try:
        async with store.engine.connect() as connection:
            return await connection.run_sync(_tables_reusing_ids)
    finally:
        await store.dispose()


async def new_row(location: StoreLocation, tenant: Tenant, table: str, **values: Any) -> int:
    """Insert a row (its `name` unique in the store) and return the id the store gave it."""
    await add(location, tenant, table, **values)
    [(row_id,)] = await query(location, f"SELECT id FROM {table} WHERE name = '{values['name']}'")
    return int(row_id)


async def root_unit(location: StoreLocation, tenant: Tenant) -> tuple[int, str]:
    [(unit_id, path)] = await query(
        location, f"SELECT id, path FROM units WHERE parent_id IS NULL AND tenant_id = {tenant.id}"
    )
    return int(unit_id), str(path)


async def rows_of(location: StoreLocation, tenant: Tenant) -> dict[str, TableSummary]:
    """Every table's count and checksum of the tenant's rows."""
    return (await measure_store(location, tenant_id=tenant.id)).tables


def said(job: Job) -> str:
    """Everything the job tells whoever follows it: its steps' details and its error."""
    return " ".join([*(step.detail or "" for step in job.steps), job.error or ""])


@pytest.mark.parametrize("installation", [*EVERY_MODE, *SHARED_MODES], indirect=True)
def test_a_deleted_rows_id_is_never_given_to_a_new_row_not_even_after_a_restore(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, job = await landlord.provision("harbour-club", TEMPLATE, ["events"])
        assert job.error is None, job.error
        store = landlord.store(tenant)
        assert await tables_reusing_ids(store) == [], (
            "every table with ids has a generator that never goes back"
        )
        root, path = await root_unit(store, tenant)
        units = {"parent_id": root, "kind": "ward", "path": path}
        for table, values in (("units", units), ("venues", {"city": "Hull"})):
            newest = await new_row(store, tenant, table, name="Deleted", **values)
            await execute(store, f"DELETE FROM {table} WHERE id = {newest}")
            assert await new_row(store, tenant, table, name="Next", **values) > newest, table

        shared = landlord.isolation == IsolationMode.SHARED
        backup, _ = await back_up(landlord, tenant, BackupFormat.PORTABLE if shared else BackupFormat.NATIVE)
        assert backup.verification == Verification.VERIFIED, backup.verification_detail
        after_backup = await new_row(store, tenant, "venues", name="After the backup")
        await execute(store, f"DELETE FROM venues WHERE id = {after_backup}")
        job = await restore(landlord, tenant, backup)
        assert job.status == JobStatus.SUCCEEDED, job.error

        restored = landlord.store(await landlord.tenant(tenant.id))
        assert await tables_reusing_ids(restored) == []
        assert await new_row(restored, tenant, "venues", name="After the restore") > after_backup, (
            "the restored store continues after every id the store it replaced handed out"
        )

    installation.run(scenario)


def test_a_shared_tenants_verified_backup_restores_after_another_tenant_created_rows(
    shared_installation: Installation,
) -> None:
    """The issue's scenario: harbour creates a venue, backs up, deletes it; river creates a venue,
    which does not get the deleted venue's id; harbour's restore brings its venue back as it was."""

    async def scenario(landlord: Landlord) -> None:
        harbour = await provision_with_rows(landlord)
        river, job = await landlord.provision("river-club", TEMPLATE, MODULES)
        assert job.error is None, job.error
        shared = landlord.store(harbour)
        quay = await new_row(shared, harbour, "venues", name="Quay", city="Hull", seats=5)
        backup, _ = await back_up(landlord, harbour, BackupFormat.PORTABLE)
        assert backup.verification == Verification.VERIFIED, backup.verification_detail
        await execute(shared, f"DELETE FROM venues WHERE id = {quay}")
        assert await new_row(shared, river, "venues", name="River shed", city="York") > quay
        river_rows = await rows_of(shared, river)

        job = await restore(landlord, harbour, backup)

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
        assert await query(shared, f"SELECT tenant_id, name FROM venues WHERE id = {quay}") == [
            (harbour.id, "Quay")
        ], "the venue is back with its own id"
        assert await rows_of(shared, river) == river_rows, "river's rows are untouched"
        assert "new ids" not in said(job)

    shared_installation.run(scenario)


def test_a_shared_restore_gives_a_fresh_id_to_each_row_whose_id_another_tenant_holds(
    shared_installation: Installation,
) -> None:
    """In a store that handed ids out twice before basic_0002 (or after a tenant moved in from a
    store of its own), another tenant's rows may hold ids a backup has: those rows of the backup
    get fresh ids, and the rows referring to them (events to their venue, a unit to its parent,
    anything to its unit, a unit's path) follow."""

    async def scenario(landlord: Landlord) -> None:
        harbour = await provision_with_rows(landlord)
        river, job = await landlord.provision("river-club", TEMPLATE, MODULES)
        assert job.error is None, job.error
        shared = landlord.store(harbour)
        root, root_path = await root_unit(shared, harbour)
        [(district,)] = await query(shared, "SELECT id FROM units WHERE name = 'North district'")
        [(ward,)] = await query(shared, "SELECT id FROM units WHERE name = 'North ward'")
        [(boathouse,)] = await query(shared, "SELECT id FROM venues WHERE name = 'Boathouse'")
        await execute(
            shared,
            f"UPDATE units SET parent_id = {root}, path = '{root_path}{district}/' WHERE id = {district}",
        )
        await execute(shared, f"UPDATE units SET path = '{root_path}{district}/{ward}/' WHERE id = {ward}")
        backup, _ = await back_up(landlord, harbour, BackupFormat.PORTABLE)
        assert backup.verification == Verification.VERIFIED, backup.verification_detail
        assert backup.manifest is not None
        await remove_tenant_rows(shared, harbour.id)
        river_root, river_path = await root_unit(shared, river)
        for unit_id, name in ((district, "Riverside"), (ward, "Riverside ward")):
            await add(
                shared,
                river,
                "units",
                id=unit_id,
                parent_id=river_root,
                name=name,
                path=f"{river_path}{unit_id}/",
            )
        await add(shared, river, "venues", id=boathouse, name="River shed", city="York")
        river_rows = await rows_of(shared, river)

        job = await restore(landlord, harbour, backup)

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
        restored = await rows_of(shared, harbour)
        for table in ("units", "venues", "events", "event_registrations", "finance_accounts", "budgets"):
            assert restored[table].rows == backup.manifest["tables"][table]["rows"], table
        own = f"tenant_id = {harbour.id}"
        [(new_district, district_path)] = await query(
            shared, f"SELECT id, path FROM units WHERE name = 'North district' AND {own}"
        )
        [(new_ward, ward_parent, ward_path)] = await query(
            shared, f"SELECT id, parent_id, path FROM units WHERE name = 'North ward' AND {own}"
        )
        [(new_boathouse,)] = await query(shared, f"SELECT id FROM venues WHERE name = 'Boathouse' AND {own}")
        assert {new_district, new_ward}.isdisjoint({district, ward}) and new_boathouse != boathouse
        assert await root_unit(shared, harbour) == (root, root_path), "a row whose id is free keeps it"
        assert (ward_parent, district_path, ward_path) == (
            new_district,
            f"{root_path}{new_district}/",
            f"{root_path}{new_district}/{new_ward}/",
        )
        assert await query(shared, f"SELECT DISTINCT venue_id, unit_id FROM events WHERE {own}") == [
            (new_boathouse, new_ward)
        ]
        assert await query(shared, f"SELECT unit_id FROM venues WHERE name = 'Boathouse' AND {own}") == [
            (new_ward,)
        ]
        assert await rows_of(shared, river) == river_rows, "river's rows are untouched"
        assert "3 of them got new ids" in said(job)
        assert "river" not in said(job).lower() and "York" not in said(job), "nothing about river is told"

    shared_installation.run(scenario)
