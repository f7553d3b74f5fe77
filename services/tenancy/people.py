"""A tenant's people and its unit tree, always through a scoped tenant session."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.users import NewUser, create_user
from services.errors import Conflict, InvalidInput, NotFound
from services.models import Tenant
from services.models.tenant import Role, TenantUser, Unit, UnitAssignment


async def unit_tree(data: AsyncSession) -> list[Unit]:
    """The units the scope sees, each after its parent (ordered by path)."""
    return list(await data.scalars(select(Unit).order_by(Unit.path)))


async def get_unit(data: AsyncSession, unit_id: int) -> Unit:
    unit = await data.scalar(select(Unit).where(Unit.id == unit_id))
    if unit is None:
        raise NotFound("There is no such unit here.", field="unit")
    return unit


def _unit_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput("Give the unit a name.", field="name")
    if len(name) > 200:
        raise InvalidInput("A unit's name is at most 200 characters.", field="name")
    return name


async def _check_name_free(
    data: AsyncSession, parent_id: int | None, name: str, unit_id: int | None = None
) -> None:
    clash = select(Unit.id).where(Unit.parent_id == parent_id, Unit.name == name)
    if unit_id is not None:
        clash = clash.where(Unit.id != unit_id)
    if await data.scalar(clash) is not None:
        raise Conflict(f"There is already a unit called {name!r} there.", field="name")


async def add_unit(data: AsyncSession, *, parent_id: int, name: str, kind: str = "unit") -> Unit:
    parent = await get_unit(data, parent_id)
    name = _unit_name(name)
    await _check_name_free(data, parent.id, name)
    unit = Unit(parent_id=parent.id, name=name, kind=kind.strip() or "unit", path=parent.path)
    data.add(unit)
    await data.flush()
    unit.path = f"{parent.path}{unit.id}/"
    await data.flush()
    return unit


async def rename_unit(data: AsyncSession, unit_id: int, name: str) -> Unit:
    unit = await get_unit(data, unit_id)
    name = _unit_name(name)
    await _check_name_free(data, unit.parent_id, name, unit.id)
    unit.name = name
    await data.flush()
    return unit


async def add_person(
    landlord: AsyncSession,
    data: AsyncSession,
    tenant: Tenant,
    *,
    email: str,
    display_name: str,
    role: str,
    unit_ids: list[int],
) -> NewUser:
    """A sign-in account with a membership of `tenant`, its profile in the tenant's store and its
    unit assignments. Every unit must be visible in the session's scope."""
    units = [await get_unit(data, unit_id) for unit_id in unit_ids]
    account = await create_user(landlord, email=email, role=role, tenant_slug=tenant.slug)
    role_row = await data.scalar(select(Role).where(Role.key == role))
    if role_row is None:
        raise InvalidInput(f"{tenant.slug} has no role {role!r}.", field="role")
    person = TenantUser(
        account_id=account.user.id,
        email=account.user.email,
        display_name=display_name.strip() or email,
        role_id=role_row.id,
    )
    data.add(person)
    await data.flush()
    data.add_all(UnitAssignment(user_id=person.id, unit_id=unit.id) for unit in units)
    await data.flush()
    return account
