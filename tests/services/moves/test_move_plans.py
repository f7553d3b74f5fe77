"""Fleet moves, as a landlord admin plans them: a dry run that names every tenant, its rows and its
batch, and those that cannot move with why; then the plan run batch after batch, a few at a time,
halting when a move fails, and paused, resumed or cancelled on request."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import update

from services.errors import Conflict, InvalidFields
from services.models import (
    IsolationMode,
    MovePlan,
    MovePlanStatus,
    MovePlanTenantStatus,
    Tenant,
    TenantStatus,
)
from services.models.types import utcnow
from services.moves import plans
from services.moves import steps as _move_jobs  # noqa: F401  (registers the move job)
from services.moves.plans import MovePlanSpec, Throughput, plan_moves, plan_report, run_here, start_plan
from services.moves.requests import MoveTarget
from services.selection import Selection
from tests.services.backups.support import MODULES, TEMPLATE, fill
from tests.services.moves.support import Content, content_of, values_without_ids
from tests.services.provisioning.installation import SQLITE_AND_POSTGRES_LANDLORDS, Installation, Landlord

TO_SHARED = MoveTarget(IsolationMode.SHARED)
OWN_DATABASES = Selection(isolation=(IsolationMode.DATABASE,))


async def fleet(landlord: Landlord, slugs: list[str]) -> dict[str, tuple[Tenant, Content]]:
    """Tenants in databases of their own, each with rows in a dozen tables, and what they hold."""
    made = {}
    for slug in slugs:
        tenant, _job = await landlord.provision(slug, TEMPLATE, MODULES)
        await fill(landlord.store(tenant), tenant)
        made[slug] = (tenant, await content_of(landlord.store(tenant), tenant))
    return made


def replace_bytes(path: str, data: bytes) -> bytes:
    """Write `data` over the file at `path`; returns what it held."""
    before = Path(path).read_bytes()
    Path(path).write_bytes(data)
    return before


async def set_status(landlord: Landlord, tenant: Tenant, status: TenantStatus) -> None:
    async with landlord.database.session() as session:
        await session.execute(update(Tenant).where(Tenant.id == tenant.id).values(status=status))


async def start(landlord: Landlord, spec: MovePlanSpec) -> MovePlan:
    async with landlord.database.session() as session:
        preview = await plan_moves(session, landlord.settings, spec)
        return await start_plan(session, landlord.settings, preview, requested_by="admin@example.org")


def test_the_dry_run_names_each_tenant_its_rows_and_batch_and_each_refusal_with_why(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenants = await fleet(landlord, ["alder", "birch", "cedar", "dogwood"])
        await set_status(landlord, tenants["dogwood"][0], TenantStatus.SUSPENDED)
        spec = MovePlanSpec(OWN_DATABASES, TO_SHARED, batch_size=2, concurrency=1)

        async with landlord.database.session() as session:
            preview = await plan_moves(session, landlord.settings, spec)

        assert [(planned.slug, planned.batch) for planned in preview.tenants] == [
            ("alder", 0),
            ("birch", 0),
            ("cedar", 1),
        ]
        assert [(refusal.slug, refusal.why) for refusal in preview.refused] == [
            ("dogwood", "dogwood is suspended; only an active tenant moves.")
        ]
        alder_rows = {table: rows for table, (rows, _sha) in tenants["alder"][1].items()}
        assert {table: rows for table, rows in preview.tenants[0].rows.items() if rows} == alder_rows
        assert preview.tenants[0].going == "the shared SQLite store"
        assert preview.batches == 2 and preview.total_rows == 3 * sum(alder_rows.values())
        assert preview.throughput.measured_moves == 0 and preview.estimate_seconds > 0

        async with landlord.database.session() as session:  # a dry run changes nothing
            assert await plans.list_plans(session) == []

    sqlite_installation.run(scenario)


@pytest.mark.parametrize("installation", SQLITE_AND_POSTGRES_LANDLORDS, indirect=True)
def test_a_plan_moves_its_tenants_batch_after_batch_and_reports_each_one(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenants = await fleet(landlord, ["alder", "birch", "cedar"])
        values = {
            slug: await values_without_ids(landlord.store(tenant), tenant)
            for slug, (tenant, _) in tenants.items()
        }
        plan = await start(landlord, MovePlanSpec(OWN_DATABASES, TO_SHARED, batch_size=2, concurrency=2))

        plan = await run_here(landlord.database, landlord.settings, plan.id)

        assert plan.status == MovePlanStatus.FINISHED and plan.finished_at is not None
        async with landlord.database.session() as session:
            report = await plan_report(session, plan.id)
        assert [(row.tenant.slug, row.status) for row in report.tenants] == [
            (slug, MovePlanTenantStatus.MOVED) for slug in ("alder", "birch", "cedar")
        ]
        first_batch_done = max(row.finished_at or utcnow() for row in report.tenants if row.batch == 0)
        assert all(
            (row.started_at or first_batch_done) >= first_batch_done
            for row in report.tenants
            if row.batch == 1
        )
        assert all(row.started_at and row.finished_at for row in report.tenants)
        assert report.rows_moved == sum(
            rows for _, content in tenants.values() for rows, _sha in content.values()
        )
        assert report.freeze_ms(0.95) is not None
        for slug, (tenant, _) in tenants.items():
            moved = await landlord.tenant(tenant.id)
            assert (moved.isolation, moved.status) == (IsolationMode.SHARED, TenantStatus.ACTIVE)
            assert await values_without_ids(landlord.store(moved), moved) == values[slug]

        async with landlord.database.session() as session:
            again = await plan_moves(session, landlord.settings, MovePlanSpec(OWN_DATABASES, TO_SHARED))
        assert again.tenants == [] and again.throughput.measured_moves == 3

    installation.run(scenario)


def test_a_failed_move_halts_the_plan_with_its_tenant_wholly_in_its_old_store_and_resume_goes_on(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenants = await fleet(landlord, ["alder", "birch", "cedar"])
        plan = await start(
            landlord,
            MovePlanSpec(OWN_DATABASES, TO_SHARED, batch_size=1, concurrency=1, halt_after_failures=1),
        )
        # Alder's move is recorded, not yet run: its store goes bad before the worker takes it.
        broken = landlord.store(tenants["alder"][0])
        healthy_bytes = await asyncio.to_thread(replace_bytes, broken.name, b"not a database at all" * 100)

        plan = await run_here(landlord.database, landlord.settings, plan.id)

        assert plan.status == MovePlanStatus.HALTED
        assert plan.note == "Halted: 1 tenant(s) failed to move (the rule: halt after 1)."
        async with landlord.database.session() as session:
            report = await plan_report(session, plan.id)
        assert [row.status for row in report.tenants] == [
            MovePlanTenantStatus.FAILED,
            MovePlanTenantStatus.QUEUED,
            MovePlanTenantStatus.QUEUED,
        ]
        assert report.tenants[0].error
        alder = await landlord.tenant(tenants["alder"][0].id)
        assert (alder.isolation, alder.store_name, alder.status) == (
            IsolationMode.DATABASE,
            broken.name,
            TenantStatus.ACTIVE,
        )

        await asyncio.to_thread(replace_bytes, broken.name, healthy_bytes)
        async with landlord.database.session() as session:
            await plans.resume(session, landlord.settings, await plans.find_plan(session, plan.id))
        plan = await run_here(landlord.database, landlord.settings, plan.id)

        assert plan.status == MovePlanStatus.FINISHED
        async with landlord.database.session() as session:
            report = await plan_report(session, plan.id)
        assert [row.status for row in report.tenants] == [
            MovePlanTenantStatus.FAILED,
            MovePlanTenantStatus.MOVED,
            MovePlanTenantStatus.MOVED,
        ]

    sqlite_installation.run(scenario)


def test_a_paused_plan_starts_no_move_until_resumed_and_a_cancelled_one_skips_the_rest(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        await fleet(landlord, ["alder", "birch", "cedar"])
        plan = await start(landlord, MovePlanSpec(OWN_DATABASES, TO_SHARED, batch_size=3, concurrency=1))
        async with landlord.database.session() as session:
            await plans.pause(session, landlord.settings, await plans.find_plan(session, plan.id))

        plan = await run_here(landlord.database, landlord.settings, plan.id)

        # The move started with the plan finishes; no other starts while it is paused.
        async with landlord.database.session() as session:
            report = await plan_report(session, plan.id)
        assert plan.status == MovePlanStatus.PAUSED
        assert report.summary == "2 queued, 1 moved"
        async with landlord.database.session() as session:
            plan = await plans.find_plan(session, plan.id)
            try:
                await plans.pause(session, landlord.settings, plan)
                raise AssertionError("a paused plan paused again")
            except Conflict as refusal:
                assert refusal.message == f"Move plan #{plan.id} is paused; only a running plan pauses."
            await plans.resume(session, landlord.settings, plan)
        async with landlord.database.session() as session:
            await plans.cancel(session, landlord.settings, await plans.find_plan(session, plan.id))

        plan = await run_here(landlord.database, landlord.settings, plan.id)

        async with landlord.database.session() as session:
            report = await plan_report(session, plan.id)
        assert plan.status == MovePlanStatus.CANCELLED and plan.finished_at is not None
        assert report.summary == "2 moved, 1 skipped"

    sqlite_installation.run(scenario)


def test_a_plan_with_no_tenant_to_move_is_refused_and_a_wrong_spec_names_each_field(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        await fleet(landlord, ["alder"])
        nobody = MovePlanSpec(Selection(tenants=("nobody",)), TO_SHARED)
        try:
            await start(landlord, nobody)
            raise AssertionError("a plan of no tenant started")
        except Conflict as refusal:
            assert refusal.message == "Nothing to move: no selected tenant can move there."
        wrong = replace(MovePlanSpec(), batch_size=0, concurrency=0, target=MoveTarget("moon"))
        try:
            await start(landlord, wrong)
            raise AssertionError("a wrong plan started")
        except InvalidFields as refusal:
            assert set(refusal.errors) == {"isolation", "batch_size", "concurrency"}

    sqlite_installation.run(scenario)


def test_the_estimate_takes_what_every_move_pays_from_small_moves_and_the_rate_of_rows_from_large_ones() -> (
    None
):
    small_only = Throughput.of([(6, 0.6), (8, 0.5), (6, 0.7)])
    assert (small_only.seconds_per_move, small_only.rows_per_second) == (
        0.6,
        plans.UNMEASURED_ROWS_PER_SECOND,
    )
    assert "rows a second guessed" in str(small_only)

    with_large = Throughput.of([(6, 0.6), (8, 0.5), (6, 0.7), (20_600, 2.6)])
    assert with_large.seconds_per_move == 0.6 and with_large.rows_per_second == 20_600 / 2.0
    assert with_large.estimate_seconds(103_000) == 0.6 + 10.0
    assert str(with_large) == "from 4 move(s) measured here: 0.6 s a move and 10,300 rows a second"
