"""What every tenant page shares: rendering in the tenant's layout. Who may open a page is said by
the guards its controller declares (web/tenancy/guards.py); the "not found" that records an
attempt on another tenant's data is web/tenancy/foreign.py."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Template

from web.tenancy.scope import tenant_access, tenant_link, tenant_scope

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


def tenant_page(
    request: Request[Any, Any, Any], template: str, status_code: int = 200, **context: Any
) -> Template:
    """`tenant/<template>` in the tenant's layout, with its tenant, access, scope and links."""
    access = tenant_access(request)
    return Template(
        f"tenant/{template}",
        context={
            "tenant": access.tenant,
            "access": access,
            "scope": tenant_scope(request),
            "link": lambda path="/": tenant_link(request, path),
            **context,
        },
        status_code=status_code,
    )
