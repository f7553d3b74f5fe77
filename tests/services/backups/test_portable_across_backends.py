"""A portable archive restores into the other backend with the same rows: a SQLite tenant's backup
into a PostgreSQL database, a PostgreSQL schema tenant's into a SQLite file, every table's row
count and content checksum equal to the manifest's (times, decimals, booleans, CHAR(3) and text
compared in their portable form)."""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path

from services.backups.archive import check_archive, extract_archive
from services.backups.restore import differences, measure_store, restore_into
from services.backups.storage import backup_storage
from services.models import Backup, BackupFormat, IsolationMode
from services.tenancy.stores import SQLITE, StoreLocation, drop_store, plan_store
from tests.services.backups.support import MODULES, TEMPLATE, back_up, fill
from tests.services.provisioning.installation import Installation, Landlord
from tests.support import fresh_postgres_database, requires_postgres

pytestmark = requires_postgres


async def restore_elsewhere(
    landlord: Landlord, backup: Backup, target: StoreLocation, work: Path
) -> list[str]:
    """Restore the backup into `target` and compare it with the manifest; returns the differences."""
    storage = backup_storage(landlord.settings)
    check_archive(storage, backup)
    assert backup.storage_key is not None and backup.manifest is not None and backup.tenant_id is not None
    extract_archive(storage, backup.storage_key, work)
    try:
        await restore_into(landlord.settings, backup.manifest, work, target, tenant_id=backup.tenant_id)
        measured = await measure_store(target)
    finally:
        await drop_store(target)
    return differences(backup.manifest, measured, compare_schema=False)


def test_a_sqlite_tenants_portable_backup_restores_into_postgresql(
    sqlite_installation: Installation, tmp_path: Path
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, _ = await landlord.provision("harbour-club", TEMPLATE, MODULES)
        await fill(landlord.store(tenant), tenant)
        backup, _ = await back_up(landlord, tenant, BackupFormat.PORTABLE)

        elsewhere = replace(landlord.settings, tenant_postgres_url=server)
        target = plan_store(elsewhere, f"copy-{secrets.token_hex(3)}", IsolationMode.DATABASE)
        assert target.backend == "postgresql"
        assert await restore_elsewhere(landlord, backup, target, tmp_path / "unpacked") == []

    with fresh_postgres_database() as server:
        sqlite_installation.run(scenario)


def test_a_postgresql_schema_tenants_portable_backup_restores_into_sqlite(
    postgres_schema_installation: Installation, tmp_path: Path
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, _ = await landlord.provision("harbour-club", TEMPLATE, MODULES)
        await fill(landlord.store(tenant), tenant)
        backup, _ = await back_up(landlord, tenant, BackupFormat.PORTABLE)

        path = tmp_path / "copy.db"
        target = StoreLocation(SQLITE, IsolationMode.DATABASE, str(path), f"sqlite+aiosqlite:///{path}")
        assert await restore_elsewhere(landlord, backup, target, tmp_path / "unpacked") == []

    postgres_schema_installation.run(scenario)
