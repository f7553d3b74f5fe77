"""Moves as a caller asks for them (the landlord portal, the API and the command line alike): the
request, and its entry on the audit trail in the same transaction. The job is sent when the
caller's transaction commits; its end is on the trail too (`tenant.moved`, with its figures).
Fleet plans likewise: started, paused, resumed and cancelled in the caller's name; and splits
(`tenant.split`, then `tenant.split_off` with what the split did) and merges (`tenant.merge`,
then `tenant.merged`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Caller, record_by
from services.models import MovePlan, Tenant, TenantMove
from services.moves import plans
from services.moves.merge import RequestedMerge, request_merge
from services.moves.plans import MovePlanSpec
from services.moves.requests import (
    MoveTarget,
    RequestedMove,
    describe_kind,
    from_kind,
    request_move,
    request_move_back,
)
from services.moves.split import RequestedSplit, SplitTarget, request_split
from services.settings import Settings


async def move(
    session: AsyncSession, settings: Settings, caller: Caller, tenant: Tenant, target: MoveTarget
) -> RequestedMove:
    """Move `tenant`'s store to `target`, for `caller` (`tenant.move`)."""
    requested = await request_move(session, settings, tenant, target, requested_by=caller.actor.email)
    await _on_the_trail(session, settings, caller, requested)
    return requested


async def move_back(
    session: AsyncSession, settings: Settings, caller: Caller, tenant: Tenant, move: TenantMove
) -> RequestedMove:
    """Take `move` of `tenant` back, for `caller` (`tenant.move`, naming the move taken back)."""
    requested = await request_move_back(session, settings, tenant, move, requested_by=caller.actor.email)
    await _on_the_trail(session, settings, caller, requested)
    return requested


async def _on_the_trail(
    session: AsyncSession, settings: Settings, caller: Caller, requested: RequestedMove
) -> None:
    move = requested.move
    detail = {
        "move": move.id,
        "from": describe_kind(settings, from_kind(move)),
        "to": requested.going,
        "job": requested.job.id,
    }
    if move.back_of is not None:
        detail["back_of"] = move.back_of
    await record_by(session, caller, "tenant.move", tenant=requested.tenant, detail=caller.with_token(detail))


async def split(
    session: AsyncSession, settings: Settings, caller: Caller, tenant: Tenant, unit: str, into: SplitTarget
) -> RequestedSplit:
    """Split `unit` of `tenant` off into a new tenant, for `caller` (`tenant.split`); see
    services.moves.split.request_split."""
    requested = await request_split(session, settings, tenant, unit, into, requested_by=caller.actor.email)
    detail = {"unit": requested.plan.unit_name, "into": requested.new_tenant.slug, "job": requested.job.id}
    await record_by(session, caller, "tenant.split", tenant=tenant, detail=caller.with_token(detail))
    return requested


async def merge(
    session: AsyncSession, settings: Settings, caller: Caller, source: Tenant, target: Tenant
) -> RequestedMerge:
    """Merge `source` into `target`, for `caller` (`tenant.merge`); see
    services.moves.merge.request_merge."""
    requested = await request_merge(session, settings, source, target, requested_by=caller.actor.email)
    detail = {"from": source.slug, "job": requested.job.id}
    await record_by(session, caller, "tenant.merge", tenant=target, detail=caller.with_token(detail))
    return requested


async def start_plan(
    session: AsyncSession, settings: Settings, caller: Caller, spec: MovePlanSpec
) -> MovePlan:
    """Make the plan's dry run and start it (`moveplan.start`). Raises InvalidFields for a wrong
    spec and Conflict when no selected tenant can move."""
    preview = await plans.plan_moves(session, settings, spec)
    plan = await plans.start_plan(session, settings, preview, requested_by=caller.actor.email)
    detail = {
        "target": plans.describe_target(settings, spec.target),
        "selection": str(spec.selection),
        "tenants": len(preview.tenants),
    }
    await record_by(
        session, caller, "moveplan.start", target=f"move plan #{plan.id}", detail=caller.with_token(detail)
    )
    return plan


async def _change_plan(
    session: AsyncSession,
    settings: Settings,
    caller: Caller,
    plan_id: int,
    action: str,
    change: Callable[[AsyncSession, Settings, MovePlan], Awaitable[None]],
) -> MovePlan:
    plan = await plans.find_plan(session, plan_id)
    await change(session, settings, plan)
    await record_by(session, caller, action, target=f"move plan #{plan.id}", detail=caller.with_token({}))
    return plan


async def pause_plan(session: AsyncSession, settings: Settings, caller: Caller, plan_id: int) -> MovePlan:
    return await _change_plan(session, settings, caller, plan_id, "moveplan.pause", plans.pause)


async def resume_plan(session: AsyncSession, settings: Settings, caller: Caller, plan_id: int) -> MovePlan:
    return await _change_plan(session, settings, caller, plan_id, "moveplan.resume", plans.resume)


async def cancel_plan(session: AsyncSession, settings: Settings, caller: Caller, plan_id: int) -> MovePlan:
    return await _change_plan(session, settings, caller, plan_id, "moveplan.cancel", plans.cancel)
