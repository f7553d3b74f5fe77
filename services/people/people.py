"""A tenant's people, always through a scoped tenant session.

A person is a landlord account with a membership of the tenant (what lets them in, and as which
role) and a profile in the tenant's store (`TenantUser`: name, role, units, whether active).
Deactivating removes the membership, so the door (services.tenancy.access) refuses them on their
next request whatever sessions or tokens they hold, and marks the profile inactive, which keeps
their role and units for a reactivation. People are named by their account id: it is the same in
every store, so an id never names someone else's person in another tenant's store.

The use cases, as a caller asks for them (the portal and the API alike), are at the end: invite,
give_role, assign_units, deactivate, reactivate, each on the audit trail against the tenant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from services.accounts.passwords import generate_password, hash_password
from services.accounts.users import add_account, find_user, normalise_email
from services.audit import Caller, record_by
from services.errors import Conflict, FieldErrors, InvalidInput, NotFound
from services.limits import holds
from services.models import Membership, Plan, Tenant, User
from services.models.tenant import Role, TenantUser, Unit, UnitAssignment
from services.people.units import counted
from services.tenancy.access import TENANT_ADMIN, TENANT_MEMBER

TENANT_ROLES = (TENANT_ADMIN, TENANT_MEMBER)


# --- People ---------------------------------------------------------------------------------------
#
# The membership (landlord database) is the door and says the role; the profile (tenant store) holds
# the name and the units, and for someone deactivated the role to come back with. The two live in two
# databases, so every change commits the tenant's store first and the landlord last: a failure
# between leaves the door as it was. An invitation whose door never opened leaves a profile whose
# account was never committed (on SQLite that id may later be another account's): such a profile is
# nobody. It is never listed or let in, and the next profile written for that email or account id
# takes it over (`put_profile`), so an account has one profile per tenant.


@dataclass(frozen=True)
class Person:
    account_id: int
    email: str
    display_name: str
    role: str
    #: Has a membership: may enter the tenant.
    active: bool
    units: tuple[Unit, ...]
    joined_at: datetime | None

    @property
    def is_admin(self) -> bool:
        return self.role == TENANT_ADMIN


@dataclass(frozen=True)
class Invitation:
    """Someone written into the tenant's store, waiting for their door (`let_in`)."""

    user: User
    role: str
    #: Shown once, in the answer to the invitation. A new account's password; for an email that
    #: already had an account (in this or any tenant) a password that is never stored, since that
    #: account keeps its own. The answer looks the same either way: an invitation does not tell
    #: who uses the platform.
    password: str


def _check_role(role: str) -> str:
    if role not in TENANT_ROLES:
        raise InvalidInput("Choose a role: tenant admin or member.", field="role")
    return role


async def _role_keys(data: AsyncSession) -> dict[int, str]:
    return {role.id: role.key for role in await data.scalars(select(Role))}


async def role_id_of(data: AsyncSession, role: str) -> int:
    role_id = await data.scalar(select(Role.id).where(Role.key == role))
    if role_id is None:
        raise InvalidInput(f"This tenant has no role {role!r}.", field="role")
    return role_id


async def _visible_units(data: AsyncSession, unit_ids: Iterable[int]) -> list[Unit]:
    units = []
    for unit_id in dict.fromkeys(unit_ids):
        unit = await data.scalar(select(Unit).where(Unit.id == unit_id)) if holds(Unit.id, unit_id) else None
        if unit is None:
            raise NotFound("One of the chosen units is not here any more; choose again.", field="units")
        units.append(unit)
    return units


def _memberships(tenant: Tenant) -> Select[Membership]:
    return select(Membership).options(joinedload(Membership.user)).where(Membership.tenant_id == tenant.id)


