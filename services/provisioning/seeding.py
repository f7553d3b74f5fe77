"""The rows every tenant's store starts with: its two roles, its root unit and its settings.

A warm pool store is seeded when it is built, for a tenant not yet known (tenant id
`UNCLAIMED`, named `UNCLAIMED_NAME`); the tenant that takes it adopts those rows (its id and name
written into them) in one short transaction, instead of seeding them while its admin waits."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.models.tenant import Role, Setting, TenantBase, Unit
from services.tenancy.stores import StoreLocation, owner_connection

#: The tenant id of the rows seeded into a warm pool store that no tenant has taken yet.
UNCLAIMED = 0
UNCLAIMED_NAME = "(not taken yet)"
ROLES = (("tenant_admin", "Tenant admin"), ("tenant_member", "Tenant member"))


def default_settings(name: str) -> dict[str, str]:
    return {"name": name, "timezone": "UTC", "accent_colour": "#2f5bd3"}


async def seed_rows(data: AsyncSession, name: str) -> None:
    """Seed the rows of the tenant `data` is scoped to, named `name`; rows already there (a resumed
    job) are left as they are."""
    have = set(await data.scalars(select(Role.key)))
    data.add_all(Role(key=key, name=title) for key, title in ROLES if key not in have)
    if await data.scalar(select(Unit.id).where(Unit.parent_id.is_(None))) is None:
        root = Unit(name=name, kind="organisation", path="/")
        data.add(root)
        await data.flush()
        root.path = f"/{root.id}/"
    have = set(await data.scalars(select(Setting.key)))
    data.add_all(
        Setting(key=key, value=value) for key, value in default_settings(name).items() if key not in have
    )


async def adopt_seeded_rows(location: StoreLocation, tenant_id: int, name: str) -> bool:
    """Make the rows seeded into the warm pool store now at `location` the tenant's, named after
    it, in one transaction on the store (as its owner: the rows are nobody's until then). False,
    with nothing changed, when the store holds no unclaimed seeded rows (built before pool stores
    were seeded): the tenant then seeds its own."""
    units, roles, settings = (TenantBase.metadata.tables[table] for table in ("units", "roles", "settings"))
    async with owner_connection(location) as connection:
        named = await connection.execute(
            update(units)
            .where(units.c.parent_id.is_(None), units.c.tenant_id == UNCLAIMED)
            .values(tenant_id=tenant_id, name=name)
        )
        if named.rowcount != 1:
            await connection.rollback()
            return False
        for table in (roles, settings):  # its one unit, the root, is the tenant's already
            await connection.execute(
                update(table).where(table.c.tenant_id == UNCLAIMED).values(tenant_id=tenant_id)
            )
        await connection.execute(update(settings).where(settings.c.key == "name").values(value=name))
        await connection.commit()
    return True
