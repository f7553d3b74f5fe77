"""`tenantry move-plan …`: move many tenants to one kind of store, batch after batch, from the
command line: the dry run, then start, follow, pause, resume and cancel. With a Redis or RabbitMQ
broker the tenants' moves go to the workers; with the embedded broker (whose worker lives in the
portal's process) `start` and `resume` run them here and say how each tenant's move ended."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.models import IsolationMode, MovePlan, MovePlanStatus, MovePlanTenant, MovePlanTenantStatus
from services.moves import recorded
from services.moves.plans import (
    MovePlanPreview,
    MovePlanReport,
    MovePlanSpec,
    PlannedMove,
    describe_target,
    list_plans,
    plan_moves,
    plan_report,
    run_here,
)
from services.moves.requests import MoveTarget
from services.selection import Selection
from services.settings import Settings
from services.tenancy.stores import POSTGRESQL, SQLITE
from tenantry.landlord import (
    add_selection_options,
    landlord_sending_jobs,
    open_landlord,
    operator,
    selection_of,
)

Work = Callable[[AsyncSession], Awaitable[MovePlan]]

#: The tables named beside a tenant's rows in the dry run, biggest first.
BIGGEST_TABLES = 3
#: The plans `status` lists without an id, newest first.
LATEST_PLANS = 10


def _spec(args: argparse.Namespace) -> MovePlanSpec:
    return MovePlanSpec(
        selection=selection_of(args),
        target=MoveTarget(args.to, args.backend, args.server),
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        halt_after_failures=args.halt_after,
    )


def _seconds(ms: int | None) -> str:
    return "?" if ms is None else f"{ms / 1000:.1f} s"


def _counts(counts: Counter[str]) -> str:
    said = ", ".join(f"{counts[status]} {status}" for status in MovePlanTenantStatus if counts[status])
    return said or "no tenant"


def _rows(tenant: PlannedMove) -> str:
    biggest = sorted(((rows, table) for table, rows in tenant.rows.items() if rows), reverse=True)
    tables = ", ".join(f"{table} {rows:,}" for rows, table in biggest[:BIGGEST_TABLES])
    return f"{tenant.total_rows:,} rows" + (f" ({tables})" if tables else "")


def _print_preview(settings: Settings, preview: MovePlanPreview) -> None:
    spec = preview.spec
    print(
        f"Move plan, dry run: {spec.selection} → {describe_target(settings, spec.target)}; nothing is recorded."
    )
    print(
        f"  {len(preview.tenants)} tenant(s) in {preview.batches} batch(es) of up to {spec.batch_size}, "
        f"{spec.concurrency} at a time; {preview.total_rows:,} rows; "
        f"estimated {preview.estimate_seconds:.1f} s ({preview.throughput})"
    )
    for tenant in preview.tenants:
        print(f"  batch {tenant.batch + 1}: {tenant.slug} → {tenant.going}; {_rows(tenant)}")
    for refusal in preview.refused:
        print(f"  refused: {refusal.slug} — {refusal.why}")
    halt = spec.halt_after_failures
    print(f"  It halts after {halt} failed tenant(s)." if halt else "  It never halts by itself.")


def _took(started: datetime | None, finished: datetime | None) -> str:
    if started is None or finished is None:
        return ""
    return f" in {(finished - started).total_seconds():.1f} s"


def _print_tenant(row: MovePlanTenant) -> None:
    batch = f"batch {row.batch + 1}: " if row.status != MovePlanTenantStatus.REFUSED else ""
    said = f"  {batch}{row.tenant.slug}: {row.status}{_took(row.started_at, row.finished_at)}"
    move = row.move
    if move is not None and row.status == MovePlanTenantStatus.MOVED:
        said += f"; {move.rows or 0:,} rows, its writes waited {_seconds(move.freeze_ms)}"
    elif row.status == MovePlanTenantStatus.QUEUED:
        said += f"; {sum(row.planned_rows.values()):,} rows to move"
    if row.error:
        said += f": {row.error}"
    print(said)


def _print_plan_line(settings: Settings, plan: MovePlan) -> None:
    target = describe_target(settings, MovePlanSpec.of(plan).target)
    print(f"Move plan #{plan.id}: {plan.status} — {Selection.of(plan.selection)} → {target}")


def _print_report(settings: Settings, report: MovePlanReport) -> None:
    plan = report.plan
    _print_plan_line(settings, plan)
    if plan.note:
        print(f"  {plan.note}")
    said = f"  {report.summary}; {report.rows_moved:,} rows moved"
    if report.moved:
        said += (
            f"; writes waited p50 {_seconds(report.freeze_ms(0.5))}, p95 {_seconds(report.freeze_ms(0.95))}"
        )
    print(said)
    for row in report.tenants:
        _print_tenant(row)


def _ended_badly(report: MovePlanReport) -> bool:
    """Whether the plan halted or a tenant failed to move; if so, said in one line on stderr."""
    failed = report.counts[MovePlanTenantStatus.FAILED]
    if report.plan.status != MovePlanStatus.HALTED and not failed:
        return False
    print(
        f"tenantry: move plan #{report.plan.id} is {report.plan.status}; {failed} tenant(s) failed to move.",
        file=sys.stderr,
    )
    return True


async def _run_moves_here(database: Database, settings: Settings, plan_id: int) -> None:
    # A failed move is said from its record (the plan's report): the traceback its job logs as it
    # fails would bury it in the operator's terminal.
    logging.disable(logging.ERROR)
    try:
        await run_here(database, settings, plan_id)
    finally:
        logging.disable(logging.NOTSET)


def _run(settings: Settings, work: Work, *, runs_moves: bool) -> int:
    """Do `work` in one landlord transaction, then have the plan's moves run: by the workers, or
    here. Exit 1 when they ran here and the plan halted or a tenant failed to move."""

    async def go() -> int:
        async with landlord_sending_jobs(settings) as (database, queue):
            async with database.session() as session:
                plan_id = (await work(session)).id
            ran_here = runs_moves and queue is None
            if ran_here:
                print(
                    f"Move plan #{plan_id}: its moves run here; its report follows when they have ended.",
                    flush=True,
                )
                await _run_moves_here(database, settings, plan_id)
            async with database.session() as session:
                report = await plan_report(session, plan_id)
            _print_report(settings, report)
            if runs_moves and queue is not None:
                print(f"  The workers have its moves: follow it with `tenantry move-plan status {plan_id}`.")
            return 1 if ran_here and _ended_badly(report) else 0

    return asyncio.run(go())


def cmd_dry_run(settings: Settings, args: argparse.Namespace) -> None:
    async def go() -> None:
        database = await open_landlord(settings)
        try:
            async with database.session() as session:
                _print_preview(settings, await plan_moves(session, settings, _spec(args)))
        finally:
            await database.dispose()

    asyncio.run(go())


def cmd_start(settings: Settings, args: argparse.Namespace) -> int:
    spec = _spec(args)
    return _run(
        settings, lambda session: recorded.start_plan(session, settings, operator(), spec), runs_moves=True
    )


def cmd_status(settings: Settings, args: argparse.Namespace) -> None:
    async def go() -> None:
        database = await open_landlord(settings)
        try:
            async with database.session() as session:
                if args.id is not None:
                    _print_report(settings, await plan_report(session, args.id))
                    return
                plans = await list_plans(session)
                if not plans:
                    print("No move plans yet. Try one: tenantry move-plan dry-run --to MODE")
                for plan, counts in plans[:LATEST_PLANS]:
                    _print_plan_line(settings, plan)
                    print(f"  {_counts(counts)}; started {plan.created_at:%Y-%m-%d %H:%M} UTC")
        finally:
            await database.dispose()

    asyncio.run(go())


def _change(name: str) -> Callable[[Settings, argparse.Namespace], int]:
    change = getattr(recorded, f"{name}_plan")

    def command(settings: Settings, args: argparse.Namespace) -> int:
        work: Work = lambda session: change(session, settings, operator(), args.id)  # noqa: E731
        return _run(settings, work, runs_moves=name == "resume")

    return command


def add_move_plan_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    actions = commands.add_parser(
        "move-plan", help="move many tenants to one kind of store, batch after batch"
    ).add_subparsers(dest="move_plan_command", required=True, metavar="ACTION")
    for name, help_text, run in (
        (
            "dry-run",
            "which tenants would move where, in which batches, their rows, how long; nothing is recorded",
            cmd_dry_run,
        ),
        ("start", "start a move plan (its moves run here with the embedded broker)", cmd_start),
    ):
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument(
            "--to", required=True, choices=[mode.value for mode in IsolationMode], help="the isolation mode"
        )
        parser.add_argument("--backend", choices=(SQLITE, POSTGRESQL), help="default: each tenant's own")
        parser.add_argument(
            "--server", help="a tenant server by name (TENANTRY_TENANT_SERVERS); default: each tenant's own"
        )
        add_selection_options(
            parser,
            servers_flag="--from-server",
            servers_help="only tenants on this tenant server, by name or address (repeatable)",
        )
        defaults = MovePlanSpec()
        parser.add_argument("--batch-size", type=int, default=defaults.batch_size, metavar="N")
        parser.add_argument("--concurrency", type=int, default=defaults.concurrency, metavar="N")
        halt = parser.add_mutually_exclusive_group()
        halt.add_argument(
            "--halt-after",
            type=int,
            default=defaults.halt_after_failures,
            metavar="N",
            help="halt once N tenants failed to move",
        )
        halt.add_argument(
            "--no-halt", dest="halt_after", action="store_const", const=None, help="never halt by itself"
        )
        parser.set_defaults(run=run)
    status = actions.add_parser("status", help="a move plan's report, or the latest plans")
    status.add_argument("id", type=int, nargs="?")
    status.set_defaults(run=cmd_status)
    for name, help_text in (
        ("pause", "no tenant starts moving; those moving finish"),
        ("resume", "go on with a paused or halted plan"),
        ("cancel", "the tenants not started are skipped; those moving finish"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("id", type=int)
        action.set_defaults(run=_change(name))
