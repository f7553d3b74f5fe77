"""What a restore keeps as it is now: the tenant's people and its settings.

A backup brings back the tenant's data: its unit tree, the rows of every table and its own log. Who
may enter is decided in the landlord database, by memberships, which a restore leaves alone; so the
people's side of the store follows the landlord's, not the backup's:

- Everyone who is one of the tenant's people now, active or deactivated, keeps the name, role and
  units they have now. Someone the backup does not have (invited after it was taken) gets their
  profile back under the id it has now, which no row of the backup can hold (ids are never reused).
  A row of the backup that names a person still names them.
- An assignment to a unit the backup does not have is dropped: that person sees none of it until
  assigned again. A wider unit is never given in its place.
- A profile in the backup of someone who is not one of the tenant's people now stays, deactivated.
- The settings (name, timezone, accent colour) stay as they are now; the name is also the
  landlord's name for the tenant.

The people are read from the store in use before the swap; a tenant with a store of its own gets
them in its new store before the swap, a shared tenant in the swap's own transaction (the rows they
are read from are replaced there). A copy into a new tenant has no members: the backup's people
come along deactivated, and its name is the new tenant's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import Tenant
from services.models.tenant import Role, Setting, TenantUser, Unit
from services.people.people import list_people, put_profile
from services.tenancy.entry import EnteredTenant, enter_tenant
from services.tenancy.stores import StoreLocation


@dataclass(frozen=True)
class KeptPerson:
    account_id: int
    email: str
    display_name: str
    role: str
    #: Has a membership now: may enter.
    active: bool
    unit_ids: list[int]
    #: Their profile's id now; None when their membership has no profile yet.
    profile_id: int | None


@dataclass(frozen=True)
class Kept:
    people: list[KeptPerson]
    settings: dict[str, str]

    def as_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of_payload(cls, payload: dict[str, Any]) -> Kept:
        return cls([KeptPerson(**person) for person in payload["people"]], dict(payload["settings"]))


def _counted(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


async def read_kept(landlord: AsyncSession, store: StoreLocation, tenant: Tenant) -> Kept:
    """The tenant's people (memberships in `landlord`, profiles in `store`) and settings, now."""
    async with enter_tenant(tenant.id, store) as entered, entered.session() as data:
        people = await list_people(landlord, data, tenant)
        profiles = select(TenantUser.account_id, TenantUser.email, TenantUser.id)
        profile_ids = {(account, email): id for account, email, id in await data.execute(profiles)}
        settings = {setting.key: setting.value for setting in await data.scalars(select(Setting))}
    return Kept(
        [
            KeptPerson(
                person.account_id,
                person.email,
                person.display_name,
                person.role,
                person.active,
                [unit.id for unit in person.units],
                profile_ids.get((person.account_id, person.email)),
            )
            for person in people
        ],
        settings,
    )


async def put_back(entered: EnteredTenant, kept: Kept) -> str:
    """Make a restored store's people and settings those `kept`, in a session of the `entered`
    tenant (in the transaction of the connection it was entered on, if that has one). What
    happened, in words for the job's step."""
    async with entered.session() as data:
        return await _put_back(data, kept)


async def _put_back(data: AsyncSession, kept: Kept) -> str:
    role_ids = {role.key: role.id for role in await data.scalars(select(Role))}
    units = set(await data.scalars(select(Unit.id)))
    restored = list(await data.execute(select(TenantUser.id, TenantUser.account_id, TenantUser.email)))
    ids = {row.id for row in restored}
    in_backup = {row.account_id for row in restored} | {row.email for row in restored}
    kept_profiles, returning, losing = set(), 0, 0
    for person in kept.people:
        if person.profile_id is None:
            continue  # a membership with no profile now is let be: they are listed by their email
        unit_ids = [unit_id for unit_id in person.unit_ids if unit_id in units]
        losing += len(unit_ids) < len(person.unit_ids)
        returning += person.account_id not in in_backup and person.email not in in_backup
        profile = await put_profile(
            data,
            account_id=person.account_id,
            email=person.email,
            display_name=person.display_name,
            role_id=role_ids[person.role],
            is_active=person.active,
            unit_ids=unit_ids,
            profile_id=person.profile_id if person.profile_id not in ids else None,
        )
        kept_profiles.add(profile.id)
    await data.execute(update(TenantUser).where(TenantUser.id.not_in(kept_profiles)).values(is_active=False))
    said = [
        f"{_counted(sum(p.active for p in kept.people), 'person', 'people')} who can sign in and "
        f"{sum(not p.active for p in kept.people)} deactivated kept as they are now"
    ]
    if returning:
        said.append(f"{_counted(returning, 'person', 'people')} the backup does not have put back")
    if losing:
        said.append(
            f"{_counted(losing, 'person', 'people')} lost units the backup does not have and "
            f"{'sees' if losing == 1 else 'see'} none of them until assigned again"
        )
    differed = await _keep_settings(data, kept.settings)
    said.append(
        f"settings kept as they are now ({', '.join(differed)} differed in the backup)"
        if differed
        else "settings kept, the same as in the backup"
    )
    return "; ".join(said)


async def _keep_settings(data: AsyncSession, settings: dict[str, str]) -> list[str]:
    """Make the store's settings exactly `settings`; the keys that differed."""
    stored = {setting.key: setting for setting in await data.scalars(select(Setting))}
    differed = sorted(
        key
        for key in stored.keys() | settings.keys()
        if (stored[key].value if key in stored else None) != settings.get(key)
    )
    for key in differed:
        if key not in settings:
            await data.delete(stored[key])
        elif key in stored:
            stored[key].value = settings[key]
        else:
            data.add(Setting(key=key, value=settings[key]))
    await data.flush()
    return differed


async def leave_people_behind(store: StoreLocation, tenant: Tenant) -> str:
    """A copy's store: the backup's people deactivated (a copy has no members; its admins may let
    them in again), and its name setting the new tenant's."""
    async with enter_tenant(tenant.id, store) as entered, entered.session() as data:
        people = await data.scalar(select(func.count()).select_from(TenantUser)) or 0
        await data.execute(update(TenantUser).values(is_active=False))
        settings = {setting.key: setting.value for setting in await data.scalars(select(Setting))}
        await _keep_settings(data, {**settings, "name": tenant.name})
    return (
        f"{_counted(people, 'person', 'people')} of the backup deactivated (a copy has no members); "
        f"its name is {tenant.name}"
    )
