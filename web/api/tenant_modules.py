"""/api/v1/tenant/modules: a tenant token's own tenant's modules, for its admins. GET says what is
enabled (with versions), kept and available, and what the plan allows; PUT asks for the set of
enabled modules wanted, and answers 202 with the jobs that make it so."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_409_CONFLICT

from services.models import Tenant
from services.modules.changes import set_modules
from services.modules.requests import ModuleChangeRefused, ModuleLine, modules_overview
from web.api.responses import error
from web.api.schemas import JobOut
from web.audit import caller_of
from web.deps import DbSession
from web.errors import error_response
from web.tenancy.guards import REFUSAL, tenant_admin
from web.tenancy.scope import tenant_access

ADMINS_ONLY = "Only the tenant's admins see and change its modules."


@dataclass(frozen=True)
class ModuleOut:
    name: str
    title: str
    version: str
    description: str
    #: enabled, kept (disabled, its tables left in place and hidden) or available.
    status: str
    #: The revision the tenant's store is at, and the module's newest.
    revision: str | None
    head: str | None
    requires: list[str]
    conflicts: list[str]
    #: Enabled modules that require this one: it cannot be disabled while they are enabled.
    required_by: list[str]
    #: Modules enabling this one brings along (its requirements not enabled yet).
    brings: list[str]
    #: Why it cannot be enabled now (modules not enabled), or null.
    refusal: str | None

    @classmethod
    def of(cls, line: ModuleLine) -> ModuleOut:
        layer = line.layer
        return cls(
            name=layer.name,
            title=layer.title,
            version=layer.version,
            description=layer.description,
            status=line.status,
            revision=line.revision,
            head=line.head,
            requires=list(layer.requires),
            conflicts=list(layer.conflicts),
            required_by=list(line.required_by),
            brings=list(line.brings),
            refusal=line.refusal,
        )


@dataclass(frozen=True)
class PlanOut:
    key: str
    name: str
    #: The modules the plan includes; null: every module.
    modules: list[str] | None
    #: How many modules may be enabled at once; null: no limit.
    max_modules: int | None


@dataclass(frozen=True)
class ModulesOut:
    plan: PlanOut
    #: Enabled modules, in the order their migrations apply.
    enabled: list[str]
    kept: list[str]
    modules: list[ModuleOut]
    #: The id of a job of the tenant that has not finished: changes are refused until it has.
    job_under_way: int | None


@dataclass
class ModulesIn:
    #: Every module to have enabled afterwards (those it lacks are disabled, new ones enabled).
    modules: list[str]
    #: For each module disabled: keep its tables (true, hidden until it is enabled again) or drop
    #: them after a backup (false). Required when the change disables any.
    keep_data: bool | None = None
    #: Kept modules whose data to drop (after a backup).
    drop_kept: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModuleChangesOut:
    #: One job per module disabled or dropped, one enabling the rest; each waits for those before it.
    jobs: list[JobOut]
    message: str


class TenantModulesApiController(Controller):
    path = "/modules"
    tags = ["tenant"]
    guards = [tenant_admin]
    opt = {REFUSAL: ADMINS_ONLY}

    @get("/", summary="The tenant's modules: enabled (with versions), kept, available, and the plan")
    async def modules(self, request: Request[Any, Any, Any], db_session: DbSession) -> ModulesOut:
        tenant = await db_session.get_one(Tenant, tenant_access(request).tenant.id)
        overview = await modules_overview(db_session, request.app.state.settings, tenant)
        plan = overview.plan
        return ModulesOut(
            plan=PlanOut(plan.key, plan.name, plan.modules, plan.max_modules),
            enabled=list(tenant.modules),
            kept=list(tenant.kept_modules),
            modules=[ModuleOut.of(line) for line in overview.lines],
            job_under_way=overview.under_way.id if overview.under_way else None,
        )

    @put(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Ask for the set of enabled modules: 202 with the jobs that make it so",
        description="Checked in full first: 422 for an unknown module, a requirement left out or "
        "keep_data missing; 409 (naming the modules in the way) for a module still required, a "
        "conflict, the plan, or another job of the tenant under way. Nothing is recorded then.",
        responses={
            200: ResponseSpec(ModuleChangesOut, description="These modules are enabled already: no job"),
            409: error("A module in the way (`in_the_way` names them), or a job of the tenant under way"),
        },
    )
    async def change_modules(
        self, request: Request[Any, Any, Any], db_session: DbSession, data: Annotated[ModulesIn, Body()]
    ) -> Response[Any]:
        tenant = await db_session.get_one(Tenant, tenant_access(request).tenant.id)
        try:
            changes = await set_modules(
                db_session,
                request.app.state.settings,
                caller_of(request),
                tenant,
                data.modules,
                keep_data=data.keep_data,
                drop_kept=data.drop_kept,
            )
        except ModuleChangeRefused as refused:
            return error_response(
                request,
                HTTP_409_CONFLICT,
                refused.message,
                field="modules",
                in_the_way=list(refused.in_the_way),
            )
        if not changes:
            return Response(
                ModuleChangesOut([], "These modules are enabled already: nothing to change."),
                status_code=HTTP_200_OK,
            )
        await db_session.commit()
        for change in changes:
            await db_session.refresh(change.job, ["steps"])
        return Response(
            ModuleChangesOut(
                [JobOut.of(change.job) for change in changes],
                f"{len(changes)} job(s) queued; follow them at /api/v1/jobs/<id>.",
            ),
            status_code=HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/jobs/{changes[-1].job.id}"},
        )
