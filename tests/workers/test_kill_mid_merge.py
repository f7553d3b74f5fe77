"""A worker killed in the middle of a merge (SIGKILL) never leaves the tenant merged into half
merged: before the merge's transaction committed it holds what it held, after it every row of the
other as well, never part of them. Another `tenantry serve` resumes the job (a merge step that
finds its rows in already passes on), and both tenants end active, the one merged in as it was."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.models import JobStatus, StepStatus, Tenant, TenantStatus
from services.moves.merge import MERGE_STEP_NAMES, request_merge
from services.settings import Settings
from services.tenancy.stores import location_of
from tests.services.moves.support import Content, content_of
from tests.support import run_db
from tests.web.districts import tenant_with_a_district
from tests.web.tenant_world import add_rows, provision
from tests.workers import merge_gate
from tests.workers.gate import reached
from tests.workers.gated import gated_settings, kill_when_reached, serving
from tests.workers.support import steps_of, tenant, wait_until_finished

#: Before its safety backups are verified, before its plan, while its rows go in and just after
#: (committed, not recorded), and before the end.
KILL_POINTS = ["source verify", "plan", "merge", "merge:after", "maintenance off"]


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "merge-gate"
    yield path
    path.unlink(missing_ok=True)


def measured(settings: Settings, found: Tenant) -> Content:
    return asyncio.run(content_of(location_of(settings, found), found))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tenantry_serve_killed_at_every_step_of_a_merge_never_leaves_a_tenant_half_merged(
    landlord: Settings, gate: Path, tmp_path: Path
) -> None:
    settings = gated_settings(landlord, merge_gate)
    start = serving(settings, merge_gate, gate)
    tenant_with_a_district(settings, "harbour-club", [("Boat House", "Ward")])
    provision(settings, "otter-club", modules=["events"])
    add_rows(settings, "otter-club", "venues", [{"name": f"Holt {n}"} for n in range(12)])
    source, target = tenant(settings, "otter-club"), tenant(settings, "harbour-club")
    a_before, b_before = measured(settings, source), measured(settings, target)
    requested = run_db(
        settings, lambda session: request_merge(session, settings, source, target, requested_by="test")
    )

    gate.touch()
    merged: Content | None = None
    for number, where in enumerate(KILL_POINTS):
        with start(where, tmp_path / f"kill-{number}") as process:
            kill_when_reached(gate, process, f"the merge to reach its gate at {where}")
        reached(gate).unlink()
        steps = {step.name: step for step in steps_of(settings, requested.job.id)}
        assert steps[where.partition(":")[0]].status == StepStatus.RUNNING, where
        now = measured(settings, target)
        if where == "merge:after":
            merged = now
            assert now["venues"][0] == b_before["venues"][0] + 12, where
        else:
            assert now == (merged or b_before), f"{where}: whole, never half merged"
        assert measured(settings, source) == a_before, where
    gate.unlink()
    with start(None, tmp_path / "last") as last:
        finished = wait_until_finished(settings, requested.job.id, timeout=120, worker=last)
    assert (finished.status, finished.error) == (JobStatus.SUCCEEDED, None)
    assert [step.name for step in steps_of(settings, requested.job.id)] == MERGE_STEP_NAMES
    assert measured(settings, target) == merged, "A's rows went in once"
    assert measured(settings, source) == a_before
    assert (tenant(settings, "otter-club").status, tenant(settings, "harbour-club").status) == (
        TenantStatus.ACTIVE,
        TenantStatus.ACTIVE,
    )
