"""Restoring a tenant from one of its backups in the landlord portal: a confirmation page naming
what will be replaced (the tenant, its current store, the backup's date, size and row counts) and
what stays as it is now (its people and settings), then the restore job; or a copy of the backup
into a new tenant. Both are on the audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Response, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from services.backups import CopyTarget, get_backup
from services.backups.recorded import copy_into_new_tenant, restore
from services.errors import DomainError
from services.tenancy.tenants import get_tenant
from web.audit import caller_of
from web.auth import landlord_staff
from web.backup_pages import CopyForm, RestoreForm, check_confirmation, refusal_status, restore_page
from web.deps import DbSession, settings_of


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
                status_code=refusal_status(error),
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
                status_code=refusal_status(error),
            )
        await db_session.commit()
        return Redirect(f"/tenants/{requested.tenant.slug}", status_code=HTTP_303_SEE_OTHER)
