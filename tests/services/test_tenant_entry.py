"""Entering a tenant (services.tenancy.entry): the scope, the store's connection and the sessions
come and go together, a request's way (bounded connections) and a job's way (its own, as owner)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.models.tenant import Unit
from services.tenancy.connections import TenantConnections
from services.tenancy.context import PLATFORM, Scope, current_scope
from services.tenancy.entry import EnteredTenant, enter_tenant
from services.tenancy.sessions import OutsideTenantScope
from tests.services.test_tenant_sessions import TENANTS, SharedStore, _scope, _visible, scopes
from tests.services.test_tenant_sessions import shared as shared

Enter = Callable[[SharedStore, int], AbstractAsyncContextManager[EnteredTenant]]


def _as_a_job(store: SharedStore, tenant_id: int) -> AbstractAsyncContextManager[EnteredTenant]:
    return enter_tenant(tenant_id, store.location)


class AsARequest:
    """Entering through the process's bounded connections, as the tenant middleware does."""

    def __init__(self) -> None:
        self.connections = TenantConnections(2)

    def __call__(self, store: SharedStore, tenant_id: int) -> AbstractAsyncContextManager[EnteredTenant]:
        return enter_tenant(tenant_id, store.location, connections=self.connections)


async def _names(entered: EnteredTenant, store: SharedStore) -> set[str]:
    async with entered.session() as data:
        model: Any = (await store.groups(data)).model
        return set(await data.scalars(select(model.name)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=scopes, as_a_request=st.booleans())
def test_an_entry_sees_its_tenant_and_a_narrowed_entry_only_its_units(
    shared: SharedStore,
    drawn: tuple[int, str | None],
    as_a_request: bool,
) -> None:
    scope = _scope(shared, drawn)
    tenant_id = drawn[0]

    async def check() -> None:
        request = AsARequest() if as_a_request else None
        enter: Enter = request or _as_a_job
        try:
            async with enter(shared, tenant_id) as entered:
                assert current_scope() == entered.scope == Scope.of_tenant(tenant_id)
                assert await _names(entered, shared) == _visible(shared, Scope.of_tenant(tenant_id))
                with entered.narrowed(scope) as narrowed:
                    assert current_scope() == narrowed.scope == scope
                    assert await _names(narrowed, shared) == _visible(shared, scope)
                assert current_scope() == Scope.of_tenant(tenant_id)
            assert current_scope() == PLATFORM
            if request is not None:
                assert request.connections.open_connections <= 2
                assert all(engine.pool.checkedout() == 0 for engine in request.connections._engines.values())  # type: ignore[attr-defined]
        finally:
            if request is not None:
                await request.connections.dispose()

    asyncio.run(check())


def test_leaving_on_an_error_restores_the_scope_and_rolls_back(shared: SharedStore) -> None:
    tenant_id = TENANTS[0]

    async def check() -> None:
        with pytest.raises(RuntimeError, match="the work failed"):
            async with _as_a_job(shared, tenant_id) as entered, entered.session() as data:
                model: Any = (await shared.groups(data)).model
                data.add(model(name="never-kept", unit_id=shared.units[tenant_id, "root"]))
                await data.flush()
                raise RuntimeError("the work failed")
        assert current_scope() == PLATFORM
        async with _as_a_job(shared, tenant_id) as entered:
            assert "never-kept" not in await _names(entered, shared)

    asyncio.run(check())


def test_an_entry_cannot_be_narrowed_into_another_tenant(shared: SharedStore) -> None:
    one, other = TENANTS[0], TENANTS[1]

    async def check() -> None:
        async with _as_a_job(shared, one) as entered:
            with pytest.raises(OutsideTenantScope), entered.narrowed(_scope(shared, (other, "root"))):
                pass  # pragma: no cover (refused on entry)
            assert current_scope() == Scope.of_tenant(one)
            assert await _names(entered, shared) == _visible(shared, Scope.of_tenant(one))

    asyncio.run(check())


def _another_writer_may_write(store: SharedStore) -> bool:
    """Whether a second connection to the SQLite store gets the write lock now (without waiting)."""
    other = sqlite3.connect(store.location.name, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return False
    finally:
        other.close()


def test_a_request_that_writes_holds_the_sqlite_write_lock_from_its_first_read(shared: SharedStore) -> None:
    """So its write can never be refused at once because another connection wrote after its read
    (a 500 once: a person invited while a module was being enabled): it waits its turn instead."""
    tenant_id = TENANTS[0]

    async def check() -> None:
        request = AsARequest()
        try:
            async with enter_tenant(
                tenant_id, shared.location, connections=request.connections, writes=True
            ) as entered:
                async with entered.session() as data:
                    await data.scalar(select(Unit.id).limit(1))
                    assert not _another_writer_may_write(shared)
                assert _another_writer_may_write(shared)
            async with (
                enter_tenant(
                    tenant_id, shared.location, connections=request.connections, writes=False
                ) as entered,
                entered.session() as data,
            ):
                await data.scalar(select(Unit.id).limit(1))
                assert _another_writer_may_write(shared), "a request that only reads locks nobody out"
        finally:
            await request.connections.dispose()

    asyncio.run(check())
