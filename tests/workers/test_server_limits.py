"""At most so many jobs of one kind of store work at once on one database server
(TENANTRY_SERVER_JOBS): with room for one backup, three tenants' backups run one after another while
a migration runs beside them; and a rollout's lanes wait for room on the server, saying so on the
tenant's row, with the jobs of every other kind counted in the same limit."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.models import JobStatus, MigrationHistory, RolloutTenant, Tenant
from services.server_limits import SERVER_JOBS, ServerWork
from services.settings import Settings
from services.tenancy.stores import server_of
from services.tenancy.tenants import register_tenant
from tests.services.provisioning.installation import copy_layers
from tests.services.running import background, free_port, wait_for
from tests.support import requires_postgres, run_db
from tests.workers import jobkinds
from tests.workers.gate import reached
from tests.workers.support import embedded_worker, wait_until_finished
from tests.workers.test_fair_share import ran, send_all
from tests.workers.test_kill_mid_rollout import (
    SLUGS,
    _gate_env,
    _settings,
    check_resumed,
    prepare,
    wait_until_rollout_ends,
)

#: How long each job works: long beside a claim, so that side by side shows.
SECONDS = 1.0


def overlap(one: tuple[datetime, datetime], other: tuple[datetime, datetime]) -> bool:
    return one[0] < other[1] and other[0] < one[1]


@pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=requires_postgres)], indirect=True
)
def test_a_server_with_room_for_one_backup_runs_three_tenants_backups_one_by_one_and_a_migration_beside(
    landlord: Settings,
) -> None:
    settings = dataclasses.replace(landlord, server_jobs={**SERVER_JOBS, ServerWork.BACKUP: 1})

    async def work(session: AsyncSession) -> tuple[list[int], int, str]:
        tenants = [
            await register_tenant(
                session, slug=slug, name=slug.title(), template="community_group", isolation="database"
            )
            for slug in ("alder", "birch", "cedar", "damson")
        ]
        backups = [
            await jobs.record_job(
                session, jobkinds.BACKS_UP_A_WHILE, tenant_id=tenant.id, payload={"seconds": SECONDS}
            )
            for tenant in tenants[:3]
        ]
        migration = await jobs.record_job(
            session, jobkinds.MIGRATES_A_WHILE, tenant_id=tenants[3].id, payload={"seconds": SECONDS}
        )
        await session.commit()
        return [job.id for job in backups], migration.id, server_of(settings, tenants[0])

    backup_ids, migration_id, server = run_db(settings, work)
    with embedded_worker(settings, threads=4) as queue:
        send_all(queue, settings, [*backup_ids, migration_id])
        backups = [wait_until_finished(settings, job_id, timeout=60) for job_id in backup_ids]
        migration = wait_until_finished(settings, migration_id, timeout=60)

    assert {job.status for job in [*backups, migration]} == {JobStatus.SUCCEEDED}
    assert {job.server for job in [*backups, migration]} == {server}, "each names the server it ran on"
    first, second, third = sorted(ran(job) for job in backups)
    assert not overlap(first, second) and not overlap(second, third), "one backup at a time"
    assert overlap(ran(migration), first), "a migration is other work: it ran beside the first backup"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_rollouts_lane_waits_for_room_on_the_server_and_says_so(landlord: Settings, tmp_path: Path) -> None:
    """With room for one migration, the second wave's two lanes take turns: while one is held at
    its migrate step, the other's tenant waits, saying why, and is not migrated."""
    gate = tmp_path / "rollout-gate"
    gate.touch()
    one_at_a_time = dataclasses.replace(
        _settings(landlord), server_jobs={**SERVER_JOBS, ServerWork.MIGRATE: 1}
    )
    settings, rollout_id, ids = prepare(one_at_a_time, copy_layers(tmp_path), None)
    held, other = ids[SLUGS[1]], ids[SLUGS[2]]  # the second wave, two lanes side by side
    env = _gate_env(settings, gate, "migrate", held)

    def row_of(tenant_id: int) -> RolloutTenant:
        async def work(session: AsyncSession) -> RolloutTenant:
            rows = await session.scalars(
                select(RolloutTenant).where(
                    RolloutTenant.rollout_id == rollout_id, RolloutTenant.tenant_id == tenant_id
                )
            )
            return rows.one()

        return run_db(settings, work)

    with background(["serve", "--port", str(free_port())], env, tmp_path / "serve") as serving:

        def waiting() -> RolloutTenant | None:
            serving.check_running()
            row = row_of(other)
            return (
                row if reached(gate).exists() and (row.detail or "").startswith("waiting for room") else None
            )

        row = wait_for(waiting, 90, what="the other lane to wait for room on the server")
        assert (
            row.detail
            == "waiting for room: local runs at most 1 migration at once, and has that many running"
        )
        migrated = run_db(
            settings,
            lambda session: session.scalars(
                select(Tenant.slug)
                .join(MigrationHistory, MigrationHistory.tenant_id == Tenant.id)
                .where(MigrationHistory.revision == "events_0003")
            ),
        )
        assert list(migrated) == [SLUGS[0]], "only the canary, before the held lane"

        gate.unlink()
        rollout = wait_until_rollout_ends(settings, rollout_id, serving)
        assert serving.stop() in (0, -15), serving.stderr
    check_resumed(settings, rollout, held, "not resumed", attempts=1)
