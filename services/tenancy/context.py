"""The scope a piece of work runs in: platform, one tenant, or unit subtrees inside a tenant.

Set once (by entering a tenant, services.tenancy.entry, or by a job message's middleware) and read
where tenant data is touched and where jobs are sent: tenant sessions bind it and filter by it, a
job sent carries it. Never passed by hand through
every call, and never left behind: each request and each job runs in its own context copy.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass


class ScopeLevel(enum.StrEnum):
    PLATFORM = "platform"
    TENANT = "tenant"
    UNIT = "unit"


@dataclass(frozen=True)
class Scope:
    level: ScopeLevel
    tenant_id: int | None = None
    #: The units visible at unit level: the assigned units and everything below them.
    unit_ids: frozenset[int] | None = None

    @classmethod
    def of_tenant(cls, tenant_id: int) -> Scope:
        return cls(ScopeLevel.TENANT, tenant_id)

    @classmethod
    def of_units(cls, tenant_id: int, unit_ids: frozenset[int]) -> Scope:
        return cls(ScopeLevel.UNIT, tenant_id, unit_ids)

    def describe(self) -> str:
        if self.level == ScopeLevel.UNIT:
            return f"tenant {self.tenant_id}, units {sorted(self.unit_ids or ())}"
        return f"tenant {self.tenant_id}" if self.tenant_id is not None else "platform"


PLATFORM = Scope(ScopeLevel.PLATFORM)
_current_scope: ContextVar[Scope] = ContextVar("tenantry_scope", default=PLATFORM)


def current_scope() -> Scope:
    return _current_scope.get()


def current_tenant_id() -> int | None:
    return _current_scope.get().tenant_id


def enter_scope(scope: Scope) -> Token[Scope]:
    return _current_scope.set(scope)


def leave_scope(token: Token[Scope]) -> None:
    _current_scope.reset(token)


@contextmanager
def scope_context(scope: Scope) -> Iterator[None]:
    token = enter_scope(scope)
    try:
        yield
    finally:
        leave_scope(token)


def scope_of_tenant(tenant_id: int | None) -> Scope:
    """The whole tenant's scope, or the platform's for work of no tenant."""
    return PLATFORM if tenant_id is None else Scope.of_tenant(tenant_id)


def tenant_context(tenant_id: int | None) -> AbstractContextManager[None]:
    """The scope only: work that reads or writes the tenant's data enters it
    (services.tenancy.entry), which also sets this."""
    return scope_context(scope_of_tenant(tenant_id))
