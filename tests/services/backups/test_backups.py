"""Backing up a tenant as a landlord admin sees it: a tenant with rows in it is backed up in either
format, the archive is restored into a scratch store and found identical (verified), its manifest
counts what the store holds; a truncated or altered archive is refused with a message that says
so; and one backup or restore of a tenant runs at a time, a second one told what it waits for.

Scenarios run with tenants in SQLite files and, with TENANTRY_TEST_POSTGRES_URL, in PostgreSQL
databases and PostgreSQL schemas."""

from __future__ import annotations

import asyncio
import hashlib
import json
import tarfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from services import jobs
from services.backups import CorruptArchive, request_backup, request_verification
from services.backups.archive import check_archive
from services.backups.requests import BACKUP_STEP_NAMES
from services.backups.steps import BACKUP_STEPS, BackupRun, scratch_location
from services.backups.storage import backup_storage
from services.errors import Conflict, InvalidInput
from services.models import (
    Backup,
    BackupFormat,
    Job,
    JobStatus,
    JobStep,
    StepStatus,
    Tenant,
    TenantLock,
    TenantStatus,
    Verification,
)
from services.models.types import utcnow
from services.tenancy.context import tenant_context
from services.tenancy.stores import StoreLocation, drop_store, store_exists
from services.tenant_locks import TenantBusy, acquire_tenant_lock, release_tenant_lock, try_tenant_lock
from tests.services.backups.support import (
    MODULES,
    TEMPLATE,
    archive_path,
    back_up,
    backup_of,
    eventually,
    fill,
    row_counts,
)
from tests.services.provisioning.installation import Installation, Landlord

FORMATS = [BackupFormat.NATIVE, BackupFormat.PORTABLE]


async def provision_with_rows(landlord: Landlord, slug: str = "harbour-club") -> Tenant:
    tenant, job = await landlord.provision(slug, TEMPLATE, MODULES)
    assert (tenant.status, job.error) == (TenantStatus.ACTIVE, None)
    await fill(landlord.store(tenant), tenant)
    return tenant


# A backup that verifies ------------------------------------------------------------------------------


