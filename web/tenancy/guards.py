"""The tenant roles a tenant route declares, as guards beside the landlord's (web/auth.py): every
route of the tenant portal and the tenant API declares `tenant_member` or `tenant_admin`, on its
controller or on itself, and the route sweep (tests/web/test_cross_tenant_routes.py) holds every
one to it.

They read the access TenantScopeMiddleware granted. That middleware sits on the tenant routers, and
Litestar runs a route's guards inside its middleware, just before the handler: by then the tenant
is entered, or the request was refused at the door."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from services.tenancy.access import TenantAccess
from web.tenancy.scope import ACCESS

#: A route's `opt` key for its own words when a member is refused (the API's modules say what
#: admins do there); without it, `ADMINS_ONLY`.
REFUSAL = "tenant_admin_refusal"
ADMINS_ONLY = "Only the tenant's admins may do this."


def _entered(connection: ASGIConnection[Any, Any, Any, Any]) -> TenantAccess:
    access: TenantAccess | None = connection.scope["state"].get(ACCESS)
    if access is None:
        # A route declaring a tenant role outside the tenant routers: no door was passed, so no one
        # has entered a tenant there.
        raise PermissionDeniedException("This route is not in a tenant's scope.")
    return access


async def tenant_member(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Anyone who entered the tenant: its admins and members, a switched superadmin, a tenant token.
    What a member sees is narrowed by the scope, not here."""
    _entered(connection)


async def tenant_admin(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The tenant's admins (and a superadmin switched into it): the whole tenant, and its changes."""
    if not _entered(connection).is_admin:
        raise PermissionDeniedException(handler.opt.get(REFUSAL, ADMINS_ONLY))
