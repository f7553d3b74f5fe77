"""Scheduled backups and retention, with the clock passed in: a due slot gives one backup however
many schedulers tick at once, a missed day gives one backup rather than one per day, a slot that
cannot give a backup says why; after each scheduled backup verifies, scheduled backups beyond the
schedule's keep are pruned (row and archive), never one a person asked for, never the tenant's
newest verified one, never one a waiting job still needs; a schedule with bad input is refused,
field by field. The landlord runs on SQLite and, with TENANTRY_TEST_POSTGRES_URL, on PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select, update

from services.backups import request_backup, request_verification
from services.backups.retention import prune_backups
from services.backups.schedules import request_due_backups, set_schedule
from services.backups.storage import backup_storage
from services.db import Database
from services.errors import Conflict, InvalidFields
from services.models import (
    AuditEntry,
    Backup,
    BackupFormat,
    BackupSchedule,
    IsolationMode,
    Job,
    JobStatus,
    Tenant,
    TenantStatus,
    Verification,
)
from tests.services.backups.support import MODULES, TEMPLATE, archive_path, backup_of, eventually, fill
from tests.services.provisioning.installation import SQLITE_AND_POSTGRES_LANDLORDS, Installation, Landlord
from workers.runner import JobQueue

pytestmark = pytest.mark.parametrize("installation", SQLITE_AND_POSTGRES_LANDLORDS, indirect=True)

MONDAY = datetime(2026, 11, 23, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment `day` days after Monday 23 November 2026 (UTC)."""
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


async def scheduled_tenant(
    landlord: Landlord, *, daily_at: str = "02:00", keep: int = 7, format: str = BackupFormat.PORTABLE
) -> Tenant:
    """An active tenant with rows, scheduled on Monday at midnight."""
    tenant, job = await landlord.provision("harbour-club", TEMPLATE, MODULES)
    assert (tenant.status, job.error) == (TenantStatus.ACTIVE, None)
    await fill(landlord.store(tenant), tenant)
    async with landlord.database.session() as session:
        await set_schedule(session, tenant, daily_at=daily_at, format=format, keep=keep, now=at(0, 0))
    return tenant


async def schedule(landlord: Landlord, tenant: Tenant) -> BackupSchedule:
    async with landlord.database.session() as session:
        return await session.get_one(BackupSchedule, tenant.id)


async def scheduled_backups(landlord: Landlord, tenant: Tenant) -> list[Backup]:
    async with landlord.database.session() as session:
        statement = select(Backup).where(Backup.tenant_id == tenant.id, Backup.scheduled_for.is_not(None))
        return list(await session.scalars(statement.order_by(Backup.id)))


async def tick_and_run(landlord: Landlord, now: datetime) -> list[Backup]:
    """One scheduler tick at `now`, and every job it requested run to the end, as a worker does."""
    requested = await request_due_backups(landlord.database, landlord.settings, now=now)
    backups = []
    for job in requested:
        done = await landlord.perform(job.id, job.tenant_id)
        assert (done.status, done.error) == (JobStatus.SUCCEEDED, None)
        backups.append(await backup_of(landlord, int(done.payload["backup_id"])))
    return backups


# Scheduling ------------------------------------------------------------------------------------------


