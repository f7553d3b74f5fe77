"""The scope of a tenant request, set once, here, before any handler runs.

`TenantScopeMiddleware` sits on the tenant portal's router (/t/<slug>/…) and on the tenant API
(/api/v1/tenant/…). It finds the tenant, checks the caller may enter it (membership, a switch,
or a tenant token), refuses and records a cross-tenant attempt otherwise, then enters the tenant
(services.tenancy.entry: the scope, one connection to its store, row security) and narrows the
entry to a member's unit subtrees. Handlers get a session bound to that scope (`TenantData`) and
cannot get any other. Work a handler
leaves for `after_response` runs once the answer has been sent and the connection let go.

`TenantHosts` runs before routing: a request to a tenant's host (a domain in the landlord's
`domains` table, or <slug>.<base domain>) is routed as if it had the /t/<slug> prefix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Headers, State
from litestar.di import NamedDependency
from litestar.enums import MediaType, ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import ASGIMiddleware
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.errors import NotFound
from services.models import ApiToken, Domain, Tenant, User
from services.recently_used import LeastRecentlyUsed
from services.tenancy.access import (
    TenantAccess,
    find_open_tenant,
    grant_access,
    member_tenant,
    open_tenant,
    scope_for,
)
from services.tenancy.barrier import still_open_for_writes
from services.tenancy.context import Scope as TenantScope
from services.tenancy.entry import EnteredTenant, enter_tenant
from services.tenancy.security import record_cross_tenant_attempt
from services.tenancy.stores import location_of
from web.auth import API_PREFIX
from web.rate_limits import admit_into_tenant
from web.switching import SwitchFirst, active_switch

ACCESS = "tenantry.tenant_access"
ENTERED = "tenantry.entered_tenant"
#: The prefix tenant pages put before their links: "/t/<slug>", or "" on the tenant's own host.
LINK_PREFIX = "tenantry.tenant_prefix"
_HOST_ROUTED = "tenantry.host_routed"
AFTER_RESPONSE = "tenantry.after_response"
#: Requests that only read the tenant's data; any other takes the store's write lock as its
#: transaction begins (SQLite: services.db.WRITES).
_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

log = logging.getLogger(__name__)


def tenant_access(connection: ASGIConnection[Any, Any, Any, Any]) -> TenantAccess:
    return connection.scope["state"][ACCESS]  # type: ignore[no-any-return]


def entered_tenant(connection: ASGIConnection[Any, Any, Any, Any]) -> EnteredTenant:
    return connection.scope["state"][ENTERED]  # type: ignore[no-any-return]


def tenant_scope(connection: ASGIConnection[Any, Any, Any, Any]) -> TenantScope:
    return entered_tenant(connection).scope


def tenant_link(connection: ASGIConnection[Any, Any, Any, Any], path: str = "/") -> str:
    return f"{connection.scope['state'].get(LINK_PREFIX, '')}{path}"


def after_response(
    connection: ASGIConnection[Any, Any, Any, Any], work: Callable[[], Awaitable[None]]
) -> None:
    """`work` to do once the answer has been sent, so that how long the answer takes does not
    depend on it (recording an attempt on another tenant's data, say, which a "not found" for
    nobody's id does not do)."""
    connection.scope["state"].setdefault(AFTER_RESPONSE, []).append(work)


async def provide_tenant_data(state: State, scope: Scope) -> AsyncIterator[AsyncSession]:
    """The request's tenant session, bound to its scope: committed when the handler returns."""
    del state
    entered: EnteredTenant = scope["state"][ENTERED]
    async with entered.session() as session:
        yield session


TenantData = NamedDependency[AsyncSession]


def _address(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


class TenantScopeMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        app_state = scope["app"].state
        user: User | None = scope.get("user")
        token: ApiToken | None = scope.get("auth")
        is_api = scope["path"].startswith(API_PREFIX)
        if user is None:
            raise NotAuthorizedException(
                "A valid API token is required: send 'Authorization: Bearer <token>'."
                if is_api
                else "Sign in to continue."
            )
        access = await self._enter(app_state.database, scope, user, token, is_api)
        send = await admit_into_tenant(scope, send, access, user)
        location = location_of(app_state.settings, access.tenant)
        tenant_id = access.tenant.id

        async def still_open() -> None:
            await still_open_for_writes(app_state.database, app_state.settings, tenant_id, location)

        try:
            async with enter_tenant(
                tenant_id,
                location,
                connections=app_state.tenant_connections,
                writes=scope.get("method") not in _READ_ONLY_METHODS,
                still_open=still_open,
            ) as tenant_wide:
                if access.is_admin:
                    request_scope = tenant_wide.scope
                else:
                    async with tenant_wide.session() as data:
                        request_scope = await scope_for(data, access, user)
                with tenant_wide.narrowed(request_scope) as entered:
                    state = scope["state"]
                    state[ACCESS], state[ENTERED] = access, entered
                    if not is_api:
                        state[LINK_PREFIX] = "" if state.get(_HOST_ROUTED) else f"/t/{access.tenant.slug}"
                    await next_app(scope, receive, send)
        finally:
            # Errors have become responses inside (Litestar puts an exception handler right around
            # each handler): the answer has been sent, and the store's connection is let go.
            await _after_response(scope)

    async def _enter(
        self, database: Database, scope: Scope, user: User, token: ApiToken | None, is_api: bool
    ) -> TenantAccess:
        """The caller's access to the tenant the request names. A member's (or a tenant token's)
        tenant came with who they are; only another caller's needs the landlord."""
        if is_api:
            if token is None or token.tenant is None:
                raise PermissionDeniedException("This endpoint needs a token scoped to a tenant.")
            tenant = open_tenant(token.tenant)
        elif (member_of := member_tenant(user, scope["path_params"]["slug"])) is not None:
            tenant = open_tenant(member_of)
        else:
            async with database.session() as landlord:
                tenant = await find_open_tenant(landlord, scope["path_params"]["slug"])
        switch = active_switch(ASGIConnection(scope))
        access = grant_access(
            tenant, user, switched_into=switch.tenant_id if switch else None, via_token=token is not None
        )
        if access is None:
            if not is_api and user.can_switch_tenants:
                raise SwitchFirst(tenant.name, tenant.slug)
            async with database.session() as landlord:
                await refuse_cross_tenant(landlord, scope, user, tenant, "entered another tenant's portal")
        assert access is not None
        return access


async def _after_response(scope: Scope) -> None:
    """Each piece of work left for after the answer. The answer is gone: a failure can only be
    logged, and does not keep the rest from running."""
    for work in scope["state"].pop(AFTER_RESPONSE, []):
        try:
            await work()
        except Exception:
            log.exception("work after the response to %s failed", scope["path"])


async def refuse_cross_tenant(
    landlord: AsyncSession, scope: Scope, user: User, tenant: Tenant, what: str
) -> None:
    """Record the attempt (committed even though the request fails) and answer "not found"."""
    await record_cross_tenant_attempt(
        landlord,
        actor=user,
        target=tenant,
        what=what,
        ip=_address(scope),
        detail={"method": scope.get("method", "WEBSOCKET"), "path": scope["path"]},
    )
    await landlord.commit()
    raise NotFound("There is no such tenant here.")


class HostCache:
    """Which tenant each host name belongs to, as last looked up. It keeps the `limit` names used
    most recently, each for a while: `found_for` seconds when it named a tenant (a domain moved or
    removed is seen after that), `missing_for` when it named none (a domain added is found soon).
    Unbounded, every Host header ever sent would stay in memory."""

    def __init__(
        self,
        limit: int = 10_000,
        *,
        found_for: float = 30.0,
        missing_for: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.found_for, self.missing_for, self.clock = found_for, missing_for, clock
        self._answers: LeastRecentlyUsed[str, tuple[str | None, float]] = LeastRecentlyUsed(limit)

    def __len__(self) -> int:
        return len(self._answers)

    async def tenant_of(self, host: str, look_up: Callable[[str], Awaitable[str | None]]) -> str | None:
        """The slug of the tenant `host` names, if any: remembered, or found with `look_up`."""
        answer = self._answers.get(host)
        if answer is not None and answer[1] >= self.clock():
            return answer[0]
        slug = await look_up(host)
        self._answers.put(host, (slug, self.clock() + (self.found_for if slug else self.missing_for)))
        return slug


class HostDirectory:
    """Which tenant a host name belongs to, by the landlord's `domains` table, remembered for a
    while (`HostCache`). One per installation: an app serving another installation gets another."""

    def __init__(self, database: Database, known: HostCache | None = None) -> None:
        self.database = database
        self.known = known if known is not None else HostCache()

    async def tenant_of(self, host: str) -> str | None:
        return await self.known.tenant_of(host, self._tenant_with_domain)

    async def _tenant_with_domain(self, host: str) -> str | None:
        async with self.database.session() as session:
            return await session.scalar(
                select(Tenant.slug).join(Domain, Domain.tenant_id == Tenant.id).where(Domain.host == host)
            )


class TenantHosts:
    """Routes a tenant's own host names to its portal, before Litestar routes the request.
    `directory` gives the installation's `HostDirectory` when a request comes in."""

    #: Paths that stay the landlord's on every host: sign-in, assets, the API, health.
    _SHARED_PATHS = ("/static/", "/api/", "/healthz", "/login", "/logout", "/switch", "/schema")
    #: The longest a host name can be (RFC 1035); a longer Host header names no host at all.
    LONGEST_HOST = 253

    def __init__(self, app: ASGIApp, base_domain: str | None, directory: Callable[[], HostDirectory]) -> None:
        self.app, self.base_domain, self.directory = app, base_domain, directory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            host = Headers.from_scope(scope).get("host", "").split(":")[0].lower().rstrip(".")
            if len(host) > self.LONGEST_HOST:
                # RFC 9110: a Host that is not valid is a 400; refused before anything is looked up.
                refusal = ASGIResponse(
                    body="The Host header is not a host name.", status_code=400, media_type=MediaType.TEXT
                )
                await refusal(scope, receive, send)
                return
            if not scope["path"].startswith(self._SHARED_PATHS) and (slug := await self._tenant_of(host)):
                scope["path"] = f"/t/{slug}{scope['path']}"
                scope["raw_path"] = scope["path"].encode()
                scope.setdefault("state", {})[_HOST_ROUTED] = True
        await self.app(scope, receive, send)

    async def _tenant_of(self, host: str) -> str | None:
        if not host or host in ("127.0.0.1", "localhost"):
            return None
        if self.base_domain and host.endswith(f".{self.base_domain}"):
            subdomain = host.removesuffix(f".{self.base_domain}")
            return subdomain if "." not in subdomain else None
        return await self.directory().tenant_of(host)
