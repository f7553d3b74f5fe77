"""Rollouts as landlord staff ask for them (the landlord portal, the API and the command line
alike), each with its entry on the audit trail in the same transaction. The jobs that move the
tenants are sent when the caller's transaction commits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Caller, record_by
from services.errors import NotFound
from services.models import Job, Rollout, Tenant
from services.rollouts import runs
from services.rollouts.drift_checks import request_drift_check
from services.rollouts.plans import RolloutSpec, plan_rollout
from services.settings import Settings


def _name(caller: Caller) -> str:
    return caller.actor.email


async def find_rollout(session: AsyncSession, rollout_id: int) -> Rollout:
    rollout = await session.get(Rollout, rollout_id)
    if rollout is None:
        raise NotFound(f"There is no rollout #{rollout_id}.")
    return rollout


async def start(session: AsyncSession, settings: Settings, caller: Caller, spec: RolloutSpec) -> Rollout:
    """Plan the rollout and start it (`rollout.start`). Raises InvalidFields for a wrong spec and
    Conflict when no tenant has anything to do."""
    plan = await plan_rollout(session, settings, spec)
    rollout = await runs.start_rollout(session, plan, requested_by=_name(caller))
    detail = {"target": spec.target, "selection": str(spec.selection), "tenants": len(plan.tenants)}
    await record_by(
        session, caller, "rollout.start", target=f"rollout #{rollout.id}", detail=caller.with_token(detail)
    )
    return rollout


async def _change(
    session: AsyncSession,
    caller: Caller,
    rollout_id: int,
    action: str,
    change: Callable[[AsyncSession, Rollout], Awaitable[None]],
) -> Rollout:
    rollout = await find_rollout(session, rollout_id)
    await change(session, rollout)
    await record_by(session, caller, action, target=f"rollout #{rollout.id}", detail=caller.with_token({}))
    return rollout


async def pause(session: AsyncSession, caller: Caller, rollout_id: int) -> Rollout:
    return await _change(session, caller, rollout_id, "rollout.pause", runs.pause)


async def resume(session: AsyncSession, caller: Caller, rollout_id: int) -> Rollout:
    return await _change(session, caller, rollout_id, "rollout.resume", runs.resume)


async def cancel(session: AsyncSession, caller: Caller, rollout_id: int) -> Rollout:
    return await _change(session, caller, rollout_id, "rollout.cancel", runs.cancel)


async def check_drift_later(session: AsyncSession, caller: Caller, tenant: Tenant | None = None) -> Job:
    """A drift check of the fleet (or of one tenant), as a job for the workers; its result goes
    on the trail (`drift.check`, in the caller's name) when it has run."""
    return await request_drift_check(session, _name(caller), [tenant.id] if tenant else None)


async def roll_back(session: AsyncSession, settings: Settings, caller: Caller, rollout_id: int) -> Rollout:
    """A new rollout taking back exactly the tenants `rollout_id` moved (`rollout.rollback`)."""
    original = await find_rollout(session, rollout_id)
    rollout = await runs.roll_back(session, settings, original, _name(caller))
    detail = {"rollback": rollout.id}
    await record_by(
        session,
        caller,
        "rollout.rollback",
        target=f"rollout #{original.id}",
        detail=caller.with_token(detail),
    )
    return rollout
