"""What the tenant page shows: the tenant, its layers and their versions, its latest schema
snapshot, its jobs of every kind (module changes said in words) with their steps, and its
migration history."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups.copies import RESTORE_COPY
from services.backups.requests import BACKUP, RESTORE, VERIFY_BACKUP
from services.layers.catalogue import Catalogue, load_catalogue
from services.layers.migrator import current_revision, head, revisions
from services.lifecycle.deletion import DELETE_TENANT, DROP_STORE
from services.models import Job, MigrationHistory, SchemaSnapshot, Tenant, TenantStatus
from services.modules.requests import describe_module_job
from services.moves.merge import MERGE
from services.moves.split import SPLIT
from services.provisioning.custom import APPLY_CUSTOM, ROLLBACK_CUSTOM
from services.provisioning.tenants import PROVISION, can_retry
from services.settings import Settings
from services.tenancy.stores import location_of, store_exists
from services.tenancy.tenants import get_tenant


@dataclass(frozen=True)
class LayerVersion:
    key: str
    title: str
    version: str
    applied: str | None
    head: str | None

    @property
    def up_to_date(self) -> bool:
        return self.applied == self.head


@dataclass
class TenantOverview:
    tenant: Tenant
    layers: list[LayerVersion] = field(default_factory=list)
    snapshot: SchemaSnapshot | None = None
    jobs: list[Job] = field(default_factory=list)
    history: list[MigrationHistory] = field(default_factory=list)
    pending_custom: list[str] = field(default_factory=list)
    can_retry: bool = False
    #: What a job changes, in a few words, by job id (module changes: "enable Events").
    summaries: dict[int, str] = field(default_factory=dict)

    @property
    def latest_job(self) -> Job | None:
        return self.jobs[0] if self.jobs else None

    @property
    def busy(self) -> bool:
        return any(not job.finished for job in self.jobs)


async def recent_jobs(session: AsyncSession, tenant: Tenant, limit: int = 10) -> list[Job]:
    statement = select(Job).where(Job.tenant_id == tenant.id).order_by(Job.id.desc()).limit(limit)
    return list(await session.scalars(statement))


def describe_job(job: Job, tenant: Tenant, catalogue: Catalogue) -> str | None:
    """What a job of the tenant does, in a few words, for its job history ("back up into #12")."""
    backup = job.payload.get("backup_id")
    template = catalogue.templates.get(tenant.template)
    said = {
        PROVISION: f"build {tenant.name} from the {template.title if template else tenant.template} template "
        f"({tenant.isolation})",
        BACKUP: f"back up into #{backup}",
        VERIFY_BACKUP: f"verify backup #{backup}",
        RESTORE: f"restore from backup #{backup}",
        RESTORE_COPY: f"build {tenant.name} from backup #{backup}",
        APPLY_CUSTOM: "apply its custom layer",
        ROLLBACK_CUSTOM: "roll its custom layer back by one revision",
        DELETE_TENANT: "back up, then delete it after the grace period",
        DROP_STORE: "drop its store, the grace period over",
        MERGE: f"merge tenant #{job.payload.get('source_id')} into it, safety backups first",
        SPLIT: f"split {job.payload.get('unit', 'a unit')} off into a new tenant, safety backup #{backup} first",
    }.get(job.kind)
    return said or describe_module_job(job, catalogue)


async def tenant_overview(session: AsyncSession, settings: Settings, slug: str) -> TenantOverview:
    tenant = await get_tenant(session, slug)
    overview = TenantOverview(
        tenant=tenant, jobs=await recent_jobs(session, tenant), can_retry=await can_retry(session, tenant)
    )
    overview.snapshot = await session.scalar(
        select(SchemaSnapshot)
        .where(SchemaSnapshot.tenant_id == tenant.id)
        .order_by(SchemaSnapshot.id.desc())
        .limit(1)
    )
    overview.history = list(
        await session.scalars(
            select(MigrationHistory)
            .where(MigrationHistory.tenant_id == tenant.id)
            .order_by(MigrationHistory.id.desc())
            .limit(50)
        )
    )
    catalogue = load_catalogue(settings.layers_dir)
    overview.summaries = {
        job.id: summary for job in overview.jobs if (summary := describe_job(job, tenant, catalogue))
    }
    layers = catalogue.layers_for(
        tenant.template, [m for m in tenant.modules if m in catalogue.modules], slug
    )
    applied: dict[str, str | None] = {}
    # Only an active tenant's store is opened here: while a job works on it, a stray connection
    # would stop PostgreSQL from copying it into a golden image.
    if (
        tenant.status == TenantStatus.ACTIVE
        and tenant.store_name
        and await store_exists(location_of(settings, tenant))
    ):
        store = location_of(settings, tenant).open()
        try:
            for layer in layers:
                applied[layer.key] = await current_revision(store, layer)
        finally:
            await store.dispose()
    overview.layers = [
        LayerVersion(layer.key, layer.title, layer.version, applied.get(layer.key), head(layer))
        for layer in layers
    ]
    custom = catalogue.custom(slug)
    if custom is not None and tenant.store_name:
        done = applied.get(custom.key)
        ordered = revisions(custom)
        overview.pending_custom = ordered[ordered.index(done) + 1 :] if done else ordered
    return overview
