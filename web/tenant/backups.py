"""The tenant's own backups in the tenant portal (/backups, the tenant's admins only): the list with
its verification, jobs under way followed live, "Back up now", downloads, and a restore into the
tenant itself after a confirmation naming what it replaces.

The portal asks for one backup or restore at a time: while one is under way a request is refused,
naming it, rather than queued behind it. Requests, restores and downloads are on the audit trail
against the tenant, as the landlord's pages record them. Backups live in the landlord database, so
another tenant's backup id always names its owner: asking for it is "not found" and recorded
against that tenant."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Response, Stream
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_303_SEE_OTHER
from litestar_htmx import HTMXRequest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups import BACKUP, VERIFY_BACKUP, get_backup
from services.backups.recorded import back_up, hand_over, restore
from services.backups.requests import RESTORE, store_jobs_under_way
from services.backups.schedules import backup_formats
from services.errors import Conflict, DomainError, InvalidInput, NotFound
from services.models import Backup, Job, Tenant
from services.models.types import utcnow
from services.quotas import QuotaReached
from web.audit import caller_of
from web.backup_pages import (
    VERIFICATION_BADGES,
    BackupForm,
    BackupLine,
    RestoreForm,
    backup_lines,
    check_confirmation,
    describe_age,
    refusal_status,
    restore_page,
    unrestorable_reason,
)
from web.deps import DbSession, settings_of
from web.rate_limits import EXPORT
from web.tenancy.foreign import record_if_foreign
from web.tenancy.guards import tenant_admin
from web.tenancy.scope import tenant_access, tenant_link
from web.tenant.pages import Form, tenant_page

#: What each of the tenant's store jobs is, in a sentence that starts with it.
_JOB_WORDS = {BACKUP: "A backup", VERIFY_BACKUP: "A verification of a backup", RESTORE: "A restore"}


@dataclass
class BackupsPage:
    lines: list[BackupLine]
    formats: list[str]
    #: The tenant's backups, verifications and restores that have not finished, oldest first.
    under_way: list[Job]
    #: The tenant's latest restore and the backup it restores from, to say how it went.
    last_restore: Job | None = None
    restored_from: Backup | None = None
    notice: str | None = None
    error: str | None = None
    badges: dict[str, str] = field(default_factory=lambda: dict(VERIFICATION_BADGES))

    @property
    def busy(self) -> bool:
        return bool(self.under_way)


async def _tenant(request: Request[Any, Any, Any], db_session: AsyncSession) -> Tenant:
    """The request's tenant, read again in the request's landlord session, which changes it."""
    return await db_session.get_one(Tenant, tenant_access(request).tenant.id)


async def backups_page(session: AsyncSession, tenant: Tenant, **extra: Any) -> BackupsPage:
    last_restore = await session.scalar(
        select(Job).where(Job.tenant_id == tenant.id, Job.kind == RESTORE).order_by(Job.id.desc()).limit(1)
    )
    restored_from = await session.get(Backup, last_restore.payload["backup_id"]) if last_restore else None
    return BackupsPage(
        await backup_lines(session, tenant),
        backup_formats(tenant),
        await store_jobs_under_way(session, tenant),
        last_restore,
        restored_from,
        **extra,
    )


def refuse_while_under_way(tenant: Tenant, under_way: list[Job]) -> None:
    """One backup or restore at a time: the one under way is named, and nothing is queued."""
    if under_way:
        job = under_way[0]
        raise Conflict(
            f"{_JOB_WORDS[job.kind]} of {tenant.name} is under way (job #{job.id}): one backup or restore runs at a time. "
            "Ask again once it has finished."
        )


async def own_backup(request: Request[Any, Any, Any], db_session: AsyncSession, backup_id: int) -> Backup:
    """One of the tenant's backups. Any other id is "not found"; one of another tenant's backups is
    also recorded against that tenant, where the caller cannot read it."""
    tenant = tenant_access(request).tenant
    try:
        return await get_backup(db_session, tenant, backup_id)
    except NotFound:
        owner = select(Backup.tenant_id).where(Backup.id == backup_id)
        record_if_foreign(request, "backup", {"backup": backup_id}, lambda landlord: landlord.scalar(owner))
        raise


def _download_headers(tenant: Tenant, backup: Backup) -> dict[str, str]:
    """A file name that says whose backup it is and when it was taken; its length; its SHA-256 as
    RFC 9530 has it (base64) and as `sha256sum` prints it (hex), to check the download against."""
    assert backup.sha256 is not None and backup.size_bytes is not None
    name = f"{tenant.slug}-backup-{backup.id}-{backup.created_at:%Y%m%d-%H%M%S}-{backup.format}.tar.gz"
    digest = base64.b64encode(bytes.fromhex(backup.sha256)).decode()
    return {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Content-Length": str(backup.size_bytes),
        "Repr-Digest": f"sha-256=:{digest}:",
        "X-Checksum-SHA256": backup.sha256,
        "Cache-Control": "no-store",
    }


class TenantBackupsController(Controller):
    path = "/backups"
    include_in_schema = False
    guards = [tenant_admin]

    async def _page(
        self,
        request: HTMXRequest,
        db_session: AsyncSession,
        tenant: Tenant,
        status_code: int = 200,
        **extra: Any,
    ) -> Response[Any]:
        """The page, or on an HTMX request the part of it that changes."""
        page = await backups_page(db_session, tenant, **extra)
        template = "_tenant_backups.html" if request.htmx else "backups.html"
        return tenant_page(request, template, status_code, page=page, unrestorable=unrestorable_reason)

    @get("/")
    async def backups(self, request: HTMXRequest, db_session: DbSession) -> Response[Any]:
        return await self._page(request, db_session, tenant_access(request).tenant)

    @post("/")
    async def back_up_now(
        self, request: HTMXRequest, db_session: DbSession, data: Annotated[BackupForm, Form]
    ) -> Response[Any]:
        tenant = await _tenant(request, db_session)
        try:
            async with db_session.begin_nested():
                refuse_while_under_way(tenant, await store_jobs_under_way(db_session, tenant))
                requested = await back_up(
                    db_session, settings_of(request), caller_of(request), tenant, data.format
                )
        except DomainError as error:
            # HTMX swaps a 422 in place (base.html's responseHandling); a browser shows the status.
            status = (
                429
                if isinstance(error, QuotaReached)
                else 422
                if request.htmx or isinstance(error, InvalidInput)
                else 409
            )
            return await self._page(request, db_session, tenant, status, error=error.message)
        await db_session.commit()
        if request.htmx:
            return await self._page(request, db_session, tenant, notice=requested.message)
        return Redirect(tenant_link(request, "/backups"), status_code=HTTP_303_SEE_OTHER)

    @get("/{backup_id:int}/download", opt=EXPORT)
    async def download(self, request: HTMXRequest, db_session: DbSession, backup_id: FromPath[int]) -> Stream:
        tenant = tenant_access(request).tenant
        backup = await own_backup(request, db_session, backup_id)
        archive = await hand_over(db_session, settings_of(request), caller_of(request), tenant, backup)
        return Stream(
            archive,
            media_type="application/gzip",
            headers=_download_headers(tenant, backup),
        )

    @get("/{backup_id:int}/restore")
    async def confirm_restore(
        self, request: HTMXRequest, db_session: DbSession, backup_id: FromPath[int]
    ) -> Response[Any]:
        backup = await own_backup(request, db_session, backup_id)
        return await self._confirmation(request, db_session, backup)

    @post("/{backup_id:int}/restore")
    async def restore(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        backup_id: FromPath[int],
        data: Annotated[RestoreForm, Form],
    ) -> Response[Any]:
        backup = await own_backup(request, db_session, backup_id)
        tenant = await _tenant(request, db_session)
        try:
            check_confirmation(tenant, data.confirm)
            async with db_session.begin_nested():
                refuse_while_under_way(tenant, await store_jobs_under_way(db_session, tenant))
                await restore(db_session, settings_of(request), caller_of(request), tenant, backup)
        except DomainError as error:
            status = refusal_status(error)
            return await self._confirmation(request, db_session, backup, status, restore_error=error.message)
        await db_session.commit()
        # Not a redirect: the tenant is about to show a maintenance page, which this one follows
        # (it keeps polling through the 503s) until the restore has finished.
        return await self._page(request, db_session, tenant, HTTP_202_ACCEPTED)

    async def _confirmation(
        self,
        request: HTMXRequest,
        db_session: AsyncSession,
        backup: Backup,
        status_code: int = 200,
        **extra: Any,
    ) -> Response[Any]:
        tenant = tenant_access(request).tenant
        page = await restore_page(db_session, tenant, backup, settings_of(request), **extra)
        age = describe_age(backup.created_at, utcnow())
        return tenant_page(request, "restore.html", status_code, page=page, age=age)
