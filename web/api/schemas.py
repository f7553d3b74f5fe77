"""What the JSON API returns. Plain dataclasses; Litestar documents them in OpenAPI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from msgspec import Meta
from sqlalchemy import Integer

from services.layers.catalogue import Layer
from services.limits import integer_range
from services.models import Backup, Job, Tenant
from services.people.first_admin import FirstAdmin
from services.selection import Selection

T = TypeVar("T")


@dataclass(frozen=True)
class TenantOut:
    slug: str
    name: str
    status: str
    template: str
    modules: list[str]
    isolation: str
    store_backend: str | None
    error: str | None
    created_at: datetime
    #: Why it is suspended (its people read it too).
    status_reason: str | None = None
    #: Being deleted: when its store is dropped, unless the deletion is undone before.
    delete_after: datetime | None = None

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        return cls(
            slug=tenant.slug,
            name=tenant.name,
            status=tenant.status,
            template=tenant.template,
            modules=list(tenant.modules),
            isolation=tenant.isolation,
            store_backend=tenant.store_backend,
            error=tenant.error,
            created_at=tenant.created_at,
            status_reason=tenant.status_reason,
            delete_after=tenant.delete_after,
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int


@dataclass(frozen=True)
class ErrorOut:
    status_code: int
    detail: str


@dataclass(frozen=True)
class TemplateOut:
    name: str
    title: str
    version: str
    description: str
    default_modules: list[str]

    @classmethod
    def of(cls, layer: Layer) -> TemplateOut:
        return cls(layer.name, layer.title, layer.version, layer.description, list(layer.default_modules))


@dataclass(frozen=True)
class ModuleOut:
    name: str
    title: str
    version: str
    description: str
    requires: list[str]
    conflicts: list[str]

    @classmethod
    def of(cls, layer: Layer) -> ModuleOut:
        return cls(
            layer.name,
            layer.title,
            layer.version,
            layer.description,
            list(layer.requires),
            list(layer.conflicts),
        )


@dataclass(frozen=True)
class StepOut:
    name: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    detail: str | None
    error: str | None


@dataclass(frozen=True)
class JobOut:
    id: int
    kind: str
    status: str
    tenant: str | None
    created_at: datetime
    finished_at: datetime | None
    error: str | None
    steps: list[StepOut]

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.status,
            tenant=job.tenant.slug if job.tenant else None,
            created_at=job.created_at,
            finished_at=job.finished_at,
            error=job.error,
            steps=[
                StepOut(step.name, step.status, step.started_at, step.finished_at, step.detail, step.error)
                for step in job.steps
            ],
        )


@dataclass(frozen=True)
class FirstAdminOut:
    email: str
    #: Shown in this answer only: give it to them yourself; they choose their own at their first
    #: sign-in. Null when the account existed already (it keeps its own password).
    password: str | None

    @classmethod
    def of(cls, first: FirstAdmin) -> FirstAdminOut:
        return cls(email=first.account.email, password=first.password)


@dataclass(frozen=True)
class ProvisioningOut:
    tenant: TenantOut
    job: JobOut
    #: The first admin named with the tenant, let in by the job once the store exists.
    first_admin: FirstAdminOut | None = None


@dataclass(frozen=True)
class BackupOut:
    id: int
    tenant: str
    format: str
    #: queued, running, succeeded (the archive is complete) or failed.
    status: str
    #: not_verified, verified (restored into a scratch store and found identical) or failed.
    verification: str
    verification_detail: str | None
    size_bytes: int | None
    sha256: str | None
    created_at: datetime
    finished_at: datetime | None
    verified_at: datetime | None
    error: str | None
    job_id: int | None
    #: Tenant, layer revisions, schema hash, per-table row counts and checksums.
    manifest: dict[str, Any] | None

    @classmethod
    def of(cls, backup: Backup) -> BackupOut:
        return cls(
            id=backup.id,
            tenant=backup.tenant_slug,
            format=backup.format,
            status=backup.status,
            verification=backup.verification,
            verification_detail=backup.verification_detail,
            size_bytes=backup.size_bytes,
            sha256=backup.sha256,
            created_at=backup.created_at,
            finished_at=backup.finished_at,
            verified_at=backup.verified_at,
            error=backup.error,
            job_id=backup.job_id,
            manifest=backup.manifest,
        )


@dataclass(frozen=True)
class RestoreRequestedOut:
    #: The tenant whose data is replaced, or the new tenant of a copy.
    tenant: TenantOut
    backup: BackupOut
    job: JobOut
    #: The backup or restore job of the same tenant this one waits for, if any.
    waits_for: int | None
    message: str


@dataclass(frozen=True)
class BackupRequestedOut:
    backup: BackupOut
    job: JobOut
    #: The backup or restore job of the same tenant this one waits for, if any.
    waits_for: int | None
    message: str


#: A fleet operation's numbers are kept in integer columns; none holds more.
_MOST = integer_range(Integer())[1]
#: Stored whole numbers: no more than their columns hold (the spec's check says the least).
Stored = Annotated[int, Meta(le=_MOST)]


@dataclass
class SelectionIn:
    """Which tenants: all of them when every list is empty; otherwise those matching every list
    given (any of the values within one)."""

    templates: list[str] = field(default_factory=list)
    #: Tenants with any of these modules.
    modules: list[str] = field(default_factory=list)
    plans: list[str] = field(default_factory=list)
    #: database, schema or shared.
    isolation: list[str] = field(default_factory=list)
    #: Database servers, as the plan's `server` names them.
    servers: list[str] = field(default_factory=list)
    #: Slugs.
    tenants: list[str] = field(default_factory=list)

    def selection(self) -> Selection:
        return Selection.of(asdict(self))


@dataclass(frozen=True)
class RefusalOut:
    slug: str
    why: str
