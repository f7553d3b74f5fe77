"""Restores: a verified backup put back into its own tenant, a `restore` job:

    lock → check archive → maintenance on → writes drained → safety dump → safety checksum →
    safety manifest → safety verify → restore → verify → people and settings → swap →
    drop old store → maintenance off

The archive is checked before anything changes. Maintenance starts before the safety backup, so
nothing written between that backup and the restore is lost to both. The backup is restored into a
new store beside the old one (a new file, database or schema named after the job) and compared
with its manifest; only then does one landlord transaction point the tenant at it. Until that
commit the tenant's store is the old one, untouched: a worker killed before it leaves the tenant as
it was, and the job resumes (or, should a step fail, the new store is dropped and maintenance ends).
A tenant of a shared store has its rows restored into a staging store first, to prove the archive
restores; then, in one transaction of the shared store, its rows are deleted, the archive's
inserted (a row whose id another tenant's row holds gets a fresh one, references following), and
counted and hashed against the manifest before the transaction commits.

People and settings stay as they are now (services.backups.kept): the people step reads them from
the store in use and writes them into the new one before the swap; a shared tenant's go in with its
rows, in the swap's transaction.

Copying a backup into a new tenant is copies.py; what both do with a backup, restorable.py.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.backups.archive import check_archive, describe_size, extract_archive
from services.backups.content import (
    ArchiveMismatch,
    FreshIds,
    continue_ids,
    load_table,
    summarise_lines,
    summarise_table,
    tenant_tables,
)
from services.backups.dump import table_file
from services.backups.kept import Kept, put_back, read_kept
from services.backups.requests import RESTORE, store_jobs_under_way
from services.backups.restorable import (
    PEOPLE,
    RequestedRestore,
    check_fits,
    check_restorable,
    compare_with_manifest,
    restore_backup,
    totals,
)
from services.backups.restore import Measured, continue_ids_of, differences
from services.backups.safety import SAFETY_BACKUP_ID, record_safety_backup, safety_backup_steps
from services.backups.steps import LOCK, ONE_AT_A_TIME, BackupRun, VerificationFailed
from services.db import Database
from services.errors import Conflict, NotFound
from services.jobs import StepFunction
from services.layers.ownership import TENANT_COLUMN
from services.models import Backup, IsolationMode, Job, JobStatus, Tenant, TenantStatus
from services.models.types import utcnow
from services.provisioning.steps import record_snapshot
from services.server_limits import ServerWork
from services.settings import Settings
from services.store_jobs import WRITES_DRAINED, writes_drained
from services.tenancy.entry import enter_tenant
from services.tenancy.stores import (
    SQLITE,
    StoreLocation,
    delete_tenant_rows,
    drop_store,
    location_of,
    plan_store,
    store_transaction,
    stored_location,
)

# Asking ------------------------------------------------------------------------------------------


async def request_restore(
    session: AsyncSession,
    settings: Settings,
    tenant: Tenant,
    backup: Backup,
    *,
    requested_by: str | None = None,
) -> RequestedRestore:
    """Check the request and record the restore job. Raises NotFound (another tenant's backup),
    Conflict (the tenant is not active; the backup is unverified; two store jobs under way),
    CorruptArchive, or InvalidInput (a native backup of another kind of store)."""
    if backup.tenant_id != tenant.id:
        raise NotFound(f"{tenant.slug} has no backup #{backup.id}.")
    if tenant.status != TenantStatus.ACTIVE or not tenant.store_name:
        raise Conflict(f"{tenant.slug} is {tenant.status}; only an active tenant is restored.")
    manifest = await check_restorable(settings, backup)
    current = location_of(settings, tenant)
    check_fits(backup, manifest, current.backend, current.isolation)
    under_way = await store_jobs_under_way(session, tenant)
    if len(under_way) > 1:
        running, waiting = under_way[0], under_way[1]
        raise Conflict(
            f"{tenant.slug} already has {running.kind} job #{running.id} under way and job #{waiting.id} "
            "waiting for it. Ask again once they are done."
        )
    job = await jobs.record_job(
        session,
        RESTORE,
        tenant_id=tenant.id,
        payload={"backup_id": backup.id, "requested_by": requested_by},
        steps=RESTORE_STEP_NAMES,
    )
    return RequestedRestore(job, backup, tenant, under_way[0] if under_way else None)


# Where the restored store goes ---------------------------------------------------------------------


def replacement_store(settings: Settings, tenant: Tenant, job_id: int) -> StoreLocation:
    """Where restore job `job_id` builds the tenant's new store: the same backend and isolation,
    named after the job ("__" never appears in a slug, so no tenant's own store has the name). A
    shared tenant's rows are staged in a scratch store of their own."""
    name = f"{tenant.slug}__r{job_id}"
    if tenant.isolation == IsolationMode.SHARED:
        return plan_store(settings, name, IsolationMode.DATABASE, purpose="scratch")
    if tenant.store_backend == SQLITE:
        assert tenant.store_name is not None
        path = Path(tenant.store_name).with_name(f"{name}.db")
        return StoreLocation(SQLITE, tenant.isolation, str(path), f"sqlite+aiosqlite:///{path}")
    return plan_store(settings, name, tenant.isolation, server=tenant.store_server)


def _store_named(settings: Settings, tenant: Tenant, name: str) -> StoreLocation:
    """A store of the tenant's kind (backend, isolation, server) under `name`."""
    return stored_location(
        settings, tenant.store_backend or SQLITE, tenant.isolation, name, tenant.store_server
    )


# Restoring into the tenant itself -----------------------------------------------------------------


class RestoreRun(BackupRun):
    """What every step of one restore job works with: a backup run's (its backup is the one
    restored from), with room for files of its own."""

    @property
    def work(self) -> Path:
        return self.settings.data_dir / "work" / f"restore-{self.job_id}"

    def new_store(self, tenant: Tenant, payload: dict[str, Any]) -> StoreLocation:
        """The store the backup is restored into (a shared tenant's staging store)."""
        if tenant.isolation == IsolationMode.SHARED:
            return replacement_store(self.settings, tenant, self.job_id)
        return _store_named(self.settings, tenant, payload["new_store"])


async def lock(run: RestoreRun, session: AsyncSession) -> str:
    said = await run.take_lock("restore", why=ONE_AT_A_TIME, patience=run.patience)
    tenant = await run.tenant(session)
    if tenant.status != TenantStatus.ACTIVE or not tenant.store_name:
        raise Conflict(f"{tenant.slug} is {tenant.status}; only an active tenant is restored.")
    new = replacement_store(run.settings, tenant, run.job_id)
    await run.remember(session, old_store=tenant.store_name, new_store=new.name)
    return said


async def check(run: RestoreRun, session: AsyncSession) -> str:
    """The archive is the one recorded and fits the tenant's store, before anything changes; the
    safety backup is recorded."""
    backup, tenant = await run.backup(session), await run.tenant(session)
    manifest = await check_restorable(run.settings, backup)
    current = run.store(tenant)
    check_fits(backup, manifest, current.backend, current.isolation)
    await record_safety_backup(run, session, tenant, f"restore #{run.job_id}")
    assert backup.sha256 is not None
    return (
        f"archive intact (SHA-256 {backup.sha256[:16]}…, {describe_size(backup.size_bytes)}): "
        f"{totals(manifest)}, taken {manifest['taken_at'][:19].replace('T', ' ')} UTC"
    )


async def maintenance_on(run: RestoreRun, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    tenant.status = TenantStatus.MAINTENANCE
    return f"{tenant.slug} shows a maintenance page; its API answers 503"


async def restore(run: RestoreRun, session: AsyncSession) -> str:
    backup, tenant = await run.backup(session), await run.tenant(session)
    target = run.new_store(tenant, await run.payload(session))
    if target.name == tenant.store_name:  # never: the swap that would make it so comes later
        raise RuntimeError(f"refusing to restore over {tenant.slug}'s store in use, {target.name}")
    await drop_store(target)  # what an attempt that died left half-built
    await restore_backup(run, backup, target)
    what = "a staging store" if tenant.isolation == IsolationMode.SHARED else "a new store"
    return f"restored into {what}, {target.backend} {target.name}"


async def verify_new_store(run: RestoreRun, session: AsyncSession) -> str:
    backup, tenant = await run.backup(session), await run.tenant(session)
    return await compare_with_manifest(backup, run.new_store(tenant, await run.payload(session)))


async def keep_people(run: RestoreRun, session: AsyncSession) -> str:
    """Who the tenant's people are now and its settings, read from the store in use, go into the
    new store (verified already, and not yet in use). A shared tenant's are noted in the job's
    payload and go in with its rows, in the swap's transaction."""
    tenant = await run.tenant(session)
    kept = await read_kept(session, run.store(tenant), tenant)
    if tenant.isolation == IsolationMode.SHARED:
        await run.remember(session, kept=kept.as_payload())
        people = len(kept.people)
        return f"{people} {'person' if people == 1 else 'people'} and the settings noted; they go in with the rows"
    new = run.new_store(tenant, await run.payload(session))
    async with enter_tenant(tenant.id, new) as entered:
        return await put_back(entered, kept)


async def swap(run: RestoreRun, session: AsyncSession) -> str:
    """Point the tenant at the verified store: committed with this step, in one landlord
    transaction; the new store's ids continue after those the old one handed out. A shared
    tenant's rows are replaced in one transaction of the shared store."""
    backup, tenant = await run.backup(session), await run.tenant(session)
    manifest = backup.manifest
    assert manifest is not None
    tenant.modules = list(manifest["tenant"]["modules"])
    tenant.kept_modules = list(manifest["tenant"].get("kept_modules", []))
    if tenant.isolation == IsolationMode.SHARED:
        kept = Kept.of_payload((await run.payload(session))["kept"])
        shared = run.store(tenant)
        rows, renumbered, people = await replace_shared_rows(run, backup, shared, kept)
        said = f"{tenant.slug}'s rows in the shared store replaced in one transaction: {rows:,} rows, as the manifest says"
        if renumbered:
            said += f"; {renumbered:,} of them got new ids, as the ids they had are now in use in the shared store"
        return f"{said}; {people}"
    new = run.new_store(tenant, await run.payload(session))
    await continue_ids_of(run.store(tenant), new)
    tenant.store_backend, tenant.store_name = new.backend, new.name
    await record_snapshot(session, tenant, new)
    return f"{tenant.slug} now uses {new.name}"


async def drop_old_store(run: RestoreRun, session: AsyncSession) -> str:
    tenant, payload = await run.tenant(session), await run.payload(session)
    if tenant.isolation == IsolationMode.SHARED:
        staging = run.new_store(tenant, payload)
        await drop_store(staging)
        return f"staging store {staging.name} dropped"
    old = _store_named(run.settings, tenant, payload["old_store"])
    if old.name == tenant.store_name:
        raise RuntimeError(f"refusing to drop {old.name}: {tenant.slug} still uses it")
    await drop_store(old)
    return f"old store {old.name} dropped"


async def maintenance_off(run: RestoreRun, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    tenant.status = TenantStatus.ACTIVE
    return f"{tenant.slug} is active again, restored from backup #{run.backup_id}"


RESTORE_STEPS: list[tuple[str, StepFunction[RestoreRun]]] = [
    (LOCK, lock),
    ("check archive", check),
    ("maintenance on", maintenance_on),
    (WRITES_DRAINED, writes_drained),
    *safety_backup_steps(),
    ("restore", restore),
    ("verify", verify_new_store),
    (PEOPLE, keep_people),
    ("swap", swap),
    ("drop old store", drop_old_store),
    ("maintenance off", maintenance_off),
]
RESTORE_STEP_NAMES = [name for name, _ in RESTORE_STEPS]


async def replace_shared_rows(
    run: BackupRun, backup: Backup, shared: StoreLocation, kept: Kept | None = None
) -> tuple[int, int, str]:
    """The tenant's rows in the shared store replaced by the archive's, then its people and settings
    by those `kept` (a move keeps the archive's own); returns how many rows went in, how many of
    them got new ids, and what became of the people."""
    assert backup.storage_key is not None and backup.manifest is not None
    await asyncio.to_thread(check_archive, run.storage, backup)
    shutil.rmtree(run.work, ignore_errors=True)
    try:
        await asyncio.to_thread(extract_archive, run.storage, backup.storage_key, run.work)
        return await put_rows_into_shared(
            run.tenant_id, backup.manifest, run.work, shared, kept, source=f"backup #{backup.id}"
        )
    finally:
        shutil.rmtree(run.work, ignore_errors=True)


async def put_rows_into_shared(
    tenant_id: int,
    manifest: dict[str, Any],
    unpacked: Path,
    shared: StoreLocation,
    kept: Kept | None = None,
    *,
    source: str,
) -> tuple[int, int, str]:
    """replace_shared_rows's work, from the rows of an unpacked archive (or a dump) that `manifest`
    describes (`source`, in words)."""
    async with store_transaction(shared) as connection:
        found, renumbered = await connection.run_sync(_replace_rows, manifest, unpacked, tenant_id)
        if found:  # raised inside the transaction: it rolls back, the old rows stay
            raise VerificationFailed(
                f"The rows restored from {source} do not match its manifest: " + "; ".join(found[:8])
            )
        people = "people and settings as the archive has them"
        if kept is not None:
            async with enter_tenant(tenant_id, shared, on=connection) as entered:
                people = await put_back(entered, kept)
    return sum(int(table["rows"]) for table in manifest["tables"].values()), renumbered, people


def _replace_rows(
    connection: Connection, manifest: dict[str, Any], unpacked: Path, tenant_id: int
) -> tuple[list[str], int]:
    """In one transaction of a shared store: the tenant's rows out, the archive's in, and what
    they then hold compared with the manifest (the differences), and how many rows got new ids.
    A row keeps its id unless another tenant's row holds it (FreshIds), so a verified backup
    restores whatever other tenants did since; nothing about their rows reaches the tenant."""
    if connection.dialect.name == "postgresql":
        # One tenant's rows go in at a time: another's, going in beside them (two moves or restores
        # into the store at once), would see none of these ids held until this commits, take the
        # same ones, and fail on the store's keys. SQLite's write lock does the same there.
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('tenantry.shared-rows-in'))"))
    owned = [table for table in tenant_tables(connection) if TENANT_COLUMN in table.c]
    wanted = {name for name, table in manifest["tables"].items() if table["rows"]}
    if missing := sorted(wanted - {table.name for table in owned}):
        raise ArchiveMismatch(f"The shared store has no table for {', '.join(missing)}.")
    delete_tenant_rows(connection, tenant_id, owned)
    fresh_ids = FreshIds(tenant_id)
    for table in owned:
        if table.name in manifest["tables"]:
            with (unpacked / table_file(table.name)).open(encoding="utf-8") as lines:
                load_table(connection, table, lines, tenant_id=tenant_id, fresh_ids=fresh_ids)
    continue_ids(connection, owned)
    measured = {table.name: summarise_table(connection, table, tenant_id=tenant_id) for table in owned}
    if fresh_ids.count:
        manifest = _renumbered_manifest(manifest, unpacked, owned, fresh_ids)
    return differences(manifest, Measured(measured, ""), compare_schema=False), fresh_ids.count


def _renumbered_manifest(
    manifest: dict[str, Any], unpacked: Path, tables: list[Table], fresh_ids: FreshIds
) -> dict[str, Any]:
    """The manifest as it reads for the archive's rows with the ids they were given: what the
    shared store must now hold."""
    expected = {**manifest, "tables": dict(manifest["tables"])}
    for table in tables:
        if not (listed := manifest["tables"].get(table.name)):
            continue
        with (unpacked / table_file(table.name)).open(encoding="utf-8") as lines:
            rows = (fresh_ids.renumbered(table, json.loads(line)) for line in lines if line.strip())
            expected["tables"][table.name] = summarise_lines(listed["columns"], rows).as_json()
    return expected


async def _undo(run: RestoreRun, _failure: Exception) -> None:
    """After a failure, not an interruption (the job will not resume): a store built but never
    swapped in is dropped, the tenant leaves maintenance on the store it had, and an unfinished
    safety backup is marked failed."""
    async with run.landlord.session() as session:
        tenant, payload = await run.tenant(session), await run.payload(session)
        if payload.get("new_store") is None:
            return  # it never held the tenant's lock: whatever the tenant is in is another job's doing
        new = run.new_store(tenant, payload)
        if tenant.isolation == IsolationMode.SHARED or new.name != tenant.store_name:
            await drop_store(new)
        if tenant.status == TenantStatus.MAINTENANCE:
            tenant.status = TenantStatus.ACTIVE
        safety_id = payload.get(SAFETY_BACKUP_ID)
        safety = await session.get(Backup, safety_id) if safety_id is not None else None
        if safety is not None and safety.status != JobStatus.SUCCEEDED:
            safety.status, safety.finished_at = JobStatus.FAILED, utcnow()
            safety.error = safety.error or "the restore it was taken for stopped first"
            if safety.storage_key is not None:
                await asyncio.to_thread(run.storage.delete, safety.storage_key)
                safety.storage_key = None


@jobs.job_handler(RESTORE, server_work=ServerWork.RESTORE)
async def restore_tenant(database: Database, job: Job, settings: Settings) -> None:
    await RestoreRun.of(database, job, settings).run_holding_the_lock(RESTORE_STEPS, on_failure=_undo)
