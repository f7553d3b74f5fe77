"""The landlord database: the platform's own records. No table here holds tenant business data."""

from __future__ import annotations

import enum
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.models.types import UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class LandlordBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime}


class PlatformRole(enum.StrEnum):
    SUPERADMIN = "superadmin"
    LANDLORD_ADMIN = "landlord_admin"


class TenantRole(enum.StrEnum):
    TENANT_ADMIN = "tenant_admin"
    TENANT_MEMBER = "tenant_member"


class TenantStatus(enum.StrEnum):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    FAILED = "failed"
    SUSPENDED = "suspended"
    #: Being deleted: closed to its people, its store kept until `delete_after` (services.lifecycle).
    ARCHIVED = "archived"
    #: Its store dropped; its backups, audit trail and row stay.
    DELETED = "deleted"
    #: Its store is being restored, moved or migrated: the portal shows a maintenance page, the API a 503.
    MAINTENANCE = "maintenance"


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @classmethod
    def unfinished(cls) -> tuple[JobStatus, ...]:
        return (cls.QUEUED, cls.RUNNING)


class IsolationMode(enum.StrEnum):
    DATABASE = "database"
    SCHEMA = "schema"
    SHARED = "shared"


class Plan(LandlordBase):
    """What a tenant may use. None for a limit means no limit; None for `modules`, every module."""

    __tablename__ = "plans"

    key: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    modules: Mapped[list[str] | None] = mapped_column(JSON)
    max_modules: Mapped[int | None]
    max_users: Mapped[int | None]
    max_storage_mb: Mapped[int | None]
    #: Requests a minute by request class, for the whole tenant and each of its callers
    #: (services.rate_limits.policy.TenantRates); None: not limited.
    rate_limits: Mapped[dict[str, dict[str, int]] | None] = mapped_column(JSON)
    #: Backups the tenant may ask for by hand in any 24 hours (services.quotas).
    max_backups_per_day: Mapped[int | None]
    #: Rows the tenant may keep in each module, in named modules or tables
    #: (services.storage_quotas.RowLimits); None: not limited.
    row_limits: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    def allows_module(self, name: str) -> bool:
        return self.modules is None or name in self.modules


DEFAULT_PLAN = "standard"


class Tenant(LandlordBase):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32), default=TenantStatus.PROVISIONING)
    template: Mapped[str] = mapped_column(String(63))
    #: Enabled modules, in the order their migrations apply.
    modules: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Modules disabled with their data kept: their tables stay in the store, hidden, until the
    #: module is enabled again.
    kept_modules: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    plan_key: Mapped[str] = mapped_column(
        ForeignKey("plans.key", ondelete="RESTRICT"), default=DEFAULT_PLAN, server_default=DEFAULT_PLAN
    )
    isolation: Mapped[str] = mapped_column(String(32))
    #: The landlord's own rate limits for this tenant, in place of its plan's; None: the plan's.
    rate_limits: Mapped[dict[str, dict[str, int]] | None] = mapped_column(JSON)
    #: Where the tenant store lives: `sqlite` or `postgresql`, and the file, database or schema name.
    store_backend: Mapped[str | None] = mapped_column(String(32))
    store_name: Mapped[str | None] = mapped_column(String(255))
    #: The tenant server (TENANTRY_TENANT_SERVERS) a PostgreSQL store is on; None: the default one.
    store_server: Mapped[str | None] = mapped_column(String(63))
    #: The error that stopped provisioning, shown on the tenant page until a retry succeeds.
    error: Mapped[str | None] = mapped_column(Text)
    #: Why the platform suspended it, in words its people read on the closed portal and in the
    #: API's 403; kept while it is being deleted, so that undoing the deletion suspends it again.
    status_reason: Mapped[str | None] = mapped_column(Text)
    #: Being deleted: when its store may be dropped (set once the deletion's backup is verified).
    delete_after: Mapped[datetime | None]
    #: Its clock, as its own settings say (services.tenant_settings keeps the two the same).
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    #: The latest schema snapshot (SchemaSnapshot), named where requests read it: with the tenant.
    #: Written with each snapshot (services.provisioning.steps.record_snapshot).
    schema_snapshot_id: Mapped[int | None]
    schema_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    plan: Mapped[Plan] = relationship(lazy="joined")


