"""Tenant admins enabling and disabling modules: the jobs run as a worker runs them, inside the
tenant's context. Enabling applies a module's migrations (and brings its requirements); disabling
backs the tenant up first, then keeps the module's tables (hidden, back as they were when it is
enabled again) or drops them (in a shared store: this tenant's rows of them). Refusals name the
module in the way and change nothing; a failed migration leaves the tenant as it was."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import services.modules.steps  # noqa: F401  (registers the module job kinds)
from services.errors import Conflict, InvalidInput
from services.layers.catalogue import load_catalogue
from services.layers.migrator import current_revision, head
from services.models import (
    Backup,
    Job,
    JobStatus,
    MigrationHistory,
    StepStatus,
    Tenant,
    TenantLock,
    Verification,
)
from services.modules.requests import (
    DISABLE_MODULE,
    DROP_DATA,
    KEEP_DATA,
    ModuleChangeRefused,
    RequirementsNotOffered,
    module_tables,
    modules_overview,
    request_disable,
    request_enable,
    request_modules,
    visible_tables,
)
from tests.services.provisioning.installation import (
    LAYERS,
    SHARED_MODES,
    SQLITE_AND_POSTGRES_LANDLORDS,
    SQLITE_DATABASE,
    Installation,
    Landlord,
    business_tables,
    copy_layers,
    execute,
    query,
    store_snapshot,
)

#: Tenants in stores of their own (SQLite, PostgreSQL) and in shared stores (SQLite, PostgreSQL).
EVERY_STORE = [*SQLITE_AND_POSTGRES_LANDLORDS, *SHARED_MODES]
OWN_STORES = SQLITE_AND_POSTGRES_LANDLORDS
SQLITE_ONLY = [p for p in SQLITE_AND_POSTGRES_LANDLORDS if p.id == SQLITE_DATABASE]
EVENTS_TABLES = ["event_registrations", "events", "venues"]


# Driving module changes as the portal and a worker do ----------------------------------------------


async def enable(landlord: Landlord, tenant_id: int, *modules: str) -> Job:
    async with landlord.database.session() as session:
        tenant = await session.get_one(Tenant, tenant_id)
        change = await request_enable(
            session,
            landlord.settings,
            tenant,
            list(modules),
            with_required=True,
            requested_by="admin@harbour",
        )
    return await landlord.perform(change.job.id, tenant_id)


async def disable(landlord: Landlord, tenant_id: int, module: str, *, keep_data: bool) -> Job:
    async with landlord.database.session() as session:
        tenant = await session.get_one(Tenant, tenant_id)
        change = await request_disable(
            session, landlord.settings, tenant, module, keep_data=keep_data, requested_by="admin@harbour"
        )
    return await landlord.perform(change.job.id, tenant_id)


async def provision(
    landlord: Landlord, slug: str, modules: list[str], template: str = "community_group"
) -> Tenant:
    tenant, job = await landlord.provision(slug, template, modules)
    assert job.status == JobStatus.SUCCEEDED, job.error
    return tenant


async def add_venue(landlord: Landlord, tenant: Tenant, name: str) -> None:
    await execute(
        landlord.store(tenant), f"INSERT INTO venues (name, tenant_id) VALUES ('{name}', {tenant.id})"
    )


async def venues_of(landlord: Landlord, tenant: Tenant) -> list[str]:
    rows = await query(
        landlord.store(tenant), f"SELECT name FROM venues WHERE tenant_id = {tenant.id} ORDER BY name"
    )
    return [row[0] for row in rows]


async def everything_of(landlord: Landlord, tenant_id: int) -> dict[str, Any]:
    """What a refused change must leave as it was: the tenant's records, jobs, backups, history,
    snapshots, and its store's schema."""
    tenant = await landlord.tenant(tenant_id)
    async with landlord.database.session() as session:

        async def count(model: Any) -> int:
            statement = select(func.count()).select_from(model).where(model.tenant_id == tenant_id)
            return await session.scalar(statement) or 0

        counts = {model.__name__: await count(model) for model in (Job, Backup, MigrationHistory)}
    _, schema = await store_snapshot(landlord.store(tenant))
    return {
        "modules": tenant.modules,
        "kept": tenant.kept_modules,
        "status": tenant.status,
        "counts": counts,
        "snapshots": len(await landlord.snapshots(tenant_id)),
        "schema": schema,
    }


