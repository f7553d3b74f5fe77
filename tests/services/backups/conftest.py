"""Backups run on the installations provisioning tests use: tenants in SQLite files, PostgreSQL
databases and PostgreSQL schemas."""

from tests.services.provisioning.conftest import (  # noqa: F401  (fixtures, used by name)
    installation,
    migrated_postgres_landlord,
    migrated_sqlite_landlord,
    postgres_schema_installation,
    shared_installation,
    sqlite_installation,
)
