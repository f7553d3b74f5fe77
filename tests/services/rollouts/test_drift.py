"""Drift: a tenant's store compared with what its recorded layer revisions should give. Freshly
provisioned tenants have none, in every isolation mode; a column, an index or a CHECK rule changed
by hand is found and said; drifted tenants show on the fleet view, and a rollout refuses them
unless told to force them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from services.jobs import record_job
from services.models import AuditEntry, DriftCheck
from services.rollouts.drift_checks import CHECK_DRIFT, check_drift
from services.rollouts.plans import RolloutSpec, plan_rollout
from services.tenant_locks import try_tenant_lock
from tests.services.provisioning.installation import (
    POSTGRES_DATABASE,
    SHARED_MODES,
    SQLITE_DATABASE,
    Installation,
    Landlord,
    copy_layers,
    execute,
)
from tests.services.rollouts.test_fleet import fleet_of
from tests.services.rollouts.test_rollouts import add_events_revision


async def checks_of(landlord: Landlord) -> list[DriftCheck]:
    async with landlord.database.session() as session:
        return list(await session.scalars(select(DriftCheck).order_by(DriftCheck.id)))


def test_freshly_provisioned_tenants_have_no_drift(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        await landlord.provision("harbour-party")
        await landlord.provision("reed-club", "community_group", ["events", "finance"])

        summary = await check_drift(landlord.database, landlord.settings, requested_by="ops@example.org")

        assert (summary.checked, summary.drifted) == (2, [])
        assert [(check.drifted, check.differences) for check in await checks_of(landlord)] == [
            (False, [])
        ] * 2
        async with landlord.database.session() as session:
            entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "drift.check"))
        assert entry is not None and entry.detail == {"tenants": 2, "drifted": [], "unchecked": []}

    installation.run(scenario)


@pytest.mark.parametrize("shared_installation", SHARED_MODES, indirect=True)
def test_tenants_of_a_shared_store_have_no_drift(shared_installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        await landlord.provision("harbour-party", modules=["events"])
        await landlord.provision("reed-party", modules=["finance"])

        summary = await check_drift(landlord.database, landlord.settings, requested_by="ops@example.org")

        assert (summary.checked, [check.differences for check in summary.drifted]) == (2, [])

    shared_installation.run(scenario)


@pytest.mark.parametrize("installation", [SQLITE_DATABASE, POSTGRES_DATABASE], indirect=True)
def test_changes_by_hand_are_found_shown_and_refused_by_a_rollout_unless_forced(
    installation: Installation, tmp_path: Path
) -> None:
    layers = copy_layers(tmp_path)
    sqlite = installation.isolation == "database" and installation.settings.tenant_server_url is None

    async def scenario(landlord: Landlord) -> None:
        tenant, _ = await landlord.provision("harbour-party", modules=["events"])
        await landlord.provision("reed-party", modules=["events"])
        store = landlord.store(tenant)
        await execute(store, "ALTER TABLE events ADD COLUMN secret_notes TEXT")
        await execute(store, "DROP INDEX ix_events_starts_at")
        if not sqlite:  # SQLite cannot drop a CHECK rule in place
            await execute(store, "ALTER TABLE events DROP CONSTRAINT ck_events_status")

        summary = await check_drift(landlord.database, landlord.settings, requested_by="ops@example.org")

        [drifted] = summary.drifted
        assert drifted.tenant_id == tenant.id
        said = " | ".join(drifted.differences)
        assert "column events.secret_notes is there but no layer makes it" in said
        assert "events: indexes differ" in said and "ix_events_starts_at" in said
        if not sqlite:
            assert "events: checks differ" in said and "ck_events_status" in said
        assert [entry.slug for entry in (await fleet_of(landlord)).drifted] == ["harbour-party"]

        add_events_revision(layers)
        landlord = landlord.with_settings(layers_dir=layers)
        async with landlord.database.session() as session:
            plan = await plan_rollout(session, landlord.settings, RolloutSpec())
            forced = await plan_rollout(session, landlord.settings, RolloutSpec(force=True))
        assert [tenant.slug for tenant in plan.tenants] == ["reed-party"]
        [refusal] = plan.refused
        assert refusal.slug == "harbour-party" and "its schema has drifted" in refusal.why
        assert [tenant.slug for tenant in forced.tenants] == ["harbour-party", "reed-party"]

    installation.run(scenario)


@pytest.mark.parametrize("installation", [SQLITE_DATABASE], indirect=True)
def test_a_tenant_another_job_is_changing_is_left_unchecked_not_called_drifted(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        busy, _ = await landlord.provision("harbour-party")
        await landlord.provision("reed-party")
        async with landlord.database.session() as session:
            job = await record_job(session, CHECK_DRIFT, payload={"requested_by": "ops@example.org"})
        assert (
            await try_tenant_lock(landlord.database, busy.id, job.id, "modules") is None
        )  # it holds the lock

        summary = await check_drift(landlord.database, landlord.settings, requested_by="ops@example.org")

        assert summary.unchecked == {"harbour-party": f"busy with drift check job #{job.id}"}
        assert (summary.checked, summary.drifted) == (1, [])
        assert busy.id not in {check.tenant_id for check in await checks_of(landlord)}

    installation.run(scenario)
