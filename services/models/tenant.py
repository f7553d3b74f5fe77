"""The tenant side: the basic layer's tables, as every tenant store has them.

Only ever read and written through a scoped tenant session (services.tenancy.sessions), which
filters every statement by the request's tenant (and unit subtree) and stamps new rows. The
tables themselves are created by the layers' migrations, never from this metadata; a test checks
the two agree. Tables of templates and modules are mapped from the store itself
(services.tenant_data.records), on the same markers.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, MetaData, String, Text, func, true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.models.types import UTCDateTime


class TenantRow:
    """A mapped class whose rows belong to one tenant: every tenant table has `tenant_id` (added
    by services.layers.ownership). Scoped sessions filter on this mixin's column."""

    tenant_id: Mapped[int] = mapped_column(index=True)


class UnitRow:
    """A mapped class whose rows belong to one unit: a member assigned to units sees only the
    rows of their subtrees."""

    unit_id: Mapped[int | None] = mapped_column()


class TenantBase(DeclarativeBase):
    metadata = MetaData()


class Role(TenantRow, TenantBase):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)


class Unit(TenantRow, TenantBase):
    """A node of the tenant's hierarchy. `path` lists the ids from the root ("/1/4/9/")."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(63), server_default="unit")
    path: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.current_timestamp())

    @property
    def depth(self) -> int:
        return self.path.count("/") - 2


class TenantUser(TenantRow, TenantBase):
    """A person's profile in the tenant; they sign in with the landlord account `account_id`."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int]
    email: Mapped[str] = mapped_column(String(254))
    display_name: Mapped[str] = mapped_column(String(200))
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="RESTRICT"))
    is_active: Mapped[bool] = mapped_column(server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.current_timestamp())


class UnitAssignment(UnitRow, TenantRow, TenantBase):
    __tablename__ = "unit_assignments"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)


class Setting(TenantRow, TenantBase):
    __tablename__ = "settings"

    tenant_id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(63), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class TenantAuditEntry(TenantRow, TenantBase):
    """The tenant's own log of what its people did in its portal."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.current_timestamp())
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(63))
    target: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[str | None] = mapped_column(Text)
