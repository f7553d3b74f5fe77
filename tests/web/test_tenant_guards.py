"""The tenant role guards on their own: where no tenant has been entered, they let nobody through."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.testing import TestClient

from web.tenancy.guards import tenant_admin, tenant_member


@get("/member", guards=[tenant_member])
async def for_members() -> str:
    return "in"


@get("/admin", guards=[tenant_admin])
async def for_admins() -> str:
    return "in"


def test_a_tenant_role_outside_a_tenants_scope_refuses_everyone() -> None:
    """A route declaring a tenant role but mounted without the tenant's door (TenantScopeMiddleware)
    is closed, not open."""
    with TestClient(Litestar(route_handlers=[for_members, for_admins])) as client:
        for path in ("/member", "/admin"):
            answer = client.get(path)

            assert answer.status_code == 403, path
            assert answer.json()["detail"] == "This route is not in a tenant's scope."
