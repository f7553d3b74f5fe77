"""Provisioning as a landlord admin sees it: a requested tenant becomes active with its layers,
snapshot and seed rows; golden images make it fast without changing the result; a bad request
creates nothing; a failure leaves no orphan store; custom changes go on and come off on request;
a job whose worker died resumes where it stopped; and a tenant's job runs only in its context.

Scenarios run with tenants in SQLite files and, with TENANTRY_TEST_POSTGRES_URL, in PostgreSQL
databases and PostgreSQL schemas; those that do not depend on where the store lives run on the
two landlord backends only, and those about one setup run there only."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from services import jobs
from services.errors import Conflict, InvalidFields
from services.layers.catalogue import load_catalogue
from services.layers.migrator import head, revisions, upgrade_layer
from services.layers.snapshot import VERSION_TABLE_PREFIX
from services.models import (
    GoldenImage,
    Job,
    JobStatus,
    JobStep,
    StepStatus,
    Tenant,
    TenantStatus,
)
from services.models.types import utcnow
from services.provisioning.custom import APPLY_CUSTOM, ROLLBACK_CUSTOM, request_custom_change
from services.provisioning.golden import golden_location
from services.provisioning.overview import tenant_overview
from services.provisioning.steps import PROVISIONING_STEPS, Provisioning
from services.provisioning.tenants import (
    PROVISIONING_STEP_NAMES,
    TenantRequest,
    request_tenant,
    retry_provisioning,
)
from services.tenancy.context import tenant_context
from services.tenancy.stores import connections_kept_open, plan_store
from tests.services.provisioning.installation import (
    SQLITE_AND_POSTGRES_LANDLORDS,
    SQLITE_AND_POSTGRES_SCHEMAS,
    Installation,
    Landlord,
    business_tables,
    copy_layers,
    execute,
    query,
    store_is_gone,
    store_snapshot,
    write_custom_revision,
)
from tests.support import requires_postgres

#: A political party with the template's default modules: what every layer gives it.
PARTY_TABLES = {
    # basic
    "roles",
    "units",
    "users",
    "unit_assignments",
    "settings",
    "audit_entries",
    # templates/political_party
    "provinces",
    "districts",
    "committees",
    "party_members",
    "office_holders",
    # modules/membership_tiers
    "tiers",
    "member_subscriptions",
    "subscription_payments",
    # modules/events
    "venues",
    "events",
    "event_registrations",
    # modules/election_campaign (requires events)
    "constituencies",
    "candidates",
    "polling_stations",
    "canvass_visits",
}


def replayed_history(landlord: Landlord, tenant: Tenant) -> list[tuple[str, str, str, str]]:
    """The history of a tenant whose every layer was replayed: each revision once, up, in order."""
    catalogue = load_catalogue(landlord.settings.layers_dir)
    return [
        (layer.key, revision, "up", "succeeded")
        for layer in catalogue.layers_for(tenant.template, tenant.modules, tenant.slug)
        for revision in revisions(layer)
    ]


async def assert_snapshot_is_the_store(landlord: Landlord, tenant: Tenant) -> str:
    """The tenant's latest snapshot hash is its store's actual schema hash; returns it."""
    snapshots = await landlord.snapshots(tenant.id)
    assert snapshots, f"{tenant.slug} has a schema snapshot"
    _, actual = await store_snapshot(landlord.store(tenant))
    assert snapshots[-1].sha256 == actual, f"{tenant.slug}'s snapshot is its store's actual schema"
    return actual


async def assert_seeded(landlord: Landlord, tenant: Tenant) -> None:
    """Two roles, one root unit named after the tenant, and its settings, all the tenant's."""
    store = landlord.store(tenant)
    for table in ("roles", "units", "settings"):
        owners = await query(store, f"SELECT DISTINCT tenant_id FROM {table}")
        assert owners == [(tenant.id,)], f"{table} belong to the tenant"
    assert await query(store, "SELECT key, name FROM roles ORDER BY key") == [
        ("tenant_admin", "Tenant admin"),
        ("tenant_member", "Tenant member"),
    ]
    roots = await query(store, "SELECT id, name, kind, path FROM units WHERE parent_id IS NULL")
    assert len(roots) == 1, "one root unit"
    root_id, name, kind, path = roots[0]
    assert (name, kind, path) == (tenant.name, "organisation", f"/{root_id}/")
    assert dict(await query(store, "SELECT key, value FROM settings")) == {
        "name": tenant.name,
        "timezone": "UTC",
        "accent_colour": "#2f5bd3",
    }


