"""A tenant's unit tree, always through a scoped tenant session: add, rename, move, delete (only
when nothing is left in a unit, which the refusal names). The use cases at the end make each
change for a caller, on the audit trail."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import String, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Caller, record_by
from services.errors import Conflict, InvalidInput, NotFound
from services.layers.ownership import UNIT_COLUMN
from services.limits import holds
from services.models import Tenant
from services.models.tenant import Unit, UnitAssignment
from services.tenant_data.records import RecordTable

# --- The unit tree ------------------------------------------------------------------------------


async def unit_tree(data: AsyncSession) -> list[Unit]:
    """The units the scope sees, each after its parent (ordered by path)."""
    return list(await data.scalars(select(Unit).order_by(Unit.path)))


async def get_unit(data: AsyncSession, unit_id: int) -> Unit:
    unit = await data.scalar(select(Unit).where(Unit.id == unit_id)) if holds(Unit.id, unit_id) else None
    if unit is None:
        raise NotFound("There is no such unit here.", field="unit")
    return unit


async def _lock_units(data: AsyncSession, *unit_ids: int) -> None:
    """Hold the rows of units about to change (PostgreSQL; SQLite has one writer anyway) and
    reload them, so checks on their paths see what a concurrent change committed."""
    locking = select(Unit).where(Unit.id.in_(unit_ids)).order_by(Unit.id).with_for_update()
    await data.execute(locking.execution_options(populate_existing=True))


def _unit_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput("Give the unit a name.", field="name")
    if len(name) > 200:
        raise InvalidInput("A unit's name is at most 200 characters.", field="name")
    return name


async def _check_name_free(
    data: AsyncSession, parent: Unit, name: str, unit_id: int | None = None, *, field: str = "name"
) -> None:
    clash = select(Unit.id).where(Unit.parent_id == parent.id, Unit.name == name)
    if unit_id is not None:
        clash = clash.where(Unit.id != unit_id)
    if await data.scalar(clash) is not None:
        raise Conflict(f"There is already a unit called {name!r} in {parent.name}.", field=field)


async def add_unit(data: AsyncSession, *, parent_id: int, name: str, kind: str = "unit") -> Unit:
    parent = await get_unit(data, parent_id)
    name = _unit_name(name)
    await _check_name_free(data, parent, name)
    unit = Unit(parent_id=parent.id, name=name, kind=kind.strip() or "unit", path=parent.path)
    data.add(unit)
    await data.flush()
    unit.path = f"{parent.path}{unit.id}/"
    await data.flush()
    return unit


async def rename_unit(data: AsyncSession, unit_id: int, name: str) -> Unit:
    unit = await get_unit(data, unit_id)
    name = _unit_name(name)
    if unit.parent_id is not None:
        await _check_name_free(data, await get_unit(data, unit.parent_id), name, unit.id)
    unit.name = name
    await data.flush()
    return unit


async def move_unit(data: AsyncSession, unit_id: int, new_parent_id: int) -> Unit:
    """Put a unit (and everything below it) under another parent: the materialised paths of the
    whole subtree are rewritten by one statement, in the session's transaction."""
    unit, parent = await get_unit(data, unit_id), await get_unit(data, new_parent_id)
    await _lock_units(data, unit.id, parent.id)
    if unit.parent_id is None:
        raise InvalidInput(f"{unit.name} is the top of the tree; it cannot move.", field="parent")
    if parent.path.startswith(unit.path):
        where = "itself" if parent.id == unit.id else f"{parent.name}, which is inside it"
        raise InvalidInput(f"{unit.name} cannot move under {where}.", field="parent")
    if parent.id == unit.parent_id:
        return unit
    await _check_name_free(data, parent, unit.name, unit.id, field="parent")
    old_path, new_path = unit.path, f"{parent.path}{unit.id}/"
    rest_of_path = func.substr(Unit.path, len(old_path) + 1, type_=String)
    await data.execute(
        update(Unit)
        .where(Unit.path.startswith(old_path, autoescape=True))
        .values(path=literal(new_path, String) + rest_of_path)
        .execution_options(synchronize_session="fetch")
    )
    unit.parent_id = parent.id
    await data.flush()
    return unit


