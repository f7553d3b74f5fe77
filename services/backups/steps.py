"""The backup steps, in order: lock → dump → checksum → manifest → verify. Each is idempotent: run
again after a crash it starts its own work over (a dump is written under a temporary name and
put into storage whole; a scratch store left by a dead verification is dropped first)."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups.archive import (
    FORMAT_VERSION,
    check_archive,
    describe_size,
    extract_archive,
    measure,
    read_manifest,
    write_archive,
)
from services.backups.dump import Dump, dump_store
from services.backups.restore import differences, measure_store, restore_into
from services.backups.storage import BackupStorage, backup_storage
from services.errors import DomainError
from services.jobs import StepFunction
from services.layers.catalogue import load_catalogue
from services.layers.ownership import TENANT_COLUMN
from services.layers.snapshot import SNAPSHOT_FORMAT, VERSION_TABLE_PREFIX
from services.models import (
    Backup,
    IsolationMode,
    JobStatus,
    SchemaSnapshot,
    Tenant,
    Verification,
)
from services.models.types import utcnow
from services.settings import Settings
from services.store_jobs import LOCK_STEP, StoreJob
from services.tenancy.stores import StoreLocation, drop_store, plan_store, store_exists
from services.tenant_locks import PATIENCE_SECONDS

LOCK = LOCK_STEP
ONE_AT_A_TIME = ": one backup or restore of a tenant runs at a time"


class VerificationFailed(DomainError):
    """Restoring the archive did not give back what its manifest says."""


class StoreMissing(DomainError):
    """The tenant's store is not where the landlord says it is."""


@dataclass
class BackupRun(StoreJob):
    """What every step of one job on a backup works with: taking it, verifying it, and (as
    restores and copies build on it) restoring from it."""

    backup_id: int
    #: How long the lock step waits for another backup or restore of the tenant.
    patience: float = PATIENCE_SECONDS

    @classmethod
    def named_in(cls, payload: dict[str, Any]) -> dict[str, Any]:
        return {"backup_id": int(payload["backup_id"])}

    @property
    def storage(self) -> BackupStorage:
        return backup_storage(self.settings)

    @property
    def work(self) -> Path:
        """Local room for files on their way into (or out of) storage."""
        return self.settings.data_dir / "work" / f"backup-{self.backup_id}"

    async def backup(self, session: AsyncSession) -> Backup:
        return await session.get_one(Backup, self.backup_id)


async def lock(run: BackupRun, session: AsyncSession) -> str:
    said = await run.take_lock("backup", why=ONE_AT_A_TIME, patience=run.patience)
    backup = await run.backup(session)
    if backup.status == JobStatus.QUEUED:  # a verification job finds the backup finished already
        backup.status = JobStatus.RUNNING
    return said


def _manifest(
    backup: Backup,
    tenant: Tenant,
    location: StoreLocation,
    dump: Dump,
    settings: Settings,
    recorded: SchemaSnapshot | None,
) -> dict[str, Any]:
    catalogue = load_catalogue(settings.layers_dir)
    layers = []
    # Kept modules' tables are the tenant's data too: a restore brings them back, still hidden.
    modules = catalogue.in_apply_order([*tenant.modules, *tenant.kept_modules])
    for layer in catalogue.layers_for(tenant.template, modules, tenant.slug):
        revision = dump.layer_versions.get(layer.version_table.removeprefix(VERSION_TABLE_PREFIX))
        if revision is not None:
            layers.append({"key": layer.key, "version_table": layer.version_table, "revision": revision})
    return {
        "format_version": FORMAT_VERSION,
        "format": backup.format,
        "backup_id": backup.id,
        "taken_at": utcnow().isoformat(),
        "tenant": {
            "id": tenant.id,
            "slug": tenant.slug,
            "name": tenant.name,
            "template": tenant.template,
            "modules": list(tenant.modules),
            "kept_modules": list(tenant.kept_modules),
        },
        "store": {"backend": location.backend, "isolation": location.isolation, "name": location.name},
        "layers": layers,
        "schema": {
            "sha256": dump.schema_sha256,
            "snapshot_format": SNAPSHOT_FORMAT,
            "layer_versions": dump.layer_versions,
        },
        # What the landlord recorded at the tenant's last schema change, beside what the store says.
        "landlord": {
            "schema_sha256": recorded.sha256 if recorded else None,
            "layer_versions": recorded.description.get("layer_versions") if recorded else None,
        },
        "tenant_column": TENANT_COLUMN,
        "tables": {name: summary.as_json() for name, summary in dump.tables.items()},
        "totals": {"tables": len(dump.tables), "rows": sum(s.rows for s in dump.tables.values())},
        "native": dump.native,
    }


