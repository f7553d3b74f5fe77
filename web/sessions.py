"""Server-side sessions whose id can be rotated: signing in or out ends the old id for good."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.types import Empty, Message, ScopeSession

_ROTATE = "_rotate_id"
_NEW_ID = "tenantry.new_session_id"
_LOADED = "tenantry.loaded_session"


def rotate_session(session: dict[str, Any]) -> None:
    """Ask for a fresh session id when this response is sent; the old id's data is deleted."""
    session[_ROTATE] = True


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
