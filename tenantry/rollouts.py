"""`tenantry rollout …`: plan, start and follow rollouts from the command line. With a Redis or
RabbitMQ broker the tenants' jobs go to the workers; with the embedded broker (whose worker lives
in the portal's process) `start`, `resume` and `rollback` run them here, saying each tenant's end."""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import command_line_actor
from services.errors import Conflict
from services.models import Rollout
from services.rollouts import recorded
from services.rollouts.drift_checks import DriftSummary, check_drift
from services.rollouts.plans import RolloutPlan, RolloutSpec, describe_target, plan_rollout
from services.rollouts.runs import run_here, tenants_of
from services.settings import Settings
from services.tenancy.tenants import get_tenant
from tenantry.landlord import (
    add_selection_options,
    landlord_sending_jobs,
    open_landlord,
    operator,
    selection_of,
)

Work = Callable[[AsyncSession], Awaitable[Rollout]]


def _spec(args: argparse.Namespace) -> RolloutSpec:
    return RolloutSpec(
        layer=args.layer,
        revision=args.revision,
        selection=selection_of(args),
        canary=args.canary,
        wave_size=args.wave_size,
        concurrency=args.concurrency,
        per_server=args.per_server,
        halt_after_failures=args.halt_after or None,
        halt_failure_percent=args.halt_percent,
        lock_timeout_ms=args.lock_timeout_ms,
        statement_timeout_ms=args.statement_timeout_ms,
        backup_first=args.backup_first,
    )


def _print_plan(plan: RolloutPlan) -> None:
    spec = plan.spec
    print(f"Rollout plan: {spec.target}; {spec.selection}")
    print(
        f"  {len(plan.tenants)} tenant(s) in {plan.waves} wave(s); {plan.at_target} already at the target; "
        f"estimated {plan.estimate_seconds:.1f} s"
    )
    for tenant in plan.tenants:
        steps = ", ".join(f"{step.layer} {step.revision} ({step.direction})" for step in tenant.steps)
        shared = f" [shared store {tenant.shared_store}]" if tenant.shared_store else ""
        print(f"  wave {tenant.wave}: {tenant.slug}{shared}: {steps}")
    for refusal in plan.refused:
        print(f"  refused: {refusal.slug} — {refusal.why}")


async def _print_rollout(session: AsyncSession, rollout: Rollout) -> None:
    print(f"Rollout #{rollout.id}: {rollout.status} — {describe_target(rollout)}")
    if rollout.note:
        print(f"  {rollout.note}")
    rows = await tenants_of(session, rollout.id)
    counts = Counter(row.status for row in rows)
    print("  " + ", ".join(f"{count} {status}" for status, count in sorted(counts.items())))
    for row in rows:
        took = f" in {row.duration_seconds:.2f} s" if row.duration_seconds is not None else ""
        said = row.error or row.detail or ""
        print(f"  wave {row.wave}: {row.tenant.slug}: {row.status}{took}{': ' + said if said else ''}")


def _run(settings: Settings, work: Work, *, runs_jobs: bool) -> None:
    """Do `work` in one landlord transaction, then have its jobs run: by the workers, or here."""

    async def go() -> None:
        async with landlord_sending_jobs(settings) as (database, queue):
            async with database.session() as session:
                rollout = await work(session)
            if runs_jobs and queue is None:
                rollout = await run_here(database, settings, rollout.id)
            async with database.session() as session:
                await _print_rollout(session, await recorded.find_rollout(session, rollout.id))
            if queue is not None and runs_jobs:
                print(f"  The workers have its jobs: follow it with `tenantry rollout status {rollout.id}`.")

    asyncio.run(go())


def cmd_plan(settings: Settings, args: argparse.Namespace) -> None:
    async def go() -> None:
        database = await open_landlord(settings)
        try:
            async with database.session() as session:
                _print_plan(await plan_rollout(session, settings, _spec(args)))
        finally:
            await database.dispose()

    asyncio.run(go())


def start_default_rollout(settings: Settings) -> None:
    """Every layer of every tenant to its head, with the default plan (TENANTRY_AUTO_ROLLOUT)."""
    try:
        _run(
            settings,
            lambda session: recorded.start(session, settings, operator(), RolloutSpec()),
            runs_jobs=True,
        )
    except Conflict as nothing:
        print(f"No rollout started: {nothing.message}")


def cmd_start(settings: Settings, args: argparse.Namespace) -> None:
    _run(settings, lambda session: recorded.start(session, settings, operator(), _spec(args)), runs_jobs=True)