async def _units_by_profile(data: AsyncSession, profile_ids: Iterable[int]) -> dict[int, list[Unit]]:
    assigned = (
        select(UnitAssignment.user_id, Unit)
        .join(Unit, Unit.id == UnitAssignment.unit_id)
        .where(UnitAssignment.user_id.in_(list(profile_ids)))
        .order_by(Unit.path)
    )
    units: dict[int, list[Unit]] = defaultdict(list)
    for profile_id, unit in await data.execute(assigned):
        units[profile_id].append(unit)
    return units


async def _theirs(
    landlord: AsyncSession, profiles: Iterable[TenantUser], memberships: dict[int, Membership]
) -> list[TenantUser]:
    """The profiles that are their account's: an account with the profile's id and email (from
    `memberships`, by account id, or else from the landlord). Any other was left by an invitation
    whose door never opened."""
    profiles = list(profiles)
    emails = {account_id: membership.user.email for account_id, membership in memberships.items()}
    if outside := [profile.account_id for profile in profiles if profile.account_id not in emails]:
        accounts = await landlord.execute(select(User.id, User.email).where(User.id.in_(outside)))
        emails.update({account_id: email for account_id, email in accounts})
    return [profile for profile in profiles if emails.get(profile.account_id) == profile.email]


def _person(
    membership: Membership | None,
    profile: TenantUser | None,
    role_keys: dict[int, str],
    units: dict[int, list[Unit]],
) -> Person:
    if profile is None:
        assert membership is not None
        email = membership.user.email
        return Person(membership.user_id, email, email, membership.role, True, (), membership.created_at)
    return Person(
        account_id=profile.account_id,
        email=membership.user.email if membership is not None else profile.email,
        display_name=profile.display_name,
        role=membership.role if membership is not None else role_keys[profile.role_id],
        active=membership is not None,
        units=tuple(units.get(profile.id, ())),
        joined_at=profile.created_at,
    )


async def list_people(landlord: AsyncSession, data: AsyncSession, tenant: Tenant) -> list[Person]:
    """Everyone of the tenant, active first: those with a membership (one made outside the portal
    may have no profile yet) and the deactivated, who have only their profile."""
    memberships = {m.user_id: m for m in await landlord.scalars(_memberships(tenant))}
    stored = await data.scalars(select(TenantUser))
    profiles = {profile.account_id: profile for profile in await _theirs(landlord, stored, memberships)}
    role_keys = await _role_keys(data)
    units = await _units_by_profile(data, [profile.id for profile in profiles.values()])
    people = [
        _person(memberships.get(account_id), profiles.get(account_id), role_keys, units)
        for account_id in memberships.keys() | profiles.keys()
    ]
    return sorted(people, key=lambda p: (not p.active, p.display_name.lower(), p.email))


async def _find(
    landlord: AsyncSession, data: AsyncSession, tenant: Tenant, account_id: int
) -> tuple[Membership | None, TenantUser | None]:
    membership = await landlord.scalar(_memberships(tenant).where(Membership.user_id == account_id))
    stored = await data.scalars(select(TenantUser).where(TenantUser.account_id == account_id))
    profile = next(
        iter(await _theirs(landlord, stored, {account_id: membership} if membership else {})), None
    )
    if membership is None and profile is None:
        raise NotFound("There is no such person here.", field="person")
    return membership, profile


async def get_person(landlord: AsyncSession, data: AsyncSession, tenant: Tenant, account_id: int) -> Person:
    membership, profile = await _find(landlord, data, tenant, account_id)
    units = await _units_by_profile(data, [profile.id] if profile else [])
    return _person(membership, profile, await _role_keys(data), units)


async def put_profile(
    data: AsyncSession,
    *,
    account_id: int,
    email: str,
    display_name: str,
    role_id: int,
    is_active: bool,
    unit_ids: Iterable[int],
    profile_id: int | None = None,
) -> TenantUser:
    """Write a person's profile with exactly these unit assignments (units of the store). A profile
    already there under the account id or the email (theirs, or one an unfinished invitation left)
    is the one written, and any second one removed; a new one gets `profile_id` when given."""
    found = list(
        await data.scalars(
            select(TenantUser)
            .where(or_(TenantUser.account_id == account_id, TenantUser.email == email))
            .order_by(TenantUser.id)
        )
    )
    for extra in found[1:]:
        await data.delete(extra)
    profile = found[0] if found else TenantUser(id=profile_id)
    profile.account_id, profile.email, profile.display_name = account_id, email, display_name
    profile.role_id, profile.is_active = role_id, is_active
    data.add(profile)
    await data.flush()
    await data.execute(delete(UnitAssignment).where(UnitAssignment.user_id == profile.id))
    data.add_all(UnitAssignment(user_id=profile.id, unit_id=unit_id) for unit_id in dict.fromkeys(unit_ids))
    await data.flush()
    return profile


async def add_profile(data: AsyncSession, account: User, role: str) -> TenantUser:
    """The profile of someone given a membership outside the portal (`tenantry create-user`):
    named by their email, in no units yet."""
    return await put_profile(
        data,
        account_id=account.id,
        email=account.email,
        display_name=account.email,
        role_id=await role_id_of(data, role),
        is_active=True,
        unit_ids=[],
    )


async def _with_profile(
    landlord: AsyncSession, data: AsyncSession, tenant: Tenant, account_id: int
) -> tuple[Membership | None, TenantUser]:
    """The person's membership (None when deactivated) and profile, which someone whose membership
    was made without one gets here, the first time they are changed."""
    membership, profile = await _find(landlord, data, tenant, account_id)
    if profile is None:
        assert membership is not None
        profile = await add_profile(data, membership.user, membership.role)
    return membership, profile


async def _lock_people(landlord: AsyncSession, tenant: Tenant) -> Plan:
    """Changes to a tenant's people queue behind each other (a row lock on the tenant), so two
    admins cannot both pass a quota or last-admin check that only one of them should. Its plan."""
    await landlord.execute(select(Tenant.id).where(Tenant.id == tenant.id).with_for_update())
    return await landlord.get_one(Plan, tenant.plan_key)


async def count_active_people(landlord: AsyncSession, tenant: Tenant, *, role: str | None = None) -> int:
    """People who may enter the tenant (of `role`, when given): memberships of active accounts."""
    active = (
        select(func.count())
        .select_from(Membership)
        .join(User, User.id == Membership.user_id)
        .where(Membership.tenant_id == tenant.id, User.is_active.is_(True))
    )
    if role is not None:
        active = active.where(Membership.role == role)
    return await landlord.scalar(active) or 0


async def _check_room_for_one_more(landlord: AsyncSession, tenant: Tenant, plan: Plan) -> None:
    if plan.max_users is None:
        return
    active = await count_active_people(landlord, tenant)
    if active >= plan.max_users:
        raise Conflict(
            f"{tenant.name}'s plan ({plan.name}) allows {counted(plan.max_users, 'active person', 'active people')}, "
            f"and {active} {'is' if active == 1 else 'are'} active. Deactivate someone first, or ask about "
            "a larger plan.",
            field="people",
        )


async def _keep_an_admin(landlord: AsyncSession, tenant: Tenant, person: str, change: str) -> None:
    if await count_active_people(landlord, tenant, role=TENANT_ADMIN) <= 1:
        raise Conflict(
            f"{person} is the last active admin of {tenant.name}: make someone else an admin before "
            f"you {change}.",
            field="role",
        )


async def _check_new_to_tenant(
    landlord: AsyncSession, data: AsyncSession, tenant: Tenant, email: str
) -> None:
    """Only this tenant's own people are refused: whether the email has an account elsewhere on the
    platform is not this tenant's business (an account joins several tenants)."""
    member = await landlord.scalar(_memberships(tenant).join(User).where(User.email == email))
    if member is not None:
        raise Conflict(f"{email} is already one of {tenant.name}'s people.", field="email")
    profile = await data.scalar(select(TenantUser).where(TenantUser.email == email))
    if profile is not None and await _theirs(landlord, [profile], {}):
        raise Conflict(
            f"{email} was one of {tenant.name}'s people and is deactivated: reactivate them instead.",
            field="email",
        )


