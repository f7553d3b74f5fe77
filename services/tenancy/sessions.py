"""Tenant sessions: where tenant isolation is enforced on every read and write.

A tenant session is bound to one scope when it opens. Every ORM select, update and delete it
runs gets the scope's criteria (tenant, and unit subtree for a member) added to every tenant
table it touches, wherever in the statement that table appears; every new row is stamped with
the tenant; a row written outside the scope is refused; a statement run with no tenant scope is
refused before it reaches the database. On a shared PostgreSQL store the transaction also names
its tenant to the database, whose row-level security is the second wall.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction, with_loader_criteria

from services.db import committing
from services.errors import NotFound
from services.layers.ownership import TENANT_SETTING
from services.models.tenant import TenantRow, Unit, UnitRow
from services.tenancy.context import Scope

SCOPE = "tenantry.scope"
ROW_SECURITY = "tenantry.row_security"
#: A session of a write request: its transaction takes the tenant's write barrier as it begins.
WRITE_BARRIER = "tenantry.write_barrier"


def write_barrier_key(tenant_id: int) -> str:
    """What a tenant's write barrier is called on PostgreSQL (an advisory lock on its hash): a write
    transaction holds it shared, a job closing the tenant to writes waits for it exclusively."""
    return f"tenantry.writes.{tenant_id}"


class OutsideTenantScope(RuntimeError):
    """A programming error: tenant data was touched with no tenant scope. Never shown as data."""


class OutOfScope(NotFound):
    """A write names a row of another tenant or of a unit outside the member's subtree. Shown as
    "not found": whether that row exists elsewhere is not the caller's business."""

    def __init__(self) -> None:
        super().__init__("There is no such record here.")


class TenantSession(Session):
    """A Session whose statements are scoped (see the module docstring)."""


def scope_of(session: Session) -> Scope:
    scope: Scope | None = session.info.get(SCOPE)
    if scope is None or scope.tenant_id is None:
        raise OutsideTenantScope("a tenant store was used with no tenant scope")
    return scope


@event.listens_for(TenantSession, "do_orm_execute")
def _filter_by_scope(state: ORMExecuteState) -> None:
    scope = scope_of(state.session)
    if state.is_insert:
        raise OutsideTenantScope("insert tenant rows with session.add, which stamps them with the tenant")
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the criteria of the statement that loaded the object carry over
    tenant_id = scope.tenant_id
    options = [with_loader_criteria(TenantRow, lambda cls: cls.tenant_id == tenant_id, include_aliases=True)]
    if scope.unit_ids is not None:
        unit_ids = sorted(scope.unit_ids)
        options += [
            with_loader_criteria(UnitRow, lambda cls: cls.unit_id.in_(unit_ids), include_aliases=True),
            with_loader_criteria(Unit, lambda cls: cls.id.in_(unit_ids), include_aliases=True),
        ]
    state.statement = state.statement.options(*options)


@event.listens_for(TenantSession, "before_flush")
def _stamp_and_check(session: Session, _flush: UOWTransaction, _instances: Iterable[Any] | None) -> None:
    scope = scope_of(session)
    for row in session.new:
        if isinstance(row, TenantRow) and getattr(row, "tenant_id", None) is None:
            setattr(row, "tenant_id", scope.tenant_id)  # noqa: B010 (mapped at runtime)
    for row in (*session.new, *session.dirty, *session.deleted):
        if isinstance(row, TenantRow) and row.tenant_id != scope.tenant_id:
            raise OutOfScope()
        if scope.unit_ids is not None and not _in_units(row, scope.unit_ids):
            raise OutOfScope()


def _in_units(row: object, unit_ids: frozenset[int]) -> bool:
    if isinstance(row, UnitRow):
        return getattr(row, "unit_id", None) in unit_ids
    if isinstance(row, Unit):
        return row.id in unit_ids or row.parent_id in unit_ids
    return True


@event.listens_for(TenantSession, "after_begin")
def _name_tenant_to_database(
    session: Session, _transaction: SessionTransaction, connection: Connection
) -> None:
    if session.info.get(ROW_SECURITY):
        connection.execute(
            text(f"SELECT set_config('{TENANT_SETTING}', :tenant, true)"),
            {"tenant": str(scope_of(session).tenant_id)},
        )
    if session.info.get(WRITE_BARRIER) and connection.dialect.name == "postgresql":
        # On SQLite a write request's transaction began IMMEDIATE: it holds the write lock already.
        connection.execute(
            text("SELECT pg_advisory_xact_lock_shared(hashtext(:key))"),
            {"key": write_barrier_key(scope_of(session).tenant_id or 0)},
        )


def open_session(
    bind: AsyncEngine | AsyncConnection,
    scope: Scope,
    *,
    row_security: bool = False,
    write_barrier: bool = False,
) -> AsyncSession:
    return AsyncSession(
        bind=bind,
        sync_session_class=TenantSession,
        expire_on_commit=False,
        info={SCOPE: scope, ROW_SECURITY: row_security, WRITE_BARRIER: write_barrier},
    )


@asynccontextmanager
async def scoped_session(
    bind: AsyncEngine | AsyncConnection,
    scope: Scope,
    *,
    row_security: bool = False,
    write_barrier: bool = False,
) -> AsyncIterator[AsyncSession]:
    """A tenant session committed when the block ends normally, rolled back when it raises."""
    session = open_session(bind, scope, row_security=row_security, write_barrier=write_barrier)
    async with committing(session) as session:
        yield session