def cmd_status(settings: Settings, args: argparse.Namespace) -> None:
    async def go() -> None:
        database = await open_landlord(settings)
        try:
            async with database.session() as session:
                if args.id is not None:
                    await _print_rollout(session, await recorded.find_rollout(session, args.id))
                    return
                latest = await session.scalars(select(Rollout).order_by(Rollout.id.desc()).limit(10))
                rollouts = list(latest)
                if not rollouts:
                    print("No rollouts yet. Plan one: tenantry rollout plan")
                for rollout in rollouts:
                    await _print_rollout(session, rollout)
        finally:
            await database.dispose()

    asyncio.run(go())


def _change(name: str) -> Callable[[Settings, argparse.Namespace], None]:
    def command(settings: Settings, args: argparse.Namespace) -> None:
        if name == "rollback":
            work: Work = lambda session: recorded.roll_back(session, settings, operator(), args.id)  # noqa: E731
        else:
            change = getattr(recorded, name)
            work = lambda session: change(session, operator(), args.id)  # noqa: E731
        _run(settings, work, runs_jobs=name in ("resume", "rollback"))

    return command


def cmd_drift(settings: Settings, args: argparse.Namespace) -> int:
    """Check tenants for drift here; exit 1 when any has drifted (a deploy script can stop on it)."""

    async def go() -> DriftSummary:
        database = await open_landlord(settings)
        try:
            ids = None
            if args.tenant:
                async with database.session() as session:
                    ids = [(await get_tenant(session, slug)).id for slug in args.tenant]
            return await check_drift(
                database, settings, tenant_ids=ids, requested_by=command_line_actor().email
            )
        finally:
            await database.dispose()

    summary = asyncio.run(go())
    print(f"Drift check: {summary.checked} tenant(s) checked, {len(summary.drifted)} drifted.")
    for slug, why in summary.unchecked.items():
        print(f"  {slug}: not checked, {why}")
    for check in summary.drifted:
        print(f"  {summary.slugs[check.tenant_id]} (check #{check.id}):")
        for difference in check.differences:
            print(f"    {difference}")
    return 1 if summary.drifted else 0


def add_rollout_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    drift = commands.add_parser("drift", help="compare tenant stores with what their layers should give")
    drift.add_argument("--tenant", action="append", default=[], help="only this tenant's slug (repeatable)")
    drift.set_defaults(run=cmd_drift)
    actions = commands.add_parser("rollout", help="take layer revisions to tenants in waves").add_subparsers(
        dest="rollout_command", required=True, metavar="ACTION"
    )
    for name, help_text, run in (
        (
            "plan",
            "the dry run: which tenants, which revisions, which waves, how long; nothing changes",
            cmd_plan,
        ),
        ("start", "start a rollout (its tenants run here with the embedded broker)", cmd_start),
    ):
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument("--layer", help="one layer (basic, templates/x, modules/x); default: every layer")
        parser.add_argument(
            "--revision", help="the revision that layer goes to, up or down; default: its head"
        )
        add_selection_options(
            parser, servers_flag="--server", servers_help="only tenants with this server (repeatable)"
        )
        defaults = RolloutSpec()
        parser.add_argument("--canary", type=int, default=defaults.canary)
        parser.add_argument("--wave-size", type=int, default=defaults.wave_size)
        parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
        parser.add_argument("--per-server", type=int, default=defaults.per_server)
        parser.add_argument(
            "--halt-after", type=int, default=defaults.halt_after_failures, help="failed tenants; 0: never"
        )
        parser.add_argument("--halt-percent", type=int, help="failed share of a wave")
        parser.add_argument("--lock-timeout-ms", type=int, default=defaults.lock_timeout_ms)
        parser.add_argument("--statement-timeout-ms", type=int, default=defaults.statement_timeout_ms)
        parser.add_argument(
            "--backup-first", action="store_true", help="a verified backup of each tenant first"
        )
        parser.set_defaults(run=run)
    status = actions.add_parser("status", help="a rollout's tenants, or the latest rollouts")
    status.add_argument("id", type=int, nargs="?")
    status.set_defaults(run=cmd_status)
    for name, help_text in (
        ("pause", "no tenant starts; those migrating finish"),
        ("resume", "go on with a paused or halted rollout"),
        ("cancel", "the tenants not started are skipped"),
        ("rollback", "take back exactly the tenants the rollout moved"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("id", type=int)
        action.set_defaults(run=_change(name))
