"""Shared isolation: many tenants' rows in one store, kept apart by tenant_id (and, on
PostgreSQL, by row-level security the application's role cannot get around)."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from services.errors import InvalidInput
from services.models import JobStatus, StepStatus, TenantLayer, TenantStatus
from services.models.tenant import Role, Setting, Unit
from services.settings import PROJECT_ROOT
from services.tenancy.context import Scope
from services.tenancy.sessions import scoped_session
from services.tenancy.stores import drop_store, remove_tenant_rows
from tests.services.provisioning.installation import POSTGRES_SHARED, SHARED_MODES, Installation, Landlord
from tests.services.provisioning.test_provisioning import details


async def _visible(landlord: Landlord, tenant_id: int) -> dict[str, list[str]]:
    tenant = await landlord.tenant(tenant_id)
    store = landlord.store(tenant).open()
    try:
        async with scoped_session(store.engine, Scope.of_tenant(tenant_id)) as data:
            return {
                "roles": sorted(await data.scalars(select(Role.key))),
                "units": list(await data.scalars(select(Unit.name))),
                "name": list(await data.scalars(select(Setting.value).where(Setting.key == "name"))),
            }
    finally:
        await store.dispose()


async def _layers(landlord: Landlord, tenant_id: int) -> dict[str, str]:
    """Where the landlord records the tenant's layers to be."""
    async with landlord.database.session() as session:
        rows = await session.scalars(select(TenantLayer).where(TenantLayer.tenant_id == tenant_id))
        return {row.layer: row.revision for row in rows}


