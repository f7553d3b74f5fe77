from __future__ import annotations

import os
import re
import stat
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.settings import Settings
from workers.runner import JobQueue


def test_the_secret_key_is_made_once_readable_by_the_owner_only_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    previous = os.umask(0)  # the file's mode must not depend on a careful umask
    try:
        first = Settings.from_env({"TENANTRY_DATA_DIR": str(data_dir)})
    finally:
        os.umask(previous)

    key_file = data_dir / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text() == first.secret_key and len(first.secret_key) >= 32
    assert Settings.from_env({"TENANTRY_DATA_DIR": str(data_dir)}).secret_key == first.secret_key


def test_a_configured_secret_key_writes_no_file(tmp_path: Path) -> None:
    settings = Settings.from_env({"TENANTRY_DATA_DIR": str(tmp_path), "TENANTRY_SECRET_KEY": "from-the-env"})
    assert settings.secret_key == "from-the-env"
    assert not (tmp_path / "secret_key").exists()


def test_job_modules_are_a_comma_separated_list(tmp_path: Path) -> None:
    env = {"TENANTRY_DATA_DIR": str(tmp_path), "TENANTRY_SECRET_KEY": "k"}
    assert Settings.from_env(env).job_modules == ()
    listed = Settings.from_env({**env, "TENANTRY_JOB_MODULES": " plugins.backups, ,tests.workers.jobkinds "})
    assert listed.job_modules == ("plugins.backups", "tests.workers.jobkinds")


def test_a_job_module_that_cannot_be_imported_stops_the_start(tmp_path: Path) -> None:
    env = {"TENANTRY_DATA_DIR": str(tmp_path), "TENANTRY_SECRET_KEY": "k"}
    settings = Settings.from_env({**env, "TENANTRY_JOB_MODULES": "tests.workers.no_such_module"})
    with pytest.raises(ModuleNotFoundError, match=r"tests\.workers\.no_such_module"):
        JobQueue(settings)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
        ("rediss://:s3cret@cache.internal:6380/0", "rediss://:***@cache.internal:6380/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("embedded", "embedded"),
    ],
)
def test_the_broker_url_is_shown_without_its_password(tmp_path: Path, url: str, shown: str) -> None:
    env = {"TENANTRY_DATA_DIR": str(tmp_path), "TENANTRY_SECRET_KEY": "k", "TENANTRY_BROKER_URL": url}
    assert Settings.from_env(env).broker_url_for_display == shown


def test_no_proxy_is_trusted_unless_named(tmp_path: Path) -> None:
    env = {"TENANTRY_DATA_DIR": str(tmp_path), "TENANTRY_SECRET_KEY": "k"}
    assert Settings.from_env(env).trusted_proxies == ()
    assert Settings.from_env(env).client_address_header == "X-Forwarded-For"

    named = Settings.from_env({**env, "TENANTRY_TRUSTED_PROXIES": " 10.0.0.0/8, ,192.0.2.7, fdaa::/16 "})

    assert named.trusted_proxies == (
        ip_network("10.0.0.0/8"),
        ip_network("192.0.2.7/32"),
        ip_network("fdaa::/16"),
    )


@pytest.mark.parametrize("listed", ["10.0.0.1/8", "proxy.internal", "*", "10.0.0.0/33"])
def test_a_trusted_proxy_that_is_not_an_address_or_network_stops_the_start(
    tmp_path: Path, listed: str
) -> None:
    env = {"TENANTRY_DATA_DIR": str(tmp_path), "TENANTRY_SECRET_KEY": "k", "TENANTRY_TRUSTED_PROXIES": listed}

    with pytest.raises(ValueError, match=f"TENANTRY_TRUSTED_PROXIES: {re.escape(repr(listed))}"):
        Settings.from_env(env)


