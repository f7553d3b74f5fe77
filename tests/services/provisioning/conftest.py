"""Installations to provision tenants in. Each has a landlord database of its own, copied from
one migrated once per test process (tests/conftest.py); its tenants live in SQLite files,
PostgreSQL databases or PostgreSQL schemas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.tenancy.stores import can_copy_schemas
from tests.services.provisioning.installation import (
    EVERY_MODE,
    POSTGRES_SCHEMA,
    SHARED_MODES,
    SQLITE_DATABASE,
    Installation,
    fresh_installation,
)


def _installation(request: pytest.FixtureRequest, mode: str, folder: Path) -> Iterator[Installation]:
    pristine = request.getfixturevalue(
        "migrated_sqlite_landlord" if mode.startswith("sqlite") else "migrated_postgres_landlord"
    )
    with fresh_installation(mode, folder, pristine) as installation:
        yield installation


@pytest.fixture(params=EVERY_MODE)
def installation(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Installation]:
    """An installation per isolation mode: SQLite files, PostgreSQL databases, PostgreSQL schemas
    (a test narrows them with `@pytest.mark.parametrize("installation", MODES, indirect=True)`)."""
    yield from _installation(request, request.param, tmp_path)


@pytest.fixture(params=EVERY_MODE)
def cloning_installation(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Installation]:
    """An installation per isolation mode whose tenants can be cloned from golden images: SQLite
    files are copied, PostgreSQL databases created from a template, schemas copied by pg_dump."""
    if request.param == POSTGRES_SCHEMA and not can_copy_schemas():
        pytest.skip("copying a PostgreSQL schema needs pg_dump, which is not installed here")
    yield from _installation(request, request.param, tmp_path)


@pytest.fixture(params=SHARED_MODES)
def shared_installation(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Installation]:
    """Tenants in shared stores: one SQLite file, or one PostgreSQL database with row-level security."""
    yield from _installation(request, request.param, tmp_path)


@pytest.fixture
def sqlite_installation(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Installation]:
    """The embedded default: landlord and tenants in SQLite files, no PostgreSQL tenant server."""
    yield from _installation(request, SQLITE_DATABASE, tmp_path)


@pytest.fixture
def postgres_schema_installation(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Installation]:
    yield from _installation(request, POSTGRES_SCHEMA, tmp_path)
