"""A tenant's first admin, the person through whom everyone else comes in. Named when the tenant is
asked for: the account is made at once (its password shown once to whoever asked) and the
provisioning job lets them in once the store exists. Or invited later, from the tenant's landlord
page, while the tenant has no admin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.passwords import generate_password, hash_password
from services.accounts.users import add_account, find_user, normalise_email
from services.audit import Caller, record_by
from services.errors import Conflict, FieldErrors
from services.models import Membership, Tenant, TenantStatus, User
from services.people.people import checked_display_name, count_active_people, put_profile, role_id_of
from services.settings import Settings
from services.tenancy.access import TENANT_ADMIN
from services.tenancy.connections import TenantConnections
from services.tenancy.entry import enter_tenant
from services.tenancy.stores import location_of

#: Where a provisioning job's payload names the first admin to let in.
FIRST_ADMIN = "first_admin"


@dataclass(frozen=True)
class FirstAdmin:
    """The account named as a tenant's first admin and the password to show once: None when the
    account was there already (it keeps its own; the landlord's staff may know who uses the
    platform, so this one says so)."""

    account: User
    display_name: str
    password: str | None

    def as_payload(self) -> dict[str, Any]:
        return {"account_id": self.account.id, "display_name": self.display_name}


async def name_first_admin(landlord: AsyncSession, email: str, display_name: str) -> FirstAdmin:
    """Check the email (field `admin_email`) and name (`admin_name`), every mistake at once, and find
    the account, or make it with a generated password its owner replaces at their first sign-in.
    The platform's staff are refused: they enter a tenant by switching into it."""
    errors = FieldErrors()
    with errors.checking("admin_email"):
        email = normalise_email(email, field="admin_email")
        account = await find_user(landlord, email)
        if account is not None and account.is_landlord_staff:
            raise Conflict(
                f"{email} is on the platform's staff, who enter tenants by switching; name someone "
                "of the tenant.",
                field="admin_email",
            )
        if account is not None and not account.is_active:
            raise Conflict(f"The account {email} is deactivated; name someone else.", field="admin_email")
    with errors.checking("admin_name"):
        display_name = checked_display_name(display_name, email, field="admin_name")
    errors.raise_if_any()
    if account is not None:
        return FirstAdmin(account, display_name, None)
    password = generate_password()
    account = await add_account(landlord, email, hash_password(password), one_time=True)
    return FirstAdmin(account, display_name, password)


async def let_first_admin_in(
    landlord: AsyncSession, data: AsyncSession, tenant: Tenant, account_id: int, display_name: str
) -> User:
    """The first admin's profile (admin of the whole tenant) committed to the store, then their
    membership, the door, written into `landlord` for the caller to commit. Once done, doing it
    again changes nothing (a resumed job)."""
    account = await landlord.get_one(User, account_id)
    await put_profile(
        data,
        account_id=account.id,
        email=account.email,
        display_name=display_name,
        role_id=await role_id_of(data, TENANT_ADMIN),
        is_active=True,
        unit_ids=[],
    )
    await data.commit()
    if not any(membership.tenant_id == tenant.id for membership in account.memberships):
        landlord.add(Membership(user_id=account.id, tenant_id=tenant.id, role=TENANT_ADMIN))
        await landlord.flush()
    return account


async def invite_first_admin(
    landlord: AsyncSession,
    settings: Settings,
    connections: TenantConnections,
    caller: Caller,
    tenant: Tenant,
    *,
    email: str,
    display_name: str,
) -> FirstAdmin:
    """An active tenant without an admin gets one, for landlord staff (`person.first_admin`);
    everyone else they invite themselves. Refused, writing nothing, for a tenant that has an
    admin or is not active, and for a wrong email or name."""
    if tenant.status != TenantStatus.ACTIVE:
        raise Conflict(f"{tenant.name} is {tenant.status}; invite its first admin once it is active.")
    if await count_active_people(landlord, tenant, role=TENANT_ADMIN):
        raise Conflict(
            f"{tenant.name} has an admin already, who invites everyone else from its People page.",
            field="admin_email",
        )
    first = await name_first_admin(landlord, email, display_name)
    location = location_of(settings, tenant)
    async with (
        enter_tenant(tenant.id, location, connections=connections) as entered,
        entered.session() as data,
    ):
        await let_first_admin_in(landlord, data, tenant, first.account.id, first.display_name)
    await record_by(landlord, caller, "person.first_admin", tenant=tenant, target=first.account.email)
    return first


async def admins_of(landlord: AsyncSession, tenant: Tenant) -> list[User]:
    """The tenant's active admins, as the landlord's tenant page lists them (with when each last
    signed in: a first admin who never has is still to be reached)."""
    admins = (
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == tenant.id, Membership.role == TENANT_ADMIN, User.is_active.is_(True))
        .order_by(User.email)
    )
    return list(await landlord.scalars(admins))
