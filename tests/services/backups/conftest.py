"""Backups run on the installations provisioning tests use: tenants in SQLite files, PostgreSQL
databases and PostgreSQL schemas."""

from tests.services.provisioning.conftest import (  # noqa: F401  (fixtures, used by name)
    installation,
    postgres_schema_installation,
    shared_installation,
    sqlite_installation,
)
