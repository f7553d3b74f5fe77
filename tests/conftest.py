from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Before anything imports services.accounts.passwords, which reads it once: Argon2's cheapest
# parameters for every test (tests/services/test_passwords.py proves installations hash at full cost).
os.environ["TENANTRY_TEST_PASSWORD_HASHING"] = "cheapest"

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import make_url

from services.installation import prepare_landlord
from services.settings import Settings
from services.tenancy.stores import copy_sqlite_file
from tests.services.running import migrate
from tests.support import (
    POSTGRES_URL,
    Credentials,
    app_for,
    fresh_postgres_database,
    installation_settings,
    keeping_copies_of,
    landlord_copy,
    requires_postgres,
    second_postgres_server,
    sign_in,
)

#: Where a test's landlord database lives: a SQLite file, and (when configured) PostgreSQL.
LANDLORD_BACKENDS = ["sqlite", pytest.param("postgres", marks=requires_postgres)]

#: The files that took longest with every service set (100 s or more by `--junitxml`, on a busy
#: machine), longest first. `make test` hands whole files to its processes in this order (then the
#: others, as collected), so that no process is left running one of them alone at the end; xdist's
#: own order, most tests first, would start these few-test files last.
LONGEST_FILES = (
    "tests/web/test_api_schemathesis.py",
    "tests/test_cli.py",
    "tests/web/test_cross_tenant_routes.py",
    "tests/services/backups/test_restore_property.py",
    "tests/web/test_restores.py",
    "tests/web/test_isolation_property.py",
    "tests/services/provisioning/test_warm_pool.py",
    "tests/workers/test_kill_mid_restore.py",
    "tests/services/backups/test_restores.py",
    "tests/web/test_tenant_portal.py",
    "tests/services/rollouts/test_rollouts.py",
    "tests/web/test_tenant_data.py",
    "tests/services/moves/test_split_property.py",
    "tests/services/backups/test_schedules.py",
    "tests/test_cli_moves.py",
    "tests/services/provisioning/test_module_changes.py",
    "tests/services/provisioning/test_provisioning.py",
    "tests/services/moves/test_move_property.py",
    "tests/e2e/test_every_page.py",
    "tests/workers/test_kill_mid_move.py",
    "tests/web/test_provisioning_pages.py",
    "tests/services/provisioning/test_golden_property.py",
    "tests/workers/test_kill_mid_move_plan.py",
    "tests/services/layers/test_layer_roundtrip.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first; each file's tests stay together and in their order."""
    rank = {path: place for place, path in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(scope="session")
def migrated_sqlite_landlord(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A landlord database migrated once per test process; each test's landlord is a copy of it."""
    folder = tmp_path_factory.mktemp("migrated-landlord")
    migrate(installation_settings(folder, f"sqlite+aiosqlite:///{folder / 'landlord.db'}"))
    return folder / "landlord.db"


@pytest.fixture(scope="session")
def migrated_postgres_landlord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The name of a PostgreSQL database migrated once per test process: the template each test's
    landlord database is created from. Nothing stays connected to it, as a template requires."""
    if not POSTGRES_URL:
        pytest.skip("TENANTRY_TEST_POSTGRES_URL is not set")
    with fresh_postgres_database() as url:
        migrate(installation_settings(tmp_path_factory.mktemp("migrated-pg"), url))
        name = make_url(url).database
        assert name
        with keeping_copies_of(name):
            yield name


@pytest.fixture(params=LANDLORD_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The test's own landlord database, migrated: a copy of the one migrated once per process
    (a file copy on SQLite; on PostgreSQL a database created from it as a template, put back as
    the template holds it for the next test: tests.support.landlord_copy)."""
    if request.param == "sqlite":
        copy_sqlite_file(request.getfixturevalue("migrated_sqlite_landlord"), tmp_path / "landlord.db")
        yield f"sqlite+aiosqlite:///{tmp_path / 'landlord.db'}"
        return
    with landlord_copy(request.getfixturevalue("migrated_postgres_landlord")) as url:
        yield url


@pytest.fixture(params=LANDLORD_BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A landlord database as a new installation has it before `tenantry migrate`: empty."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'landlord.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return installation_settings(tmp_path / "data", database_url)


@pytest.fixture
def unmigrated_settings(tmp_path: Path, empty_database_url: str) -> Settings:
    return installation_settings(tmp_path / "data", empty_database_url)


@pytest.fixture
def superadmin(settings: Settings) -> Credentials:
    """Seeds the superadmin (and finds the landlord database migrated), as `tenantry serve` does."""
    seed = asyncio.run(prepare_landlord(settings))
    assert seed is not None
    return Credentials(seed.user.email, seed.password)


@pytest.fixture
def app(settings: Settings, superadmin: Credentials) -> Iterator[Litestar]:
    with app_for(settings) as app:
        yield app


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Any]]:
    with TestClient(app, base_url="http://127.0.0.1:8000") as test_client:
        yield test_client


@pytest.fixture
def superadmin_client(client: TestClient[Any], superadmin: Credentials) -> TestClient[Any]:
    response = sign_in(client, superadmin)
    assert response.status_code in (302, 303), response.text
    return client


@pytest.fixture(scope="session")
def second_server() -> Iterator[str]:
    """The URL of a second PostgreSQL server, made once per test process (tests.support)."""
    with second_postgres_server() as url:
        yield url
