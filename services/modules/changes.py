"""Module changes as a caller asks for them (the portal's modules page and the modules API alike):
the change checked and its jobs recorded (services/modules/requests.py), each on the audit trail
against the tenant (module.enable, module.disable) in the same transaction. The jobs are sent when
the caller's transaction commits."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Caller, record_by
from services.models import Tenant
from services.modules.requests import ModuleJob, request_disable, request_enable, request_modules
from services.settings import Settings


async def _on_the_trail(session: AsyncSession, caller: Caller, tenant: Tenant, change: ModuleJob) -> None:
    await record_by(session, caller, change.action, tenant=tenant, detail=caller.with_token(change.detail))


async def enable_module(
    session: AsyncSession,
    settings: Settings,
    caller: Caller,
    tenant: Tenant,
    module: str,
    *,
    with_required: bool,
) -> ModuleJob:
    """The job enabling `module`, for `caller` (see `request_enable`: the requirements it brings
    come only `with_required`)."""
    change = await request_enable(
        session, settings, tenant, [module], with_required=with_required, requested_by=caller.actor.email
    )
    await _on_the_trail(session, caller, tenant, change)
    return change


async def disable_module(
    session: AsyncSession, settings: Settings, caller: Caller, tenant: Tenant, module: str, *, keep_data: bool
) -> ModuleJob:
    """The job disabling `module`, its data kept or dropped, for `caller` (see `request_disable`)."""
    change = await request_disable(
        session, settings, tenant, module, keep_data=keep_data, requested_by=caller.actor.email
    )
    await _on_the_trail(session, caller, tenant, change)
    return change


async def set_modules(
    session: AsyncSession,
    settings: Settings,
    caller: Caller,
    tenant: Tenant,
    wanted: Sequence[str],
    *,
    keep_data: bool | None,
    drop_kept: Sequence[str] = (),
) -> list[ModuleJob]:
    """The jobs that make `wanted` the enabled modules, for `caller` (see `request_modules`); []
    when nothing changes, and then nothing on the trail either."""
    changes = await request_modules(
        session,
        settings,
        tenant,
        wanted,
        keep_data=keep_data,
        drop_kept=drop_kept,
        requested_by=caller.actor.email,
    )
    for change in changes:
        await _on_the_trail(session, caller, tenant, change)
    return changes