@pytest.mark.parametrize("format", FORMATS)
def test_a_backup_of_a_tenant_with_rows_is_verified_and_its_manifest_counts_every_table(
    installation: Installation, format: str
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision_with_rows(landlord)
        counts = await row_counts(landlord.store(tenant))

        backup, job = await back_up(landlord, tenant, format)

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
        assert [(step.name, step.status) for step in job.steps] == [
            (name, StepStatus.SUCCEEDED) for name in BACKUP_STEP_NAMES
        ]
        assert (backup.status, backup.error, backup.format) == (JobStatus.SUCCEEDED, None, format)
        assert backup.verification == Verification.VERIFIED, backup.verification_detail
        assert "match the manifest" in (backup.verification_detail or "")

        manifest = backup.manifest
        assert manifest is not None
        assert {name: table["rows"] for name, table in manifest["tables"].items()} == counts
        assert counts["events"] == 5 and counts["units"] == 3 and counts["event_registrations"] == 3
        assert manifest["tenant"]["slug"] == "harbour-club"
        assert [layer["key"] for layer in manifest["layers"]] == [
            "basic",
            "templates/community_group",
            "modules/events",
            "modules/finance",
        ]
        assert manifest["layers"][2]["revision"] == "events_0002"
        snapshots = await landlord.snapshots(tenant.id)
        assert manifest["schema"]["sha256"] == snapshots[-1].sha256 == manifest["landlord"]["schema_sha256"]

        archive = archive_path(landlord.settings, backup)
        content = archive.read_bytes()
        assert backup.sha256 == hashlib.sha256(content).hexdigest()
        assert backup.size_bytes == len(content)
        assert archive.parent.name == "harbour-club"
        assert not await store_exists(scratch_of(landlord, backup)), "the scratch store is dropped"

    installation.run(scenario)


def scratch_of(landlord: Landlord, backup: Backup) -> StoreLocation:
    return scratch_location(landlord.settings, backup, landlord.isolation)


def test_a_portable_archive_holds_a_manifest_and_one_json_lines_file_per_table(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision_with_rows(landlord)
        backup, _ = await back_up(landlord, tenant, BackupFormat.PORTABLE)
        assert backup.manifest is not None

        with tarfile.open(archive_path(landlord.settings, backup), "r:gz") as archive:
            names = archive.getnames()
            assert names[0] == "manifest.json"
            assert set(names[1:]) == {f"tables/{name}.jsonl" for name in backup.manifest["tables"]}
            events, budgets, users = (_lines_of(archive, table) for table in ("events", "budgets", "users"))
        first = json.loads(events[0])
        # Times in UTC, booleans as booleans (not SQLite's 0/1), decimals without trailing zeros.
        assert first["starts_at"] == "2026-01-01T18:00:00.000000Z"
        assert first["is_public"] is False and json.loads(events[1])["is_public"] is True
        assert json.loads(budgets[0])["amount"] == "1234.5"
        assert json.loads(budgets[0])["period_start"] == "2026-01-01"
        assert json.loads(users[0])["display_name"] == "Zoë Ünal — 'harbour'"
        assert "tenant_id" not in first

    sqlite_installation.run(scenario)


def _lines_of(archive: tarfile.TarFile, table: str) -> list[str]:
    member = archive.extractfile(f"tables/{table}.jsonl")
    assert member is not None, f"the archive has no file for {table}"
    return member.read().decode().splitlines()


def test_only_an_active_tenant_is_backed_up_and_only_in_a_format_it_can_have(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision_with_rows(landlord)
        async with landlord.database.session() as session:
            with pytest.raises(InvalidInput) as unknown:
                await request_backup(session, landlord.settings, tenant, "zip")
        assert unknown.value.field == "format"
        assert "native or portable" in unknown.value.message

        tenant.status = TenantStatus.PROVISIONING
        async with landlord.database.session() as session:
            with pytest.raises(Conflict, match="only an active tenant"):
                await request_backup(session, landlord.settings, tenant, BackupFormat.NATIVE)

    sqlite_installation.run(scenario)


# Corrupted archives ---------------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))


@pytest.mark.parametrize(
    ("damage", "said"),
    [(_truncate, "is truncated"), (_flip_a_byte, "is corrupted")],
    ids=["truncated", "flipped"],
)
@pytest.mark.parametrize("format", FORMATS)
def test_a_damaged_archive_is_refused_with_a_clear_message_and_marked_failed(
    sqlite_installation: Installation,
    format: str,
    damage: Callable[[Path], None],
    said: str,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision_with_rows(landlord)
        backup, _ = await back_up(landlord, tenant, format)
        damage(archive_path(landlord.settings, backup))

        with pytest.raises(CorruptArchive) as refused:
            check_archive(backup_storage(landlord.settings), backup)
        assert said in refused.value.message
        assert f"Backup #{backup.id} of harbour-club" in refused.value.message
        assert "nothing was changed" in refused.value.message

        async with landlord.database.session() as session:
            job = await request_verification(session, await session.get_one(Backup, backup.id))
        job = await landlord.perform(job.id, tenant.id)
        assert job.status == JobStatus.FAILED
        assert said in (job.error or "")
        again = await backup_of(landlord, backup.id)
        assert again.verification == Verification.FAILED
        assert said in (again.verification_detail or "")
        assert again.status == JobStatus.SUCCEEDED, "the backup was taken; it is its archive that is bad"

    sqlite_installation.run(scenario)


def test_an_intact_backup_verifies_again_on_request(sqlite_installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision_with_rows(landlord)
        backup, _ = await back_up(landlord, tenant, BackupFormat.NATIVE)
        async with landlord.database.session() as session:
            job = await request_verification(session, await session.get_one(Backup, backup.id))
        job = await landlord.perform(job.id, tenant.id)
        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
        assert (await backup_of(landlord, backup.id)).verification == Verification.VERIFIED

    sqlite_installation.run(scenario)


# One backup or restore per tenant at a time ---------------------------------------------------------


def test_a_second_backup_waits_for_the_first_and_a_third_is_refused(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision_with_rows(landlord)
        async with landlord.database.session() as session:
            first = await request_backup(session, landlord.settings, tenant, BackupFormat.NATIVE)
        assert first.waits_for is None
        # The first backup's job is at work on the store: it holds the tenant's lock.
        assert await try_tenant_lock(landlord.database, tenant.id, first.job.id, "backup") is None

        async with landlord.database.session() as session:
            second = await request_backup(session, landlord.settings, tenant, BackupFormat.PORTABLE)
        assert second.waits_for is not None and second.waits_for.id == first.job.id
        assert f"waits for backup job #{first.job.id}" in second.message
        async with landlord.database.session() as session:
            with pytest.raises(Conflict) as third:
                await request_backup(session, landlord.settings, tenant, BackupFormat.NATIVE)
        assert f"#{first.job.id}" in third.value.message and f"#{second.job.id}" in third.value.message

        running = asyncio.create_task(landlord.perform(second.job.id, tenant.id))

        async def lock_step() -> JobStep | None:
            steps = await landlord.steps(second.job.id)
            return steps["lock"] if "waiting for" in (steps["lock"].detail or "") else None

        waiting = await eventually(lock_step, what="the second backup to say what it waits for")
        assert waiting.detail is not None and f"backup job #{first.job.id}" in waiting.detail
        assert (await landlord.steps(second.job.id))["dump"].status == StepStatus.PENDING
        assert not running.done()

        await release_tenant_lock(landlord.database, tenant.id, first.job.id)
        job = await asyncio.wait_for(running, timeout=60)

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
        lock = (await landlord.steps(job.id))["lock"]
        assert lock.detail is not None and lock.detail.startswith("tenant locked")
        async with landlord.database.session() as session:
            assert await session.get(TenantLock, tenant.id) is None, "the lock is let go at the end"

    sqlite_installation.run(scenario)


def test_a_lock_left_by_a_finished_job_is_taken_over_and_a_live_one_is_waited_for_only_so_long(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision_with_rows(landlord)
        async with landlord.database.session() as session:
            first = await request_backup(session, landlord.settings, tenant, BackupFormat.NATIVE)
        async with landlord.database.session() as session:
            second = await request_backup(session, landlord.settings, tenant, BackupFormat.NATIVE)
        assert await try_tenant_lock(landlord.database, tenant.id, first.job.id, "backup") is None

        async def nothing(_holder: object) -> None:
            return None

        with pytest.raises(TenantBusy) as busy:
            await acquire_tenant_lock(
                landlord.database, tenant.id, second.job.id, "backup", waiting=nothing, patience=0
            )
        assert f"backup job #{first.job.id}" in busy.value.message

        async with landlord.database.session() as session:  # the first job ended without letting go
            await session.execute(update(Job).where(Job.id == first.job.id).values(status=JobStatus.FAILED))
        assert await try_tenant_lock(landlord.database, tenant.id, second.job.id, "backup") is None
        async with landlord.database.session() as session:
            lock = await session.scalar(select(TenantLock).where(TenantLock.tenant_id == tenant.id))
        assert lock is not None and lock.job_id == second.job.id

    sqlite_installation.run(scenario)


# What goes wrong is said, and nothing is left behind ----------------------------------------------


def test_a_backup_of_a_missing_store_fails_plainly_and_leaves_no_archive_or_lock(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision_with_rows(landlord)
        await drop_store(landlord.store(tenant))

        backup, job = await back_up(landlord, tenant, BackupFormat.NATIVE)

        assert job.status == JobStatus.FAILED
        assert "is missing; there is nothing to back up" in (job.error or "")
        assert (backup.status, backup.storage_key, backup.sha256) == (JobStatus.FAILED, None, None)
        assert "is missing" in (backup.error or "")
        storage = landlord.settings.data_dir / "backups"
        assert not any(path.is_file() for path in storage.rglob("*")), "no archive is kept"
        async with landlord.database.session() as session:
            assert await session.get(TenantLock, tenant.id) is None

    sqlite_installation.run(scenario)


@pytest.mark.parametrize(
    ("dropped", "found"),
    [
        (-1, "events: 4 rows, the manifest says 5"),
        (0, "The archive's event_registrations rows do not fit the store: FOREIGN KEY constraint failed"),
    ],
    ids=["a-row", "a-row-others-refer-to"],
)
def test_verification_finds_rows_missing_from_an_archive_that_still_matches_its_checksum(
    sqlite_installation: Installation, tmp_path: Path, dropped: int, found: str
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision_with_rows(landlord)
        backup, _ = await back_up(landlord, tenant, BackupFormat.PORTABLE)
        # An archive rebuilt without one event, and its checksum recorded again: only restoring it
        # and counting shows what is wrong.
        path = archive_path(landlord.settings, backup)
        unpacked = tmp_path / "unpacked"
        with tarfile.open(path, "r:gz") as archive:
            archive.extractall(unpacked, filter="data")
        events = unpacked / "tables" / "events.jsonl"
        lines = events.read_text().splitlines(keepends=True)
        del lines[dropped]
        events.write_text("".join(lines))
        with tarfile.open(path, "w:gz") as archive:
            archive.add(unpacked / "manifest.json", arcname="manifest.json")
            for table in sorted((unpacked / "tables").iterdir()):
                archive.add(table, arcname=f"tables/{table.name}")
        async with landlord.database.session() as session:
            stored = await session.get_one(Backup, backup.id)
            stored.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
            stored.size_bytes = path.stat().st_size
            job = await request_verification(session, stored)

        job = await landlord.perform(job.id, tenant.id)

        assert job.status == JobStatus.FAILED
        again = await backup_of(landlord, backup.id)
        assert again.verification == Verification.FAILED
        assert found in (again.verification_detail or "")

    sqlite_installation.run(scenario)


def test_a_backup_whose_worker_died_after_the_dump_resumes_with_its_lock_and_dumps_once(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision_with_rows(landlord)
        async with landlord.database.session() as session:
            requested = await request_backup(session, landlord.settings, tenant, BackupFormat.PORTABLE)
        run = BackupRun(
            landlord.settings, landlord.database, requested.job.id, tenant.id, requested.backup.id
        )
        # The first worker got as far as the dump, then died: its job is running, its lease lapsed.
        with tenant_context(tenant.id):
            await jobs.run_steps(landlord.database, requested.job.id, BACKUP_STEPS[:2], run)
        async with landlord.database.session() as session:
            await session.execute(
                update(Job)
                .where(Job.id == requested.job.id)
                .values(status=JobStatus.RUNNING, lease_expires_at=utcnow() - timedelta(seconds=1))
            )
            assert (await session.get_one(TenantLock, tenant.id)).job_id == requested.job.id

        job = await landlord.perform(requested.job.id, tenant.id)

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
        assert {step.name: step.attempts for step in job.steps} == dict.fromkeys(BACKUP_STEP_NAMES, 1)
        backup = await backup_of(landlord, requested.backup.id)
        assert backup.verification == Verification.VERIFIED
        files = [path for path in (landlord.settings.data_dir / "backups").rglob("*") if path.is_file()]
        assert files == [archive_path(landlord.settings, backup)], "one archive, no leftovers"

    sqlite_installation.run(scenario)
