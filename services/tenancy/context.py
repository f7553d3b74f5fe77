"""The tenant a piece of work runs for. Set once (by a request's scope or a job message's
middleware) and read where tenant data is touched; never passed by hand through every call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

_current_tenant: ContextVar[int | None] = ContextVar("tenantry_current_tenant", default=None)


def current_tenant_id() -> int | None:
    return _current_tenant.get()


def enter_tenant(tenant_id: int | None) -> Token[int | None]:
    return _current_tenant.set(tenant_id)


def leave_tenant(token: Token[int | None]) -> None:
    _current_tenant.reset(token)


@contextmanager
def tenant_context(tenant_id: int | None) -> Iterator[None]:
    token = enter_tenant(tenant_id)
    try:
        yield
    finally:
        leave_tenant(token)
