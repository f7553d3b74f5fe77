"""A tenant asked for through the provisioning service becomes active on every broker: the embedded
one with the in-process worker, and a real `tenantry worker` process on Redis and on RabbitMQ.

With the landlord on PostgreSQL the tenant stores go to PostgreSQL too: a database of its own for
one tenant, a schema for another."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.models import IsolationMode
from services.settings import Settings
from services.tenancy.stores import POSTGRESQL, SQLITE
from tests.services.running import background, tenantry_env
from tests.support import RABBITMQ_URL, REDIS_URL, requires_postgres, requires_rabbitmq, requires_redis
from tests.workers.support import (
    assert_provisioned,
    drop_tenant_databases,
    forget_namespace,
    request,
    tenant,
    wait_until_active,
)
from workers.runner import JobQueue


@pytest.fixture
def stores(landlord: Settings) -> Iterator[Settings]:
    """The landlord settings; the PostgreSQL tenant databases the test made are dropped after it."""
    yield landlord
    drop_tenant_databases(landlord.database_url)


def tenants_for(settings: Settings) -> dict[str, str]:
    """The tenants to provision, by slug: on PostgreSQL one of each isolation mode."""
    if settings.tenant_server_url is None:
        return {"harbour-club": IsolationMode.DATABASE}
    return {"harbour-club": IsolationMode.DATABASE, "ridge-walkers": IsolationMode.SCHEMA}


def request_and_send(settings: Settings, queue: JobQueue) -> dict[str, str]:
    """Ask for the tenants (committed) and send their jobs as the portal does: in their tenant."""
    wanted = tenants_for(settings)
    for slug, isolation in wanted.items():
        _, job = request(settings, slug, isolation)
        queue.send(job.id, job.tenant_id)
    return wanted


def check_provisioned(settings: Settings, wanted: dict[str, str]) -> None:
    backend = SQLITE if settings.tenant_server_url is None else POSTGRESQL
    for slug, isolation in wanted.items():
        found = assert_provisioned(settings, slug)
        assert (found.store_backend, found.isolation) == (backend, isolation)


@pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=requires_postgres)], indirect=True
)
def test_the_in_process_worker_provisions_a_tenant_on_the_embedded_broker(stores: Settings) -> None:
    queue = JobQueue(stores)
    queue.start_worker()
    try:
        wanted = request_and_send(stores, queue)
        for slug in wanted:
            wait_until_active(stores, slug)
    finally:
        queue.stop()
    check_provisioned(stores, wanted)


#: Redis with each landlord backend, RabbitMQ with SQLite (the full matrix adds time, not coverage).
BROKERS = [
    pytest.param("sqlite", REDIS_URL, id="redis-sqlite", marks=requires_redis),
    pytest.param("postgres", REDIS_URL, id="redis-postgres", marks=[requires_postgres, requires_redis]),
    pytest.param("sqlite", RABBITMQ_URL, id="rabbitmq-sqlite", marks=requires_rabbitmq),
]


@pytest.fixture
def broker_settings(stores: Settings, broker_url: str) -> Iterator[Settings]:
    """The settings on a real broker, in a namespace of this test's own (removed afterwards)."""
    configured = dataclasses.replace(stores, broker_url=broker_url)
    yield configured
    forget_namespace(configured.broker_url, configured.broker_namespace)


@pytest.mark.parametrize(("database_url", "broker_url"), BROKERS, indirect=["database_url"])
def test_a_tenantry_worker_provisions_a_tenant_through_the_broker(
    broker_settings: Settings, tmp_path: Path
) -> None:
    settings = broker_settings
    # Sent by a process with no worker (as the web process does) before any worker runs.
    sender = JobQueue(settings)
    try:
        wanted = request_and_send(settings, sender)
    finally:
        sender.stop()
    assert {tenant(settings, slug).status for slug in wanted} == {"provisioning"}

    with background(["worker", "--threads", "2"], tenantry_env(settings), tmp_path / "logs") as worker:
        for slug in wanted:
            wait_until_active(settings, slug, worker=worker)
        assert worker.stop() == 0, worker.stderr
    check_provisioned(settings, wanted)
