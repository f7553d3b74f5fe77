"""Rollouts, run as workers run them: a new revision reaches every selected tenant wave after wave;
a tenant whose data breaks the revision is taken back to where it started while the others reach
the target; the halt rule stops the rollout; a rollback takes back exactly the tenants it moved; a
store locked by a long transaction fails its tenant within the lock timeout and the others go on."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select

from services.errors import Conflict, InvalidFields
from services.layers.catalogue import load_catalogue
from services.layers.migrator import current_revision
from services.models import (
    Backup,
    Job,
    JobStatus,
    MigrationHistory,
    Rollout,
    RolloutStatus,
    RolloutTenant,
    RolloutTenantStatus,
    Tenant,
    Verification,
)
from services.rollouts import runs
from services.rollouts.plans import RolloutSpec, plan_rollout
from services.selection import Selection
from services.tenancy.stores import SQLITE, StoreLocation
from tests.services.provisioning.installation import (
    POSTGRES_DATABASE,
    SHARED_MODES,
    SQLITE_DATABASE,
    Installation,
    Landlord,
    copy_layers,
    execute,
    query,
    write_revision,
)
from tests.services.rollouts.test_fleet import fleet_of, recorded_layers
from tests.services.running import run_tenantry, tenantry_env

EVENTS = "modules/events"
PARTY = "templates/political_party"


def add_events_revision(layers: Path, *, strict: bool = False) -> None:
    """events_0003: a column (additive), and, when `strict`, a rule existing rows may break."""
    rule = (
        '\nwith op.batch_alter_table("events") as batch:\n'
        '    batch.create_check_constraint("ck_events_capacity", "capacity IS NULL OR capacity >= 0")'
        if strict
        else ""
    )
    undo = (
        'with op.batch_alter_table("events") as batch:\n    batch.drop_constraint("ck_events_capacity", type_="check")\n'
        if strict
        else ""
    )
    write_revision(
        layers / "modules" / "events",
        "events_0003",
        "events_0002",
        "Dress code",
        f'op.add_column("events", sa.Column("dress_code", sa.String(100))){rule}',
        f'{undo}with op.batch_alter_table("events", recreate="never") as batch:\n    batch.drop_column("dress_code")',
    )


def add_party_revision(layers: Path) -> None:
    """political_party_0002: the template's provinces get a motto (additive)."""
    write_revision(
        layers / "templates" / "political_party",
        "political_party_0002",
        "political_party_0001",
        "Province motto",
        'op.add_column("provinces", sa.Column("motto", sa.String(200)))',
        'with op.batch_alter_table("provinces", recreate="never") as batch:\n    batch.drop_column("motto")',
    )


#: Political parties with events, made by provision_parties.
PARTIES = ["harbour-party", "reed-party", "quay-party"]


async def provision_parties(landlord: Landlord) -> None:
    for slug in PARTIES:
        await landlord.provision(slug, modules=["events"])


async def run_to_the_end(landlord: Landlord, rollout_id: int) -> Rollout:
    """What the workers do: run each lane the rollout starts, until it starts no more."""
    return await runs.run_here(landlord.database, landlord.settings, rollout_id)


async def start(landlord: Landlord, spec: RolloutSpec) -> Rollout:
    async with landlord.database.session() as session:
        plan = await plan_rollout(session, landlord.settings, spec)
        return await runs.start_rollout(session, plan, requested_by="ops@example.org")


async def statuses(landlord: Landlord, rollout_id: int) -> dict[str, str]:
    async with landlord.database.session() as session:
        rows = await session.scalars(select(RolloutTenant).where(RolloutTenant.rollout_id == rollout_id))
        return {row.tenant.slug: row.status for row in rows}


async def events_at(landlord: Landlord, slug: str) -> str | None:
    return await layer_at(landlord, slug, EVENTS)


async def layer_at(landlord: Landlord, slug: str, key: str) -> str | None:
    """Where the layer is in the tenant's store, as its own version table says."""
    async with landlord.database.session() as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    assert tenant is not None
    store = landlord.store(tenant).open()
    try:
        layer = load_catalogue(landlord.settings.layers_dir).named(key)
        assert layer is not None
        return await current_revision(store, layer)
    finally:
        await store.dispose()


