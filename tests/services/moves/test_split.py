"""Splitting a district off into a tenant of its own, as a landlord admin does: the dry run says
what would go, the job carves it out of a verified safety backup into a new tenant, checks it,
then removes it from the source in one transaction; people follow their units."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.audit import Actor, Caller
from services.errors import Conflict, InvalidFields
from services.models import (
    AuditEntry,
    Backup,
    Job,
    JobStatus,
    Membership,
    Tenant,
    TenantStatus,
    User,
    Verification,
)
from services.moves import recorded
from services.moves import split as _split_jobs  # noqa: F401  (registers the split job)
from services.moves.split import SplitTarget, plan_split, request_split
from tests.services.backups.support import MODULES, TEMPLATE, Sql, add, fill
from tests.services.moves.support import content_of
from tests.services.provisioning.installation import Installation, Landlord, query


async def split(landlord: Landlord, tenant: Tenant, unit: str, into: str) -> tuple[Job, Tenant]:
    async with landlord.database.session() as session:
        caller = Caller(Actor(email="admin@landlord.example"), ip="192.0.2.7")
        requested = await recorded.split(session, landlord.settings, caller, tenant, unit, SplitTarget(into))
    job = await landlord.perform(requested.job.id, tenant.id)
    return job, await landlord.tenant(requested.new_tenant.id)


async def member_in_ward(landlord: Landlord, tenant: Tenant, email: str, *, also_root: bool = False) -> int:
    """Someone whose membership is the tenant's, assigned to the North ward (and the root)."""
    async with landlord.database.session() as session:
        account = User(email=email, password_hash="x")
        session.add(account)
        await session.flush()
        session.add(Membership(user_id=account.id, tenant_id=tenant.id, role="tenant_member"))
        account_id = account.id
    location = landlord.store(tenant)
    own = f"tenant_id = {tenant.id}" if location.is_shared else "1 = 1"
    role = Sql(f"(SELECT id FROM roles WHERE key = 'tenant_member' AND {own})")
    await add(location, tenant, "users", account_id=account_id, email=email, display_name=email, role_id=role)
    profile = Sql(f"(SELECT id FROM users WHERE account_id = {account_id} AND {own})")
    for unit in ["North ward"] + (["Root"] if also_root else []):
        where = "parent_id IS NULL" if unit == "Root" else f"name = '{unit}'"
        unit_id = Sql(f"(SELECT id FROM units WHERE {where} AND {own})")
        await add(location, tenant, "unit_assignments", user_id=profile, unit_id=unit_id)
    return account_id


async def memberships(landlord: Landlord, account_id: int) -> set[int]:
    async with landlord.database.session() as session:
        found = await session.scalars(select(Membership.tenant_id).where(Membership.user_id == account_id))
        return set(found)


def test_a_district_becomes_a_tenant_of_its_own_and_leaves_the_source(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, _ = await landlord.provision("harbour-club", TEMPLATE, MODULES)
        await fill(landlord.store(tenant), tenant)
        leaving = await member_in_ward(landlord, tenant, "wanda@harbour.example")
        staying = await member_in_ward(landlord, tenant, "rhys@harbour.example", also_root=True)
        before = await content_of(landlord.store(tenant), tenant)

        async with landlord.database.session() as session:
            plan = await plan_split(
                session, landlord.settings, tenant, "North district", SplitTarget("north-club")
            )
        moving = {table.name: table.moving for table in plan.tables if table.moving}
        assert moving == {
            "units": 2,
            "venues": 1,
            "events": 5,
            "event_registrations": 3,
            "unit_assignments": 2,
        }
        assert plan.refusals == [] and plan.cleared == []
        assert {(f.email, f.leaves_source) for f in plan.followers} == {
            ("wanda@harbour.example", True),
            ("rhys@harbour.example", False),
        }

        job, new = await split(landlord, tenant, "North district", "north-club")

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None), [(s.name, s.error) for s in job.steps]
        tenant = await landlord.tenant(tenant.id)
        assert (tenant.status, new.status, new.template, new.modules) == (
            TenantStatus.ACTIVE,
            TenantStatus.ACTIVE,
            tenant.template,
            tenant.modules,
        )
        new_store, source = landlord.store(new), landlord.store(tenant)
        units = await query(new_store, "SELECT id, parent_id, name, path FROM units ORDER BY id")
        # Renumbered in their old order: the ward was made before the district it now hangs under.
        assert units == [(1, 2, "North ward", "/2/1/"), (2, None, "North district", "/2/")]
        assert await query(new_store, "SELECT count(*) FROM events WHERE unit_id = 1 AND venue_id = 1") == [
            (5,)
        ]
        assert await query(new_store, "SELECT min(event_id), count(*) FROM event_registrations") == [(1, 3)]
        assert await query(new_store, "SELECT value FROM settings WHERE key = 'name'") == [
            ("North district",)
        ]
        after = await content_of(source, tenant)
        assert after["venues"][0] == 1 and "events" not in after and "event_registrations" not in after
        assert after["units"][0] == before["units"][0] - 2
        assert after["finance_accounts"] == before["finance_accounts"]
        own = f" AND tenant_id = {tenant.id}" if source.is_shared else ""
        assert await query(source, f"SELECT is_active FROM users WHERE account_id = {leaving}{own}") == [
            (False,)
        ]
        assert await memberships(landlord, leaving) == {new.id}
        assert await memberships(landlord, staying) == {tenant.id, new.id}

        async with landlord.database.session() as session:
            safety = await session.scalar(select(Backup).where(Backup.job_id == job.id))
            trail = list(await session.scalars(select(AuditEntry).where(AuditEntry.tenant_id == tenant.id)))
        said = {entry.action: entry.detail for entry in trail}
        assert said["tenant.split"] == {"unit": "North district", "into": "north-club", "job": job.id}
        assert said["tenant.split_off"] is not None and said["tenant.split_off"]["rows"] == 13
        assert safety is not None and safety.verification == Verification.VERIFIED
        assert safety.manifest is not None and safety.manifest["totals"]["rows"] == sum(
            rows for rows, _ in before.values()
        )

    installation.run(scenario)