def checked_display_name(display_name: str, email: str, *, field: str = "display_name") -> str:
    display_name = display_name.strip()
    if len(display_name) > 200:
        raise InvalidInput("A name is at most 200 characters.", field=field)
    return display_name or email


async def _account_for(landlord: AsyncSession, email: str, *, one_time: bool) -> tuple[User, str]:
    """The account `email` signs in with, made now if there is none, and a generated password: the
    new account's, or one never stored. It is hashed either way, so both answers take as long. A
    new account's password is `one_time` when someone else is shown it (an invitation)."""
    password = generate_password()
    password_hash = hash_password(password)
    account = await find_user(landlord, email)
    if account is None:
        account = await add_account(landlord, email, password_hash, one_time=one_time)
    return account, password


async def _write_invitation(
    landlord: AsyncSession,
    data: AsyncSession,
    *,
    email: str,
    display_name: str,
    role: str,
    unit_ids: list[int],
    one_time: bool,
) -> Invitation:
    role_id = await role_id_of(data, role)
    units = await _visible_units(data, unit_ids)
    account, password = await _account_for(landlord, email, one_time=one_time)
    await put_profile(
        data,
        account_id=account.id,
        email=account.email,
        display_name=display_name,
        role_id=role_id,
        is_active=True,
        unit_ids=[unit.id for unit in units],
    )
    return Invitation(account, role, password)


async def let_in(landlord: AsyncSession, tenant: Tenant, invitation: Invitation) -> None:
    """Open the door of an invitation whose profile the tenant's store has committed: its membership."""
    landlord.add(Membership(user_id=invitation.user.id, tenant_id=tenant.id, role=invitation.role))
    await landlord.flush()


async def add_person(
    landlord: AsyncSession,
    data: AsyncSession,
    tenant: Tenant,
    *,
    email: str,
    display_name: str,
    role: str,
    unit_ids: list[int],
) -> Invitation:
    """Someone of `tenant`, written whole with no checks but the units' (visible in the session's
    scope): for seeding. Commit `data` before `landlord`."""
    email = normalise_email(email)
    invitation = await _write_invitation(
        landlord,
        data,
        email=email,
        display_name=display_name.strip() or email,
        role=role,
        unit_ids=unit_ids,
        one_time=False,
    )
    await let_in(landlord, tenant, invitation)
    return invitation


async def invite_person(
    landlord: AsyncSession,
    data: AsyncSession,
    tenant: Tenant,
    *,
    email: str,
    display_name: str,
    role: str,
    unit_ids: list[int],
) -> Invitation:
    """Someone new to the tenant, checked and written into its store: refused, every mistake at
    once and each on its field, for a bad email or one already of this tenant's people, a bad role,
    a unit the scope does not see, and one person more than the plan allows ("people"). An email
    with an account anywhere on the platform joins with that account, answered alike.

    They are not let in yet: the caller commits `data`, then calls `let_in` and commits `landlord`."""
    plan = await _lock_people(landlord, tenant)
    errors = FieldErrors()
    with errors.checking("email"):
        email = normalise_email(email)
        await _check_new_to_tenant(landlord, data, tenant, email)
    with errors.checking("display_name"):
        display_name = checked_display_name(display_name, email)
    with errors.checking("role"):
        _check_role(role)
    with errors.checking("units"):
        await _visible_units(data, unit_ids)
    with errors.checking("people"):
        await _check_room_for_one_more(landlord, tenant, plan)
    errors.raise_if_any()
    return await _write_invitation(
        landlord, data, email=email, display_name=display_name, role=role, unit_ids=unit_ids, one_time=True
    )


