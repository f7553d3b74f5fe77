"""Who may enter a tenant, and in which scope: the whole tenant, or the subtrees of their units.

The precedence of what names the tenant (documented in docs/architecture.md): an API token
scoped to a tenant, then the host (a domain, or a subdomain of the base domain), then the
`/t/<slug>/` path prefix. A superadmin's switch does not name a tenant; it lets its holder in as
that tenant's admin.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import DomainError, NotFound
from services.models import Tenant, TenantRole, TenantStatus, User
from services.models.tenant import TenantUser, Unit, UnitAssignment
from services.tenancy.context import Scope

TENANT_ADMIN, TENANT_MEMBER = TenantRole.TENANT_ADMIN.value, TenantRole.TENANT_MEMBER.value


class TenantSuspended(DomainError):
    """The tenant exists and the caller belongs to it, but it is not open now."""


class TenantUnderMaintenance(DomainError):
    """The tenant's store is being restored, moved or migrated: back when that is done."""


def refuse_during_maintenance(tenant: Tenant) -> None:
    if tenant.status == TenantStatus.MAINTENANCE:
        raise TenantUnderMaintenance(
            f"{tenant.name} is under maintenance: its store is being restored, moved or migrated, and "
            "it is back once that is done; nothing can be read or changed until then."
        )


@dataclass(frozen=True)
class TenantAccess:
    tenant: Tenant
    role: str
    #: How the caller got in: "membership", "switch" or "token".
    via: str

    @property
    def is_admin(self) -> bool:
        return self.role == TENANT_ADMIN


def open_tenant(tenant: Tenant | None) -> Tenant:
    """The tenant a request names, if it can be entered at all. Unknown, or not provisioned yet:
    not found."""
    if tenant is None or tenant.status in (
        TenantStatus.PROVISIONING,
        TenantStatus.FAILED,
        TenantStatus.DELETED,
    ):
        raise NotFound("There is no such tenant here.")
    return tenant


async def find_open_tenant(session: AsyncSession, slug: str) -> Tenant:
    """The tenant a request names, looked up (see `open_tenant`)."""
    return open_tenant(await session.scalar(select(Tenant).where(Tenant.slug == slug)))


def member_tenant(user: User, slug: str) -> Tenant | None:
    """The tenant `slug` names if the user is one of its members, as loaded with the user: a
    member's request needs no lookup of its own."""
    return next((m.tenant for m in user.memberships if m.tenant.slug == slug), None)


def grant_access(
    tenant: Tenant, user: User, *, switched_into: int | None, via_token: bool
) -> TenantAccess | None:
    """The caller's access to `tenant`, or None when they have none (a cross-tenant attempt). Their
    role is the one of their memberships, as loaded with the user for this request."""
    if switched_into == tenant.id and user.can_switch_tenants:
        refuse_during_maintenance(tenant)
        return TenantAccess(tenant, TENANT_ADMIN, "switch")
    role = next((m.role for m in user.memberships if m.tenant_id == tenant.id), None)
    if role is None:
        return None
    refuse_during_maintenance(tenant)
    if tenant.status != TenantStatus.ACTIVE:
        raise TenantSuspended(closed_because(tenant))
    return TenantAccess(tenant, role, "token" if via_token else "membership")


def closed_because(tenant: Tenant) -> str:
    """What a tenant's people are told at its closed door (the portal's page, the API's 403)."""
    if tenant.status == TenantStatus.SUSPENDED:
        why = f": {tenant.status_reason.rstrip('.')}." if tenant.status_reason else "."
        return f"{tenant.name} is suspended by the platform{why} Its portal and API are closed until it is resumed."
    if tenant.status == TenantStatus.ARCHIVED:
        return f"{tenant.name} is being deleted; its portal and API are closed."
    return f"{tenant.name} is {tenant.status} at the moment; its portal is closed."


async def scope_for(data: AsyncSession, access: TenantAccess, user: User) -> Scope:
    """Admins see the whole tenant; a member sees the subtrees of the units they are assigned to
    (none at all until they are assigned). `data` is a tenant-level session of the tenant.

    Their profile is the one with their account's id and email (services.people.people). The
    membership that let them in decides that they are active, not the profile's flag: a
    deactivation whose landlord side failed after its store side committed leaves them in, as
    they are listed, with their units."""
    if access.is_admin:
        return Scope.of_tenant(access.tenant.id)
    assigned = select(Unit.path).join(UnitAssignment, UnitAssignment.unit_id == Unit.id)
    assigned = assigned.join(TenantUser, TenantUser.id == UnitAssignment.user_id)
    paths = list(
        await data.scalars(assigned.where(TenantUser.account_id == user.id, TenantUser.email == user.email))
    )
    if not paths:
        return Scope.of_units(access.tenant.id, frozenset())
    below = or_(*(Unit.path.startswith(path, autoescape=True) for path in paths))
    return Scope.of_units(access.tenant.id, frozenset(await data.scalars(select(Unit.id).where(below))))