class User(LandlordBase):
    """A person who signs in. Platform staff carry a platform role; tenant people have memberships."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    platform_role: Mapped[str | None] = mapped_column(String(32))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None]
    #: Landlord admins switch into tenants only when a superadmin grants it; superadmins always may.
    may_switch_tenants: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Its password was shown to someone else (an invitation, a first admin, a reset): it chooses
    #: its own before anything else (web.account.password_first).
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Sessions signed in before this moment are signed out (web.auth): set by a reset, a new
    #: password and "sign out everywhere else". None: every session of the account counts.
    sessions_valid_after: Mapped[datetime | None]

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", lazy="selectin")

    @property
    def is_superadmin(self) -> bool:
        return self.platform_role == PlatformRole.SUPERADMIN

    @property
    def can_switch_tenants(self) -> bool:
        return self.is_superadmin or (self.is_landlord_staff and self.may_switch_tenants)

    @property
    def is_landlord_staff(self) -> bool:
        return self.platform_role in (PlatformRole.SUPERADMIN, PlatformRole.LANDLORD_ADMIN)

    @property
    def role_label(self) -> str:
        if self.platform_role:
            return self.platform_role
        return ", ".join(sorted({membership.role for membership in self.memberships})) or "none"


class Membership(LandlordBase):
    """A user's role inside one tenant."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "tenant_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="memberships")
    tenant: Mapped[Tenant] = relationship(lazy="joined")