def by_name(job: Job) -> dict[str, JobStep]:
    return {step.name: step for step in job.steps}


def details(job: Job) -> dict[str, str]:
    """What each step of the job says it did, as the tenant page shows it."""
    return {step.name: step.detail or "" for step in job.steps}


# A requested tenant becomes active ----------------------------------------------------------------


def test_a_requested_tenant_becomes_active_with_its_layers_history_snapshot_and_seed(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, job = await landlord.provision("harbour-party", name="Harbour Party")

        assert (tenant.status, tenant.error) == (TenantStatus.ACTIVE, None)
        assert tenant.modules == ["events", "membership_tiers", "election_campaign"], (
            "modules in the order they apply: requirements first"
        )
        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
        assert [step.name for step in job.steps] == PROVISIONING_STEP_NAMES
        for step in job.steps:
            assert (step.status, step.attempts) == (StepStatus.SUCCEEDED, 1), step.name
            assert step.detail, f"the {step.name!r} step says what it did"
        steps = details(job)
        assert steps["basic"] == "2 revision(s) applied (basic)"
        assert steps["template"] == "1 revision(s) applied (templates/political_party)"
        assert steps["modules"] == (
            "4 revision(s) applied (modules/events, modules/membership_tiers, modules/election_campaign)"
        )
        assert steps["custom"] == "no custom layer for this tenant"
        assert steps["health check"] == "5 layers at their heads; root unit present"

        store = landlord.store(tenant)
        assert (store.isolation, tenant.isolation) == (landlord.isolation, landlord.isolation)
        assert not await store_is_gone(store), "the tenant's store exists"
        assert await business_tables(store) == PARTY_TABLES

        sha256 = await assert_snapshot_is_the_store(landlord, tenant)
        assert len(await landlord.snapshots(tenant.id)) == 1
        assert sha256[:16] in steps["snapshot"]
        description, _ = await store_snapshot(store)
        catalogue = load_catalogue(landlord.settings.layers_dir)
        assert description["layer_versions"] == {
            layer.version_table.removeprefix(VERSION_TABLE_PREFIX): head(layer)
            for layer in catalogue.layers_for(tenant.template, tenant.modules)
        }, "every layer at its head"

        assert await landlord.history(tenant.id) == replayed_history(landlord, tenant)
        await assert_seeded(landlord, tenant)

    installation.run(scenario)


# Golden images ------------------------------------------------------------------------------------


def test_a_second_tenant_with_the_same_template_and_modules_is_cloned_from_the_golden_image(
    cloning_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        first, first_job = await landlord.provision("harbour-party")
        # The same module set, chosen in another order: the same recipe.
        second, second_job = await landlord.provision(
            "river-party", modules=["election_campaign", "membership_tiers", "events"]
        )

        built, cloned = details(first_job), details(second_job)
        assert built["allocate store"].startswith("empty ")
        assert "kept as golden image" in built["snapshot"]
        assert cloned["allocate store"].startswith("cloned golden image ")
        assert cloned["basic"] == "cloned at its head (basic)", "a clone replays nothing"
        assert cloned["modules"].startswith("cloned at their heads")
        assert cloned["snapshot"].startswith("taken when the store was cloned"), "one snapshot"
        assert second.status == TenantStatus.ACTIVE
        assert [step.status for step in second_job.steps] == [StepStatus.SUCCEEDED] * len(
            PROVISIONING_STEP_NAMES
        )

        assert await assert_snapshot_is_the_store(landlord, second) == await assert_snapshot_is_the_store(
            landlord, first
        ), "the clone is provably the same schema as the replay"
        assert second.store_name != first.store_name, "the clone is a store of its own"
        assert await business_tables(landlord.store(first)) == PARTY_TABLES
        assert await business_tables(landlord.store(second)) == PARTY_TABLES
        await assert_seeded(landlord, second)  # its own name, none of the first tenant's rows
        assert await landlord.count(GoldenImage) == 1
        replayed = await landlord.history(first.id)
        latest_per_layer = {layer: revision for layer, revision, _, _ in replayed}
        assert await landlord.history(second.id) == [
            (layer, revision, "clone", "succeeded") for layer, revision in latest_per_layer.items()
        ], "the clone's history names each layer's revision and that it came by cloning"

    cloning_installation.run(scenario)


def test_with_golden_images_off_every_tenant_replays_its_migrations(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        first, _ = await landlord.provision("harbour-party")  # keeps an image while they are on
        off = landlord.with_settings(golden_images=False)

        second, second_job = await off.provision("river-party")
        group, group_job = await off.provision("lake-group", "community_group")

        for tenant, job in ((second, second_job), (group, group_job)):
            steps = details(job)
            assert tenant.status == TenantStatus.ACTIVE
            assert steps["allocate store"].startswith("empty "), "not cloned"
            assert "golden" not in steps["snapshot"], "no image kept"
            assert await landlord.history(tenant.id) == replayed_history(landlord, tenant)
        assert await assert_snapshot_is_the_store(landlord, second) == await assert_snapshot_is_the_store(
            landlord, first
        )
        assert await landlord.count(GoldenImage) == 1, "only the image kept while they were on"

    sqlite_installation.run(scenario)


def test_a_golden_image_changed_behind_our_back_is_discarded_and_the_tenant_replays(
    cloning_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        first, _ = await landlord.provision("harbour-party")
        async with landlord.database.session() as session:
            image = await session.scalar(select(GoldenImage))
        assert image is not None, "the first tenant's schema was kept as a golden image"
        golden = golden_location(landlord.settings, landlord.store(first), image.key)
        await execute(golden, "CREATE TABLE smuggled (id INTEGER PRIMARY KEY)")

        second, job = await landlord.provision("river-party")

        assert "did not match its recorded schema; discarded" in details(job)["allocate store"]
        assert second.status == TenantStatus.ACTIVE
        assert "smuggled" not in await business_tables(landlord.store(second))
        assert await landlord.history(second.id) == replayed_history(landlord, second), "replayed"
        assert await assert_snapshot_is_the_store(landlord, second) == await assert_snapshot_is_the_store(
            landlord, first
        )
        await assert_seeded(landlord, second)

    cloning_installation.run(scenario)


@requires_postgres
def test_without_pg_dump_schema_isolated_tenants_replay_instead_of_cloning(
    postgres_schema_installation: Installation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schema has no native copy: on a machine without pg_dump, every tenant replays."""
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # a machine where pg_dump is not installed

    async def scenario(landlord: Landlord) -> None:
        first, first_job = await landlord.provision("harbour-party")
        second, second_job = await landlord.provision("river-party")

        for tenant, job in ((first, first_job), (second, second_job)):
            assert tenant.status == TenantStatus.ACTIVE
            assert details(job)["allocate store"].startswith("empty postgresql store ")
            assert "golden" not in details(job)["snapshot"]
            assert await landlord.history(tenant.id) == replayed_history(landlord, tenant)
        assert await landlord.count(GoldenImage) == 0
        assert await assert_snapshot_is_the_store(landlord, second) == await assert_snapshot_is_the_store(
            landlord, first
        ), "two schemas built from the same layers are the same schema"

    postgres_schema_installation.run(scenario)


# Bad requests create nothing ----------------------------------------------------------------------

GOOD = {
    "slug": "lake-party",
    "name": "Lake Party",
    "template": "political_party",
    "modules": ["membership_tiers", "events", "election_campaign"],
    "isolation": "database",
}


@pytest.mark.parametrize(
    ("wrong", "complaints"),
    [
        pytest.param(
            {"template": "shipping_line"},
            {"template": "Unknown template 'shipping_line'; choose one of community_group, non_profit"},
            id="unknown-template",
        ),
        pytest.param(
            {"modules": ["events", "teleportation"]},
            {"modules": "There is no module 'teleportation': leave it out"},
            id="unknown-module",
        ),
        pytest.param(
            {"modules": ["finance", "simple_ledger"]},
            {"modules": "Finance and Simple ledger cannot be enabled together: choose one."},
            id="conflicting-modules",
        ),
        pytest.param(
            {"modules": ["membership_tiers", "election_campaign"]},
            {"modules": "Election campaign needs Events: tick Events too, or untick Election campaign."},
            id="missing-requirement",
        ),
        pytest.param(
            {"slug": "harbour-party"}, {"slug": "The slug 'harbour-party' is taken."}, id="taken-slug"
        ),
        pytest.param(
            {"slug": "Lake Party!"}, {"slug": "A slug is 3 to 63 lowercase letters"}, id="invalid-slug"
        ),
        pytest.param({"slug": "admin"}, {"slug": "The slug 'admin' is reserved."}, id="reserved-slug"),
        pytest.param({"name": "   "}, {"name": "Give the tenant a name."}, id="empty-name"),
        pytest.param(
            {"isolation": "schema"},
            {"isolation": "Isolation 'schema' is not available here; choose database, shared."},
            id="schema-without-a-postgresql-server",
        ),
        pytest.param(
            {"slug": "-lake", "name": "", "modules": ["finance", "teleportation"], "isolation": "schema"},
            {
                "slug": "A slug is",
                "name": "Give the tenant a name.",
                "modules": "There is no module 'teleportation': leave it out",
                "isolation": "not available here",
            },
            id="every-field-wrong-at-once",
        ),
        pytest.param(
            {"slug": "harbour-party", "name": " ", "template": "shipping_line", "isolation": "pooled"},
            {
                "slug": "is taken",
                "name": "Give the tenant a name.",
                "template": "Unknown template 'shipping_line'",
                "isolation": "Isolation 'pooled' is not available here",
            },
            id="every-field-wrong-with-an-unknown-template",
        ),
    ],
)
def test_a_bad_request_names_every_wrong_field_and_creates_nothing(
    sqlite_installation: Installation, wrong: dict[str, Any], complaints: dict[str, str]
) -> None:
    async def scenario(landlord: Landlord) -> None:
        await landlord.request("harbour-party")  # an existing tenant, whose slug is taken
        before = [await landlord.count(model) for model in (Tenant, Job, JobStep)]

        # Whatever the request did stays committed: the session ends normally.
        async with landlord.database.session() as session:
            with pytest.raises(InvalidFields) as refusal:
                await request_tenant(session, landlord.settings, TenantRequest(**{**GOOD, **wrong}))

        assert set(refusal.value.errors) == set(complaints), "every wrong field, and only those"
        for field, complaint in complaints.items():
            assert complaint in refusal.value.errors[field], field
            assert complaint in refusal.value.message, "the message names every problem"
        assert [await landlord.count(model) for model in (Tenant, Job, JobStep)] == before, (
            "nothing was written"
        )
        assert not (landlord.settings.data_dir / "tenants" / "lake-party.db").exists()

    sqlite_installation.run(scenario)


# A failure leaves no orphan -----------------------------------------------------------------------

BERTHS_UP = """
    op.create_table(
        "harbour_berths",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
    )
"""
BERTHS_DOWN = 'op.drop_table("harbour_berths")'


def test_a_failed_custom_migration_leaves_no_orphan_and_a_retry_after_the_fix_succeeds(
    installation: Installation, tmp_path: Path
) -> None:
    slug = "harbour-trust"
    layers = copy_layers(tmp_path)
    broken = 'raise RuntimeError("the berth register import is not ready")'
    revision = write_custom_revision(layers, slug, 1, "berth register", broken, "pass")

    async def scenario(landlord: Landlord) -> None:
        planned = plan_store(landlord.settings, slug, landlord.isolation)
        tenant, job = await landlord.provision(slug)

        assert job.status == JobStatus.FAILED
        assert job.error and "the berth register import is not ready" in job.error
        custom_at = PROVISIONING_STEP_NAMES.index("custom")
        assert [step.status for step in job.steps] == [StepStatus.SUCCEEDED] * custom_at + [
            StepStatus.FAILED
        ] + [StepStatus.PENDING] * (len(PROVISIONING_STEP_NAMES) - custom_at - 1), "it stopped at custom"
        failed = by_name(job)["custom"]
        assert failed.error and "the berth register import is not ready" in failed.error
        assert f"Could not apply custom/{slug} revision {revision}" in failed.error

        assert tenant.status == TenantStatus.FAILED
        assert tenant.error and tenant.error.startswith("custom: ")
        assert "the berth register import is not ready" in tenant.error
        assert (tenant.store_backend, tenant.store_name) == (None, None), "no store is remembered"
        assert await store_is_gone(planned), f"the {planned.isolation} store {planned.name} was removed"
        assert await landlord.snapshots(tenant.id) == []
        assert (await landlord.history(tenant.id))[-1] == (f"custom/{slug}", revision, "up", "failed")

        # The developer fixes the migration; the landlord admin asks for provisioning again.
        write_custom_revision(layers, slug, 1, "berth register", BERTHS_UP, BERTHS_DOWN)
        async with landlord.database.session() as session:
            retry = await retry_provisioning(session, await session.get_one(Tenant, tenant.id))
        retried = await landlord.perform(retry.id, tenant.id)
        tenant = await landlord.tenant(tenant.id)

        assert (retried.status, retried.error) == (JobStatus.SUCCEEDED, None)
        assert (tenant.status, tenant.error) == (TenantStatus.ACTIVE, None)
        assert details(retried)["custom"] == f"1 revision(s) applied (custom/{slug})"
        assert "harbour_berths" in await business_tables(landlord.store(tenant))
        assert (await landlord.history(tenant.id))[-1] == (f"custom/{slug}", revision, "up", "succeeded")
        await assert_snapshot_is_the_store(landlord, tenant)
        assert len(await landlord.snapshots(tenant.id)) == 1
        await assert_seeded(landlord, tenant)

        async with landlord.database.session() as session:
            with pytest.raises(Conflict, match="only a tenant whose provisioning failed can be retried"):
                await retry_provisioning(session, await session.get_one(Tenant, tenant.id))

    installation.with_layers(layers).run(scenario)


# Custom layers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("installation", SQLITE_AND_POSTGRES_SCHEMAS, indirect=True)
def test_custom_revisions_are_applied_at_provisioning_and_later_applied_and_rolled_back_on_request(
    installation: Installation, tmp_path: Path
) -> None:
    slug = "harbour-trust"
    layer = f"custom/{slug}"
    layers = copy_layers(tmp_path)
    first = write_custom_revision(layers, slug, 1, "berths", BERTHS_UP, BERTHS_DOWN)
    second = write_custom_revision(
        layers,
        slug,
        2,
        "berth bookings",
        """
        op.create_table(
            "berth_bookings",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("berth_id", sa.Integer, sa.ForeignKey("harbour_berths.id"), nullable=False),
            sa.Column("vessel", sa.String(100), nullable=False),
        )
        """,
        'op.drop_table("berth_bookings")',
    )

    async def pending(landlord: Landlord) -> list[str]:
        async with landlord.database.session() as session:
            return (await tenant_overview(session, landlord.settings, slug)).pending_custom

    async def change(landlord: Landlord, tenant: Tenant, kind: str) -> Job:
        async with landlord.database.session() as session:
            job = await request_custom_change(session, landlord.settings, tenant, kind)
        return await landlord.perform(job.id, tenant.id)

    async def scenario(landlord: Landlord) -> None:
        tenant, job = await landlord.provision(slug, "non_profit")
        assert tenant.status == TenantStatus.ACTIVE
        assert details(job)["custom"] == f"2 revision(s) applied ({layer})"
        assert [row for row in await landlord.history(tenant.id) if row[0] == layer] == [
            (layer, first, "up", "succeeded"),
            (layer, second, "up", "succeeded"),
        ]
        assert {"harbour_berths", "berth_bookings"} <= await business_tables(landlord.store(tenant))
        provisioned = await assert_snapshot_is_the_store(landlord, tenant)
        assert await pending(landlord) == []

        # A developer writes a third revision; the tenant page shows it pending until applied.
        third = write_custom_revision(
            layers,
            slug,
            3,
            "berth inspections",
            """
            op.create_table(
                "berth_inspections",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("berth_id", sa.Integer, sa.ForeignKey("harbour_berths.id"), nullable=False),
            )
            """,
            'op.drop_table("berth_inspections")',
        )
        assert await pending(landlord) == [third]

        applied = await change(landlord, tenant, APPLY_CUSTOM)
        assert (applied.status, applied.error) == (JobStatus.SUCCEEDED, None)
        assert details(applied)["apply custom"] == f"1 revision(s) applied ({layer})"
        assert (await landlord.history(tenant.id))[-1] == (layer, third, "up", "succeeded")
        assert "berth_inspections" in await business_tables(landlord.store(tenant))
        with_third = await assert_snapshot_is_the_store(landlord, tenant)
        assert with_third != provisioned, "the snapshot shows the change"
        description, _ = await store_snapshot(landlord.store(tenant))
        assert description["layer_versions"]["custom"] == third
        assert await pending(landlord) == []

        rolled_back = await change(landlord, tenant, ROLLBACK_CUSTOM)
        assert (rolled_back.status, rolled_back.error) == (JobStatus.SUCCEEDED, None)
        assert details(rolled_back)["roll back last custom revision"] == f"rolled back {third}"
        history = await landlord.history(tenant.id)
        assert history[-1] == (layer, third, "down", "succeeded")
        assert [row for row in history if row[2] == "down"] == [history[-1]], "only the last one reverted"
        tables = await business_tables(landlord.store(tenant))
        assert "berth_inspections" not in tables
        assert {"harbour_berths", "berth_bookings"} <= tables, "the earlier custom revisions stay"
        assert await assert_snapshot_is_the_store(landlord, tenant) == provisioned, (
            "back to exactly the schema it was provisioned with"
        )
        assert await pending(landlord) == [third]

    installation.with_layers(layers).run(scenario)


def test_a_custom_change_for_a_tenant_without_a_custom_layer_is_refused(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, _ = await landlord.provision("harbour-party")
        jobs = await landlord.count(Job)
        for kind in (APPLY_CUSTOM, ROLLBACK_CUSTOM):
            async with landlord.database.session() as session:
                with pytest.raises(Conflict, match="There is no custom layer for harbour-party"):
                    await request_custom_change(session, landlord.settings, tenant, kind)
        assert await landlord.count(Job) == jobs, "no job was recorded"

    sqlite_installation.run(scenario)


# Resuming after a worker died ---------------------------------------------------------------------


@pytest.mark.parametrize("installation", SQLITE_AND_POSTGRES_LANDLORDS, indirect=True)
def test_a_provisioning_job_whose_worker_died_resumes_without_repeating_what_was_done(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, job = await landlord.request("harbour-party")
        crashed_at = PROVISIONING_STEP_NAMES.index("modules")

        async def lease(left: timedelta) -> None:
            async with landlord.database.session() as session:
                await session.execute(
                    update(Job)
                    .where(Job.id == job.id)
                    .values(status=JobStatus.RUNNING, attempts=1, lease_expires_at=utcnow() + left)
                )

        # A worker claimed the job and ran its steps up to "modules" ...
        await lease(timedelta(minutes=5))
        catalogue = load_catalogue(landlord.settings.layers_dir)
        run = Provisioning(landlord.settings, landlord.database, job.id, tenant.id)
        with tenant_context(tenant.id):
            async with connections_kept_open():  # closed as a dying worker's connections are
                await jobs.run_steps(landlord.database, job.id, PROVISIONING_STEPS[:crashed_at], run)
        # ... and died in the middle of it: the first module's revisions were applied (and recorded
        # in the history), the step was never marked done.
        async with landlord.database.session() as session:
            modules = await session.get_one(JobStep, by_name(await landlord.job(job.id))["modules"].id)
            modules.status, modules.attempts, modules.started_at = StepStatus.RUNNING, 1, utcnow()
        tenant = await landlord.tenant(tenant.id)
        store = landlord.store(tenant).open()
        try:
            assert await upgrade_layer(store, catalogue.modules[tenant.modules[0]], run.record) == 2
        finally:
            await store.dispose()

        # While its lease is alive the worker may still be at it: a re-sent message does nothing.
        untouched = await landlord.perform(job.id, tenant.id)
        assert (untouched.status, untouched.attempts) == (JobStatus.RUNNING, 1)
        assert (by_name(untouched)["modules"].status, by_name(untouched)["modules"].attempts) == (
            StepStatus.RUNNING,
            1,
        )

        # Its lease expires: the job is claimed again and resumes at its first unfinished step.
        await lease(timedelta(seconds=-1))
        resumed = await landlord.perform(job.id, tenant.id)

        assert (resumed.status, resumed.error, resumed.attempts) == (JobStatus.SUCCEEDED, None, 2)
        assert [step.name for step in resumed.steps] == PROVISIONING_STEP_NAMES, "one row per step"
        assert all(step.status == StepStatus.SUCCEEDED for step in resumed.steps)
        assert [step.attempts for step in resumed.steps] == [1] * crashed_at + [2] + [1] * (
            len(PROVISIONING_STEP_NAMES) - crashed_at - 1
        ), "the steps done before the crash were not run again"
        assert details(resumed)["modules"] == (
            "2 revision(s) applied (modules/events, modules/membership_tiers, modules/election_campaign)"
        ), "the module applied before the crash was not applied again"
        tenant = await landlord.tenant(tenant.id)
        assert await landlord.history(tenant.id) == replayed_history(landlord, tenant), (
            "every revision once in the history, none twice"
        )
        assert tenant.status == TenantStatus.ACTIVE
        assert len(await landlord.snapshots(tenant.id)) == 1
        await assert_snapshot_is_the_store(landlord, tenant)
        await assert_seeded(landlord, tenant)

    installation.run(scenario)


# Tenant context -----------------------------------------------------------------------------------


@pytest.mark.parametrize("installation", SQLITE_AND_POSTGRES_LANDLORDS, indirect=True)
def test_a_tenant_job_run_outside_its_tenant_context_fails_and_touches_no_store(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        harbour, harbour_job = await landlord.request("harbour-party")
        river, river_job = await landlord.request("river-party")

        outside = await landlord.perform(harbour_job.id, None)  # no tenant context at all
        elsewhere = await landlord.perform(river_job.id, harbour.id)  # another tenant's context

        for tenant, job in ((harbour, outside), (river, elsewhere)):
            assert job.status == JobStatus.FAILED
            assert job.error == f"job {job.id} belongs to tenant {tenant.id} but ran outside its context"
            assert all((step.status, step.attempts) == (StepStatus.PENDING, 0) for step in job.steps), (
                "no step ran"
            )
            tenant = await landlord.tenant(tenant.id)
            assert (tenant.store_backend, tenant.store_name) == (None, None)
            assert await store_is_gone(plan_store(landlord.settings, tenant.slug, tenant.isolation))
            assert await landlord.history(tenant.id) == []
        assert await landlord.count(GoldenImage) == 0

        # Nothing is left to finish harbour's provisioning, so it can be retried, and it works.
        async with landlord.database.session() as session:
            retry = await retry_provisioning(session, await session.get_one(Tenant, harbour.id))
        assert (await landlord.perform(retry.id, harbour.id)).status == JobStatus.SUCCEEDED
        assert (await landlord.tenant(harbour.id)).status == TenantStatus.ACTIVE

    installation.run(scenario)
