"""The scoped tenant session: every ORM read and write of a tenant table stays in its scope."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import aliased

from services.layers.catalogue import load_catalogue
from services.layers.migrator import RevisionRun, upgrade_layer
from services.models import IsolationMode
from services.models.tenant import Role, Unit
from services.settings import PROJECT_ROOT
from services.tenancy.context import PLATFORM, Scope
from services.tenancy.sessions import OutOfScope, OutsideTenantScope, scoped_session
from services.tenancy.stores import SQLITE, StoreLocation
from services.tenant_data.records import RecordTable, record_schema

TENANTS = (1, 2, 3)
#: Per tenant: root, two children, one grandchild under the first child.
TREE = {"root": None, "north": "root", "south": "root", "harbour": "north"}


async def _forget(_run: RevisionRun) -> None:
    pass


class SharedStore:
    """A shared store holding three tenants, each with a unit tree and rows in a unit-owned table."""

    def __init__(self, folder: Path) -> None:
        path = folder / "shared.db"
        self.location = StoreLocation(SQLITE, IsolationMode.SHARED, str(path), f"sqlite+aiosqlite:///{path}")
        self.units: dict[tuple[int, str], int] = {}

    async def build(self) -> None:
        catalogue = load_catalogue(PROJECT_ROOT / "layers")
        store = self.location.open()
        try:
            for layer in (catalogue.basic, catalogue.template("community_group")):
                await upgrade_layer(store, layer, _forget)
            for tenant_id in TENANTS:
                async with scoped_session(store.engine, Scope.of_tenant(tenant_id)) as data:
                    for name, parent in TREE.items():
                        parent_id = self.units[tenant_id, parent] if parent else None
                        parent_path = "/" if parent is None else None
                        unit = Unit(name=f"{name}-{tenant_id}", parent_id=parent_id, path=parent_path or "")
                        data.add(unit)
                        await data.flush()
                        above = (await data.get_one(Unit, parent_id)).path if parent_id else "/"
                        unit.path = f"{above}{unit.id}/"
                        self.units[tenant_id, name] = unit.id
                    model: Any = (await self.groups(data)).model
                    data.add_all(
                        model(name=f"group-{tenant_id}-{name}", unit_id=self.units[tenant_id, name])
                        for name in TREE
                    )
        finally:
            await store.dispose()

    async def groups(self, data: Any) -> RecordTable:
        return (await record_schema(data, f"shared-{id(self)}")).table("groups")

    def subtree(self, tenant_id: int, name: str) -> frozenset[int]:
        below = {name} | {child for child, parent in TREE.items() if parent == name}
        below |= {child for child, parent in TREE.items() if parent in below}
        return frozenset(self.units[tenant_id, unit] for unit in below)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStore]:
    store = SharedStore(tmp_path_factory.mktemp("shared"))
    asyncio.run(store.build())
    yield store


#: A tenant, and the unit whose subtree a member is assigned to (None: the whole tenant).
scopes = st.tuples(st.sampled_from(TENANTS), st.sampled_from([None, "root", "north", "south", "harbour"]))


def _scope(store: SharedStore, drawn: tuple[int, str | None]) -> Scope:
    tenant_id, unit = drawn
    return (
        Scope.of_tenant(tenant_id)
        if unit is None
        else Scope.of_units(tenant_id, store.subtree(tenant_id, unit))
    )


def _visible(store: SharedStore, scope: Scope) -> set[str]:
    """The group names `scope` may see."""
    return {
        f"group-{tenant_id}-{unit}"
        for (tenant_id, unit), unit_id in store.units.items()
        if tenant_id == scope.tenant_id and (scope.unit_ids is None or unit_id in scope.unit_ids)
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=scopes, needle=st.sampled_from(["", "group", "root", "north", "1", "2", "harbour"]))
def test_every_select_sees_exactly_its_scope(
    shared: SharedStore, drawn: tuple[int, str | None], needle: str
) -> None:
    scope = _scope(shared, drawn)

    async def check() -> None:
        store = shared.location.open()
        try:
            async with scoped_session(store.engine, scope) as data:
                model: Any = (await shared.groups(data)).model
                seen = set(await data.scalars(select(model.name).where(model.name.contains(needle))))
                assert seen == {name for name in _visible(shared, scope) if needle in name}
                # Joins, aliases and subqueries are filtered too, wherever the tables appear.
                unit = aliased(Unit)
                joined = select(model.name, unit.name).join(unit, unit.id == model.unit_id)
                assert {row[0] for row in await data.execute(joined)} == _visible(shared, scope)
                inner = select(func.count()).select_from(model).scalar_subquery()
                assert await data.scalar(select(inner)) == len(_visible(shared, scope))
                tenant_units = {i for (t, _), i in shared.units.items() if t == scope.tenant_id}
                assert set(await data.scalars(select(Unit.id))) == (scope.unit_ids or tenant_units)
        finally:
            await store.dispose()

    asyncio.run(check())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=scopes)
def test_bulk_updates_and_deletes_touch_only_the_scope(
    shared: SharedStore, drawn: tuple[int, str | None]
) -> None:
    scope = _scope(shared, drawn)
    marker = secrets.token_hex(4)
    everyone = len(TENANTS) * len(TREE)

    async def check() -> None:
        store = shared.location.open()
        try:
            async with scoped_session(store.engine, scope) as data:
                model: Any = (await shared.groups(data)).model
                updated = await data.execute(update(model).values(description=marker))
                assert updated.rowcount == len(_visible(shared, scope))  # type: ignore[attr-defined]
                deleted = await data.execute(delete(model))
                assert deleted.rowcount == len(_visible(shared, scope))  # type: ignore[attr-defined]
                # Seen past the ORM, in the same transaction: nobody else's rows were touched.
                raw = await data.connection()
                left = await raw.exec_driver_sql("SELECT count(*) FROM groups")
                assert left.scalar() == everyone - len(_visible(shared, scope))
                await data.rollback()
        finally:
            await store.dispose()

    asyncio.run(check())


def test_new_rows_are_stamped_and_rows_of_another_scope_are_refused(shared: SharedStore) -> None:
    async def check() -> None:
        store = shared.location.open()
        try:
            async with scoped_session(store.engine, Scope.of_tenant(2)) as data:
                role = Role(key=f"r-{secrets.token_hex(3)}", name="Stamped")
                data.add(role)
                await data.flush()
                assert role.tenant_id == 2
                await data.rollback()
            with pytest.raises(OutOfScope):
                async with scoped_session(store.engine, Scope.of_tenant(2)) as data:
                    data.add(Role(key="spy", name="Spy", tenant_id=3))
            member = Scope.of_units(1, shared.subtree(1, "south"))
            with pytest.raises(OutOfScope):
                async with scoped_session(store.engine, member) as data:
                    model: Any = (await shared.groups(data)).model
                    data.add(model(name="outside", unit_id=shared.units[1, "north"]))
            with pytest.raises(OutsideTenantScope):
                async with scoped_session(store.engine, Scope.of_tenant(1)) as data:
                    await data.execute(insert(Role).values(key="bulk", name="Bulk", tenant_id=3))
        finally:
            await store.dispose()

    asyncio.run(check())


def test_a_tenant_session_without_a_tenant_refuses_every_statement(shared: SharedStore) -> None:
    async def check() -> None:
        store = shared.location.open()
        try:
            with pytest.raises(OutsideTenantScope):
                async with scoped_session(store.engine, PLATFORM) as data:
                    await data.scalar(select(Role.id))
        finally:
            await store.dispose()

    asyncio.run(check())