async def dump(run: BackupRun, session: AsyncSession) -> str:
    backup, tenant = await run.backup(session), await run.tenant(session)
    location = run.store(tenant)
    if not await store_exists(location):  # SQLite would open a missing file as an empty store
        raise StoreMissing(f"{tenant.slug}'s store {location.name} is missing; there is nothing to back up.")
    shutil.rmtree(run.work, ignore_errors=True)  # what an attempt that died left behind
    try:
        taken = await dump_store(location, backup.format, run.work / "data", tenant_id=tenant.id)
        recorded = await session.scalar(
            select(SchemaSnapshot)
            .where(SchemaSnapshot.tenant_id == tenant.id)
            .order_by(SchemaSnapshot.id.desc())
            .limit(1)
        )
        manifest = _manifest(backup, tenant, location, taken, run.settings, recorded)
        archive = run.work / "archive.tar.gz"
        await asyncio.to_thread(write_archive, archive, manifest, taken.files)
        key = f"{tenant.slug}/{backup.id:06d}-{backup.created_at:%Y%m%dT%H%M%SZ}-{backup.format}.tar.gz"
        await asyncio.to_thread(run.storage.put, key, archive)
    finally:
        shutil.rmtree(run.work, ignore_errors=True)
    backup.storage_key = key
    totals = manifest["totals"]
    return f"{backup.format} dump of {totals['tables']} tables, {totals['rows']:,} rows, stored as {key}"


async def checksum(run: BackupRun, session: AsyncSession) -> str:
    backup = await run.backup(session)
    assert backup.storage_key is not None
    sha256, size = await asyncio.to_thread(measure, run.storage, backup.storage_key)
    backup.sha256, backup.size_bytes = sha256, size
    return f"SHA-256 {sha256[:16]}…, {describe_size(size)}"


async def record_manifest(run: BackupRun, session: AsyncSession) -> str:
    backup = await run.backup(session)
    await asyncio.to_thread(check_archive, run.storage, backup)
    assert backup.storage_key is not None
    manifest = await asyncio.to_thread(read_manifest, run.storage, backup.storage_key)
    if manifest.get("backup_id") != backup.id or manifest["tenant"]["slug"] != backup.tenant_slug:
        raise VerificationFailed(f"The archive {backup.storage_key} belongs to another backup.")
    backup.manifest = manifest
    backup.status, backup.finished_at = JobStatus.SUCCEEDED, utcnow()
    layers = ", ".join(f"{entry['key']}@{entry['revision']}" for entry in manifest["layers"])
    return f"{manifest['totals']['tables']} tables, {manifest['totals']['rows']:,} rows; {layers}"


def scratch_location(settings: Settings, backup: Backup, isolation: str) -> StoreLocation:
    """Where a verification restores the backup: named after it, apart from every tenant's store.
    A tenant of a shared store is restored into a store of its own."""
    mode = IsolationMode.DATABASE if isolation == IsolationMode.SHARED else isolation
    return plan_store(settings, f"{backup.tenant_slug}-b{backup.id}", mode, purpose="scratch")


async def prove_restorable(settings: Settings, storage: BackupStorage, backup: Backup, work: Path) -> str:
    """Restore the archive into a scratch store and compare it with the manifest: every table's
    row count and checksum, and (same isolation mode) the schema. The scratch store is dropped."""
    await asyncio.to_thread(check_archive, storage, backup)
    assert backup.storage_key is not None and backup.tenant_id is not None
    manifest = backup.manifest
    if manifest is None:
        manifest = await asyncio.to_thread(read_manifest, storage, backup.storage_key)
    source = manifest["store"]
    scratch = scratch_location(settings, backup, source["isolation"])
    await drop_store(scratch)  # left by a verification that died
    shutil.rmtree(work, ignore_errors=True)
    try:
        await asyncio.to_thread(extract_archive, storage, backup.storage_key, work)
        await restore_into(settings, manifest, work, scratch, tenant_id=backup.tenant_id)
        measured = await measure_store(scratch)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        await drop_store(scratch)
    found = differences(manifest, measured, compare_schema=scratch.isolation == source["isolation"])
    if found:
        raise VerificationFailed(
            f"Restoring backup #{backup.id} did not give back what it holds: {'; '.join(found[:8])}"
            + (f" (and {len(found) - 8} more)" if len(found) > 8 else "")
        )
    rows = sum(summary.rows for summary in measured.tables.values())
    return (
        f"restored into a scratch {scratch.backend} store: {len(manifest['tables'])} tables, "
        f"{rows:,} rows and their checksums match the manifest"
    )


async def verify(run: BackupRun, session: AsyncSession) -> str:
    backup = await run.backup(session)
    try:
        detail = await prove_restorable(run.settings, run.storage, backup, run.work)
    except Exception as error:
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        async with run.landlord.session() as other:
            failed = await other.get_one(Backup, run.backup_id)
            failed.verification, failed.verification_detail = Verification.FAILED, message
            failed.verified_at = utcnow()
        raise
    backup.verification, backup.verification_detail, backup.verified_at = (
        Verification.VERIFIED,
        detail,
        utcnow(),
    )
    return detail


BACKUP_STEPS: list[tuple[str, StepFunction[BackupRun]]] = [
    (LOCK, lock),
    ("dump", dump),
    ("checksum", checksum),
    ("manifest", record_manifest),
    ("verify", verify),
]


async def record_backup_failure(run: BackupRun, error: str) -> None:
    """A backup that stopped before its archive was complete is failed, and what it stored goes.
    One whose archive is complete but did not verify keeps it, marked as failing verification."""
    async with run.landlord.session() as session:
        backup = await run.backup(session)
        if backup.status == JobStatus.SUCCEEDED:
            return
        backup.status, backup.error, backup.finished_at = JobStatus.FAILED, error, utcnow()
        if backup.storage_key is not None:
            run.storage.delete(backup.storage_key)
            backup.storage_key = None