def test_the_dry_run_names_what_is_refused_and_what_is_cleared(sqlite_installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, _ = await landlord.provision("harbour-club", TEMPLATE, MODULES)
        location = landlord.store(tenant)
        await fill(location, tenant)
        ward = Sql("(SELECT id FROM units WHERE name = 'North ward')")
        # A budget of the ward on an account that stays: its account cannot be empty.
        await add(
            location,
            tenant,
            "finance_accounts",
            code="5000",
            name="Ward",
            kind="expense",
            currency="EUR",
            unit_id=None,
        )
        await add(
            location,
            tenant,
            "budgets",
            account_id=Sql("(SELECT id FROM finance_accounts WHERE code = '5000')"),
            name="Ward season",
            period_start="2026-01-01",
            period_end="2026-12-31",
            amount=10,
            currency="EUR",
            unit_id=ward,
        )
        # An event of the root at a venue of the ward: its venue is cleared in the source.
        await add(
            location,
            tenant,
            "events",
            venue_id=Sql("(SELECT id FROM venues WHERE name = 'Boathouse')"),
            title="Root gala",
            starts_at="2026-06-01 18:00:00",
            status="draft",
            is_public=False,
            unit_id=Sql("(SELECT id FROM units WHERE parent_id IS NULL)"),
        )
        async with landlord.database.session() as session:
            plan = await plan_split(session, landlord.settings, tenant, "North ward", SplitTarget("ward"))
            assert [str(c) for c in plan.cleared] == [
                "events #6 stays but its venue_id names venues #1, which goes: cleared in the source"
            ]
            assert len(plan.refusals) == 1 and "budgets #2" in plan.refusals[0]
            with pytest.raises(Conflict):
                await request_split(session, landlord.settings, tenant, "North ward", SplitTarget("ward"))
            with pytest.raises(InvalidFields) as wrong:
                await plan_split(session, landlord.settings, tenant, "Nowhere", SplitTarget("harbour-club"))
            assert set(wrong.value.errors) == {"unit", "into"}
        assert await landlord.count(Tenant) == 1

    sqlite_installation.run(scenario)


def test_a_tree_of_folders_cut_by_the_split_has_its_paths_made_again_on_both_sides(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, _ = await landlord.provision("harbour-club", TEMPLATE, ["documents"])
        location = landlord.store(tenant)
        root = Sql("(SELECT id FROM units WHERE parent_id IS NULL)")
        await add(location, tenant, "units", parent_id=root, name="North", kind="district", path="/x/")
        north = Sql("(SELECT id FROM units WHERE name = 'North')")
        await add(location, tenant, "folders", parent_id=None, name="Archive", path="/1/", unit_id=north)
        await add(location, tenant, "folders", parent_id=1, name="Minutes", path="/1/2/", unit_id=root)
        await add(location, tenant, "folders", parent_id=2, name="2026", path="/1/2/3/", unit_id=root)
        await add(location, tenant, "folders", parent_id=1, name="Maps", path="/1/4/", unit_id=north)
        async with landlord.database.session() as session:
            plan = await plan_split(session, landlord.settings, tenant, "North", SplitTarget("north"))
        assert [str(cleared) for cleared in plan.cleared] == [
            "folders #2 stays but its parent_id names folders #1, which goes: cleared in the source"
        ]

        job, new = await split(landlord, tenant, "North", "north")

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None), [(s.name, s.error) for s in job.steps]
        source = landlord.store(await landlord.tenant(tenant.id))
        assert await query(source, "SELECT id, parent_id, path FROM folders ORDER BY id") == [
            (2, None, "/2/"),
            (3, 2, "/2/3/"),
        ]
        assert await query(
            landlord.store(new), "SELECT id, parent_id, name, path FROM folders ORDER BY id"
        ) == [
            (1, None, "Archive", "/1/"),
            (2, 1, "Maps", "/1/2/"),
        ]

    sqlite_installation.run(scenario)