def test_a_due_slot_gives_one_backup_when_schedulers_tick_at_once(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await scheduled_tenant(landlord, daily_at="02:00")
        assert (await schedule(landlord, tenant)).next_run_at == at(0, 2)
        assert await request_due_backups(landlord.database, landlord.settings, now=at(0, 1, 59)) == []

        # Four workers, each with its own connections, tick in the same second.
        workers = [Database(landlord.settings.database_url) for _ in range(4)]
        try:
            ticks = await asyncio.gather(
                *(request_due_backups(worker, landlord.settings, now=at(0, 2, 0)) for worker in workers)
            )
        finally:
            for worker in workers:
                await worker.dispose()

        requested = [job for jobs in ticks for job in jobs]
        assert len(requested) == 1, f"one backup for the slot, not {len(requested)}"
        backups = await scheduled_backups(landlord, tenant)
        assert [(backup.scheduled_for, backup.requested_by) for backup in backups] == [(at(0, 2), "schedule")]
        assert (await schedule(landlord, tenant)).next_run_at == at(1, 2), "the next slot is tomorrow's"
        assert await request_due_backups(landlord.database, landlord.settings, now=at(0, 2, 1)) == []

        done = await landlord.perform(requested[0].id, tenant.id)
        assert (done.status, done.error) == (JobStatus.SUCCEEDED, None)
        assert [step.name for step in done.steps][-1] == "prune"
        backup = await backup_of(landlord, backups[0].id)
        assert backup.verification == Verification.VERIFIED, backup.verification_detail
        async with landlord.database.session() as session:
            entries = list(
                await session.scalars(select(AuditEntry).where(AuditEntry.action == "tenant.backup"))
            )
        assert [(entry.actor_email, entry.detail["backup"]) for entry in entries] == [("schedule", backup.id)]

    installation.run(scenario)


def test_days_without_a_scheduler_give_one_backup_not_one_per_day(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await scheduled_tenant(landlord, daily_at="23:30")

        backups = await tick_and_run(landlord, at(3, 9, 15))  # no worker ran from Monday to Thursday

        assert [backup.scheduled_for for backup in backups] == [at(0, 23, 30)]
        assert (await schedule(landlord, tenant)).next_run_at == at(3, 23, 30)

    installation.run(scenario)


def test_a_slot_that_cannot_give_a_backup_is_spent_and_says_why(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await scheduled_tenant(landlord)
        async with landlord.database.session() as session:
            await session.execute(
                update(Tenant).where(Tenant.id == tenant.id).values(status=TenantStatus.SUSPENDED)
            )

        assert await request_due_backups(landlord.database, landlord.settings, now=at(0, 2, 5)) == []

        spent = await schedule(landlord, tenant)
        assert spent.next_run_at == at(1, 2)
        assert spent.last_run_at == at(0, 2)
        assert spent.last_error is not None
        assert "No backup at 2026-11-23 02:00 UTC" in spent.last_error
        assert "suspended" in spent.last_error
        assert await scheduled_backups(landlord, tenant) == []

    installation.run(scenario)


# Retention -------------------------------------------------------------------------------------------


def test_retention_prunes_the_oldest_scheduled_backups_beyond_keep(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await scheduled_tenant(landlord, keep=2)
        first = await tick_and_run(landlord, at(0, 2))
        async with landlord.database.session() as session:  # a person's backup, between two scheduled
            asked = await request_backup(session, landlord.settings, tenant, BackupFormat.NATIVE)
        await landlord.perform(asked.job.id, tenant.id)
        second = await tick_and_run(landlord, at(1, 2))
        first_archive = archive_path(landlord.settings, first[0])
        assert first_archive.exists()

        third = await tick_and_run(landlord, at(2, 2))

        left = await scheduled_backups(landlord, tenant)
        assert [backup.id for backup in left] == [second[0].id, third[0].id]
        assert not first_archive.exists(), "the pruned backup's archive is gone from storage"
        assert await backup_of(landlord, asked.backup.id), "a backup a person asked for is not pruned"
        steps = await landlord.steps(third[0].job_id or 0)
        assert steps["prune"].detail == f"pruned #{first[0].id}: beyond the newest 2 scheduled backup(s)"
        async with landlord.database.session() as session:
            pruned = await session.scalar(select(AuditEntry).where(AuditEntry.action == "backup.prune"))
        assert pruned is not None
        assert (pruned.actor_email, pruned.detail["backups"], pruned.detail["keep"]) == (
            "system:retention",
            [first[0].id],
            2,
        )

    installation.run(scenario)


def test_retention_keeps_the_newest_verified_backup_and_those_a_waiting_job_needs(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await scheduled_tenant(landlord, keep=3)
        oldest, middle, newest = [(await tick_and_run(landlord, at(day, 2)))[0] for day in range(3)]
        # Later verifications found the two newest archives wanting: the oldest is the last good one.
        async with landlord.database.session() as session:
            await session.execute(
                update(Backup)
                .where(Backup.id.in_([middle.id, newest.id]))
                .values(verification=Verification.FAILED)
            )
        storage = backup_storage(landlord.settings)

        assert await prune_backups(landlord.database, storage, tenant.id, keep=2) == []
        gone = await prune_backups(landlord.database, storage, tenant.id, keep=1)

        assert [backup.id for backup in gone] == [middle.id]
        assert [backup.id for backup in await scheduled_backups(landlord, tenant)] == [oldest.id, newest.id]
        assert archive_path(landlord.settings, oldest).exists()

        # A verification of the newest waits: that backup stays while its job has not run.
        async with landlord.database.session() as session:
            await session.execute(
                update(Backup).where(Backup.id == oldest.id).values(verification=Verification.FAILED)
            )
            await session.execute(
                update(BackupSchedule).where(BackupSchedule.tenant_id == tenant.id).values(keep=1)
            )
            waiting = await request_verification(session, await session.get_one(Backup, newest.id))
        fresh = (await tick_and_run(landlord, at(3, 2)))[0]
        assert fresh.verification == Verification.VERIFIED
        left = [backup.id for backup in await scheduled_backups(landlord, tenant)]
        assert left == [newest.id, fresh.id], "the oldest went, the one a job waits for stayed"
        assert (await landlord.job(waiting.id)).status == JobStatus.QUEUED

    installation.run(scenario)


# Bad input -------------------------------------------------------------------------------------------


def test_a_schedule_with_bad_input_is_refused_with_a_message_for_each_field(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, _ = await landlord.provision("harbour-club", TEMPLATE, MODULES)

        async with landlord.database.session() as session:
            with pytest.raises(InvalidFields) as refused:
                await set_schedule(session, tenant, daily_at="25:10", format="zip", keep="none", now=at(0, 0))
        assert set(refused.value.errors) == {"daily_at", "format", "keep"}
        assert "25:10 is not a time of day: give it as HH:MM" in refused.value.errors["daily_at"]
        assert "zip is not a backup format" in refused.value.errors["format"]
        assert "a whole number from 1 to 100" in refused.value.errors["keep"]
        for keep in ("0", "101", "2.5"):
            async with landlord.database.session() as session:
                with pytest.raises(InvalidFields, match="whole number"):
                    await set_schedule(
                        session, tenant, daily_at="02:00", format="portable", keep=keep, now=at(0, 0)
                    )

        shared = replace(landlord, isolation=IsolationMode.SHARED)
        river, _ = await shared.provision("river-club", TEMPLATE, MODULES)
        async with landlord.database.session() as session:
            with pytest.raises(InvalidFields) as refused:
                await set_schedule(session, river, daily_at="02:00", format="native", keep=3, now=at(0, 0))
        assert refused.value.errors == {
            "format": "Choose portable: river-club lives in a shared store, which holds other tenants too."
        }

        async with landlord.database.session() as session:
            await session.execute(
                update(Tenant).where(Tenant.id == tenant.id).values(status=TenantStatus.SUSPENDED)
            )
        async with landlord.database.session() as session:
            suspended = await session.get_one(Tenant, tenant.id)
            with pytest.raises(Conflict, match="only an active tenant"):
                await set_schedule(
                    session, suspended, daily_at="02:00", format="native", keep=3, now=at(0, 0)
                )
        async with landlord.database.session() as session:
            assert await session.scalar(select(func.count()).select_from(BackupSchedule)) == 0

    installation.run(scenario)


# The worker's scheduler ------------------------------------------------------------------------------


def test_the_embedded_worker_takes_a_scheduled_backup_when_its_slot_comes(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await scheduled_tenant(landlord)
        async with landlord.database.session() as session:  # the slot came a minute ago
            await session.execute(
                update(BackupSchedule)
                .where(BackupSchedule.tenant_id == tenant.id)
                .values(next_run_at=datetime.now(UTC) - timedelta(minutes=1), daily_at=time(0, 0))
            )
        queue = JobQueue(replace(landlord.settings, job_lease_seconds=1.0))  # it sweeps every 0.5 s
        queue.start_worker()
        try:

            async def verified_backup() -> Backup | None:
                backups = await scheduled_backups(landlord, tenant)
                return backups[0] if backups and backups[0].verification == Verification.VERIFIED else None

            backup = await eventually(verified_backup, what="the scheduled backup to verify")
        finally:
            await asyncio.to_thread(queue.stop)
        assert backup.requested_by == "schedule"
        async with landlord.database.session() as session:
            jobs = await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "backup"))
        assert jobs == 1

    installation.run(scenario)
