"""Migrations of the landlord database, run with Alembic's machinery from layers/landlord/."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from services.db import Database, broken_foreign_key, sqlite_foreign_keys_off
from services.layers.migrator import alembic_turn, script_directory
from services.settings import Settings


def alembic_config(settings: Settings, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(settings.layers_dir / "landlord"))
    config.attributes["connection"] = connection
    return config


async def migrate_landlord(settings: Settings, database: Database, revision: str = "head") -> None:
    """Bring the landlord database to `revision` (the newest by default). A database already at
    the newest costs one read: every start of a process (and every test's installation) asks."""
    if revision == "head" and await landlord_is_current(settings, database):
        return

    def upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(settings, connection), revision)

    await _in_one_transaction(database, upgrade)


async def downgrade_landlord(settings: Settings, database: Database, revision: str) -> None:
    def downgrade(connection: Connection) -> None:
        command.downgrade(alembic_config(settings, connection), revision)

    await _in_one_transaction(database, downgrade)


async def _in_one_transaction(database: Database, migrate: Callable[[Connection], None]) -> None:
    """`migrate` in one transaction; on SQLite with foreign keys off while it runs (a table that
    batch mode rebuilds, such as `tenants`, would otherwise take every row referring to it along)
    and checked before it commits."""
    async with (
        database.engine.connect() as connection,
        alembic_turn(),
        sqlite_foreign_keys_off(connection) as sqlite,
        connection.begin(),
    ):
        await connection.run_sync(migrate)
        if sqlite and (broken := await broken_foreign_key(connection)):
            raise RuntimeError(f"the landlord migration leaves a broken foreign key in {broken}")


async def landlord_is_current(settings: Settings, database: Database) -> bool:
    """True when the landlord database is at the newest revision."""
    head = script_directory(settings.layers_dir / "landlord")[1].get_current_head()

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with database.engine.connect() as connection:
        return await connection.run_sync(current) == head
