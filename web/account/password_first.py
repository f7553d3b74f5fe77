"""Someone signed in with a password another person was shown (an invitation, a first admin)
chooses their own before anything else: every page but their account page and signing out leads
there, and back to where they were going once it is done."""

from __future__ import annotations

from urllib.parse import quote

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send

from services.models import User

ACCOUNT_PAGE = "/account"
PASSWORD_FORM = f"{ACCOUNT_PAGE}/password"
#: What they may still reach: their account page and its password form, signing out, and what
#: needs no person (static files, health). Not the rest of their account (its API tokens, its
#: sessions): API calls carry tokens, which they make only once the password is theirs.
_OPEN_PAGES = frozenset({ACCOUNT_PAGE, PASSWORD_FORM, "/logout", "/login", "/healthz"})
_OPEN_PREFIXES = ("/static/", "/api/")


def account_page_first(going_to: str) -> str:
    """The account page, which leads on to `going_to` once the password is theirs."""
    return f"{ACCOUNT_PAGE}?next={quote(going_to, safe='/')}"


class PasswordFirstMiddleware(ASGIMiddleware):
    """Runs after the identity middleware (it reads `scope["user"]`)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        user: User | None = scope.get("user")
        path: str = scope["path"]
        if (
            user is None
            or not user.must_change_password
            or path in _OPEN_PAGES
            or path.startswith(_OPEN_PREFIXES)
        ):
            await next_app(scope, receive, send)
            return
        # The address as asked (Litestar's `path` drops a trailing slash).
        asked = scope.get("raw_path", b"").decode("latin-1") or path
        query = scope.get("query_string", b"").decode("latin-1")
        target = account_page_first(f"{asked}?{query}" if query else asked).encode()
        htmx = any(name == b"hx-request" for name, _ in scope.get("headers", []))
        # HTMX follows a redirect inside its request and would swap the page into a fragment; it
        # is told to load the page instead.
        status, header = (200, b"hx-redirect") if htmx else (303, b"location")
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": status,
            "headers": [(header, target), (b"content-length", b"0")],
        }
        await send(start)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
