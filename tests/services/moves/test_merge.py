"""Merging a tenant into another, as a landlord admin does: the dry run names the values that clash
and how each is resolved, the job takes a verified safety backup of both, puts A's rows into B under
a unit for A's root with new ids, in one transaction checked before it commits, and A's people
come along; A is left as it was."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.audit import Actor, Caller
from services.errors import Conflict
from services.models import AuditEntry, Backup, JobStatus, TenantLock, TenantStatus, Verification
from services.moves import merge as _merge_jobs  # noqa: F401  (registers the merge job)
from services.moves import recorded
from services.moves.merge import plan_merge
from tests.services.backups.support import MODULES, TEMPLATE, add, fill
from tests.services.moves.support import content_of
from tests.services.provisioning.installation import Installation, Landlord, query

#: Tables whose rows come along (not B's settings, log, roles, nor Zoë's profile, B's already).
COME_ALONG = ["units", "venues", "events", "event_registrations", "finance_accounts", "budgets"]


def test_a_tenant_merges_into_another_under_a_unit_for_its_root(installation: Installation) -> None:
    installation.run(merged)


def test_tenants_in_a_shared_store_merge_beside_their_neighbours(shared_installation: Installation) -> None:
    shared_installation.run(merged)


async def merged(landlord: Landlord) -> None:
    """otter-club (A) into harbour-club (B), both filled alike: three unique values clash."""
    source, _ = await landlord.provision("otter-club", TEMPLATE, MODULES)
    target, _ = await landlord.provision("harbour-club", TEMPLATE, MODULES)
    for tenant in (source, target):
        await fill(landlord.store(tenant), tenant)
    a_before = await content_of(landlord.store(source), source)
    b_before = await content_of(landlord.store(target), target)

    async with landlord.database.session() as session:
        plan = await plan_merge(session, landlord.settings, source, target)
    assert plan.refusals == []
    assert set(plan.renamed) == {
        "venues #1 of otter-club: its name 'Boathouse' is taken: it comes in as 'Boathouse (otter-club)'",
        "venues #2 of otter-club: its name 'Pier hall' is taken: it comes in as 'Pier hall (otter-club)'",
        "finance_accounts #1 of otter-club: its code '4000' is taken: it comes in as '4000 (otter-club)'",
    }
    assert (plan.matched_people, plan.new_people) == (1, 0)

    async with landlord.database.session() as session:
        caller = Caller(Actor(email="admin@landlord.example"))
        requested = await recorded.merge(session, landlord.settings, caller, source, target)
    job = await landlord.perform(requested.job.id, target.id)

    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None), [(s.name, s.error) for s in job.steps]
    source, target = await landlord.tenant(source.id), await landlord.tenant(target.id)
    assert (source.status, target.status) == (TenantStatus.ACTIVE, TenantStatus.ACTIVE)
    assert await content_of(landlord.store(source), source) == a_before, "A is left as it was"
    after = await content_of(landlord.store(target), target)
    for table in COME_ALONG:
        assert after[table][0] == a_before[table][0] + b_before[table][0], table
    for table in ("settings", "roles", "users"):
        assert after[table] == b_before[table], table
    own = f" AND tenant_id = {target.id}" if landlord.store(target).is_shared else ""
    [(root_id, root_path)] = await query(
        landlord.store(target), f"SELECT id, path FROM units WHERE parent_id IS NULL{own}"
    )
    placed = await query(
        landlord.store(target),
        f"SELECT u.path FROM units u WHERE u.name = 'Otter Club' AND u.parent_id = {root_id}{own}",
    )
    assert len(placed) == 1 and placed[0][0].startswith(root_path)
    async with landlord.database.session() as session:
        backups = list(await session.scalars(select(Backup).where(Backup.job_id == job.id)))
        actions = set(
            await session.scalars(select(AuditEntry.action).where(AuditEntry.tenant_id == target.id))
        )
    assert {b.tenant_id for b in backups} == {source.id, target.id}
    assert all(b.verification == Verification.VERIFIED for b in backups)
    assert {"tenant.merge", "tenant.merged"} <= actions


def test_a_merge_between_templates_is_refused(sqlite_installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        source, _ = await landlord.provision("otter-club", TEMPLATE, MODULES)
        target, _ = await landlord.provision("harbour-party", "political_party", [])
        async with landlord.database.session() as session:
            with pytest.raises(Conflict, match="same template"):
                await plan_merge(session, landlord.settings, source, target)

    sqlite_installation.run(scenario)


def test_a_merge_that_fails_after_its_safety_backups_leaves_both_tenants_as_they_were(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        source, _ = await landlord.provision("otter-club", TEMPLATE, MODULES)
        target, _ = await landlord.provision("harbour-club", TEMPLATE, MODULES)
        async with landlord.database.session() as session:
            caller = Caller(Actor(email="admin@landlord.example"))
            requested = await recorded.merge(session, landlord.settings, caller, source, target)
        # Written after the dry run, before the job: a name B has, with no room left to rename it.
        long_name = "N" * 200
        for tenant in (source, target):
            await add(landlord.store(tenant), tenant, "venues", name=long_name)
        a_before = await content_of(landlord.store(source), source)
        b_before = await content_of(landlord.store(target), target)

        job = await landlord.perform(requested.job.id, target.id)

        assert job.status == JobStatus.FAILED and "cannot be renamed to fit" in (job.error or "")
        steps = {step.name: step.status for step in job.steps}
        assert steps["target verify"] == "succeeded" and steps["merge"] == "pending"
        source, target = await landlord.tenant(source.id), await landlord.tenant(target.id)
        assert (source.status, target.status) == (TenantStatus.ACTIVE, TenantStatus.ACTIVE)
        assert await content_of(landlord.store(source), source) == a_before
        assert await content_of(landlord.store(target), target) == b_before
        async with landlord.database.session() as session:
            assert await session.scalar(select(TenantLock).where(TenantLock.tenant_id == source.id)) is None

    sqlite_installation.run(scenario)
