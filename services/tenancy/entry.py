"""Entering a tenant: the one way a request, a job or the command line starts work on a tenant's
data.

Entering sets three things together and undoes them together, in reverse, when the block ends:
the scope (the context every job sent from inside carries, and that `perform_job` checks), one
connection to the tenant's store, and row security (on a shared PostgreSQL store, every session
opened on the entry names the tenant to the database, whose policies are the second wall).
Sessions come only from the entry, bound to its scope: work that has entered a tenant cannot
reach another one's rows by forgetting a filter.

A request enters through the process's bounded `TenantConnections`, as the application's role. A
job or the command line, which own the store (provisioning, restores), enter on a connection of
their own as the store's owner, closed when they leave.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.db import WRITES, Database
from services.tenancy.connections import TenantConnections
from services.tenancy.context import Scope, scope_context
from services.tenancy.sessions import OutsideTenantScope, scoped_session
from services.tenancy.stores import StoreLocation


@dataclass(frozen=True)
class EnteredTenant:
    """A tenant entered: its scope, its store's connection and whether row security applies."""

    tenant_id: int
    scope: Scope
    location: StoreLocation
    connection: AsyncConnection
    #: Connected as the shared store's application role, whose rows the database filters too.
    row_security: bool

    #: A write request's: asked once each session holds the tenant's write barrier, it raises
    #: when the tenant was closed to writes meanwhile (services.tenancy.barrier).
    still_open: Callable[[], Awaitable[None]] | None = None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A tenant session bound to the entry's scope: committed when the block ends normally,
        rolled back when it raises. A write request's begins at once, taking the tenant's write
        barrier, and goes on only while the tenant is still open."""
        fenced = self.still_open is not None
        async with scoped_session(
            self.connection, self.scope, row_security=self.row_security, write_barrier=fenced
        ) as session:
            if self.still_open is not None:
                await session.connection()
                await self.still_open()
            yield session

    @contextmanager
    def narrowed(self, scope: Scope) -> Iterator[EnteredTenant]:
        """The same entry seeing only `scope` (a member's units) until the block ends."""
        if scope.tenant_id != self.tenant_id:
            raise OutsideTenantScope(f"tenant {self.tenant_id} was entered, not {scope.describe()}")
        with scope_context(scope):
            yield replace(self, scope=scope)


@asynccontextmanager
async def enter_tenant(
    tenant_id: int,
    location: StoreLocation,
    *,
    connections: TenantConnections | None = None,
    writes: bool = True,
    still_open: Callable[[], Awaitable[None]] | None = None,
    on: AsyncConnection | None = None,
    owner: Database | None = None,
) -> AsyncIterator[EnteredTenant]:
    """Enter the whole tenant: through `connections` (a request, which `writes` unless it only
    reads: on SQLite its transactions then take the write lock as they begin), on a connection of
    its own as the store's owner (a job, the command line), on a connection of the `owner` engine
    a job keeps on the store, or `on` a connection the caller holds as the owner, inside a
    transaction of its own that the entry's sessions join (a restore's swap). A request that
    writes names how to tell that its tenant is `still_open`, asked by each of its sessions once
    it holds the tenant's write barrier (services.tenancy.barrier)."""
    scope = Scope.of_tenant(tenant_id)
    with scope_context(scope):
        if on is not None:
            yield EnteredTenant(tenant_id, scope, location, on, row_security=False)
        elif connections is not None:
            async with connections.connection(location) as connection:
                if writes:
                    await connection.execution_options(**{WRITES: True})
                row_security = location.app_role is not None
                fence = still_open if writes else None
                yield EnteredTenant(tenant_id, scope, location, connection, row_security, fence)
        else:
            store = owner or location.open()
            try:
                async with store.engine.connect() as connection:
                    yield EnteredTenant(tenant_id, scope, location, connection, row_security=False)
            finally:
                if owner is None:
                    await store.dispose()
