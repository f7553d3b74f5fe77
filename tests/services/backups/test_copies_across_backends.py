"""A portable backup copied into a new tenant on the other backend: a SQLite tenant's into a
PostgreSQL database once the installation has a PostgreSQL tenant server, a PostgreSQL tenant's
into a SQLite file once it has none, a PostgreSQL schema tenant's into a database of its own. The
copy is active with every table's rows and checksums as the backup's manifest says, as its own."""

from __future__ import annotations

from services.backups import CopyTarget, request_restore_copy
from services.backups.copies import COPY_STEP_NAMES
from services.models import Backup, BackupFormat, IsolationMode, Job, Tenant, TenantStatus
from services.tenancy.stores import POSTGRESQL, SQLITE
from tests.services.backups.support import MODULES, TEMPLATE, back_up, fill, row_counts
from tests.services.backups.test_restores import assert_every_step_succeeded_once, tenant_ids
from tests.services.provisioning.installation import Installation, Landlord
from tests.support import fresh_postgres_database, requires_postgres

pytestmark = requires_postgres


async def copy(landlord: Landlord, backup: Backup, target: CopyTarget) -> tuple[Tenant, Job]:
    async with landlord.database.session() as session:
        requested = await request_restore_copy(session, landlord.settings, backup, target)
    job = await landlord.perform(requested.job.id, requested.tenant.id)
    return await landlord.tenant(requested.tenant.id), job


async def source_with_backup(landlord: Landlord) -> tuple[Tenant, Backup, dict[str, int]]:
    tenant, job = await landlord.provision("harbour-club", TEMPLATE, MODULES)
    assert job.error is None, job.error
    await fill(landlord.store(tenant), tenant)
    backup, _ = await back_up(landlord, tenant, BackupFormat.PORTABLE)
    return tenant, backup, await row_counts(landlord.store(tenant))


async def assert_copied(
    landlord: Landlord, copied: Tenant, job: Job, backup: Backup, counts: dict[str, int]
) -> None:
    assert_every_step_succeeded_once(job, COPY_STEP_NAMES)
    assert (copied.status, copied.error) == (TenantStatus.ACTIVE, None)
    assert await row_counts(landlord.store(copied)) == counts
    assert await tenant_ids(landlord, copied, "events") == {copied.id}
    assert backup.manifest is not None
    verify = next(step for step in job.steps if step.name == "verify")
    assert "checksums match the manifest" in (verify.detail or "")


def test_a_sqlite_tenants_backup_is_copied_into_postgresql_and_back(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        source, backup, counts = await source_with_backup(landlord)
        assert source.store_backend == SQLITE

        on_postgres = landlord.with_settings(tenant_postgres_url=server)
        copied, job = await copy(on_postgres, backup, CopyTarget("harbour-on-pg", "Harbour on PostgreSQL"))
        assert copied.store_backend == POSTGRESQL
        await assert_copied(on_postgres, copied, job, backup, counts)

        back_again, _ = await back_up(on_postgres, copied, BackupFormat.PORTABLE)
        returned, job = await copy(landlord, back_again, CopyTarget("harbour-back", "Harbour back on SQLite"))
        assert returned.store_backend == SQLITE
        await assert_copied(landlord, returned, job, back_again, counts)

    with fresh_postgres_database() as server:
        sqlite_installation.run(scenario)


def test_a_schema_tenants_backup_is_copied_into_a_database_of_its_own(
    postgres_schema_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        _, backup, counts = await source_with_backup(landlord)

        copied, job = await copy(
            landlord, backup, CopyTarget("harbour-own-db", "Harbour", isolation=IsolationMode.DATABASE)
        )

        assert (copied.store_backend, copied.isolation) == (POSTGRESQL, IsolationMode.DATABASE)
        await assert_copied(landlord, copied, job, backup, counts)

    postgres_schema_installation.run(scenario)


def test_a_native_schema_backup_is_copied_into_a_schema_of_its_own(
    postgres_schema_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, job = await landlord.provision("harbour-club", TEMPLATE, MODULES)
        assert job.error is None, job.error
        await fill(landlord.store(tenant), tenant)
        counts = await row_counts(landlord.store(tenant))
        backup, _ = await back_up(landlord, tenant, BackupFormat.NATIVE)

        copied, job = await copy(
            landlord, backup, CopyTarget("harbour-schema", "Harbour", IsolationMode.SCHEMA)
        )

        assert copied.isolation == IsolationMode.SCHEMA
        await assert_copied(landlord, copied, job, backup, counts)

    postgres_schema_installation.run(scenario)