async def change_role(
    landlord: AsyncSession, data: AsyncSession, tenant: Tenant, account_id: int, role: str
) -> Person:
    """Make someone an admin or a member; it takes effect on their next request. The last active
    admin stays one."""
    role = _check_role(role)
    await _lock_people(landlord, tenant)
    membership, profile = await _with_profile(landlord, data, tenant, account_id)
    if membership is not None and membership.role == TENANT_ADMIN and role != TENANT_ADMIN:
        await _keep_an_admin(landlord, tenant, membership.user.email, "make them a member")
    if membership is not None:
        membership.role = role
    profile.role_id = await role_id_of(data, role)
    await data.flush()
    await landlord.flush()
    return await get_person(landlord, data, tenant, account_id)


async def set_units(
    landlord: AsyncSession, data: AsyncSession, tenant: Tenant, account_id: int, unit_ids: list[int]
) -> Person:
    """Assign someone to exactly these units (none is allowed: a member then sees no data)."""
    _, profile = await _with_profile(landlord, data, tenant, account_id)
    units = await _visible_units(data, unit_ids)
    await data.execute(delete(UnitAssignment).where(UnitAssignment.user_id == profile.id))
    data.add_all(UnitAssignment(user_id=profile.id, unit_id=unit.id) for unit in units)
    await data.flush()
    return await get_person(landlord, data, tenant, account_id)


async def deactivate_person(
    landlord: AsyncSession, data: AsyncSession, tenant: Tenant, account_id: int, *, by_account_id: int | None
) -> Person:
    """Take someone's way in (their membership) while keeping their profile, role and units.
    Nobody deactivates themselves, nor the last active admin."""
    await _lock_people(landlord, tenant)
    membership, profile = await _with_profile(landlord, data, tenant, account_id)
    if membership is None:
        raise Conflict(f"{profile.email} is already deactivated.", field="person")
    if account_id == by_account_id:
        raise Conflict("You cannot deactivate yourself; another admin can.", field="person")
    if membership.role == TENANT_ADMIN:
        await _keep_an_admin(landlord, tenant, membership.user.email, "deactivate them")
    profile.role_id = await role_id_of(data, membership.role)
    profile.is_active = False
    await landlord.delete(membership)
    await landlord.flush()
    await data.flush()
    return await get_person(landlord, data, tenant, account_id)


async def reactivate_person(
    landlord: AsyncSession, data: AsyncSession, tenant: Tenant, account_id: int
) -> Person:
    """Let a deactivated person in again, with the role and units they had, if the plan has room."""
    plan = await _lock_people(landlord, tenant)
    membership, profile = await _with_profile(landlord, data, tenant, account_id)
    if membership is not None:
        raise Conflict(f"{profile.email} is active already.", field="person")
    await _check_room_for_one_more(landlord, tenant, plan)
    role = (await _role_keys(data))[profile.role_id]
    landlord.add(Membership(user_id=account_id, tenant_id=tenant.id, role=role))
    profile.is_active = True
    await landlord.flush()
    await data.flush()
    return await get_person(landlord, data, tenant, account_id)


async def tenant_of_account_elsewhere(
    landlord: AsyncSession, account_id: int, tenant: Tenant
) -> Tenant | None:
    """Another tenant this account belongs to, when it does not belong to `tenant`: someone asking
    for it from `tenant` is reaching into that one."""
    elsewhere = select(Tenant).join(Membership, Membership.tenant_id == Tenant.id)
    elsewhere = elsewhere.where(Membership.user_id == account_id, Tenant.id != tenant.id).order_by(Tenant.id)
    return await landlord.scalar(elsewhere.limit(1))


