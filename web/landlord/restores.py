"""Restoring a tenant from one of its backups in the landlord portal: a confirmation page naming
what will be replaced (the tenant, its current store, the backup's date, size and row counts) and
what stays as it is now (its people and settings), then the restore job; or a copy of the backup
into a new tenant. Both are on the audit trail."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Response, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups import CopyTarget, get_backup
from services.backups.archive import describe_size
from services.backups.recorded import copy_into_new_tenant, restore
from services.backups.safety import safety_format
from services.errors import DomainError, InvalidInput
from services.models import Backup, IsolationMode, JobStatus, Tenant, TenantStatus, Verification
from services.people.people import count_active_people
from services.settings import Settings
from services.tenancy.stores import available_isolation_modes
from services.tenancy.tenants import get_tenant
from web.audit import caller_of
from web.auth import landlord_staff
from web.deps import DbSession, settings_of


@dataclass
class RestoreForm:
    #: The tenant's slug, typed again: the restore replaces its data.
    confirm: str = ""


@dataclass
class CopyForm:
    slug: str = ""
    name: str = ""
    isolation: str = ""


@dataclass
class RestorePage:
    tenant: Tenant
    backup: Backup
    size: str
    #: (table, rows) of every table the backup holds rows of, largest first.
    tables: list[tuple[str, int]]
    safety_format: str
    #: The people who may sign in now, who keep their access, role and units through a restore.
    people: int
    isolation_modes: list[str]
    #: Why the tenant itself cannot be restored now, when it cannot.
    unavailable: str | None = None
    restore_error: str | None = None
    copy_form: CopyForm = field(default_factory=CopyForm)
    copy_errors: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(rows for _, rows in self.tables)


def unrestorable_reason(backup: Backup) -> str | None:
    """Why `backup` cannot be restored, in words for the page; None when it can."""
    if backup.status == JobStatus.FAILED:
        return f"Backup #{backup.id} failed before its archive was complete: there is nothing to restore."
    if backup.status != JobStatus.SUCCEEDED:
        return f"Backup #{backup.id} is not finished yet."
    if backup.verification == Verification.FAILED:
        return f"Backup #{backup.id} failed its verification: only a backup shown to restore is restored."
    if backup.verification != Verification.VERIFIED:
        return f"Backup #{backup.id} is not verified yet: only a backup shown to restore is restored."
    return None


def check_confirmation(tenant: Tenant, typed: str) -> None:
    """A restore replaces the tenant's data: its slug, typed again, says the person means it."""
    if typed.strip() != tenant.slug:
        raise InvalidInput(f"Type {tenant.slug} to confirm that its data is to be replaced.", field="confirm")


async def restore_page(
    session: AsyncSession, tenant: Tenant, backup: Backup, settings: Settings, **extra: Any
) -> RestorePage:
    manifest = backup.manifest or {"tables": {}}
    tables = sorted(
        ((name, int(table["rows"])) for name, table in manifest["tables"].items() if table["rows"]),
        key=lambda entry: (-entry[1], entry[0]),
    )
    unavailable = unrestorable_reason(backup)
    if unavailable is None and (tenant.status != TenantStatus.ACTIVE or not tenant.store_name):
        unavailable = f"{tenant.slug} is {tenant.status}: only an active tenant is restored in place."
    modes = [mode for mode in available_isolation_modes(settings) if mode != IsolationMode.SHARED]
    return RestorePage(
        tenant,
        backup,
        describe_size(backup.size_bytes),
        tables,
        safety_format(tenant),
        await count_active_people(session, tenant),
        modes,
        unavailable,
        **extra,
    )


def _status_of(error: DomainError) -> int:
    return 422 if isinstance(error, InvalidInput) else 409


class RestoresController(Controller):
    path = "/tenants/{slug:str}/backups/{backup_id:int}"
    include_in_schema = False
    guards = [landlord_staff]

    @get("/restore")
    async def confirm_restore(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        slug: FromPath[str],
        backup_id: FromPath[int],
    ) -> Template:
        tenant = await get_tenant(db_session, slug)
        backup = await get_backup(db_session, tenant, backup_id)
        page = await restore_page(db_session, tenant, backup, settings_of(request))
        return Template("landlord/restore.html", context={"page": page, "tenant": tenant})

    @post("/restore")
    async def restore(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        slug: FromPath[str],
        backup_id: FromPath[int],
        data: Annotated[RestoreForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        tenant = await get_tenant(db_session, slug)
        backup = await get_backup(db_session, tenant, backup_id)
        try:
            check_confirmation(tenant, data.confirm)
            async with db_session.begin_nested():
                await restore(db_session, settings_of(request), caller_of(request), tenant, backup)
        except DomainError as error:
            page = await restore_page(
                db_session, tenant, backup, settings_of(request), restore_error=error.message
            )
            return Template(
                "landlord/restore.html",
                context={"page": page, "tenant": tenant},
                status_code=_status_of(error),
            )
        await db_session.commit()
        return Redirect(f"/tenants/{slug}", status_code=HTTP_303_SEE_OTHER)

    @post("/copy")
    async def copy(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        slug: FromPath[str],
        backup_id: FromPath[int],
        data: Annotated[CopyForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        tenant = await get_tenant(db_session, slug)
        backup = await get_backup(db_session, tenant, backup_id)
        target = CopyTarget(data.slug, data.name, data.isolation or None)
        try:
            async with db_session.begin_nested():
                requested = await copy_into_new_tenant(
                    db_session, settings_of(request), caller_of(request), backup, target
                )
        except DomainError as error:
            errors = error.errors_by_field("copy")
            page = await restore_page(
                db_session, tenant, backup, settings_of(request), copy_form=data, copy_errors=errors
            )
            return Template(
                "landlord/restore.html",
                context={"page": page, "tenant": tenant},
                status_code=_status_of(error),
            )
        await db_session.commit()
        return Redirect(f"/tenants/{requested.tenant.slug}", status_code=HTTP_303_SEE_OTHER)