def test_tenant_servers_are_named_in_order_and_the_first_is_the_default(tmp_path: Path) -> None:
    env = {
        "TENANTRY_DATA_DIR": str(tmp_path),
        "TENANTRY_SECRET_KEY": "k",
        "TENANTRY_TENANT_SERVERS": " pg-a=postgresql+asyncpg://a@db-a/t , pg-b=postgresql+asyncpg://b@db-b:6432/t",
        "TENANTRY_PLAN_SERVERS": "enterprise=pg-b",
    }

    settings = Settings.from_env(env)

    assert settings.servers == {
        "pg-a": "postgresql+asyncpg://a@db-a/t",
        "pg-b": "postgresql+asyncpg://b@db-b:6432/t",
    }
    assert settings.tenant_server_url == "postgresql+asyncpg://a@db-a/t"
    assert (settings.placement, settings.plan_servers) == ("fewest-tenants", (("enterprise", "pg-b"),))
    one = Settings.from_env(
        {
            **env,
            "TENANTRY_TENANT_SERVERS": "",
            "TENANTRY_PLAN_SERVERS": "",
            "TENANTRY_TENANT_POSTGRES_URL": "postgresql+asyncpg://one@db/t",
        }
    )
    assert one.servers == {"main": "postgresql+asyncpg://one@db/t"}, "the one server is called main"


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("TENANTRY_TENANT_SERVERS", "pg-a=mysql://db/t", "is not name=postgresql"),
        ("TENANTRY_TENANT_SERVERS", "PG A=postgresql://db/t", "is not name=postgresql"),
        ("TENANTRY_TENANT_SERVERS", "a=postgresql://x/t, a=postgresql://y/t", "names 'a' twice"),
        ("TENANTRY_PLACEMENT", "random", "is one of fewest-tenants, least-storage"),
        ("TENANTRY_PLAN_SERVERS", "enterprise=pg-z", "names pg-z, which TENANTRY_TENANT_SERVERS does not"),
    ],
)
def test_a_mistyped_server_setting_stops_the_start_saying_what_is_wrong(
    tmp_path: Path, variable: str, value: str, said: str
) -> None:
    env = {
        "TENANTRY_DATA_DIR": str(tmp_path),
        "TENANTRY_SECRET_KEY": "k",
        "TENANTRY_TENANT_SERVERS": "pg-a=postgresql+asyncpg://a@db-a/t",
        variable: value,
    }

    with pytest.raises(ValueError, match=re.escape(said)):
        Settings.from_env(env)


_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)


@given(
    secure_cookies=st.booleans(),
    golden_images=st.booleans(),
    auto_rollout=st.booleans(),
    job_lease_seconds=st.floats(min_value=0.1, max_value=3600, allow_nan=False),
    drift_check_hours=st.floats(min_value=0, max_value=1000, allow_nan=False),
    switch_minutes=st.integers(min_value=1, max_value=10_000),
    tenant_connections=st.integers(min_value=1, max_value=1_000),
    job_modules=st.lists(_WORDS.map(lambda word: f"plugins.{word}"), max_size=3).map(tuple),
    base_domain=st.none() | _WORDS.map(lambda word: f"{word}.example"),
    tenant_postgres_url=st.none() | _WORDS.map(lambda word: f"postgresql+asyncpg://{word}@db/tenants"),
    tenant_servers=st.lists(
        st.tuples(
            _WORDS.map(lambda word: f"pg-{word}"),
            _WORDS.map(lambda word: f"postgresql+asyncpg://{word}@db/t"),
        ),
        max_size=3,
        unique_by=lambda pair: pair[0],
    ).map(tuple),
    placement=st.sampled_from(["fewest-tenants", "least-storage"]),
    trusted_proxies=st.lists(
        st.sampled_from(["10.0.0.0/8", "172.16.0.0/12", "192.0.2.7/32", "fdaa::/16"]), max_size=3, unique=True
    ),
)
def test_settings_given_to_a_process_as_variables_come_back_the_same(
    tmp_path_factory: pytest.TempPathFactory, **chosen: Any
) -> None:
    """What `tenantry` subprocesses and the benchmarks' servers are started with is exactly the
    installation's settings."""
    data_dir = tmp_path_factory.mktemp("data").resolve()
    chosen["trusted_proxies"] = tuple(ip_network(network) for network in chosen["trusted_proxies"])
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'landlord.db'}",
        broker_url="redis://127.0.0.1:6379/0",
        secret_key="a-secret-of-this-installation",
        admin_email="owner@example.org",
        broker_namespace="tenantry-test",
        client_address_header="Fly-Client-IP",
        **chosen,
    )

    assert Settings.from_env(settings.as_env()) == settings
