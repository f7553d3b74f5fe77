"""`tenantry split SLUG --unit UNIT --into NEW_SLUG [--name NAME] [--dry-run]`: a unit subtree split
off into a new tenant (services.moves.split); `tenantry merge SLUG --into OTHER [--dry-run]`: a
tenant's rows merged into another (services.moves.merge). The dry runs print what would move and
change nothing; the jobs run here with the embedded broker, each step said as it ended, or go to
the workers with Redis or RabbitMQ."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from services.db import Database
from services.models import JobStatus, Tenant
from services.moves import recorded
from services.moves.merge import MergePlan, plan_merge, target_named
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
    _print_conflicts_and_refusals(plan.cleared, plan.refusals)
    print(plan.removed_from_source)
    print(plan.people_follow)


def _print_conflicts_and_refusals(conflicts: Sequence[object], refusals: Sequence[object]) -> None:
    """A dry run's conflicts (each with how it is resolved), always counted, and its refusals if any."""
    print(f"Conflicts: {len(conflicts)}")
    for conflict in conflicts:
        print(f"  {conflict}")
    if refusals:
        print(f"Refused: {len(refusals)}")
        for refusal in refusals:
            print(f"  {refusal}")


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
        done = f"Split: {requested.new_tenant.slug} is active; {tenant.slug} is active again."
        return await _run(database, settings, queue is None, requested.job.id, tenant, done)


async def _run(
    database: Database, settings: Settings, here: bool, job_id: int, tenant: Tenant, done: str
) -> int:
    """The job run here (the embedded broker), its steps said and then `done`, or left to the
    workers; 1 when it failed."""
    if not here:
        print(f"  The workers have its job: follow it on {tenant.slug}'s page or at /api/v1/jobs/{job_id}.")
        return 0
    job = await run_job_here(database, settings, job_id, tenant.id, f"job #{job_id}")
    if job.status != JobStatus.SUCCEEDED:
        return 1
    print(done)
    return 0


def print_merge_plan(plan: MergePlan) -> None:
    print(f"Merge {plan.source.slug} into {plan.target.slug}: {plan.rows_coming:,} rows come in.")
    for name, rows in plan.tables.items():
        print(f"  {name}: {rows:,}")
    print(f"People: {plan.matched_people} of {plan.target.slug}'s already, {plan.new_people} coming in")
    _print_conflicts_and_refusals(plan.renamed, plan.refusals)
    print(plan.kept)


async def _merge(settings: Settings, args: argparse.Namespace) -> int:
    async with landlord_sending_jobs(settings) as (database, queue):
        async with database.session() as session:
            source = await get_tenant(session, args.slug)
            target = await target_named(session, args.into)
            if args.dry_run:
                plan = await plan_merge(session, settings, source, target)
                print_merge_plan(plan)
                return 1 if plan.refusals else 0
            requested = await recorded.merge(session, settings, operator(), source, target)
        print_merge_plan(requested.plan)
        print(f"Merge job #{requested.job.id}:")
        done = f"Merged: {source.slug}'s rows are in {target.slug}; {source.slug} is as it was."
        return await _run(database, settings, queue is None, requested.job.id, target, done)


def cmd_merge(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_merge(settings, args))


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
    merge = commands.add_parser(
        "merge", help="merge a tenant's rows into another of the same template; --dry-run first"
    )
    merge.add_argument("slug", help="the tenant whose rows go (it is left as it was)")
    merge.add_argument(
        "--into", required=True, help="the tenant they go into, under a unit for the first's root"
    )
    merge.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would come in, and why not if it cannot; nothing changes",
    )
    merge.set_defaults(run=cmd_merge)
