"""An installation made ready to run: the landlord database migrated and the superadmin seeded."""

from __future__ import annotations

from services.accounts.users import NewUser, seed_superadmin
from services.db import Database
from services.layers.landlord import migrate_landlord
from services.settings import Settings


async def prepare_landlord(settings: Settings) -> NewUser | None:
    """Migrate the landlord database and seed the superadmin; returns the seed when it is new."""
    database = Database(settings.database_url)
    try:
        await migrate_landlord(settings, database)
        async with database.session() as session:
            return await seed_superadmin(session, settings.admin_email)
    finally:
        await database.dispose()