class Domain(LandlordBase):
    """A host name that resolves to a tenant (besides the subdomains of the base domain)."""

    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(String(253), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(LandlordBase):
    """A bearer token for the JSON API; only its SHA-256 is kept. No tenant means landlord scope."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    #: From then on it is refused, as a revoked one is; None: it never expires.
    expires_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")
    tenant: Mapped[Tenant | None] = relationship(lazy="joined")


class Job(LandlordBase):
    """The durable record of one piece of background work; the broker only delivers its id."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(63))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(32), default=JobStatus.QUEUED)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    #: Indexed: the dashboard counts the jobs of each recent day, and the jobs page runs by day.
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: While running, the claiming worker renews this; an expired lease means the worker died.
    lease_expires_at: Mapped[datetime | None]
    #: The database server a running job does its store work on (services.server_limits).
    server: Mapped[str | None] = mapped_column(String(255))

    steps: Mapped[list[JobStep]] = relationship(
        back_populates="job", order_by="JobStep.position", lazy="selectin", cascade="all, delete-orphan"
    )
    tenant: Mapped[Tenant | None] = relationship(lazy="joined")

    @property
    def finished(self) -> bool:
        return self.status not in JobStatus.unfinished()


class JobStep(LandlordBase):
    """One step of a job; a step that succeeded is never run again when the job resumes."""

    __tablename__ = "job_steps"
    __table_args__ = (UniqueConstraint("job_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(32), default=StepStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: What the step did, in a sentence ("cloned the golden image", "3 revisions applied").
    detail: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)

    job: Mapped[Job] = relationship(back_populates="steps")

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class MigrationHistory(LandlordBase):
    """One revision of one layer applied to (or reverted from) one tenant store."""

    __tablename__ = "migration_history"
    __table_args__ = (Index("ix_migration_history_tenant_id_at", "tenant_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    layer: Mapped[str] = mapped_column(String(127))
    revision: Mapped[str] = mapped_column(String(63))
    direction: Mapped[str] = mapped_column(String(8))
    duration_ms: Mapped[float]
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class TenantLayer(LandlordBase):
    """Where one layer of one tenant's store is now. Written in the transaction of the history row
    of every revision run (services.layers.history), so the fleet is read without opening a store."""

    __tablename__ = "tenant_layers"
    __table_args__ = (Index("ix_tenant_layers_layer_revision", "layer", "revision"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    layer: Mapped[str] = mapped_column(String(127), primary_key=True)
    revision: Mapped[str] = mapped_column(String(63))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RolloutStatus(enum.StrEnum):
    RUNNING = "running"
    #: Asked to pause: no tenant starts; those migrating finish. Resumed, it goes on where it was.
    PAUSED = "paused"
    #: Its halt rule was crossed: no tenant starts. It can be resumed, or rolled back.
    HALTED = "halted"
    CANCELLED = "cancelled"
    #: Every tenant ran: each is at its target, or back where it started (failed).
    FINISHED = "finished"

    @classmethod
    def stopped(cls) -> tuple[RolloutStatus, ...]:
        """Where no tenant starts until someone says so."""
        return (cls.PAUSED, cls.HALTED, cls.CANCELLED, cls.FINISHED)


class RolloutTenantStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    #: A revision failed; the tenant was taken back to the revisions it started at.
    FAILED = "failed"
    #: Not run: its tenant was not in service, or busy with another job, when its turn came.
    REFUSED = "refused"
    #: Not run: the rollout was cancelled before its turn.
    SKIPPED = "skipped"

    @classmethod
    def finished(cls) -> tuple[RolloutTenantStatus, ...]:
        return (cls.SUCCEEDED, cls.FAILED, cls.REFUSED, cls.SKIPPED)


class Rollout(LandlordBase):
    """Layer revisions taken to many tenants in waves: what it aims at, how, and how far it got.
    Its tenants, and each one's progress, are its RolloutTenant rows."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(32), default=RolloutStatus.RUNNING)
    #: One layer's key, or None: every layer of each tenant.
    layer: Mapped[str | None] = mapped_column(String(127))
    #: The revision `layer` goes to (up or down), or None: its head.
    revision: Mapped[str | None] = mapped_column(String(63))
    #: Which tenants, as asked: {"templates": [...], "modules": [...], "plans": [...], ...}.
    selection: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    canary: Mapped[int] = mapped_column(default=1)
    wave_size: Mapped[int] = mapped_column(default=10)
    concurrency: Mapped[int] = mapped_column(default=4)
    per_server: Mapped[int] = mapped_column(default=2)
    halt_after_failures: Mapped[int | None]
    halt_failure_percent: Mapped[int | None]
    lock_timeout_ms: Mapped[int] = mapped_column(default=5000)
    statement_timeout_ms: Mapped[int] = mapped_column(default=600_000)
    #: Each tenant is backed up, and the backup proved to restore, before its layers move.
    backup_first: Mapped[bool] = mapped_column(default=False)
    #: Tenants whose schema has drifted are taken too (refused otherwise).
    force: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: The rollout this one takes back (its tenants return to where that one found them).
    rollback_of: Mapped[int | None] = mapped_column(ForeignKey("rollouts.id", ondelete="SET NULL"))
    requested_by: Mapped[str | None] = mapped_column(String(254))
    #: Why it stopped, when it did by itself (its halt rule).
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    tenants: Mapped[list[RolloutTenant]] = relationship(
        back_populates="rollout", order_by="RolloutTenant.position", lazy="raise"
    )


class RolloutTenant(LandlordBase):
    """One tenant of a rollout: its wave, where its layers started and are going, and how it went.
    Tenants of one shared store are one unit: the store is migrated once, for all of them."""

    __tablename__ = "rollout_tenants"
    __table_args__ = (Index("ix_rollout_tenants_rollout_id_status", "rollout_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: 0: the canary; then 1, 2, …
    wave: Mapped[int]
    position: Mapped[int]
    #: The database server the store is on (the per-server concurrency counts these).
    server: Mapped[str] = mapped_column(String(255))
    #: The store, for tenants of a shared store (they move together); None for a store of its own.
    shared_store: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), default=RolloutTenantStatus.QUEUED)
    #: {layer: revision or None} where the tenant's layers were when its turn came (None: not yet).
    started_at_revisions: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: {layer: revision or None} where its layers go.
    target_revisions: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The lane (job) that runs, or ran, the tenant.
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    #: The backup taken before its first change (a rollout with `backup_first`).
    safety_backup_id: Mapped[int | None] = mapped_column(ForeignKey("backups.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    #: What happened, said for people: the revisions applied, or what was taken back.
    detail: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    rollout: Mapped[Rollout] = relationship(back_populates="tenants", lazy="raise")
    tenant: Mapped[Tenant] = relationship(lazy="joined")

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class DriftCheck(LandlordBase):
    """One tenant's store compared with what its recorded layer revisions should give."""

    __tablename__ = "drift_checks"
    __table_args__ = (Index("ix_drift_checks_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    drifted: Mapped[bool]
    #: Each difference, said for people; empty when the store is as its layers should make it.
    differences: Mapped[list[str]] = mapped_column(JSON, default=list)
    requested_by: Mapped[str | None] = mapped_column(String(254))
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)


class SchemaSnapshot(LandlordBase):
    """A normalised description of a tenant store's actual schema, and its SHA-256."""

    __tablename__ = "schema_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    description: Mapped[dict[str, Any]] = mapped_column(JSON)
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)


class GoldenImage(LandlordBase):
    """A pre-built store for one (backend, template, modules, layer heads); cloned instead of replayed."""

    __tablename__ = "golden_images"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    backend: Mapped[str] = mapped_column(String(32))
    store_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WarmStoreStatus(enum.StrEnum):
    #: A worker is building it; a job that dies mid-build finds and removes it when it resumes.
    BUILDING = "building"
    #: Built, at its layers' heads and its schema hashed: a new tenant may take it.
    READY = "ready"


class WarmStore(LandlordBase):
    """A tenant store built ahead for one recipe (the golden image key: backend, isolation,
    template, modules and layer heads), waiting in the warm pool for a new tenant to take it.
    Taking it renames the store after the tenant and deletes this row in one transaction."""

    __tablename__ = "warm_stores"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipe: Mapped[str] = mapped_column(String(64), index=True)
    backend: Mapped[str] = mapped_column(String(32))
    isolation: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(64))
    modules: Mapped[list[str]] = mapped_column(JSON, default=list)
    store_name: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=WarmStoreStatus.BUILDING)
    #: The fill job building it, which removes it should the job resume after dying mid-build.
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    sha256: Mapped[str | None] = mapped_column(String(64))
    #: Its schema snapshot (services.layers.snapshot), which the tenant taking it keeps as its own.
    description: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StoreEntry(LandlordBase):
    """Short-lived key/value data shared by every web process: sessions, sign-in throttling."""

    __tablename__ = "store_entries"

    namespace: Mapped[str] = mapped_column(String(63), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime | None] = mapped_column(index=True)


class AuditEntry(LandlordBase):
    """One thing someone did on the platform. Append-only (database triggers refuse UPDATE and
    DELETE); each entry's hash covers the previous entry's hash, so a change anywhere shows."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: 1, 2, 3, … with no gaps: a missing number is a removed entry.
    seq: Mapped[int] = mapped_column(unique=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[int | None] = mapped_column(index=True)
    #: Kept as typed even when no user has it (a failed sign-in), and after the user is gone.
    actor_email: Mapped[str] = mapped_column(String(254), index=True)
    #: No foreign key: deleting a tenant must not delete or change its history.
    tenant_id: Mapped[int | None] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(63), index=True)
    target: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChain(LandlordBase):
    """The head of the audit trail (one row): the last entry's number and hash. Writers lock it to
    take the next number, and verifying compares it with the last entry, so a cut tail shows."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    hash: Mapped[str] = mapped_column(String(64))


class BackupFormat(enum.StrEnum):
    #: SQLite's online backup API, or pg_dump: fast, restorable into the same backend and mode.
    NATIVE = "native"
    #: A manifest and one JSON-lines file per table: restorable into any isolation mode and backend.
    PORTABLE = "portable"


class Verification(enum.StrEnum):
    NOT_VERIFIED = "not_verified"
    VERIFIED = "verified"
    FAILED = "failed"


class Backup(LandlordBase):
    """One backup of one tenant's store: an archive in backup storage, its SHA-256 and manifest
    (layer versions, per-table row counts and checksums), and whether restoring it was proved."""

    __tablename__ = "backups"
    __table_args__ = (
        Index("ix_backups_tenant_id_created_at", "tenant_id", "created_at"),
        # One backup per schedule slot, however many schedulers claim it.
        Index("uq_backups_tenant_id_scheduled_for", "tenant_id", "scheduled_for", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Kept when the tenant is deleted (SET NULL): its backups outlive it, named by the slug.
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"))
    tenant_slug: Mapped[str] = mapped_column(String(63))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    format: Mapped[str] = mapped_column(String(16))
    #: queued, running, succeeded (the archive is complete) or failed, as a job's.
    status: Mapped[str] = mapped_column(String(32), default=JobStatus.QUEUED)
    #: Where the archive is, inside backup storage.
    storage_key: Mapped[str | None] = mapped_column(String(500))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    verification: Mapped[str] = mapped_column(String(16), default=Verification.NOT_VERIFIED)
    #: What the verification found, in a sentence (or which tables differ).
    verification_detail: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str | None] = mapped_column(String(254))
    #: The schedule slot this backup was taken for; None for one asked for. Retention prunes only these.
    scheduled_for: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    verified_at: Mapped[datetime | None]


class TenantLock(LandlordBase):
    """Held by the one backup or restore job working on a tenant's store; others wait for it."""

    __tablename__ = "tenant_locks"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)


class BackupSchedule(LandlordBase):
    """A tenant backed up daily at a time (UTC) in a format, its newest `keep` scheduled backups
    kept. `next_run_at` is the slot schedulers claim next, with a conditional UPDATE."""

    __tablename__ = "backup_schedules"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    daily_at: Mapped[time]
    format: Mapped[str] = mapped_column(String(16))
    keep: Mapped[int]
    next_run_at: Mapped[datetime] = mapped_column(index=True)
    #: The last slot claimed, and why it gave no backup (a suspended tenant), when it did not.
    last_run_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_by: Mapped[str | None] = mapped_column(String(254))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageSample(LandlordBase):
    """A tenant's usage as measured on a day (its latest measure that day): what its pages draw
    over time (services.usage_history)."""

    __tablename__ = "usage_samples"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    #: None for a tenant of a shared store, which has no store of its own to measure.
    storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    people: Mapped[int]


class OldStore(enum.StrEnum):
    """What became of the store a tenant moved out of."""

    #: Kept until `kept_until`: the tenant can move back to it.
    KEPT = "kept"
    #: The tenant moved back to it (or another move took it there again): in use, never dropped.
    IN_USE = "in use"
    #: Its retention ended and it was dropped (a shared store's rows of the tenant removed).
    DROPPED = "dropped"


class TenantMove(LandlordBase):
    """A tenant's store moved to another isolation mode or backend (services.moves): where from,
    where to, the figures, and the store it left, kept for a while so it can move back."""

    __tablename__ = "tenant_moves"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    #: The portable backup the move copies (verified by the move itself).
    backup_id: Mapped[int | None] = mapped_column(ForeignKey("backups.id", ondelete="SET NULL"))
    #: The move this one takes back ("move back").
    back_of: Mapped[int | None] = mapped_column(ForeignKey("tenant_moves.id", ondelete="SET NULL"))
    from_backend: Mapped[str] = mapped_column(String(32))
    from_isolation: Mapped[str] = mapped_column(String(32))
    from_store: Mapped[str] = mapped_column(String(255))
    #: The tenant servers of a PostgreSQL store, by name (None: SQLite).
    from_server: Mapped[str | None] = mapped_column(String(63))
    to_backend: Mapped[str] = mapped_column(String(32))
    to_isolation: Mapped[str] = mapped_column(String(32))
    to_server: Mapped[str | None] = mapped_column(String(63))
    #: Named when the move starts: a new store of its own, or the shared store.
    to_store: Mapped[str | None] = mapped_column(String(255))
    #: Set once the tenant uses the new store (OldStore); None before.
    old_store: Mapped[str | None] = mapped_column(String(16))
    kept_until: Mapped[datetime | None]
    rows: Mapped[int | None] = mapped_column(BigInteger)
    tables: Mapped[int | None]
    #: From the start of the copy to the new store proved equal to it.
    copy_ms: Mapped[int | None]
    #: How long the tenant held its writes (its maintenance page): the final catch-up and the swap.
    freeze_ms: Mapped[int | None]
    requested_by: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    job: Mapped[Job | None] = relationship(lazy="joined")


#: A move plan runs, pauses, halts, is cancelled and finishes as a rollout does.
MovePlanStatus = RolloutStatus


class MovePlanTenantStatus(enum.StrEnum):
    QUEUED = "queued"
    #: Its move job is under way.
    MOVING = "moving"
    MOVED = "moved"
    #: Its move failed: the tenant is wholly in the store it was in.
    FAILED = "failed"
    #: Not moved: it could not move (said why) when the plan started or when its turn came.
    REFUSED = "refused"
    #: Not moved: the plan was cancelled before its turn.
    SKIPPED = "skipped"


class MovePlan(LandlordBase):
    """Many tenants moved to one kind of store, batch after batch, a few at a time, each by a move
    of its own (TenantMove, its job on the one job machinery). Its tenants are MovePlanTenant rows."""

    __tablename__ = "move_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(32), default=MovePlanStatus.RUNNING)
    #: Which tenants, as asked: {"templates": [...], "plans": [...], "isolation": [...], ...}.
    selection: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    to_isolation: Mapped[str] = mapped_column(String(32))
    #: None: each tenant's own backend.
    to_backend: Mapped[str | None] = mapped_column(String(32))
    #: A tenant server by name; None: the one each tenant is on, else the default.
    to_server: Mapped[str | None] = mapped_column(String(63))
    batch_size: Mapped[int] = mapped_column(default=10)
    concurrency: Mapped[int] = mapped_column(default=2)
    halt_after_failures: Mapped[int | None]
    #: Failures the halt rule no longer counts: those before it was last resumed.
    failures_resumed_past: Mapped[int] = mapped_column(default=0)
    requested_by: Mapped[str | None] = mapped_column(String(254))
    #: Why it stopped, when it did by itself (its halt rule).
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class MovePlanTenant(LandlordBase):
    """One tenant of a move plan: its batch, its move, and how it went."""

    __tablename__ = "move_plan_tenants"
    __table_args__ = (Index("ix_move_plan_tenants_plan_id_status", "plan_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("move_plans.id", ondelete="CASCADE"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    batch: Mapped[int]
    position: Mapped[int]
    status: Mapped[str] = mapped_column(String(32), default=MovePlanTenantStatus.QUEUED)
    #: Its move, once its turn came (its figures: rows, copy and freeze times).
    move_id: Mapped[int | None] = mapped_column(ForeignKey("tenant_moves.id", ondelete="SET NULL"))
    #: Rows per table when the plan was made (its dry run's figures).
    planned_rows: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    tenant: Mapped[Tenant] = relationship(lazy="joined")
    move: Mapped[TenantMove | None] = relationship(lazy="joined")
