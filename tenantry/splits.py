"""`tenantry split SLUG --unit UNIT --into NEW_SLUG [--name NAME] [--dry-run]`: a unit subtree split
off into a new tenant (services.moves.split). The dry run prints what would move and changes
nothing; the split itself runs here with the embedded broker, each step said as it ended, or goes
to the workers with Redis or RabbitMQ."""

from __future__ import annotations

import argparse
import asyncio

from services.models import JobStatus
from services.moves import recorded
from services.moves.split import SplitPlan, SplitTarget, plan_split
from services.settings import Settings
from services.tenancy.tenants import get_tenant
from tenantry.landlord import landlord_sending_jobs, open_landlord, operator, run_job_here


def print_plan(plan: SplitPlan) -> None:
    print(
        f"Split {plan.unit_name} (unit #{plan.unit_id}) of {plan.tenant.slug} off into {plan.into} "
        f"({plan.name}, {plan.isolation} isolation): {plan.rows_moving:,} rows leave {plan.tenant.slug}."
    )
    print("  table: moving, copied, staying")
    for table in plan.tables:
        print(f"  {table.name}: {table.moving:,}, {table.copied:,}, {table.staying:,}")
    print(f"People who follow their units: {len(plan.followers)}")
    for person in plan.followers:
        where = "deactivated in the source" if person.leaves_source else "stays a member of the source too"
        print(f"  {person.email} ({person.role}): {where}")
    print(f"Conflicts: {len(plan.cleared)}")
    for cleared in plan.cleared:
        print(f"  {cleared}")
    if plan.refusals:
        print(f"Refused: {len(plan.refusals)}")
        for refusal in plan.refusals:
            print(f"  {refusal}")
    print(plan.removed_from_source)
    print(plan.people_follow)


async def _dry_run(settings: Settings, args: argparse.Namespace) -> int:
    database = await open_landlord(settings)
    try:
        async with database.session() as session:
            tenant = await get_tenant(session, args.slug)
            plan = await plan_split(session, settings, tenant, args.unit, SplitTarget(args.into, args.name))
    finally:
        await database.dispose()
    print_plan(plan)
    return 1 if plan.refusals else 0


async def _split(settings: Settings, args: argparse.Namespace) -> int:
    async with landlord_sending_jobs(settings) as (database, queue):
        async with database.session() as session:
            tenant = await get_tenant(session, args.slug)
            requested = await recorded.split(
                session, settings, operator(), tenant, args.unit, SplitTarget(args.into, args.name)
            )
        print_plan(requested.plan)
        print(requested.message)
        print(f"Split job #{requested.job.id}:")
        if queue is not None:
            print("  The workers have its job: follow it on the tenant's page or at /api/v1/jobs/{id}.")
            return 0
        job = await run_job_here(
            database, settings, requested.job.id, tenant.id, f"the split of {tenant.slug}"
        )
        if job.status != JobStatus.SUCCEEDED:
            return 1
        print(f"Split: {requested.new_tenant.slug} is active; {tenant.slug} is active again.")
        return 0


def cmd_split(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_dry_run(settings, args) if args.dry_run else _split(settings, args))


def add_split_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    split = commands.add_parser(
        "split",
        help="split a unit subtree off into a new tenant (same template and modules); --dry-run first",
    )
    split.add_argument("slug", help="the tenant's slug")
    split.add_argument("--unit", required=True, help="the unit whose subtree goes: its id, or its name")
    split.add_argument("--into", required=True, help="the new tenant's slug")
    split.add_argument("--name", help="the new tenant's name; default: the unit's")
    split.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would move, and why not if it cannot; nothing changes",
    )
    split.set_defaults(run=cmd_split)