async def history_of(landlord: Landlord, slug: str, revision: str) -> list[tuple[str, str]]:
    async with landlord.database.session() as session:
        rows = await session.execute(
            select(MigrationHistory.direction, MigrationHistory.outcome)
            .join(Tenant, Tenant.id == MigrationHistory.tenant_id)
            .where(Tenant.slug == slug, MigrationHistory.revision == revision)
            .order_by(MigrationHistory.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_a_new_revision_reaches_every_selected_tenant_in_waves(
    installation: Installation, tmp_path: Path
) -> None:
    layers = copy_layers(tmp_path)

    async def scenario(landlord: Landlord) -> None:
        await provision_parties(landlord)
        await landlord.provision("reed-club", "community_group", [])
        add_party_revision(layers)
        add_events_revision(layers)
        landlord = landlord.with_settings(layers_dir=layers)
        spec = RolloutSpec(canary=1, wave_size=1, concurrency=2)

        async with landlord.database.session() as session:
            plan = await plan_rollout(session, landlord.settings, spec)
        assert [(tenant.slug, tenant.wave) for tenant in plan.tenants] == list(
            zip(PARTIES, [0, 1, 2], strict=True)
        )
        assert [(step.layer, step.revision) for step in plan.tenants[0].steps] == [
            (PARTY, "political_party_0002"),
            (EVENTS, "events_0003"),
        ]
        assert plan.at_target == 1 and plan.refused == []  # the club has neither layer

        rollout = await run_to_the_end(landlord, (await start(landlord, spec)).id)

        assert rollout.status == RolloutStatus.FINISHED
        assert set((await statuses(landlord, rollout.id)).values()) == {RolloutTenantStatus.SUCCEEDED}
        for slug in PARTIES:
            assert await events_at(landlord, slug) == "events_0003"
            assert await layer_at(landlord, slug, PARTY) == "political_party_0002"
            for revision in ("political_party_0002", "events_0003"):
                assert await history_of(landlord, slug, revision) == [("up", "succeeded")]
        assert (await fleet_of(landlord)).behind == []
        # Waves of one tenant: one lane (a fleet job) carried them all, not a job per tenant.
        async with landlord.database.session() as session:
            lanes = await session.scalars(select(Job).where(Job.kind == runs.ROLLOUT_LANE))
            assert [(job.status, job.tenant_id) for job in lanes] == [(JobStatus.SUCCEEDED, None)]

    installation.run(scenario)


def test_a_pause_lets_the_running_tenant_finish_and_a_resume_carries_on_in_a_new_lane(
    sqlite_installation: Installation, tmp_path: Path
) -> None:
    layers = copy_layers(tmp_path)

    async def scenario(landlord: Landlord) -> None:
        await provision_parties(landlord)
        add_events_revision(layers)
        landlord = landlord.with_settings(layers_dir=layers)
        rollout = await start(landlord, RolloutSpec(canary=1, wave_size=2, concurrency=1))
        async with landlord.database.session() as session:
            await runs.pause(session, await session.get_one(Rollout, rollout.id))

        paused = await run_to_the_end(landlord, rollout.id)  # the canary's lane had its tenant

        assert paused.status == RolloutStatus.PAUSED
        assert await statuses(landlord, rollout.id) == {
            "harbour-party": RolloutTenantStatus.SUCCEEDED,
            "reed-party": RolloutTenantStatus.QUEUED,
            "quay-party": RolloutTenantStatus.QUEUED,
        }
        assert [await events_at(landlord, slug) for slug in PARTIES] == [
            "events_0003",
            "events_0002",
            "events_0002",
        ]

        async with landlord.database.session() as session:
            await runs.resume(session, await session.get_one(Rollout, rollout.id))
        finished = await run_to_the_end(landlord, rollout.id)

        assert finished.status == RolloutStatus.FINISHED
        assert set((await statuses(landlord, rollout.id)).values()) == {RolloutTenantStatus.SUCCEEDED}
        async with landlord.database.session() as session:
            lanes = list(
                await session.scalars(
                    select(RolloutTenant.job_id)
                    .where(RolloutTenant.rollout_id == rollout.id)
                    .order_by(RolloutTenant.position)
                )
            )
        assert lanes[0] != lanes[1] == lanes[2]  # the resumed wave's one lane took both its tenants

    sqlite_installation.run(scenario)


@pytest.mark.parametrize("shared_installation", SHARED_MODES, indirect=True)
def test_tenants_of_a_shared_store_move_as_one(shared_installation: Installation, tmp_path: Path) -> None:
    layers = copy_layers(tmp_path)

    async def scenario(landlord: Landlord) -> None:
        for slug in ("harbour-party", "reed-party"):
            await landlord.provision(slug, modules=["events"])
        add_events_revision(layers)
        landlord = landlord.with_settings(layers_dir=layers)

        rollout = await run_to_the_end(landlord, (await start(landlord, RolloutSpec(layer=EVENTS))).id)

        async with landlord.database.session() as session:
            jobs = set(
                await session.scalars(
                    select(RolloutTenant.job_id).where(RolloutTenant.rollout_id == rollout.id)
                )
            )
        assert len(jobs) == 1  # one migration of the store, for both
        assert rollout.status == RolloutStatus.FINISHED
        for slug in ("harbour-party", "reed-party"):
            assert await events_at(landlord, slug) == "events_0003"
        assert (await fleet_of(landlord)).behind == []

    shared_installation.run(scenario)


def test_a_tenant_that_breaks_the_revision_goes_back_the_rule_halts_and_a_rollback_undoes_the_rest(
    installation: Installation, tmp_path: Path
) -> None:
    layers = copy_layers(tmp_path)
    slugs = ["harbour-party", "reed-party", "quay-party", "dock-party"]

    async def scenario(landlord: Landlord) -> None:
        for slug in slugs:
            await landlord.provision(slug, modules=["events"])
        bad = await landlord_tenant(landlord, "reed-party")
        await execute(
            landlord.store(bad),
            f"INSERT INTO events (tenant_id, title, starts_at, capacity) VALUES ({bad.id}, 'Gala', '2026-01-01', -5)",
        )
        add_events_revision(layers, strict=True)
        landlord = landlord.with_settings(layers_dir=layers)
        spec = RolloutSpec(canary=1, wave_size=2, concurrency=2, halt_after_failures=1)

        rollout = await run_to_the_end(landlord, (await start(landlord, spec)).id)

        assert rollout.status == RolloutStatus.HALTED
        assert rollout.note is not None and "1 tenant(s) failed" in rollout.note
        assert await statuses(landlord, rollout.id) == {
            "harbour-party": RolloutTenantStatus.SUCCEEDED,  # the canary
            "reed-party": RolloutTenantStatus.FAILED,  # wave 1
            "quay-party": RolloutTenantStatus.SUCCEEDED,  # wave 1, beside it
            "dock-party": RolloutTenantStatus.QUEUED,  # wave 2: never started
        }
        assert await events_at(landlord, "reed-party") == "events_0002"  # where it started
        assert [outcome for _, outcome in await history_of(landlord, "reed-party", "events_0003")] == [
            "failed"
        ]
        async with landlord.database.session() as session:
            failed = await session.scalar(select(RolloutTenant).where(RolloutTenant.tenant_id == bad.id))
        assert failed is not None and failed.error and "ck_events_capacity" in failed.error.lower()
        assert "sqlalchemy" not in failed.error  # the database's own words, not the driver's wrapping

        async with landlord.database.session() as session:
            with pytest.raises(Conflict):
                await runs.start_rollout(
                    session,
                    await plan_rollout(
                        session, landlord.settings, RolloutSpec(selection=Selection(tenants=("nobody",)))
                    ),
                    requested_by=None,
                )
            halted = await session.get_one(Rollout, rollout.id)
            back = await runs.roll_back(session, landlord.settings, halted, "ops@example.org")
        back = await run_to_the_end(landlord, back.id)

        assert back.status == RolloutStatus.FINISHED and back.rollback_of == rollout.id
        assert await statuses(landlord, back.id) == {
            "quay-party": RolloutTenantStatus.SUCCEEDED,  # newest first
            "harbour-party": RolloutTenantStatus.SUCCEEDED,
        }
        for slug in slugs:
            assert await events_at(landlord, slug) == "events_0002"
            assert (await recorded_layers(landlord, (await landlord_tenant(landlord, slug)).id))[
                EVENTS
            ] == "events_0002"

    installation.run(scenario)


async def landlord_tenant(landlord: Landlord, slug: str) -> Tenant:
    async with landlord.database.session() as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    assert tenant is not None
    return tenant


def test_a_spec_that_cannot_run_names_each_wrong_field(sqlite_installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        spec = RolloutSpec(layer="modules/nope", canary=-1, concurrency=0, halt_failure_percent=120)
        async with landlord.database.session() as session:
            with pytest.raises(InvalidFields) as refused:
                await plan_rollout(session, landlord.settings, spec)
        assert set(refused.value.errors) == {"layer", "canary", "concurrency", "halt_failure_percent"}

    sqlite_installation.run(scenario)


@pytest.mark.parametrize("quiet", [True, False], ids=["needs-quiet", "additive"])
def test_only_a_revision_that_needs_its_tenant_quiet_puts_it_in_maintenance_while_it_runs(
    sqlite_installation: Installation, tmp_path: Path, quiet: bool
) -> None:
    layers = copy_layers(tmp_path)
    landlord_file = sqlite_installation.settings.database_url.removeprefix("sqlite+aiosqlite:///")

    async def scenario(landlord: Landlord) -> None:
        await landlord.provision("harbour-party", modules=["events"])
        write_revision(  # it writes down what the landlord said of its tenant while it ran
            layers / "modules" / "events",
            "events_0003",
            "events_0002",
            "Probe",
            f"""
            import sqlite3
            tenant_id, status = sqlite3.connect({landlord_file!r}).execute(
                "SELECT id, status FROM tenants WHERE slug = 'harbour-party'"
            ).fetchone()
            op.create_table("quiet_probe", sa.Column("status", sa.String(20)))
            op.execute(f"INSERT INTO quiet_probe (tenant_id, status) VALUES ({{tenant_id}}, '{{status}}')")
            """,
            'op.drop_table("quiet_probe")',
            declare="needs_quiet = True" if quiet else "",
        )
        landlord = landlord.with_settings(layers_dir=layers)

        rollout = await run_to_the_end(landlord, (await start(landlord, RolloutSpec(layer=EVENTS))).id)
        assert rollout.status == RolloutStatus.FINISHED, rollout.note

        tenant = await landlord_tenant(landlord, "harbour-party")
        assert await query(landlord.store(tenant), "SELECT status FROM quiet_probe") == [
            ("maintenance" if quiet else "active",)
        ]
        assert tenant.status == "active"  # and back in service once it ran

    sqlite_installation.run(scenario)


@asynccontextmanager
async def holding_a_lock(location: StoreLocation) -> AsyncIterator[None]:
    """Another connection in a long transaction on the store: on PostgreSQL it has read the events
    table (an ALTER must wait for it); on SQLite it holds the store's write lock."""
    if location.backend == SQLITE:
        holder = sqlite3.connect(location.name, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.rollback()
            holder.close()
        return
    connection = await asyncpg.connect(location.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with connection.transaction():
            await connection.execute("SELECT count(*) FROM events")
            yield
    finally:
        await connection.close()


@pytest.mark.parametrize("installation", [SQLITE_DATABASE, POSTGRES_DATABASE], indirect=True)
def test_a_store_locked_by_a_long_transaction_fails_within_its_lock_timeout_and_the_others_go_on(
    installation: Installation, tmp_path: Path
) -> None:
    layers = copy_layers(tmp_path)

    async def scenario(landlord: Landlord) -> None:
        for slug in ("harbour-party", "reed-party"):
            await landlord.provision(slug, modules=["events"])
        locked = await landlord_tenant(landlord, "harbour-party")
        add_events_revision(layers)
        landlord = landlord.with_settings(layers_dir=layers)
        spec = RolloutSpec(layer=EVENTS, canary=0, wave_size=5, lock_timeout_ms=300, halt_after_failures=None)
        async with holding_a_lock(landlord.store(locked)):
            started = asyncio.get_running_loop().time()
            rollout = await run_to_the_end(landlord, (await start(landlord, spec)).id)
            took = asyncio.get_running_loop().time() - started

        assert await statuses(landlord, rollout.id) == {
            "harbour-party": RolloutTenantStatus.FAILED,
            "reed-party": RolloutTenantStatus.SUCCEEDED,
        }
        # Left to itself it would wait 30 s (SQLite's busy timeout) or for ever (PostgreSQL).
        assert took < 10
        assert await events_at(landlord, "harbour-party") == "events_0002"
        assert rollout.status == RolloutStatus.FINISHED

    installation.run(scenario)


def test_the_command_line_says_who_is_behind_plans_starts_follows_and_rolls_back(
    sqlite_installation: Installation, tmp_path: Path
) -> None:
    layers = copy_layers(tmp_path)

    async def provision(landlord: Landlord) -> None:
        for slug in ("harbour-party", "reed-party"):
            await landlord.provision(slug, modules=["events"])

    sqlite_installation.run(provision)
    add_events_revision(layers)
    env = tenantry_env(sqlite_installation.settings, TENANTRY_LAYERS_DIR=str(layers))

    def tenantry(*args: str) -> str:
        result = run_tenantry(args, env)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        return result.stdout

    assert "modules/events: 2 behind events_0003" in tenantry("migrate")
    plan = tenantry("rollout", "plan", "--layer", EVENTS)
    assert "2 tenant(s) in 2 wave(s)" in plan
    assert "wave 0: harbour-party: modules/events events_0003 (up)" in plan

    started = tenantry("rollout", "start", "--layer", EVENTS)
    assert "Rollout #1: finished" in started and "2 succeeded" in started
    assert "Every tenant's layers are at their heads (2 tenants in service)." in tenantry("migrate")
    assert "harbour-party: succeeded" in tenantry("rollout", "status", "1")

    back = tenantry("rollout", "rollback", "1")
    assert "Rollout #2: finished — its tenants back to where rollout #1 found them" in back
    assert "modules/events: 2 behind events_0003" in tenantry("migrate")
    refused = run_tenantry(("rollout", "pause", "2"), env)
    assert refused.returncode == 2
    assert refused.stderr.strip() == "tenantry: Rollout #2 is finished; only a running rollout pauses."

    env["TENANTRY_AUTO_ROLLOUT"] = "on"  # the deploy's release command takes them forward itself
    deployed = tenantry("migrate")
    assert "Rollout #3: finished — every layer to its head" in deployed and "2 succeeded" in deployed
    assert tenantry("drift") == "Drift check: 2 tenant(s) checked, 0 drifted.\n"


def test_a_rollout_told_to_back_up_first_leaves_each_tenant_a_verified_backup_from_before_its_change(
    sqlite_installation: Installation, tmp_path: Path
) -> None:
    layers = copy_layers(tmp_path)

    async def scenario(landlord: Landlord) -> None:
        for slug in ("harbour-party", "reed-party"):
            await landlord.provision(slug, modules=["events"])
        add_events_revision(layers)
        landlord = landlord.with_settings(layers_dir=layers)

        rollout = await run_to_the_end(landlord, (await start(landlord, RolloutSpec(backup_first=True))).id)

        assert rollout.status == RolloutStatus.FINISHED
        async with landlord.database.session() as session:
            backups = list(await session.scalars(select(Backup).order_by(Backup.id)))
            named = {
                row.tenant.slug: row.safety_backup_id for row in await runs.tenants_of(session, rollout.id)
            }
        assert [(backup.tenant_slug, backup.verification) for backup in backups] == [
            ("harbour-party", Verification.VERIFIED),
            ("reed-party", Verification.VERIFIED),
        ]
        assert all(
            backup.requested_by and f"rollout #{rollout.id}" in backup.requested_by for backup in backups
        )
        assert all(
            backup.manifest and backup.manifest["schema"]["layer_versions"]["module_events"] == "events_0002"
            for backup in backups
        )
        assert named == {backup.tenant_slug: backup.id for backup in backups}  # each row names its backup

    sqlite_installation.run(scenario)
