"""What restoring a backup into its own tenant (restores.py) and copying it into a new tenant
(copies.py) share: the checks a backup passes before either (finished, verified, its archive
intact, its layers known here, a store it fits), restoring it into a new store, and comparing that
store with the backup's manifest; and what asking for either answers."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from typing import Any

from services.backups.archive import check_archive, extract_archive
from services.backups.content import ArchiveMismatch
from services.backups.requests import RESTORE
from services.backups.restore import differences, layer_by_key, measure_store, restore_into
from services.backups.steps import BackupRun, VerificationFailed
from services.backups.storage import backup_storage
from services.errors import Conflict, InvalidInput
from services.layers.catalogue import load_catalogue
from services.layers.migrator import revisions
from services.models import Backup, BackupFormat, Job, JobStatus, Tenant, Verification
from services.settings import Settings
from services.tenancy.stores import StoreLocation

#: The step that keeps the tenant's people and settings as they are now (services.backups.kept).
PEOPLE = "people and settings"


@dataclass(frozen=True)
class RequestedRestore:
    job: Job
    backup: Backup
    #: The tenant whose store is replaced, or the new tenant of a copy.
    tenant: Tenant
    #: The backup or restore of the same tenant this one waits for, if any.
    waits_for: Job | None = None

    @property
    def is_copy(self) -> bool:
        return self.job.kind != RESTORE

    @property
    def message(self) -> str:
        source = f"backup #{self.backup.id} of {self.backup.tenant_slug}"
        if self.is_copy:
            return f"{self.tenant.slug} is being created from {source}."
        said = (
            f"{self.tenant.slug} will be restored from {source}: a safety backup of its current store "
            "is taken first, and it shows a maintenance page until the restored store is in place."
        )
        if self.waits_for is not None:
            said += (
                f" It waits for {self.waits_for.kind} job #{self.waits_for.id} to finish: "
                "one backup or restore of a tenant runs at a time."
            )
        return said


def check_fits(backup: Backup, manifest: dict[str, Any], backend: str, isolation: str) -> None:
    """A native backup goes back only into the kind of store it came from."""
    source = manifest["store"]
    if manifest["format"] == BackupFormat.NATIVE and (source["backend"], source["isolation"]) != (
        backend,
        isolation,
    ):
        raise InvalidInput(
            f"Backup #{backup.id} is native: it goes back only into a {source['backend']} store with "
            f"{source['isolation']} isolation, not into {backend} with {isolation} isolation. "
            "Take a portable backup to move between them.",
            field="isolation",
        )


def _check_layers(settings: Settings, backup: Backup, manifest: dict[str, Any]) -> None:
    catalogue = load_catalogue(settings.layers_dir)
    for entry in manifest["layers"]:
        try:
            layer = layer_by_key(catalogue, entry["key"])
        except ArchiveMismatch as missing:
            raise Conflict(f"Backup #{backup.id} cannot be restored here: {missing}") from None
        if entry["revision"] not in revisions(layer):
            raise Conflict(
                f"Backup #{backup.id} was taken at {entry['key']} revision {entry['revision']}, which "
                "this installation does not have."
            )


async def check_restorable(settings: Settings, backup: Backup) -> dict[str, Any]:
    """The backup's manifest, once the backup is finished, verified, its archive intact (SHA-256
    and size as recorded) and its layers known here. Raises Conflict or CorruptArchive."""
    name = f"Backup #{backup.id} of {backup.tenant_slug}"
    if backup.status != JobStatus.SUCCEEDED or backup.manifest is None:
        raise Conflict(f"{name} has no finished archive to restore from.")
    if backup.verification != Verification.VERIFIED:
        state = (
            "failed its verification" if backup.verification == Verification.FAILED else "is not verified yet"
        )
        raise Conflict(f"{name} {state}; only a backup shown to restore is restored.")
    await asyncio.to_thread(check_archive, backup_storage(settings), backup)
    _check_layers(settings, backup, backup.manifest)
    return backup.manifest


async def restore_backup(run: BackupRun, backup: Backup, target: StoreLocation) -> None:
    """Fill the new store `target` from the backup's archive (checked again first, unpacked in the
    run's work room), its rows the run's tenant's."""
    assert backup.storage_key is not None and backup.manifest is not None
    await asyncio.to_thread(check_archive, run.storage, backup)
    shutil.rmtree(run.work, ignore_errors=True)
    try:
        await asyncio.to_thread(extract_archive, run.storage, backup.storage_key, run.work)
        await restore_into(run.settings, backup.manifest, run.work, target, tenant_id=run.tenant_id)
    finally:
        shutil.rmtree(run.work, ignore_errors=True)


async def compare_with_manifest(backup: Backup, target: StoreLocation) -> str:
    """Measure the restored store against the backup's manifest; VerificationFailed if it differs."""
    manifest = backup.manifest
    assert manifest is not None
    measured = await measure_store(target)
    source = manifest["store"]
    same_kind = (target.backend, target.isolation) == (source["backend"], source["isolation"])
    found = differences(manifest, measured, compare_schema=same_kind)
    if found:
        raise VerificationFailed(
            f"The store restored from backup #{backup.id} does not match its manifest: "
            + "; ".join(found[:8])
            + (f" (and {len(found) - 8} more)" if len(found) > 8 else "")
        )
    rows = sum(summary.rows for summary in measured.tables.values())
    return f"{len(manifest['tables'])} tables, {rows:,} rows and their checksums match the manifest"


def totals(manifest: dict[str, Any]) -> str:
    """What the archive holds, in a step's words."""
    return f"{manifest['totals']['tables']} tables, {manifest['totals']['rows']:,} rows"
