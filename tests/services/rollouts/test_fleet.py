"""The fleet view: every layer's head and the tenants at each revision, and the tenants behind,
answered from the landlord alone. Every path that moves a store's layers (provisioning, a module
enabled or dropped, in stores of their own and in shared stores) keeps the landlord's record equal
to what the store's own version tables say."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import select

import services.modules.steps  # noqa: F401  (registers the module job kinds)
from services.layers.catalogue import layer_key_of, load_catalogue
from services.layers.landlord import downgrade_landlord, migrate_landlord
from services.models import Tenant, TenantLayer
from services.modules.requests import request_disable, request_enable
from services.rollouts.fleet import Fleet, read_fleet
from tests.services.provisioning.installation import (
    SHARED_MODES,
    SQLITE_DATABASE,
    Installation,
    Landlord,
    copy_layers,
    store_snapshot,
    write_revision,
)


async def fleet_of(landlord: Landlord) -> Fleet:
    async with landlord.database.session() as session:
        return await read_fleet(session, load_catalogue(landlord.settings.layers_dir))


async def recorded_layers(landlord: Landlord, tenant_id: int) -> dict[str, str]:
    async with landlord.database.session() as session:
        rows = await session.scalars(select(TenantLayer).where(TenantLayer.tenant_id == tenant_id))
        return {row.layer: row.revision for row in rows}


async def layers_in_store(landlord: Landlord, tenant: Tenant) -> dict[str, str]:
    """What the store's own version tables say, for the tenant's layers."""
    description, _ = await store_snapshot(landlord.store(tenant))
    own = await recorded_layers(landlord, tenant.id) if landlord.store(tenant).is_shared else None
    found = {
        key: revision
        for table, revision in description["layer_versions"].items()
        if revision and (key := layer_key_of(table, tenant.slug))
    }
    return found if own is None else {key: found[key] for key in own}


async def change_modules(landlord: Landlord, tenant_id: int, enable: str = "", drop: str = "") -> None:
    async with landlord.database.session() as session:
        tenant = await session.get_one(Tenant, tenant_id)
        if enable:
            change = await request_enable(session, landlord.settings, tenant, [enable], with_required=True)
        else:
            change = await request_disable(session, landlord.settings, tenant, drop, keep_data=False)
    job = await landlord.perform(change.job.id, tenant_id)
    assert job.error is None


def test_every_tenant_at_head_is_on_record_as_its_store_says(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        party, _ = await landlord.provision("harbour-party")
        group, _ = await landlord.provision("reed-club", "community_group", ["events"])

        fleet = await fleet_of(landlord)

        assert (fleet.tenants, fleet.behind, fleet.layers_behind) == (2, [], [])
        counts = {state.key: dict(state.tenants_at) for state in fleet.layers}
        assert counts["basic"] == {"basic_0002": 2}
        assert counts["modules/events"] == {"events_0002": 2}  # the party has it by default
        assert counts["templates/community_group"] == {"community_group_0001": 1}
        for tenant in (party, group):
            assert await recorded_layers(landlord, tenant.id) == await layers_in_store(landlord, tenant)

    installation.run(scenario)


@pytest.mark.parametrize("installation", [SQLITE_DATABASE], indirect=True)
def test_a_new_revision_shows_who_is_behind_without_opening_a_store(
    installation: Installation, tmp_path: Path
) -> None:
    layers = copy_layers(tmp_path)

    async def scenario(landlord: Landlord) -> None:
        party, _ = await landlord.provision("harbour-party", modules=["events"])
        club, _ = await landlord.provision("reed-club", "community_group", [])
        write_revision(
            layers / "modules" / "events",
            "events_0003",
            "events_0002",
            "Dress code",
            'op.add_column("events", sa.Column("dress_code", sa.String(100)))',
            'op.drop_column("events", "dress_code")',
        )
        for tenant in (party, club):  # the answer must come from the landlord alone
            await asyncio.to_thread(os.remove, landlord.store(tenant).name)

        fleet = await fleet_of(landlord.with_settings(layers_dir=layers))

        [events] = fleet.layers_behind
        assert (events.key, events.head, dict(events.tenants_at)) == (
            "modules/events",
            "events_0003",
            {"events_0002": 1},
        )
        [lagging] = fleet.behind
        assert lagging.slug == "harbour-party"
        assert [(lag.layer, lag.at, lag.head) for lag in lagging.layers] == [
            ("modules/events", "events_0002", "events_0003")
        ]

    installation.run(scenario)


def test_a_module_enabled_and_dropped_moves_the_record_with_the_store(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, _ = await landlord.provision("harbour-party", modules=[])

        await change_modules(landlord, tenant.id, enable="events")
        assert (await recorded_layers(landlord, tenant.id))["modules/events"] == "events_0002"

        await change_modules(landlord, tenant.id, drop="events")
        recorded = await recorded_layers(landlord, tenant.id)
        assert "modules/events" not in recorded
        assert recorded == await layers_in_store(landlord, await landlord.tenant(tenant.id))

    installation.run(scenario)


@pytest.mark.parametrize("shared_installation", SHARED_MODES, indirect=True)
def test_a_shared_tenant_enabling_a_module_the_store_has_already_is_on_record_too(
    shared_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        await landlord.provision("harbour-party", modules=["events"])
        second, _ = await landlord.provision("reed-party", modules=[])

        await change_modules(landlord, second.id, enable="events")  # its tables are there already

        assert (await recorded_layers(landlord, second.id))["modules/events"] == "events_0002"
        assert (await fleet_of(landlord)).behind == []

    shared_installation.run(scenario)


@pytest.mark.parametrize("installation", [SQLITE_DATABASE], indirect=True)
def test_an_installation_upgraded_from_before_the_record_fills_it_from_its_snapshots(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, _ = await landlord.provision("harbour-party")
        before = await recorded_layers(landlord, tenant.id)

        await downgrade_landlord(landlord.settings, landlord.database, "0007")
        await migrate_landlord(landlord.settings, landlord.database)

        assert await recorded_layers(landlord, tenant.id) == before
        assert set(before) == {
            "basic",
            "templates/political_party",
            *(f"modules/{m}" for m in tenant.modules),
        }

    installation.run(scenario)
