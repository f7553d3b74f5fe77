"""`tenantry move …` and `tenantry moves …`: move a tenant's store to another isolation mode or
backend, or back, and list a tenant's moves with their figures. With the embedded broker (whose
worker lives in the portal's process) the move's job runs here and its steps are said as they
ended; with a Redis or RabbitMQ broker it goes to the workers, sent when the request commits."""

from __future__ import annotations

import argparse
import asyncio

from services.db import Database
from services.errors import Conflict, InvalidInput
from services.models import IsolationMode, JobStatus, Tenant, TenantMove
from services.moves import recorded
from services.moves.requests import (
    MoveTarget,
    RequestedMove,
    describe_kind,
    from_kind,
    latest_done,
    may_move_back,
    moves_of,
    to_kind,
)
from services.settings import Settings
from services.tenancy.stores import POSTGRESQL, SQLITE
from services.tenancy.tenants import get_tenant
from tenantry.landlord import landlord_sending_jobs, open_landlord, operator, run_job_here


async def _request(settings: Settings, database: Database, args: argparse.Namespace) -> RequestedMove:
    """The move asked for, committed with its entry on the trail (its job is sent then)."""
    async with database.session() as session:
        tenant = await get_tenant(session, args.slug)
        if not args.back:
            target = MoveTarget(args.to, args.backend, args.server)
            return await recorded.move(session, settings, operator(), tenant, target)
        latest = latest_done(await moves_of(session, tenant))
        if latest is None:
            raise Conflict(f"{tenant.slug} has no finished move to take back.")
        return await recorded.move_back(session, settings, operator(), tenant, latest)


def _figures(settings: Settings, move: TenantMove) -> str:
    """What a move did, in one sentence: where from and to, its rows, how long the tenant waited."""
    said = f"{describe_kind(settings, from_kind(move))} → {describe_kind(settings, to_kind(move))}"
    if move.to_store:
        said += f" ({move.to_store})"
    if move.rows is not None and move.tables is not None:
        said += f"; {move.rows:,} rows in {move.tables} tables"
    if move.copy_ms is not None:
        said += f", copied in {move.copy_ms / 1000:.1f} s"
    if move.freeze_ms is not None:
        said += f"; its writes waited {move.freeze_ms / 1000:.1f} s"
    return said


def _old_store(move: TenantMove) -> str:
    """What became of the store the move left, as a sentence."""
    if move.old_store is None:
        return f"The tenant is in the store it was in, {move.from_store}."
    if move.kept_until is not None:
        return f"The store it left, {move.from_store}, is kept until {move.kept_until:%Y-%m-%d %H:%M} UTC."
    return f"The store it left, {move.from_store}, is {move.old_store}."


async def _run_here(database: Database, settings: Settings, requested: RequestedMove) -> int:
    """The move's job run in this process, as a worker runs it; its steps and figures said, and the
    exit code: 1 when it failed (the failed step's error on stderr)."""
    job = await run_job_here(
        database, settings, requested.job.id, requested.tenant.id, f"move #{requested.move.id}"
    )
    async with database.session() as session:
        move = await session.get_one(TenantMove, requested.move.id)
    if job.status != JobStatus.SUCCEEDED:
        return 1
    print(f"Moved: {_figures(settings, move)}.")
    print(f"{_old_store(move)} `tenantry move {requested.tenant.slug} --back` moves it back.")
    return 0


def cmd_move(settings: Settings, args: argparse.Namespace) -> int:
    if args.back and (args.backend or args.server):
        raise InvalidInput("--backend and --server go with --to: a move back goes where the move came from.")

    async def go() -> int:
        async with landlord_sending_jobs(settings) as (database, queue):
            requested = await _request(settings, database, args)
            print(requested.message)
            print(f"Move #{requested.move.id}, job #{requested.job.id}:")
            if queue is None:
                return await _run_here(database, settings, requested)
            print(f"  The workers have its job: follow it with `tenantry moves {requested.tenant.slug}`.")
            return 0

    return asyncio.run(go())


def _print_moves(settings: Settings, tenant: Tenant, moves: list[TenantMove]) -> None:
    if not moves:
        print(f"{tenant.slug} has never moved.")
        return
    latest = latest_done(moves)
    print(f"Moves of {tenant.slug}, newest first:")
    for move in moves:
        status = move.job.status if move.job is not None else "forgotten"
        back = f" (back of #{move.back_of})" if move.back_of is not None else ""
        print(f"  #{move.id}{back}: {status}: {_figures(settings, move)}")
        asked = f"asked by {move.requested_by or 'nobody known'} at {move.created_at:%Y-%m-%d %H:%M:%S} UTC"
        done = f", done at {move.finished_at:%Y-%m-%d %H:%M:%S} UTC" if move.finished_at else ""
        print(f"      {asked}{done}. {_old_store(move)}")
        if move.job is not None and move.job.error:
            print(f"      {move.job.error}")
        if may_move_back(move, tenant, latest):
            print(f"      `tenantry move {tenant.slug} --back` moves it back.")


def cmd_moves(settings: Settings, args: argparse.Namespace) -> None:
    async def go() -> None:
        database = await open_landlord(settings)
        try:
            async with database.session() as session:
                tenant = await get_tenant(session, args.slug)
                _print_moves(settings, tenant, await moves_of(session, tenant))
        finally:
            await database.dispose()

    asyncio.run(go())


def add_move_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    move = commands.add_parser(
        "move", help="move a tenant's store to another isolation mode, backend or server, or back (--back)"
    )
    move.add_argument("slug", help="the tenant's slug")
    where = move.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", choices=[mode.value for mode in IsolationMode], help="the isolation mode")
    where.add_argument(
        "--back", action="store_true", help="take the tenant's latest move back, to the store it left"
    )
    move.add_argument("--backend", choices=(SQLITE, POSTGRESQL), help="default: the one it is on")
    move.add_argument("--server", help="a tenant server by name (TENANTRY_TENANT_SERVERS); default: its own")
    move.set_defaults(run=cmd_move)
    moves = commands.add_parser("moves", help="a tenant's moves, newest first, with their figures")
    moves.add_argument("slug", help="the tenant's slug")
    moves.set_defaults(run=cmd_moves)