def counted(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


async def unit_contents(data: AsyncSession, unit: Unit, record_tables: Iterable[RecordTable]) -> list[str]:
    """What keeps a unit from being deleted, in words: units inside it, people assigned to it,
    rows of template and module tables that belong to it. Empty when nothing does."""
    count = select(func.count())
    children = await data.scalar(count.select_from(Unit).where(Unit.parent_id == unit.id)) or 0
    people = (
        await data.scalar(count.select_from(UnitAssignment).where(UnitAssignment.unit_id == unit.id)) or 0
    )
    contents = [
        *([counted(children, "unit inside it", "units inside it")] if children else []),
        *([counted(people, "person assigned to it", "people assigned to it")] if people else []),
    ]
    for table in sorted(record_tables, key=lambda table: table.name):
        if UNIT_COLUMN not in table.table.c:
            continue
        rows = select(func.count()).select_from(table.model).where(table.table.c[UNIT_COLUMN] == unit.id)
        if found := await data.scalar(rows) or 0:
            contents.append(f"{counted(found, 'row', 'rows')} in {table.name}")
    return contents


async def delete_unit(data: AsyncSession, unit_id: int, record_tables: Iterable[RecordTable]) -> Unit:
    """Delete an empty unit; the root, or a unit with anything in it, is refused saying why."""
    unit = await get_unit(data, unit_id)
    await _lock_units(data, unit.id)
    if unit.parent_id is None:
        raise InvalidInput(f"{unit.name} is the top of the tree; it cannot be deleted.", field="unit")
    if contents := await unit_contents(data, unit, record_tables):
        raise Conflict(
            f"{unit.name} still has {', '.join(contents)}: move or remove them first.", field="unit"
        )
    await data.delete(unit)
    await data.flush()
    return unit


# --- Changes as a caller asks for them ------------------------------------------------------------
#
# Each is made in a savepoint of the tenant's store, so a refusal leaves nothing written, and goes
# on the audit trail against the tenant in the caller's landlord transaction.


async def _on_the_trail(
    landlord: AsyncSession, caller: Caller, tenant: Tenant, action: str, **detail: str
) -> None:
    await record_by(landlord, caller, action, tenant=tenant, detail=caller.with_token(detail))


async def create_unit(
    landlord: AsyncSession,
    data: AsyncSession,
    caller: Caller,
    tenant: Tenant,
    *,
    parent_id: int,
    name: str,
    kind: str = "unit",
) -> Unit:
    """A new unit inside `parent_id`, for `caller` (`unit.create`; see `add_unit`)."""
    async with data.begin_nested():
        unit = await add_unit(data, parent_id=parent_id, name=name, kind=kind)
    await _on_the_trail(landlord, caller, tenant, "unit.create", unit=unit.name)
    return unit


async def name_unit(
    landlord: AsyncSession, data: AsyncSession, caller: Caller, tenant: Tenant, unit_id: int, name: str
) -> Unit:
    """A unit renamed by `caller` (`unit.rename`, with the name it had; see `rename_unit`)."""
    was = (await get_unit(data, unit_id)).name
    async with data.begin_nested():
        unit = await rename_unit(data, unit_id, name)
    await _on_the_trail(landlord, caller, tenant, "unit.rename", unit=unit.name, was=was)
    return unit


async def move_unit_into(
    landlord: AsyncSession, data: AsyncSession, caller: Caller, tenant: Tenant, unit_id: int, parent_id: int
) -> Unit:
    """A unit (and everything below it) moved under `parent_id` by `caller` (`unit.move`; see
    `move_unit`)."""
    parent = await get_unit(data, parent_id)
    async with data.begin_nested():
        unit = await move_unit(data, unit_id, parent.id)
    await _on_the_trail(landlord, caller, tenant, "unit.move", unit=unit.name, parent=parent.name)
    return unit


async def remove_unit(
    landlord: AsyncSession,
    data: AsyncSession,
    caller: Caller,
    tenant: Tenant,
    unit_id: int,
    record_tables: Iterable[RecordTable],
) -> Unit:
    """An empty unit deleted by `caller` (`unit.delete`; see `delete_unit`). `record_tables` are
    every table that may hold its rows, a kept module's too."""
    async with data.begin_nested():
        unit = await delete_unit(data, unit_id, record_tables)
    await _on_the_trail(landlord, caller, tenant, "unit.delete", unit=unit.name)
    return unit
