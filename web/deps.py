"""Dependencies shared by controllers."""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession


async def provide_db_session(state: State) -> AsyncIterator[AsyncSession]:
    """A landlord session per request: committed when the handler returns, rolled back if it raises."""
    async with state.database.session() as session:
        yield session


DbSession = NamedDependency[AsyncSession]