def test_two_tenants_share_one_store_and_each_sees_only_its_own_rows(
    shared_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        harbour, job = await landlord.provision("harbour-party")
        assert job.status == JobStatus.SUCCEEDED, job.error
        garden, job = await landlord.provision("garden-club", "community_group")
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert harbour.status == garden.status == TenantStatus.ACTIVE
        assert harbour.store_name == garden.store_name, "one store for every shared tenant"

        assert await _visible(landlord, harbour.id) == {
            "roles": ["tenant_admin", "tenant_member"],
            "units": ["Harbour Party"],
            "name": ["Harbour Party"],
        }
        assert await _visible(landlord, garden.id) == {
            "roles": ["tenant_admin", "tenant_member"],
            "units": ["Garden Club"],
            "name": ["Garden Club"],
        }
        store = landlord.store(harbour).open()
        try:
            async with store.engine.connect() as connection:
                assert await connection.scalar(text("SELECT count(*) FROM roles")) == 4, "both tenants' rows"
        finally:
            await store.dispose()
        # Each snapshot is of the tenant's own layers' tables, not of everything the store holds.
        harbour_tables = set((await landlord.snapshots(harbour.id))[-1].description["tables"])
        garden_tables = set((await landlord.snapshots(garden.id))[-1].description["tables"])
        assert {"roles", "units", "groups"} <= garden_tables and "groups" not in harbour_tables
        assert "layer_version_template_community_group" not in harbour_tables

    shared_installation.run(scenario)


def test_a_shared_tenant_whose_recipe_is_at_its_heads_in_the_store_applies_nothing_and_is_checked_while_seeded(
    shared_installation: Installation,
) -> None:
    """The tenants before it brought the store's tables for its template and modules to their
    heads: the second tenant of a recipe passes the steps that would apply them, and its health
    check is done as it is seeded, yet its snapshot, layers and rows are a first tenant's."""

    async def scenario(landlord: Landlord) -> None:
        first, job = await landlord.provision("harbour-party")
        assert "already at their heads" not in details(job)["allocate store"], "the first brings them"
        second, job = await landlord.provision("river-party", name="River Party")
        steps = details(job)
        assert job.status == JobStatus.SUCCEEDED and second.status == TenantStatus.ACTIVE, job.error
        assert steps["allocate store"].endswith("its 5 layers already at their heads"), steps[
            "allocate store"
        ]
        assert steps["basic"] == "already up to date (basic)"
        assert steps["modules"].startswith("already up to date (modules/")
        assert steps["health check"] == "5 layers at their heads; root unit present (checked while seeding)"
        assert [step.status for step in job.steps] == [StepStatus.SUCCEEDED] * len(job.steps)
        assert await _visible(landlord, second.id) == {
            "roles": ["tenant_admin", "tenant_member"],
            "units": ["River Party"],
            "name": ["River Party"],
        }
        snapshots = [(await landlord.snapshots(tenant.id))[-1].sha256 for tenant in (first, second)]
        assert snapshots[0] == snapshots[1], "the same tables, the same snapshot"
        assert await _layers(landlord, second.id) == await _layers(landlord, first.id), "its layers recorded"

    shared_installation.run(scenario)


def test_removing_a_shared_tenant_removes_its_rows_only_and_never_the_store(
    shared_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        harbour, _ = await landlord.provision("harbour-party")
        garden, _ = await landlord.provision("garden-club", "community_group")
        location = landlord.store(harbour)

        with pytest.raises(InvalidInput, match="other tenants"):
            await drop_store(location)
        await remove_tenant_rows(location, harbour.id)

        assert await _visible(landlord, harbour.id) == {"roles": [], "units": [], "name": []}
        assert (await _visible(landlord, garden.id))["units"] == ["Garden Club"]

    shared_installation.run(scenario)


def test_a_tenant_with_a_custom_layer_cannot_be_shared(
    shared_installation: Installation, tmp_path: Path
) -> None:
    layers = tmp_path / "layers"
    shutil.copytree(PROJECT_ROOT / "layers", layers)
    (layers / "custom" / "odd-one" / "versions").mkdir(parents=True)

    async def scenario(landlord: Landlord) -> None:
        landlord = landlord.with_settings(layers_dir=layers)
        tenant, job = await landlord.provision("odd-one")
        assert job.status == JobStatus.FAILED
        assert "custom layer" in (job.error or "")
        assert tenant.status == TenantStatus.FAILED

    shared_installation.run(scenario)


@pytest.mark.parametrize(
    "shared_installation", [p for p in SHARED_MODES if p.id == POSTGRES_SHARED], indirect=True
)
def test_row_level_security_holds_for_the_application_role(shared_installation: Installation) -> None:
    """The second wall, tested as the role the portal connects with: it owns nothing, is no
    superuser, and sees and writes only the rows of the tenant its transaction names."""

    async def scenario(landlord: Landlord) -> None:
        harbour, _ = await landlord.provision("harbour-party")
        garden, _ = await landlord.provision("garden-club", "community_group")
        location = landlord.store(harbour)
        assert location.app_url and location.app_role
        dsn = make_url(location.app_url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn)
        try:
            role = await connection.fetchrow(
                "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
            )
            assert (role["rolsuper"], role["rolbypassrls"]) == (False, False)
            owned = await connection.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user"
            )
            assert owned == 0

            assert await connection.fetchval("SELECT count(*) FROM roles") == 0, "no tenant named, no rows"
            async with connection.transaction():
                await connection.execute("SELECT set_config('tenantry.tenant_id', $1, true)", str(harbour.id))
                tenants = await connection.fetch("SELECT DISTINCT tenant_id FROM units")
                assert [row["tenant_id"] for row in tenants] == [harbour.id]
                with pytest.raises(asyncpg.InsufficientPrivilegeError):  # WITH CHECK refuses it
                    await connection.execute(
                        "INSERT INTO roles (tenant_id, key, name) VALUES ($1, 'spy', 'Spy')", garden.id
                    )
            async with connection.transaction():
                await connection.execute("SELECT set_config('tenantry.tenant_id', $1, true)", str(harbour.id))
                moved = await connection.execute(
                    "UPDATE units SET name = 'Taken' WHERE tenant_id = $1", garden.id
                )
                assert moved == "UPDATE 0"
            await connection.execute("SET row_security = off")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.fetch("SELECT * FROM roles")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.execute("ALTER TABLE roles DISABLE ROW LEVEL SECURITY")
        finally:
            await connection.close()
        assert (await _visible(landlord, garden.id))["units"] == ["Garden Club"]

        store = location.open()
        try:
            async with store.engine.connect() as owner:
                forced = await owner.scalar(
                    text(
                        "SELECT bool_and(relforcerowsecurity) FROM pg_class WHERE relname IN ('roles', 'units')"
                    )
                )
                assert forced is True
        finally:
            await store.dispose()

    shared_installation.run(scenario)


@pytest.mark.parametrize(
    "shared_installation", [p for p in SHARED_MODES if p.id == POSTGRES_SHARED], indirect=True
)
def test_an_application_role_a_crash_left_unfinished_is_made_whole_by_the_next_shared_tenant(
    shared_installation: Installation,
) -> None:
    """Its right to connect is granted last: a role without it was cut short, and the next shared
    tenant makes it again, that right last of all."""

    async def scenario(landlord: Landlord) -> None:
        harbour, _ = await landlord.provision("harbour-party")
        location = landlord.store(harbour)
        owner = make_url(location.url).set(drivername="postgresql").render_as_string(hide_password=False)
        granted = """SELECT count(*) FROM pg_database d, aclexplode(d.datacl) a, pg_roles r
                     WHERE d.datname = $1 AND r.rolname = $2 AND a.grantee = r.oid
                       AND a.privilege_type = 'CONNECT'"""
        connection = await asyncpg.connect(owner)
        try:
            assert await connection.fetchval(granted, location.name, location.app_role) == 1
            await connection.execute(
                f'REVOKE CONNECT ON DATABASE "{location.name}" FROM "{location.app_role}"'
            )
            assert await connection.fetchval(granted, location.name, location.app_role) == 0

            garden, job = await landlord.provision("garden-club", "community_group")
            assert job.status == JobStatus.SUCCEEDED, job.error
            assert await connection.fetchval(granted, location.name, location.app_role) == 1, "made whole"
        finally:
            await connection.close()
        assert (await _visible(landlord, garden.id))["units"] == ["Garden Club"]

    shared_installation.run(scenario)