async def invite(
    landlord: AsyncSession,
    data: AsyncSession,
    caller: Caller,
    tenant: Tenant,
    *,
    email: str,
    display_name: str,
    role: str,
    unit_ids: list[int],
) -> tuple[Person, str]:
    """The invited person and the password to show once, the invitation on the audit trail
    (`person.invite`); the units must be ones the caller's scope sees. The profile is committed
    before the membership, the door, which commits with `landlord`: a failure between lets
    nobody in. A refusal leaves nothing written."""
    async with data.begin_nested():
        invitation = await invite_person(
            landlord, data, tenant, email=email, display_name=display_name, role=role, unit_ids=unit_ids
        )
    await data.commit()
    await let_in(landlord, tenant, invitation)
    person = await get_person(landlord, data, tenant, invitation.user.id)
    units = [unit.name for unit in person.units]
    await record_by(
        landlord,
        caller,
        "person.invite",
        tenant=tenant,
        target=person.email,
        detail=caller.with_token({"role": person.role, "units": units}),
    )
    return person, invitation.password


def _what_changed(before: Person, after: Person) -> dict[str, Any] | None:
    """The audit entry's detail for a change of `before` into `after`; None when nothing changed."""
    detail: dict[str, Any] = {}
    if after.role != before.role:
        detail.update(role=after.role, was=before.role)
    if [unit.id for unit in after.units] != [unit.id for unit in before.units]:
        detail["units"] = [unit.name for unit in after.units]
    return detail if detail or after.active != before.active else None


async def _change_on_the_trail(
    landlord: AsyncSession,
    data: AsyncSession,
    caller: Caller,
    tenant: Tenant,
    account_id: int,
    action: str,
    change: Callable[[], Awaitable[Person]],
) -> Person:
    """Make `change` to someone and record it as `action`, unless it changed nothing. The tenant's
    store commits first and the landlord, where the door is, last (with the caller's transaction).
    The changes refuse before they write to the landlord, so only the store's side needs a
    savepoint (a profile made on the way); a landlord savepoint would, on SQLite, commit there and
    then, before the store. A refusal leaves nothing written."""
    before = await get_person(landlord, data, tenant, account_id)
    async with data.begin_nested():
        after = await change()
    await data.commit()
    if (detail := _what_changed(before, after)) is not None:
        detail = caller.with_token(detail)
        await record_by(landlord, caller, action, tenant=tenant, target=after.email, detail=detail)
    return after


async def give_role(
    landlord: AsyncSession, data: AsyncSession, caller: Caller, tenant: Tenant, account_id: int, role: str
) -> Person:
    """Someone made an admin or a member by `caller` (`person.role`; see `change_role`)."""
    return await _change_on_the_trail(
        landlord,
        data,
        caller,
        tenant,
        account_id,
        "person.role",
        lambda: change_role(landlord, data, tenant, account_id, role),
    )


async def assign_units(
    landlord: AsyncSession,
    data: AsyncSession,
    caller: Caller,
    tenant: Tenant,
    account_id: int,
    unit_ids: list[int],
) -> Person:
    """Someone assigned to exactly these units by `caller` (`person.units`; see `set_units`)."""
    return await _change_on_the_trail(
        landlord,
        data,
        caller,
        tenant,
        account_id,
        "person.units",
        lambda: set_units(landlord, data, tenant, account_id, unit_ids),
    )


async def deactivate(
    landlord: AsyncSession, data: AsyncSession, caller: Caller, tenant: Tenant, account_id: int
) -> Person:
    """Someone's way in taken by `caller`, who may not be them (`person.deactivate`; see
    `deactivate_person`)."""
    actor = caller.actor
    by_account_id = actor.id if isinstance(actor, User) else actor.user_id
    return await _change_on_the_trail(
        landlord,
        data,
        caller,
        tenant,
        account_id,
        "person.deactivate",
        lambda: deactivate_person(landlord, data, tenant, account_id, by_account_id=by_account_id),
    )


async def reactivate(
    landlord: AsyncSession, data: AsyncSession, caller: Caller, tenant: Tenant, account_id: int
) -> Person:
    """Someone deactivated let in again by `caller` (`person.reactivate`; see `reactivate_person`)."""
    return await _change_on_the_trail(
        landlord,
        data,
        caller,
        tenant,
        account_id,
        "person.reactivate",
        lambda: reactivate_person(landlord, data, tenant, account_id),
    )
