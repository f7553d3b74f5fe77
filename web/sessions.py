"""Server-side sessions whose id can be rotated: signing in or out ends the old id for good. A
signed-in session also keeps when, from where and on what it was signed in: its owner sees them
on /account/sessions, and the moment decides whether it is still let in (web.auth)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.types import Empty, Message, ScopeSession

_ROTATE = "_rotate_id"
_NEW_ID = "tenantry.new_session_id"
_LOADED = "tenantry.loaded_session"
SIGNED_IN_AT = "signed_in_at"
SIGNED_IN_FROM = "signed_in_from"
SIGNED_IN_ON = "signed_in_on"
#: Browsers and systems by a word their user agent carries, the more specific first (Edge's carries
#: "Chrome" too, Chrome's "Safari", Android's "Linux").
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)
#: What is kept of a user agent no word above names.
AGENT_KEPT = 60


def rotate_session(session: dict[str, Any]) -> None:
    """Ask for a fresh session id when this response is sent; the old id's data is deleted."""
    session[_ROTATE] = True


def short_agent(user_agent: str) -> str:
    """A user agent as its owner knows it ("Firefox on Linux"), or its start."""
    browser = next((name for word, name in _BROWSERS if word in user_agent), None)
    system = next((name for word, name in _SYSTEMS if word in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or re.sub(r"\s+", " ", user_agent).strip()[:AGENT_KEPT] or "unknown"


def stamp_sign_in(session: dict[str, Any], at: datetime, *, address: str | None, user_agent: str) -> None:
    """Note in a session just signed in when (UTC), from which address and on what."""
    session[SIGNED_IN_AT] = at.isoformat()
    session[SIGNED_IN_FROM] = address or "unknown"
    session[SIGNED_IN_ON] = short_agent(user_agent)


def stamp_again(session: dict[str, Any], at: datetime) -> None:
    """Count the session as signed in at `at`: the one kept when all the others were ended then."""
    session[SIGNED_IN_AT] = at.isoformat()


def signed_in_at(session: dict[str, Any]) -> datetime | None:
    """When the session was signed in; None when it does not say (or not legibly)."""
    try:
        return datetime.fromisoformat(session[SIGNED_IN_AT])
    except (KeyError, TypeError, ValueError):
        return None


def signed_in_since(session: dict[str, Any], moment: datetime | None) -> bool:
    """Whether the session still counts for an account whose sessions before `moment` were ended
    (None: none were). One that does not say when it was signed in counts as signed in before."""
    if moment is None:
        return True
    at = signed_in_at(session)
    return at is not None and at.tzinfo is not None and at >= moment


class RotatingSessionBackend(ServerSideSessionBackend):
    """Also writes only sessions that changed: anonymous visitors get no cookie and no stored row."""

    async def load_from_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
        data = await super().load_from_connection(connection)
        connection.scope["state"][_LOADED] = data.copy()
        return data

    async def store_in_message(
        self, scope_session: ScopeSession, message: Message, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> None:
        # The portal's session data is always a dict (web.auth stores plain values in it).
        if isinstance(scope_session, dict) and scope_session.pop(_ROTATE, False):
            if old_id := connection.cookies.get(self.config.key):
                await self.delete(old_id, store=self.config.get_store_from_app(connection.scope["app"]))
            connection.scope["state"][_NEW_ID] = self.generate_session_id()
        elif self._unchanged(scope_session, connection):
            return
        await super().store_in_message(scope_session, message, connection)

    def _unchanged(self, scope_session: ScopeSession, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
        loaded = connection.scope["state"].get(_LOADED) or {}
        if scope_session is Empty:
            return not loaded and self.config.key not in connection.cookies
        return scope_session == loaded

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        return connection.scope["state"].get(_NEW_ID) or super().get_session_id(connection)


@dataclass
class RotatingSessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend
