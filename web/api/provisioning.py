"""/api/v1: the layer catalogue, creating tenants, and following jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import PermissionDeniedException
from litestar.params import Body, FromPath
from litestar.status_codes import HTTP_202_ACCEPTED

from services.errors import NotFound
from services.layers.catalogue import load_catalogue
from services.models import Job
from services.models.landlord import DEFAULT_PLAN
from services.provisioning.recorded import provision_tenant
from services.provisioning.tenants import TenantRequest
from services.provisioning.warm_pool import Pool, warm_pools
from web.api.responses import error
from web.api.schemas import FirstAdminOut, JobOut, ModuleOut, ProvisioningOut, TemplateOut, TenantOut
from web.api.tenants import record_token_reaching_for
from web.audit import caller_of
from web.auth import landlord_token, may_read_tenant, signed_in
from web.deps import DbSession, settings_of

NOT_YOUR_JOB = "This token may not read that job."


@dataclass
class TenantIn:
    slug: str
    name: str
    template: str
    #: Left out: the template's default modules. An empty list: no modules.
    modules: list[str] | None = None
    isolation: str = "database"
    #: What the tenant may use (GET /api/v1/plans would list them; the landlord portal shows them).
    plan: str = DEFAULT_PLAN
    #: The first admin: an account is made for a new email, and its password is in the answer.
    admin_email: str = ""
    admin_name: str = ""


def _modules_of(request: Request[Any, Any, Any], data: TenantIn) -> list[str]:
    if data.modules is not None:
        return data.modules
    template = load_catalogue(request.app.state.settings.layers_dir).templates.get(data.template)
    return list(template.default_modules) if template else []


@dataclass(frozen=True)
class PoolOut:
    template: str
    modules: list[str]
    isolation: str
    backend: str
    ready: int
    building: int
    behind: bool


@dataclass(frozen=True)
class WarmPoolOut:
    size: int
    pools: list[PoolOut]

    @classmethod
    def of(cls, size: int, pools: list[Pool]) -> WarmPoolOut:
        return cls(
            size,
            [
                PoolOut(
                    pool.recipe.template,
                    list(pool.recipe.modules),
                    pool.recipe.isolation,
                    pool.backend,
                    pool.ready,
                    pool.building,
                    pool.behind,
                )
                for pool in pools
            ],
        )


class CatalogueApiController(Controller):
    tags = ["catalogue"]
    guards = [signed_in]

    @get("/templates", summary="Templates: a tenant's category, with its default modules")
    async def list_templates(self, request: Request[Any, Any, Any]) -> list[TemplateOut]:
        catalogue = load_catalogue(request.app.state.settings.layers_dir)
        return [TemplateOut.of(layer) for layer in catalogue.templates.values()]

    @get("/modules", summary="Modules: optional features, with versions, requirements and conflicts")
    async def list_modules(self, request: Request[Any, Any, Any]) -> list[ModuleOut]:
        catalogue = load_catalogue(request.app.state.settings.layers_dir)
        return [ModuleOut.of(layer) for layer in catalogue.modules.values()]


class ProvisioningApiController(Controller):
    tags = ["tenants"]
    guards = [signed_in]

    @post(
        "/tenants",
        guards=[landlord_token],
        status_code=HTTP_202_ACCEPTED,
        summary="Create a tenant; provisioning runs as a job (202 with the job to follow)",
        description="With `admin_email` (and `admin_name`), the tenant's first admin: a new email gets an "
        "account whose password is in this answer only, and which they replace at their first sign-in.",
    )
    async def create_tenant(
        self, request: Request[Any, Any, Any], db_session: DbSession, data: Annotated[TenantIn, Body()]
    ) -> Response[ProvisioningOut]:
        wanted = TenantRequest(
            data.slug,
            data.name,
            data.template,
            _modules_of(request, data),
            data.isolation,
            data.plan,
            admin_email=data.admin_email,
            admin_name=data.admin_name,
        )
        tenant, job, first_admin = await provision_tenant(
            db_session, request.app.state.settings, caller_of(request), wanted
        )
        await db_session.commit()
        await db_session.refresh(job, ["steps"])
        admin = FirstAdminOut.of(first_admin) if first_admin is not None else None
        return Response(
            ProvisioningOut(tenant=TenantOut.of(tenant), job=JobOut.of(job), first_admin=admin),
            status_code=HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/jobs/{job.id}"},
        )

    @get(
        "/warm-pool",
        guards=[landlord_token],
        summary="The warm pool: stores built ahead for each template, module set and isolation",
        description="`size` is how many each recipe keeps (TENANTRY_WARM_POOL; 0: none). A pool `behind` "
        "holds stores at older layer heads: none is given out, and the workers rebuild it.",
    )
    async def warm_pool(self, request: Request[Any, Any, Any], db_session: DbSession) -> WarmPoolOut:
        settings = settings_of(request)
        return WarmPoolOut.of(settings.warm_pool_size, await warm_pools(db_session, settings))

    @get(
        "/jobs/{job_id:int}",
        summary="A job: its status and each step's state, timing and error",
        responses={403: error("A tenant token asking for a job of the platform or of another tenant")},
    )
    async def get_job(
        self, request: Request[Any, Any, Any], db_session: DbSession, job_id: FromPath[int]
    ) -> JobOut:
        job = await db_session.get(Job, job_id)
        tenant_token = request.auth is not None and request.auth.tenant is not None
        if job is None:
            if tenant_token:  # the same refusal as for another tenant's job: existence is not told
                raise PermissionDeniedException(NOT_YOUR_JOB)
            raise NotFound(f"There is no job {job_id}.")
        if job.tenant is None:
            if tenant_token:
                raise PermissionDeniedException(NOT_YOUR_JOB)
        elif not may_read_tenant(request, job.tenant.slug):
            await record_token_reaching_for(
                request, job.tenant.slug, "read another tenant's job through the API"
            )
            raise PermissionDeniedException(NOT_YOUR_JOB)
        return JobOut.of(job)
