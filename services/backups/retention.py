"""Retention: once a scheduled backup has verified, the tenant's scheduled backups beyond its
schedule's `keep` go, oldest first: the row (with an entry on the audit trail), then the archive.

Never pruned: backups people asked for (and safety backups), which only people delete; a backup
an unfinished job names (a verification, a restore, a copy into another tenant, about to read it);
and the tenant's newest verified backup, whatever else is kept. Failed scheduled backups between
kept ones stay, to show."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Actor, record
from services.backups.steps import BackupRun
from services.backups.storage import BackupStorage
from services.db import Database
from services.models import Backup, BackupSchedule, Job, JobStatus, Verification

PRUNE = "prune"
#: Who prunes, on the audit trail.
RETENTION = Actor(email="system:retention")


def _named_backups(payload: dict[str, Any]) -> set[int]:
    return {value for key, value in payload.items() if key.endswith("backup_id") and isinstance(value, int)}


async def _spared(session: AsyncSession, tenant_id: int) -> set[int]:
    """The backups retention leaves alone whatever their age: the tenant's newest verified one, and
    those an unfinished job names (of any tenant: a copy into a new tenant is that tenant's job)."""
    spared: set[int] = set()
    newest_verified = await session.scalar(
        select(Backup.id)
        .where(Backup.tenant_id == tenant_id, Backup.verification == Verification.VERIFIED)
        .order_by(Backup.id.desc())
        .limit(1)
    )
    if newest_verified is not None:
        spared.add(newest_verified)
    unfinished = select(Job.payload).where(Job.status.in_(JobStatus.unfinished()))
    for payload in await session.scalars(unfinished):
        spared |= _named_backups(payload or {})
    return spared


async def prune_backups(
    database: Database, storage: BackupStorage, tenant_id: int, keep: int, *, job_id: int | None = None
) -> list[Backup]:
    """Remove the tenant's scheduled backups older than its `keep` newest complete ones; returns
    those removed. The rows go first, in one commit: a crash before it changes nothing, one after
    it leaves an archive no row names, never a row whose archive is gone."""
    async with database.session() as session:
        finished = list(
            await session.scalars(
                select(Backup)
                .where(
                    Backup.tenant_id == tenant_id,
                    Backup.scheduled_for.is_not(None),
                    Backup.status.in_((JobStatus.SUCCEEDED, JobStatus.FAILED)),
                )
                .order_by(Backup.id.desc())
            )
        )
        kept = [backup for backup in finished if backup.status == JobStatus.SUCCEEDED][:keep]
        if len(kept) < keep:
            return []
        spared = await _spared(session, tenant_id)
        gone = [backup for backup in finished if backup.id < kept[-1].id and backup.id not in spared]
        if not gone:
            return []
        for backup in gone:
            await session.delete(backup)
        await record(
            session,
            action="backup.prune",
            actor=RETENTION,
            tenant_id=tenant_id,
            target=gone[0].tenant_slug,
            detail={"backups": [backup.id for backup in gone], "keep": keep, "job": job_id},
        )
    for backup in gone:
        if backup.storage_key is not None:
            await asyncio.to_thread(storage.delete, backup.storage_key)
    return gone


async def prune(run: BackupRun, session: AsyncSession) -> str:
    """The last step of a scheduled backup, run once it has verified."""
    schedule = await session.get(BackupSchedule, run.tenant_id)
    if schedule is None:
        return "the tenant's schedule was cleared: nothing pruned"
    gone = await prune_backups(run.landlord, run.storage, run.tenant_id, schedule.keep, job_id=run.job_id)
    if not gone:
        return f"nothing beyond the newest {schedule.keep} scheduled backup(s) to prune"
    names = ", ".join(f"#{backup.id}" for backup in sorted(gone, key=lambda backup: backup.id))
    return f"pruned {names}: beyond the newest {schedule.keep} scheduled backup(s)"
