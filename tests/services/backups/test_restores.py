"""Restoring a tenant from one of its backups, as a landlord admin does: a row deleted after the
backup comes back, a safety backup of what was replaced is listed beside it, the restored store
replaced the old one, which is gone; a damaged archive is refused before anything changes; a
restore that fails part-way leaves the tenant exactly as it was, active, on its old store; and a
backup copied into a new tenant gives that tenant the same rows, as its own.

Scenarios run with tenants in SQLite files and, with TENANTRY_TEST_POSTGRES_URL, in PostgreSQL
databases and schemas; a shared-store tenant is restored with only its own rows replaced."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, update

from services.backups import CopyTarget, CorruptArchive, request_restore, request_restore_copy
from services.backups.copies import COPY_STEP_NAMES
from services.backups.requests import backups_of
from services.backups.restores import RESTORE_STEP_NAMES, replacement_store
from services.errors import Conflict, InvalidFields, InvalidInput
from services.models import (
    Backup,
    BackupFormat,
    IsolationMode,
    Job,
    JobStatus,
    StepStatus,
    Tenant,
    TenantLock,
    TenantStatus,
    Verification,
)
from services.tenancy.stores import store_exists
from tests.services.backups.support import MODULES, TEMPLATE, add, archive_path, back_up, fill, row_counts
from tests.services.backups.test_backups import FORMATS, _flip_a_byte, _truncate, provision_with_rows
from tests.services.provisioning.installation import (
    Installation,
    Landlord,
    execute,
    query,
    store_is_gone,
    store_snapshot,
)


async def restore(landlord: Landlord, tenant: Tenant, backup: Backup) -> Job:
    """Ask for the restore and run its job to the end, as a worker does."""
    async with landlord.database.session() as session:
        requested = await request_restore(session, landlord.settings, tenant, backup, requested_by="test")
    return await landlord.perform(requested.job.id, tenant.id)


async def regattas(landlord: Landlord, tenant: Tenant) -> list[str]:
    rows = await query(
        landlord.store(tenant), f"SELECT title FROM events WHERE tenant_id = {tenant.id} ORDER BY title"
    )
    return [row[0] for row in rows]


async def safety_backup_of(landlord: Landlord, tenant: Tenant, job: Job) -> Backup:
    async with landlord.database.session() as session:
        [safety] = [backup for backup in await backups_of(session, tenant) if backup.job_id == job.id]
    return safety


async def lock_holder(landlord: Landlord, tenant: Tenant) -> int | None:
    async with landlord.database.session() as session:
        return await session.scalar(select(TenantLock.job_id).where(TenantLock.tenant_id == tenant.id))


def assert_every_step_succeeded_once(job: Job, names: list[str]) -> None:
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
    assert [(step.name, step.status, step.attempts) for step in job.steps] == [
        (name, StepStatus.SUCCEEDED, 1) for name in names
    ]


# Into the tenant itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("format", FORMATS)
def test_a_restore_brings_back_a_deleted_row_in_a_new_store_and_keeps_a_safety_backup(
    installation: Installation, format: str
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision_with_rows(landlord)
        old = landlord.store(tenant)
        counts = await row_counts(old)
        backup, _ = await back_up(landlord, tenant, format)
        await execute(old, "DELETE FROM event_registrations")
        await execute(old, "DELETE FROM events WHERE title = 'Regatta 3'")

        job = await restore(landlord, tenant, backup)

        assert_every_step_succeeded_once(job, RESTORE_STEP_NAMES)
        tenant = await landlord.tenant(tenant.id)
        assert (tenant.status, tenant.error) == (TenantStatus.ACTIVE, None)
        assert tenant.store_name is not None and tenant.store_name != old.name
        assert f"r{job.id}" in tenant.store_name
        new = landlord.store(tenant)
        assert await row_counts(new) == counts
        assert "Regatta 3" in await regattas(landlord, tenant)
        assert await store_is_gone(old), "the replaced store is dropped"

        safety = await safety_backup_of(landlord, tenant, job)
        assert (safety.status, safety.verification) == (JobStatus.SUCCEEDED, Verification.VERIFIED)
        assert safety.format == BackupFormat.NATIVE
        assert safety.manifest is not None and safety.manifest["tables"]["events"]["rows"] == 4
        assert safety.manifest["store"]["name"] == old.name, "it is a backup of the store replaced"
        assert "safety backup before restore" in (safety.requested_by or "")

        snapshots = await landlord.snapshots(tenant.id)
        assert snapshots[-1].sha256 == (await store_snapshot(new))[1], "the landlord knows the new schema"
        assert await lock_holder(landlord, tenant) is None

    installation.run(scenario)


def test_a_shared_tenants_rows_are_replaced_and_no_other_tenants_are_touched(
    shared_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        harbour, job = await landlord.provision("harbour-club", TEMPLATE, MODULES)
        assert job.error is None, job.error
        river, job = await landlord.provision("river-club", TEMPLATE, MODULES)
        assert job.error is None, job.error
        shared = landlord.store(harbour)
        await fill(shared, harbour)
        await add(shared, river, "venues", name="River shed", city="York", seats=40)
        backup, _ = await back_up(landlord, harbour, BackupFormat.PORTABLE)
        await execute(shared, f"DELETE FROM event_registrations WHERE tenant_id = {harbour.id}")
        await execute(shared, f"DELETE FROM events WHERE title = 'Regatta 3' AND tenant_id = {harbour.id}")
        await add(shared, harbour, "venues", name="Added after the backup", city=None, seats=None)

        job = await restore(landlord, harbour, backup)

        assert_every_step_succeeded_once(job, RESTORE_STEP_NAMES)
        harbour = await landlord.tenant(harbour.id)
        assert harbour.status == TenantStatus.ACTIVE and harbour.store_name == shared.name
        assert "Regatta 3" in await regattas(landlord, harbour)
        venues = await query(shared, "SELECT tenant_id, name FROM venues ORDER BY name")
        assert sorted(venues) == sorted(
            [(harbour.id, "Boathouse"), (harbour.id, "Pier hall"), (river.id, "River shed")]
        )
        registrations = await query(
            shared, f"SELECT count(*) FROM event_registrations WHERE tenant_id = {harbour.id}"
        )
        assert registrations == [(3,)]
        safety = await safety_backup_of(landlord, harbour, job)
        assert (safety.format, safety.verification) == (BackupFormat.PORTABLE, Verification.VERIFIED)
        assert await store_is_gone(replacement_store(landlord.settings, harbour, job.id)), "no staging left"

    shared_installation.run(scenario)


@pytest.mark.parametrize("damage", [_truncate, _flip_a_byte], ids=["truncated", "flipped"])
def test_a_damaged_archive_is_refused_and_nothing_changes(
    sqlite_installation: Installation, damage: Callable[[Path], None]
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision_with_rows(landlord)
        store = landlord.store(tenant)
        backup, _ = await back_up(landlord, tenant, BackupFormat.PORTABLE)
        await execute(store, "DELETE FROM events WHERE title = 'Regatta 3'")
        counts = await row_counts(store)
        jobs_before = await landlord.count(Job)

        # Damaged before anyone asks: refused at once, no job recorded.
        saved = archive_path(landlord.settings, backup).read_bytes()
        damage(archive_path(landlord.settings, backup))
        async with landlord.database.session() as session:
            with pytest.raises(CorruptArchive) as refused:
                await request_restore(session, landlord.settings, tenant, backup)
        assert "nothing was changed" in refused.value.message
        assert await landlord.count(Job) == jobs_before

        # Damaged between the request and the job: the job refuses it before anything changes.
        archive_path(landlord.settings, backup).write_bytes(saved)
        async with landlord.database.session() as session:
            requested = await request_restore(session, landlord.settings, tenant, backup)
        damage(archive_path(landlord.settings, backup))
        job = await landlord.perform(requested.job.id, tenant.id)

        assert job.status == JobStatus.FAILED
        steps = {step.name: step for step in job.steps}
        assert steps["check archive"].status == StepStatus.FAILED
        assert "nothing was changed" in (steps["check archive"].error or "")
        assert all(steps[name].status == StepStatus.PENDING for name in RESTORE_STEP_NAMES[2:])
        after = await landlord.tenant(tenant.id)
        assert (after.status, after.store_name) == (TenantStatus.ACTIVE, tenant.store_name)
        assert await row_counts(store) == counts
        async with landlord.database.session() as session:
            assert [b.id for b in await backups_of(session, tenant)] == [backup.id], "no safety backup"
        assert not await store_exists(replacement_store(landlord.settings, tenant, job.id))
        assert await lock_holder(landlord, tenant) is None

    sqlite_installation.run(scenario)


def test_a_restore_that_fails_after_building_its_store_leaves_the_tenant_as_it_was(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision_with_rows(landlord)
        store = landlord.store(tenant)
        backup, _ = await back_up(landlord, tenant, BackupFormat.PORTABLE)
        await execute(store, "DELETE FROM events WHERE title = 'Regatta 3'")
        counts = await row_counts(store)
        async with landlord.database.session() as session:
            requested = await request_restore(session, landlord.settings, tenant, backup)
            # The manifest on record no longer says what the archive holds: the new store is built,
            # then does not match, and must never be swapped in.
            recorded = await session.get_one(Backup, backup.id)
            manifest = dict(recorded.manifest or {})
            manifest["tables"] = {
                **manifest["tables"],
                "events": {**manifest["tables"]["events"], "rows": 99},
            }
            await session.execute(update(Backup).where(Backup.id == backup.id).values(manifest=manifest))

        job = await landlord.perform(requested.job.id, tenant.id)

        assert job.status == JobStatus.FAILED
        steps = {step.name: step for step in job.steps}
        assert steps["restore"].status == StepStatus.SUCCEEDED
        assert steps["verify"].status == StepStatus.FAILED
        assert "events: 5 rows, the manifest says 99" in (steps["verify"].error or "")
        assert steps["swap"].status == StepStatus.PENDING
        after = await landlord.tenant(tenant.id)
        assert (after.status, after.store_name) == (TenantStatus.ACTIVE, tenant.store_name)
        assert await row_counts(store) == counts, "the old store is untouched"
        assert await store_is_gone(replacement_store(landlord.settings, tenant, job.id)), (
            "the new one is gone"
        )
        safety = await safety_backup_of(landlord, tenant, job)
        assert safety.verification == Verification.VERIFIED, "the safety backup is kept"
        assert await lock_holder(landlord, tenant) is None

    sqlite_installation.run(scenario)


def test_only_an_active_tenant_is_restored_and_only_from_a_verified_backup(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision_with_rows(landlord)
        backup, _ = await back_up(landlord, tenant, BackupFormat.NATIVE)
        other, _ = await landlord.provision("river-club", TEMPLATE, MODULES)

        async with landlord.database.session() as session:
            with pytest.raises(Exception, match="has no backup"):
                await request_restore(session, landlord.settings, other, backup)
        tenant.status = TenantStatus.SUSPENDED
        async with landlord.database.session() as session:
            with pytest.raises(Conflict, match="only an active tenant is restored"):
                await request_restore(session, landlord.settings, tenant, backup)
        tenant.status = TenantStatus.ACTIVE
        backup.verification = Verification.FAILED
        async with landlord.database.session() as session:
            with pytest.raises(Conflict, match="failed its verification"):
                await request_restore(session, landlord.settings, tenant, backup)

    sqlite_installation.run(scenario)


# Into a new tenant --------------------------------------------------------------------------------


async def copy(landlord: Landlord, backup: Backup, target: CopyTarget) -> tuple[Tenant, Job]:
    async with landlord.database.session() as session:
        requested = await request_restore_copy(session, landlord.settings, backup, target)
    job = await landlord.perform(requested.job.id, requested.tenant.id)
    return await landlord.tenant(requested.tenant.id), job


async def tenant_ids(landlord: Landlord, tenant: Tenant, table: str) -> set[int]:
    return {row[0] for row in await query(landlord.store(tenant), f"SELECT DISTINCT tenant_id FROM {table}")}


@pytest.mark.parametrize("format", FORMATS)
def test_a_backup_copied_into_a_new_tenant_gives_it_the_same_rows_as_its_own(
    sqlite_installation: Installation, format: str
) -> None:
    async def scenario(landlord: Landlord) -> None:
        source = await provision_with_rows(landlord)
        counts = await row_counts(landlord.store(source))
        backup, _ = await back_up(landlord, source, format)

        copied, job = await copy(landlord, backup, CopyTarget("harbour-copy", "Harbour copy"))

        assert_every_step_succeeded_once(job, COPY_STEP_NAMES)
        assert (copied.status, copied.error) == (TenantStatus.ACTIVE, None)
        assert (copied.template, copied.modules, copied.isolation) == (
            TEMPLATE,
            MODULES,
            IsolationMode.DATABASE,
        )
        assert await row_counts(landlord.store(copied)) == counts
        assert await tenant_ids(landlord, copied, "events") == {copied.id}, "the rows are the copy's own"
        assert await tenant_ids(landlord, copied, "units") == {copied.id}
        assert await row_counts(landlord.store(source)) == counts, "the source is left alone"
        snapshots = await landlord.snapshots(copied.id)
        assert snapshots and snapshots[-1].sha256 == (await store_snapshot(landlord.store(copied)))[1]

    sqlite_installation.run(scenario)


def test_a_copy_is_refused_a_taken_slug_a_shared_store_and_another_kind_of_store_for_native(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        source = await provision_with_rows(landlord)
        backup, _ = await back_up(landlord, source, BackupFormat.NATIVE)
        tenants_before = await landlord.count(Tenant)

        async with landlord.database.session() as session:
            with pytest.raises(InvalidFields) as refused:
                await request_restore_copy(
                    session, landlord.settings, backup, CopyTarget("harbour-club", "", IsolationMode.SHARED)
                )
        assert set(refused.value.errors) == {"slug", "name", "isolation"}
        assert "taken" in refused.value.errors["slug"]
        assert "store of its own" in refused.value.errors["isolation"]

        elsewhere = landlord.with_settings(tenant_postgres_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
        async with elsewhere.database.session() as session:
            with pytest.raises(InvalidInput, match="native: it goes back only into a sqlite store"):
                await request_restore_copy(
                    session,
                    elsewhere.settings,
                    backup,
                    CopyTarget("harbour-copy", "Copy", IsolationMode.DATABASE),
                )
        assert await landlord.count(Tenant) == tenants_before

    sqlite_installation.run(scenario)
