"""A worker killed mid-provisioning (SIGKILL: no clean-up of any kind) loses nothing: another worker
takes the job over once its lease expires, resumes at the step that was running, and the tenant
becomes active with every step done once and one history row per revision.

The tenant has a custom layer whose only revision creates a table and then waits at a gate (a file
the test removes), so the worker is killed inside that revision's open transaction."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.models import JobStatus, StepStatus, TenantStatus
from services.settings import Settings
from tests.services.running import Background, background, free_port, tenantry_env, wait_for
from tests.support import RABBITMQ_URL, REDIS_URL, requires_postgres, requires_rabbitmq, requires_redis
from tests.workers.support import (
    GATE_VARIABLE,
    Gate,
    assert_provisioned,
    drop_tenant_databases,
    forget_namespace,
    history_of,
    job,
    layers_with_gate,
    request,
    steps_of,
    table_names,
    tenant,
    wait_until_active,
    wait_until_step_running,
)
from workers.runner import JobQueue

SLUG = "gated-harbour"
#: Short, so the job is taken over a couple of seconds after its worker died.
LEASE_SECONDS = 2


@pytest.fixture
def gated(landlord: Settings, tmp_path: Path) -> Iterator[tuple[Settings, Gate]]:
    """Settings with layers that hold SLUG's provisioning at a shut gate, and a short job lease."""
    layers, gate = layers_with_gate(tmp_path, SLUG)
    gate.close()
    yield dataclasses.replace(landlord, layers_dir=layers, job_lease_seconds=LEASE_SECONDS), gate
    gate.open()
    drop_tenant_databases(landlord.database_url)


def kill_at_the_gate(settings: Settings, gate: Gate, job_id: int, process: Background) -> None:
    """Wait until the process is inside the gated revision, then SIGKILL it."""
    wait_until_step_running(settings, job_id, "custom", worker=process)
    wait_for(gate.reached.exists, 60, what="the worker to reach the gate", interval=0.05)
    process.check_running()
    process.process.kill()
    assert process.process.wait(10) == -signal.SIGKILL

    # What the dead worker left: the steps before "custom" done, "custom" running (its revision
    # never committed: no table, no history), the job running on a lease nobody renews.
    steps = {step.name: step for step in steps_of(settings, job_id)}
    assert [name for name, step in steps.items() if step.status == StepStatus.SUCCEEDED] == [
        "validate",
        "allocate store",
        "basic",
        "template",
        "modules",
    ]
    assert (steps["custom"].status, steps["custom"].attempts) == (StepStatus.RUNNING, 1)
    assert job(settings, job_id).status == JobStatus.RUNNING
    found = tenant(settings, SLUG)
    assert found.status == TenantStatus.PROVISIONING
    assert not [row for row in history_of(settings, found.id) if row.layer == f"custom/{SLUG}"]
    assert gate.table not in table_names(settings, found)


def check_resumed(settings: Settings, gate: Gate) -> None:
    found = assert_provisioned(settings, SLUG, resumed_step="custom")
    assert table_names(settings, found).count(gate.table) == 1


#: Redis with each landlord backend, RabbitMQ with SQLite.
BROKERS = [
    pytest.param("sqlite", REDIS_URL, id="redis-sqlite", marks=requires_redis),
    pytest.param("postgres", REDIS_URL, id="redis-postgres", marks=[requires_postgres, requires_redis]),
    pytest.param("sqlite", RABBITMQ_URL, id="rabbitmq-sqlite", marks=requires_rabbitmq),
]


@pytest.mark.parametrize(("database_url", "broker_url"), BROKERS, indirect=["database_url"])
def test_a_worker_killed_mid_provisioning_is_replaced_and_the_tenant_resumes(
    gated: tuple[Settings, Gate], broker_url: str, tmp_path: Path
) -> None:
    settings, gate = dataclasses.replace(gated[0], broker_url=broker_url), gated[1]
    try:
        _, provisioning = request(settings, SLUG)
        sender = JobQueue(settings)
        try:
            sender.send(provisioning.id, provisioning.tenant_id)
        finally:
            sender.stop()
        env = tenantry_env(settings, **{GATE_VARIABLE: str(gate.path)})

        with background(["worker", "--threads", "2"], env, tmp_path / "first") as first:
            kill_at_the_gate(settings, gate, provisioning.id, first)

        gate.open()
        # The message the dead worker held may never come back (Redis keeps it for a minute); the new
        # worker's sweeper finds the job's expired lease and sends it again.
        with background(["worker", "--threads", "2"], env, tmp_path / "second") as second:
            wait_until_active(settings, SLUG, worker=second)
            assert second.stop() == 0, second.stderr
    finally:
        forget_namespace(settings.broker_url, settings.broker_namespace)
    check_resumed(settings, gate)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tenantry_serve_killed_mid_provisioning_resumes_it_when_started_again(
    gated: tuple[Settings, Gate], tmp_path: Path
) -> None:
    """Embedded mode: the worker lives in `tenantry serve`, and the messages in its memory. Started
    again, it sends every unfinished job again, and the tenant's provisioning resumes."""
    settings, gate = gated
    _, provisioning = request(settings, SLUG)  # recorded while the portal was down
    env = tenantry_env(settings, **{GATE_VARIABLE: str(gate.path)})

    with background(["serve", "--port", str(free_port())], env, tmp_path / "first") as first:
        kill_at_the_gate(settings, gate, provisioning.id, first)

    gate.open()
    with background(["serve", "--port", str(free_port())], env, tmp_path / "second") as second:
        wait_until_active(settings, SLUG, worker=second)
        assert second.stop() in (0, -signal.SIGTERM), second.stderr  # uvicorn re-raises SIGTERM
        assert "Traceback" not in second.stderr, second.stderr
    check_resumed(settings, gate)
