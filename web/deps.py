"""Dependencies shared by controllers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from services.settings import Settings


async def provide_db_session(state: State) -> AsyncIterator[AsyncSession]:
    """A landlord session per request: committed when the handler returns, rolled back if it raises."""
    async with state.database.session() as session:
        yield session


DbSession = NamedDependency[AsyncSession]


def settings_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Settings:
    """The installation's settings, as create_app put them on the app's state."""
    settings: Settings = connection.app.state.settings
    return settings
