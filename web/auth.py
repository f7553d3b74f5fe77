"""Who is asking: the signed-in user (session) or an API token's user (bearer), and the guards
that every route declares. Identity is resolved once per request, here."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from services.accounts.identities import Identities
from services.models import ApiToken, User
from web.sessions import signed_in_since

API_PREFIX = "/api/"
SESSION_USER = "user_id"


class IdentityMiddleware(ASGIMiddleware):
    """Sets `request.user` (a User or None) and `request.auth` (the ApiToken or None). A session
    signed in before its user's `sessions_valid_after` (a reset, a new password, "sign out
    everywhere else") is signed out: nobody is asking, as for a visitor who never signed in."""

    scopes = (ScopeType.HTTP,)

    @staticmethod
    def should_bypass_for_scope(scope: Scope) -> bool:
        # By request path: Litestar 3 matches exclude_path_pattern against the handler's path only.
        return scope["path"].startswith("/static/")

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        identities: Identities = scope["app"].state.identities
        user: User | None = None
        token: ApiToken | None = None
        if scope["path"].startswith(API_PREFIX):
            scheme, _, secret = Headers.from_scope(scope).get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and secret.strip():
                token = await identities.of_token(secret.strip())
                user = token.user if token else None
        else:
            session_data = scope.get("session")
            if isinstance(session_data, dict) and (user_id := session_data.get(SESSION_USER)):
                user = await identities.of_user(user_id)
                if user is not None and not signed_in_since(session_data, user.sessions_valid_after):
                    user = None
        scope["user"], scope["auth"] = user, token
        await next_app(scope, receive, send)


def current_user(connection: ASGIConnection[Any, Any, Any, Any]) -> User | None:
    """The signed-in user, also on error pages raised before the identity middleware ran."""
    user: User | None = connection.scope.get("user")
    return user


# Guards are coroutines: Litestar runs a plain function given as a guard in a worker thread, a
# hand-off (and back) on every request for a check of a few attribute reads.


def signed_in_user(connection: ASGIConnection[Any, Any, Any, Any]) -> User:
    """The signed-in user; 401 without one."""
    user = current_user(connection)
    if user is None:
        if connection.scope["path"].startswith(API_PREFIX):
            raise NotAuthorizedException(
                "A valid API token is required: send 'Authorization: Bearer <token>'."
            )
        raise NotAuthorizedException("Sign in to continue.")
    return user


def _staff_user(connection: ASGIConnection[Any, Any, Any, Any]) -> User:
    user = signed_in_user(connection)
    if not user.is_landlord_staff:
        raise PermissionDeniedException("This part of Tenantry is for the platform's administrators.")
    return user


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    signed_in_user(connection)


async def landlord_staff(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    _staff_user(connection)


async def superadmin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if not signed_in_user(connection).is_superadmin:
        raise PermissionDeniedException("Only a superadmin may do this.")


async def landlord_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """An API route over the whole platform: the token must be landlord-scoped and its user staff."""
    signed_in_user(connection)
    token: ApiToken | None = connection.scope.get("auth")
    if token is not None and token.tenant is not None:
        raise PermissionDeniedException(
            f"This token is scoped to the tenant {token.tenant.slug!r}; this endpoint needs a landlord token."
        )
    _staff_user(connection)


def may_read_tenant(connection: ASGIConnection[Any, Any, Any, Any], slug: str) -> bool:
    """A landlord token reads every tenant; a tenant token only its own."""
    token: ApiToken | None = connection.scope.get("auth")
    user = current_user(connection)
    if token is None or user is None:
        return False
    if token.tenant is not None:
        return token.tenant.slug == slug
    return user.is_landlord_staff
