from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from services.cli import prepare_landlord
from services.settings import Settings
from tests.support import (
    Credentials,
    fresh_postgres_database,
    installation_settings,
    requires_postgres,
    sign_in,
)
from web.app import create_app


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=requires_postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The landlord database: a SQLite file, and (when configured) a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'landlord.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return installation_settings(tmp_path / "data", database_url)


@pytest.fixture
def superadmin(settings: Settings) -> Credentials:
    """Migrates the landlord database and seeds the superadmin, as `tenantry serve` does."""
    seed = asyncio.run(prepare_landlord(settings))
    assert seed is not None
    return Credentials(seed.user.email, seed.password)


@pytest.fixture
def app(settings: Settings, superadmin: Credentials) -> Litestar:
    return create_app(settings)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Any]]:
    with TestClient(app, base_url="http://127.0.0.1:8000") as test_client:
        yield test_client


@pytest.fixture
def superadmin_client(client: TestClient[Any], superadmin: Credentials) -> TestClient[Any]:
    response = sign_in(client, superadmin)
    assert response.status_code in (302, 303), response.text
    return client
