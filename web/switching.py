"""A switch into a tenant, as the web keeps it: in the switcher's session, checked once at the
start of every request (one that expired, or whose switcher may no longer switch, ends there and
the request goes on unswitched), and every successful write made under it recorded.

What the rest of the web layer reads is `active_switch(connection)`."""

from __future__ import annotations

from typing import Any, cast

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import Conflict
from services.models.types import utcnow
from services.tenancy.switching import (
    SESSION_KEY,
    Switch,
    SwitchEnd,
    end_switch,
    record_switched_write,
    start_switch,
)
from web.auth import SESSION_USER, current_user, signed_in_user
from web.sessions import rotate_session

#: A write is a request with one of these methods whose response is a success (status < 400).
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ACTIVE = "tenantry.switch"
_ENDED = "tenantry.switch_ended"


class SwitchFirst(PermissionDeniedException):
    """Staff who may switch into tenants opened a tenant's portal without switching into it: the
    page says so and leads to the switch, rather than answering "not found" and recording them as
    an intruder."""

    def __init__(self, tenant_name: str, tenant_slug: str) -> None:
        super().__init__(
            detail=f"You are not switched into {tenant_name}. Staff enter a tenant's portal by switching "
            "into it, with a reason that goes on the audit trail, from its page."
        )
        self.link = (f"/tenants/{tenant_slug}#switch-form", f"Switch into {tenant_name}")


def active_switch(connection: ASGIConnection[Any, Any, Any, Any]) -> Switch | None:
    """The switch this request runs under, or None (not switched, or it has just ended)."""
    return connection.scope.get("state", {}).get(_ACTIVE)


async def may_switch_tenants(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: superadmins, and landlord admins a superadmin granted it."""
    if not signed_in_user(connection).can_switch_tenants:
        raise PermissionDeniedException(
            "Only superadmins, and landlord admins granted it, may switch into a tenant."
        )


def _address(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def _forget(scope: Scope) -> None:
    """Drop the switch from the session and this request, and give the session a new id."""
    session = scope.get("session")
    if isinstance(session, dict) and SESSION_KEY in session:
        del session[SESSION_KEY]
        rotate_session(session)
    scope["state"].pop(_ACTIVE, None)
    scope["state"][_ENDED] = True


async def enter_switch(
    request: ASGIConnection[Any, Any, Any, Any], db_session: AsyncSession, tenant_slug: str, reason: str
) -> Switch:
    """Start a switch for the request's user (recorded in `db_session`) and keep it in the session,
    under a new session id."""
    user = current_user(request)
    if user is None:
        raise PermissionDeniedException("Sign in to switch into a tenant.")
    if (current := active_switch(request)) is not None:
        raise Conflict(f"You are switched into {current.tenant_name}; exit that first.")
    switch = await start_switch(
        db_session,
        user,
        tenant_slug,
        reason,
        minutes=request.app.state.settings.switch_minutes,
        ip=_address(request.scope),
    )
    request.session[SESSION_KEY] = switch.to_session()
    rotate_session(request.session)
    request.scope["state"][_ACTIVE] = switch
    return switch


async def leave_switch(
    request: ASGIConnection[Any, Any, Any, Any], db_session: AsyncSession
) -> Switch | None:
    """End the request's switch, if it has one (recorded in `db_session`), under a new session id."""
    switch = active_switch(request)
    if switch is None:
        return None
    await end_switch(db_session, switch, SwitchEnd.EXIT, ip=_address(request.scope))
    _forget(request.scope)
    return switch


class SwitchMiddleware(ASGIMiddleware):
    """Runs after IdentityMiddleware (it needs the user). Ends a switch that expired or whose
    switcher may no longer switch before the handler runs, and after a successful write made under
    a switch records it. The handler's own transaction has committed by the time the response
    starts, so these entries are written in a landlord transaction of their own."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        session = scope.get("session")
        if not isinstance(session, dict) or SESSION_KEY not in session:
            await next_app(scope, receive, send)
            return
        switch = await self._still_active(scope, Switch.from_session(session[SESSION_KEY]))
        if switch is None:
            await next_app(scope, receive, send)
            return
        scope["state"][_ACTIVE] = switch
        method = cast("HTTPScope", scope)["method"]

        async def send_recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._after(scope, switch, method, message["status"])
            await send(message)

        await next_app(scope, receive, send_recording)

    async def _still_active(self, scope: Scope, switch: Switch | None) -> Switch | None:
        if switch is None:  # unreadable: nothing to record, nothing to keep
            _forget(scope)
            return None
        user = scope.get("user")
        if switch.is_expired(utcnow()):
            cause = SwitchEnd.EXPIRED
        elif user is None or user.id != switch.user_id or not user.can_switch_tenants:
            cause = SwitchEnd.REVOKED
        else:
            return switch
        await self._record_end(scope, switch, cause)
        _forget(scope)
        return None

    async def _after(self, scope: Scope, switch: Switch, method: str, status: int) -> None:
        if scope["state"].get(_ENDED):  # the exit itself, recorded by its handler
            return
        session = scope.get("session")
        if not isinstance(session, dict) or session.get(SESSION_USER) != switch.user_id:
            # Signed out (the session was cleared), or another person signed in on this browser.
            await self._record_end(scope, switch, SwitchEnd.SESSION_ENDED)
            _forget(scope)
            return
        if method in WRITE_METHODS and status < 400:
            async with scope["app"].state.database.session() as db_session:
                await record_switched_write(
                    db_session, switch, method=method, path=scope["path"], ip=_address(scope)
                )

    @staticmethod
    async def _record_end(scope: Scope, switch: Switch, cause: SwitchEnd) -> None:
        async with scope["app"].state.database.session() as db_session:
            await end_switch(db_session, switch, cause, ip=_address(scope))