async def lock_holders(landlord: Landlord) -> int:
    return await landlord.count(TenantLock)


async def step_states(landlord: Landlord, job_id: int) -> dict[str, str]:
    return {name: step.status for name, step in (await landlord.steps(job_id)).items()}


# Enabling ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("installation", EVERY_STORE, indirect=True)
def test_enabling_a_module_applies_its_migrations_records_it_and_snapshots_the_store(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision(landlord, "harbour-club", ["social_media"])
        snapshots = len(await landlord.snapshots(tenant.id))

        job = await enable(landlord, tenant.id, "events")
        tenant = await landlord.tenant(tenant.id)

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
        assert await step_states(landlord, job.id) == {
            "lock": StepStatus.SUCCEEDED,
            "enable events": StepStatus.SUCCEEDED,
            "record and snapshot": StepStatus.SUCCEEDED,
        }
        assert tenant.modules == ["events", "social_media"], "in the order their migrations apply"
        assert set(EVENTS_TABLES) <= await business_tables(landlord.store(tenant))
        store = landlord.store(tenant).open()
        try:
            events = load_catalogue(landlord.settings.layers_dir).modules["events"]
            assert await current_revision(store, events) == head(events)
        finally:
            await store.dispose()
        history = [row for row in await landlord.history(tenant.id) if row[0] == "modules/events"]
        assert history == [
            ("modules/events", "events_0001", "up", "succeeded"),
            ("modules/events", "events_0002", "up", "succeeded"),
        ], "provisioning made no events; the job's two revisions are on record"
        assert len(await landlord.snapshots(tenant.id)) == snapshots + 1
        latest = (await landlord.snapshots(tenant.id))[-1]
        assert set(EVENTS_TABLES) <= set(latest.description["tables"])
        assert await lock_holders(landlord) == 0, "the tenant's lock was let go"

    installation.run(scenario)


@pytest.mark.parametrize("installation", SQLITE_ONLY, indirect=True)
def test_a_module_that_needs_another_brings_it_along_once_the_admin_says_yes(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision(landlord, "harbour-club", [])
        before = await everything_of(landlord, tenant.id)
        async with landlord.database.session() as session:
            found = await session.get_one(Tenant, tenant.id)
            with pytest.raises(
                RequirementsNotOffered, match="Volunteering needs Events, which is not enabled"
            ) as refused:
                await request_enable(session, landlord.settings, found, ["volunteering"], with_required=False)
        assert refused.value.plan.required == ("events",)
        assert await everything_of(landlord, tenant.id) == before, "nothing asked, nothing changed"

        job = await enable(landlord, tenant.id, "volunteering")
        tenant = await landlord.tenant(tenant.id)

        assert job.status == JobStatus.SUCCEEDED, job.error
        assert list(await step_states(landlord, job.id)) == [
            "lock",
            "enable events",
            "enable volunteering",
            "record and snapshot",
        ], "requirements first"
        assert tenant.modules == ["events", "volunteering"]

    installation.run(scenario)


# Disabling -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("installation", EVERY_STORE, indirect=True)
def test_a_module_disabled_with_its_data_kept_comes_back_with_its_rows(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision(landlord, "harbour-club", ["events", "social_media"])
        await add_venue(landlord, tenant, "Town Hall")
        await add_venue(landlord, tenant, "Lifeboat Station")

        job = await disable(landlord, tenant.id, "events", keep_data=True)
        tenant = await landlord.tenant(tenant.id)

        assert job.status == JobStatus.SUCCEEDED, job.error
        assert (await step_states(landlord, job.id))[KEEP_DATA] == StepStatus.SUCCEEDED
        assert (tenant.modules, tenant.kept_modules) == (["social_media"], ["events"])
        assert await venues_of(landlord, tenant) == ["Lifeboat Station", "Town Hall"], "the rows stay"
        snapshot = (await landlord.snapshots(tenant.id))[-1]
        shown = await visible_tables(landlord.settings, tenant, snapshot.description["tables"])
        assert not set(EVENTS_TABLES) & shown, "the data pages no longer show the kept tables"
        assert "social_posts" in shown
        assert await _verified_backups(landlord, tenant.id) == 1, "a backup first, even when keeping"

        # The next change's backup holds the kept rows too, and is verified by restoring them.
        job = await disable(landlord, tenant.id, "social_media", keep_data=True)
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert await _verified_backups(landlord, tenant.id) == 2

        job = await enable(landlord, tenant.id, "events")
        tenant = await landlord.tenant(tenant.id)

        assert job.status == JobStatus.SUCCEEDED, job.error
        steps = await landlord.steps(job.id)
        assert (
            steps["enable events"].detail
            and "found its kept tables at events_0002" in steps["enable events"].detail
        )
        assert (tenant.modules, tenant.kept_modules) == (["events"], ["social_media"])
        assert await venues_of(landlord, tenant) == ["Lifeboat Station", "Town Hall"], "as they were"
        snapshot = (await landlord.snapshots(tenant.id))[-1]
        assert set(EVENTS_TABLES) <= await visible_tables(
            landlord.settings, tenant, snapshot.description["tables"]
        )

    installation.run(scenario)


async def _verified_backups(landlord: Landlord, tenant_id: int) -> int:
    async with landlord.database.session() as session:
        statement = (
            select(func.count())
            .select_from(Backup)
            .where(
                Backup.tenant_id == tenant_id,
                Backup.status == JobStatus.SUCCEEDED,
                Backup.verification == Verification.VERIFIED,
            )
        )
        return await session.scalar(statement) or 0


@pytest.mark.parametrize("installation", OWN_STORES, indirect=True)
def test_dropping_a_module_takes_a_verified_backup_then_its_tables_go(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision(landlord, "harbour-club", ["events", "social_media"])
        await add_venue(landlord, tenant, "Town Hall")

        job = await disable(landlord, tenant.id, "events", keep_data=False)
        tenant = await landlord.tenant(tenant.id)

        assert job.status == JobStatus.SUCCEEDED, job.error
        steps = await landlord.steps(job.id)
        assert list(steps) == [
            "lock",
            "safety dump",
            "safety checksum",
            "safety manifest",
            "safety verify",
            DROP_DATA,
            "snapshot",
        ]
        assert (tenant.modules, tenant.kept_modules) == (["social_media"], [])
        assert not set(EVENTS_TABLES) & await business_tables(landlord.store(tenant)), "its tables are gone"
        assert "social_posts" in await business_tables(landlord.store(tenant))

        async with landlord.database.session() as session:
            backup = await session.scalar(select(Backup).where(Backup.tenant_id == tenant.id))
        assert backup is not None and backup.job_id == job.id
        assert (backup.status, backup.verification) == (JobStatus.SUCCEEDED, Verification.VERIFIED)
        assert backup.manifest is not None and backup.manifest["tables"]["venues"]["rows"] == 1, (
            "the data is in it"
        )
        dropping = steps[DROP_DATA].started_at
        assert backup.finished_at is not None and dropping is not None and backup.finished_at <= dropping
        assert steps[DROP_DATA].detail == (
            f"2 revision(s) of Events reverted: its tables are gone; backup #{backup.id} holds its data"
        )
        downs = [row for row in await landlord.history(tenant.id) if row[2] == "down"]
        assert downs == [
            ("modules/events", "events_0002", "down", "succeeded"),
            ("modules/events", "events_0001", "down", "succeeded"),
        ]
        assert await lock_holders(landlord) == 0

    installation.run(scenario)


@pytest.mark.parametrize("installation", SHARED_MODES, indirect=True)
def test_in_a_shared_store_dropping_deletes_only_this_tenants_rows_and_the_tables_stay(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        harbour = await provision(landlord, "harbour-club", ["events"])
        garden = await provision(landlord, "garden-club", ["events"])
        await add_venue(landlord, harbour, "Town Hall")
        await add_venue(landlord, garden, "Walled Garden")

        job = await disable(landlord, harbour.id, "events", keep_data=False)
        harbour = await landlord.tenant(harbour.id)

        assert job.status == JobStatus.SUCCEEDED, job.error
        assert (harbour.modules, harbour.kept_modules) == ([], [])
        assert await venues_of(landlord, harbour) == [], "its rows are gone"
        assert await venues_of(landlord, garden) == ["Walled Garden"], "another tenant's stay"
        assert set(EVENTS_TABLES) <= await business_tables(landlord.store(harbour)), "the shared tables stay"
        assert await _verified_backups(landlord, harbour.id) == 1
        latest = (await landlord.snapshots(harbour.id))[-1]
        assert not set(EVENTS_TABLES) & set(latest.description["tables"]), "its snapshot: its own tables"

        job = await enable(landlord, harbour.id, "events")
        assert job.status == JobStatus.SUCCEEDED, job.error
        detail = (await landlord.steps(job.id))["enable events"].detail
        assert detail and "found its tables in the shared store at events_0002; already at its head" in detail
        assert await venues_of(landlord, harbour) == []

    installation.run(scenario)


# Refusals ------------------------------------------------------------------------------------------


async def _refused(landlord: Landlord, tenant_id: int, ask: Any) -> ModuleChangeRefused:
    """Ask for a change that must be refused: the refusal, once nothing at all changed."""
    before = await everything_of(landlord, tenant_id)
    async with landlord.database.session() as session:
        tenant = await session.get_one(Tenant, tenant_id)
        with pytest.raises(ModuleChangeRefused) as refused:
            await ask(session, tenant)
    assert await everything_of(landlord, tenant_id) == before, "a refused change changes nothing"
    return refused.value


async def _on_plan(landlord: Landlord, tenant_id: int, plan: str) -> None:
    async with landlord.database.session() as session:
        (await session.get_one(Tenant, tenant_id)).plan_key = plan


@pytest.mark.parametrize("installation", [*SQLITE_ONLY, *SHARED_MODES[:1]], indirect=True)
def test_refused_changes_name_the_module_in_the_way_and_change_nothing(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        settings = landlord.settings
        charity = await provision(
            landlord, "harbour-charity", ["finance", "events", "volunteering"], "non_profit"
        )

        refused = await _refused(
            landlord,
            charity.id,
            lambda session, tenant: request_disable(session, settings, tenant, "events", keep_data=True),
        )
        assert refused.message == (
            "Events is required by Volunteering, which is enabled: disable Volunteering first."
        )
        assert refused.in_the_way == ("volunteering",)

        refused = await _refused(
            landlord,
            charity.id,
            lambda session, tenant: request_enable(
                session, settings, tenant, ["simple_ledger"], with_required=True
            ),
        )
        assert refused.message == (
            "Simple ledger conflicts with Finance, which is enabled: disable Finance first."
        )
        assert refused.in_the_way == ("finance",)

        club = await provision(landlord, "harbour-club", ["documents", "events", "membership_tiers"])
        await _on_plan(landlord, club.id, "starter")
        refused = await _refused(
            landlord,
            club.id,
            lambda session, tenant: request_enable(
                session, settings, tenant, ["social_media"], with_required=True
            ),
        )
        # Every reason at once, a line each: outside the plan, and beyond its limit.
        assert refused.message.splitlines() == [
            "The Starter plan does not include Social media.",
            "The Starter plan allows 3 modules and 3 are enabled: enabling Social media would make 4. "
            "Disable a module first, or ask for a larger plan.",
        ]
        assert refused.in_the_way == ("social_media",)
        social_media_refused = refused.message

        refused = await _refused(
            landlord,
            club.id,
            lambda session, tenant: request_enable(
                session, settings, tenant, ["simple_ledger"], with_required=True
            ),
        )
        assert refused.message.startswith(
            "The Starter plan allows 3 modules and 3 are enabled: enabling Simple ledger would make 4."
        )

        async with landlord.database.session() as session:
            overview = await modules_overview(session, settings, await session.get_one(Tenant, club.id))
            charitys = await modules_overview(session, settings, await session.get_one(Tenant, charity.id))
        why = {line.name: line.refusal for line in overview.available}
        assert why["social_media"] == social_media_refused, "the overview gives the same reasons"
        assert why["simple_ledger"] and why["simple_ledger"].startswith("The Starter plan allows 3 modules")
        assert {line.name: line.required_by for line in charitys.enabled}["events"] == ("volunteering",)
        assert {line.name: line.refusal for line in charitys.available}["simple_ledger"] == (
            "Simple ledger conflicts with Finance, which is enabled: disable Finance first."
        )

    installation.run(scenario)


@pytest.mark.parametrize("installation", SQLITE_ONLY, indirect=True)
def test_kept_data_that_refers_to_a_module_stops_its_data_being_dropped(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision(landlord, "harbour-club", ["events", "volunteering"])
        assert (
            await disable(landlord, tenant.id, "volunteering", keep_data=True)
        ).status == JobStatus.SUCCEEDED

        refused = await _refused(
            landlord,
            tenant.id,
            lambda session, found: request_disable(
                session, landlord.settings, found, "events", keep_data=False
            ),
        )
        assert refused.message == (
            "The kept data of Volunteering refers to the tables of Events: drop that data first, "
            "or keep the data of Events."
        )

        # Dropping the kept module's data first, then the other's, works.
        job = await disable(landlord, tenant.id, "volunteering", keep_data=False)
        assert job.status == JobStatus.SUCCEEDED, job.error
        job = await disable(landlord, tenant.id, "events", keep_data=False)
        assert job.status == JobStatus.SUCCEEDED, job.error
        tenant = await landlord.tenant(tenant.id)
        assert (tenant.modules, tenant.kept_modules) == ([], [])
        assert not {"volunteer_shifts", "venues"} & await business_tables(landlord.store(tenant))

    installation.run(scenario)


@pytest.mark.parametrize("installation", SQLITE_ONLY, indirect=True)
def test_a_change_is_refused_while_another_job_of_the_tenant_is_under_way(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision(landlord, "harbour-club", [])
        async with landlord.database.session() as session:
            found = await session.get_one(Tenant, tenant.id)
            queued = await request_enable(
                session, landlord.settings, found, ["documents"], with_required=True
            )
        async with landlord.database.session() as session:
            found = await session.get_one(Tenant, tenant.id)
            with pytest.raises(
                Conflict, match=rf"Job #{queued.job.id} \(enable modules\) of Harbour Club is under way"
            ):
                await request_enable(session, landlord.settings, found, ["events"], with_required=True)

    installation.run(scenario)


@pytest.mark.parametrize("installation", SQLITE_ONLY, indirect=True)
def test_the_wanted_set_swaps_modules_in_jobs_that_run_one_after_the_other(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant = await provision(landlord, "harbour-charity", ["finance", "documents"], "non_profit")
        async with landlord.database.session() as session:
            found = await session.get_one(Tenant, tenant.id)
            with pytest.raises(InvalidInput, match="Say whether to keep the data of Finance"):
                await request_modules(session, landlord.settings, found, ["documents"], keep_data=None)
            changes = await request_modules(
                session, landlord.settings, found, ["documents", "simple_ledger"], keep_data=False
            )
        assert [(change.action, change.job.kind) for change in changes] == [
            ("module.disable", DISABLE_MODULE),
            ("module.enable", "enable_modules"),
        ]
        assert changes[1].job.payload["after"] == [changes[0].job.id]
        for change in changes:
            done = await landlord.perform(change.job.id, tenant.id)
            assert done.status == JobStatus.SUCCEEDED, done.error
        tenant = await landlord.tenant(tenant.id)
        assert (tenant.modules, tenant.kept_modules) == (["documents", "simple_ledger"], [])

    installation.run(scenario)


# Failures roll back --------------------------------------------------------------------------------


def write_module(
    layers: Path, name: str, steps: list[tuple[str, str]], *, requires: tuple[str, ...] = ()
) -> None:
    """layers/modules/<name>: a manifest, and a revision for each (upgrade, downgrade) pair of
    function bodies, each revising the one before."""
    folder = layers / "modules" / name
    (folder / "versions").mkdir(parents=True)
    (folder / "manifest.toml").write_text(
        f'name = "{name}"\ntitle = "{name.replace("_", " ").capitalize()}"\nversion = "1.0.0"\n'
        f"requires = {list(requires)!r}\nconflicts = []\n".replace("'", '"')
    )
    for number, (upgrade, downgrade) in enumerate(steps, start=1):
        revision, previous = f"{name}_{number:04d}", f'"{name}_{number - 1:04d}"' if number > 1 else "None"
        source = f'''"""{name}, step {number}.

Revision ID: {revision}
Revises: {previous}
"""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {previous}
branch_labels = None
depends_on = None


def upgrade() -> None:
{textwrap.indent(textwrap.dedent(upgrade).strip(), "    ")}


def downgrade() -> None:
{textwrap.indent(textwrap.dedent(downgrade).strip(), "    ")}
'''
        (folder / "versions" / f"{revision}.py").write_text(source)


def _table(name: str) -> tuple[str, str]:
    return (
        f'op.create_table("{name}", sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.Text))',
        f'op.drop_table("{name}")',
    )


BROKEN_UP = 'raise RuntimeError("the tide gauge feed is not ready")'
BROKEN_DOWN = 'raise RuntimeError("the harbour log archive is not ready")'


@pytest.mark.parametrize("installation", EVERY_STORE, indirect=True)
def test_a_failing_migration_rolls_the_whole_enable_back_and_says_why(
    installation: Installation, tmp_path: Path
) -> None:
    layers = copy_layers(tmp_path)
    write_module(layers, "tide_tables", [_table("tide_readings")])
    write_module(
        layers, "storm_warnings", [_table("storm_warnings"), (BROKEN_UP, "pass")], requires=("tide_tables",)
    )

    async def scenario(landlord: Landlord) -> None:
        tenant = await provision(landlord, "harbour-club", ["social_media"])
        before = await everything_of(landlord, tenant.id)

        job = await enable(landlord, tenant.id, "storm_warnings")
        tenant = await landlord.tenant(tenant.id)

        assert job.status == JobStatus.FAILED
        assert job.error == (
            "enable storm_warnings: Could not apply modules/storm_warnings revision storm_warnings_0002: "
            "RuntimeError: the tide gauge feed is not ready. Undone: Tide tables taken off again."
        )
        assert await step_states(landlord, job.id) == {
            "lock": StepStatus.SUCCEEDED,
            "enable tide_tables": StepStatus.SUCCEEDED,
            "enable storm_warnings": StepStatus.FAILED,
            "record and snapshot": StepStatus.PENDING,
        }
        assert (tenant.modules, tenant.kept_modules) == (["social_media"], [])
        tables = await business_tables(landlord.store(tenant))
        assert not {"tide_readings", "storm_warnings"} & tables, "neither module left a table behind"
        after = await everything_of(landlord, tenant.id)
        assert after["schema"] == before["schema"], "the store is as it was"
        assert (after["modules"], after["kept"], after["snapshots"]) == (
            before["modules"],
            before["kept"],
            before["snapshots"],
        )
        history = [row for row in await landlord.history(tenant.id) if "tide" in row[0] or "storm" in row[0]]
        assert history == [
            ("modules/tide_tables", "tide_tables_0001", "up", "succeeded"),
            ("modules/storm_warnings", "storm_warnings_0001", "up", "failed"),
            ("modules/storm_warnings", "storm_warnings_0002", "up", "failed"),
            ("modules/tide_tables", "tide_tables_0001", "down", "succeeded"),
        ], "the first storm revision was undone with the second, in one transaction"
        assert await lock_holders(landlord) == 0

    installation.with_layers(layers).run(scenario)


@pytest.mark.parametrize("installation", OWN_STORES, indirect=True)
def test_a_failing_downgrade_leaves_the_module_enabled_as_it_was_with_its_backup_taken(
    installation: Installation, tmp_path: Path
) -> None:
    layers = copy_layers(tmp_path)
    write_module(layers, "harbour_log", [(_table("log_entries")[0], BROKEN_DOWN), _table("log_sheets")])

    async def scenario(landlord: Landlord) -> None:
        tenant = await provision(landlord, "harbour-club", ["harbour_log"])
        await execute(
            landlord.store(tenant), f"INSERT INTO log_entries (note, tenant_id) VALUES ('calm', {tenant.id})"
        )
        before = await everything_of(landlord, tenant.id)

        job = await disable(landlord, tenant.id, "harbour_log", keep_data=False)
        tenant = await landlord.tenant(tenant.id)

        assert job.status == JobStatus.FAILED
        assert job.error == (
            "drop data: Could not revert modules/harbour_log revision harbour_log_0001: "
            "RuntimeError: the harbour log archive is not ready"
        )
        states = await step_states(landlord, job.id)
        assert states["safety verify"] == StepStatus.SUCCEEDED, "the backup came first"
        assert (states[DROP_DATA], states["snapshot"]) == (StepStatus.FAILED, StepStatus.PENDING)
        assert tenant.modules == ["harbour_log"]
        after = await everything_of(landlord, tenant.id)
        assert after["schema"] == before["schema"], "both revisions still applied, both tables there"
        rows = await query(landlord.store(tenant), "SELECT note FROM log_entries")
        assert rows == [("calm",)]
        assert await _verified_backups(landlord, tenant.id) == 1
        assert await lock_holders(landlord) == 0

    installation.with_layers(layers).run(scenario)


def test_a_modules_tables_are_its_own_not_those_of_the_modules_it_stands_on() -> None:
    catalogue = load_catalogue(LAYERS)
    tables = asyncio.run(module_tables(catalogue, "community_group", "volunteering"))
    assert tables == ["shift_signups", "volunteer_roles", "volunteer_shifts"]
