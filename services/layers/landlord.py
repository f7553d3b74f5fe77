"""Migrations of the landlord database, run with Alembic's machinery from layers/landlord/."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from services.db import Database
from services.settings import Settings


def alembic_config(settings: Settings, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(settings.layers_dir / "landlord"))
    config.attributes["connection"] = connection
    return config


async def migrate_landlord(settings: Settings, database: Database, revision: str = "head") -> None:
    """Bring the landlord database to `revision` (the newest by default)."""

    def upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(settings, connection), revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(upgrade)


async def downgrade_landlord(settings: Settings, database: Database, revision: str) -> None:
    def downgrade(connection: Connection) -> None:
        command.downgrade(alembic_config(settings, connection), revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(downgrade)


async def landlord_is_current(settings: Settings, database: Database) -> bool:
    """True when the landlord database is at the newest revision."""
    head = ScriptDirectory.from_config(alembic_config(settings)).get_current_head()

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with database.engine.connect() as connection:
        return await connection.run_sync(current) == head
