"""A tenant's modules, as its admins see and change them.

The overview: what is enabled (and at which version), what is kept (disabled, its tables left in
the store and hidden), what else there is, and for each whether the tenant's plan and modules
allow enabling it, and why not. A change is checked whole before anything is written: the
requirements a module brings along, conflicts with enabled modules, the plan's modules and its
module limit, a module still required by another. A refusal gives every reason at once, a line
each, naming the modules in the way. Then the change's job is recorded, to be sent when the caller
commits. The jobs themselves run in services/modules/steps.py, which checks the change again once
it holds the tenant's lock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.backups.safety import SAFETY_BACKUP_STEPS
from services.errors import Conflict, InvalidInput, NotFound
from services.layers.catalogue import Catalogue, Layer, load_catalogue, one_per_line
from services.layers.footprint import layer_tables
from services.layers.migrator import head
from services.layers.snapshot import VERSION_TABLE_PREFIX
from services.models import Job, JobStatus, Plan, SchemaSnapshot, Tenant, TenantStatus
from services.settings import Settings

ENABLE_MODULES = "enable_modules"
DISABLE_MODULE = "disable_module"
MODULE_JOB_KINDS = (ENABLE_MODULES, DISABLE_MODULE)

# The steps of the two jobs, named here so a request records them; services/modules/steps.py
# runs them.
LOCK = "lock"
KEEP_DATA, DROP_DATA = "keep data", "drop data"
RECORD_ENABLED = "record and snapshot"
SNAPSHOT = "snapshot"


def enable_step(module: str) -> str:
    return f"enable {module}"


def enable_steps(modules: Sequence[str]) -> list[str]:
    return [LOCK, *(enable_step(module) for module in modules), RECORD_ENABLED]


def disable_steps(*, keep_data: bool) -> list[str]:
    return [LOCK, *SAFETY_BACKUP_STEPS, KEEP_DATA if keep_data else DROP_DATA, SNAPSHOT]


class ModuleChangeRefused(Conflict):
    """A change the tenant's modules or plan do not allow, for each of the `problems` (its
    message has a line each). `in_the_way` names the modules that stand in its way (none when it
    is only the plan's limit)."""

    def __init__(self, *problems: str, in_the_way: Iterable[str] = ()) -> None:
        super().__init__(one_per_line(problems), field="modules")
        self.problems = problems
        self.in_the_way = tuple(dict.fromkeys(in_the_way))


# The rules -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleState:
    """A tenant's modules at one moment: enabled (in apply order) and kept, under its plan."""

    template: str
    plan: Plan
    enabled: tuple[str, ...]
    kept: tuple[str, ...]

    @classmethod
    def of(cls, tenant: Tenant) -> ModuleState:
        return cls(tenant.template, tenant.plan, tuple(tenant.modules), tuple(tenant.kept_modules))


@dataclass(frozen=True)
class EnablePlan:
    requested: tuple[str, ...]
    #: What the job enables, in apply order: the requested modules and the requirements they bring.
    modules: tuple[str, ...]
    #: Among them, those that come only because a requested module needs them.
    required: tuple[str, ...]
    #: Among them, kept modules: their tables come back as they were.
    restored: tuple[str, ...]
    after: ModuleState


@dataclass(frozen=True)
class DisablePlan:
    module: str
    keep_data: bool
    #: The module is kept already; what is left is dropping its data.
    was_kept: bool
    after: ModuleState


def _is_or_are(names: Sequence[str]) -> str:
    return "is" if len(names) == 1 else "are"


def requirements(catalogue: Catalogue, name: str) -> list[str]:
    """Every module `name` needs, directly or through another, requirements first."""
    found: dict[str, None] = {}
    visiting = {name}  # a cycle (refused by resolve_modules) ends here rather than recursing forever

    def visit(module: str) -> None:
        for requirement in catalogue.modules[module].requires:
            if requirement in found or requirement in visiting or requirement not in catalogue.modules:
                continue
            visiting.add(requirement)
            visit(requirement)
            found[requirement] = None

    visit(name)
    return list(found)


def plan_enable(catalogue: Catalogue, state: ModuleState, requested: Sequence[str]) -> EnablePlan:
    """Enable `requested` and the requirements they bring. Raises InvalidInput when none is
    chosen, ModuleProblems naming every name that is no module, or ModuleChangeRefused with every
    reason not to at once (enabled already, not in the plan, a conflict with an enabled module or
    between two coming, beyond the plan's module limit), naming the modules in the way."""
    wanted = list(dict.fromkeys(requested))
    if not wanted:
        raise InvalidInput("Choose a module to enable.", field="modules")
    catalogue.check_known(wanted)
    problems: list[str] = []
    in_the_way: list[str] = []
    if enabled := [name for name in wanted if name in state.enabled]:
        problems.append(f"{catalogue.titles(enabled)} {_is_or_are(enabled)} enabled already.")
        in_the_way.extend(enabled)
    adding: dict[str, None] = {}
    for name in wanted:
        if name not in state.enabled:
            adding.update(
                (needed, None) for needed in requirements(catalogue, name) if needed not in state.enabled
            )
            adding[name] = None
    new = list(adding)
    if outside := [name for name in new if not state.plan.allows_module(name)]:
        problems.append(f"The {state.plan.name} plan does not include {catalogue.titles(outside)}.")
        in_the_way.extend(outside)
    for name in new:
        for other in state.enabled:
            if catalogue.conflict(name, other):
                title, other_title = catalogue.title_of(name), catalogue.title_of(other)
                problems.append(
                    f"{title} conflicts with {other_title}, which is enabled: disable {other_title} first."
                )
                in_the_way.append(other)
    for index, name in enumerate(new):
        for other in new[index + 1 :]:
            if catalogue.conflict(name, other):
                problems.append(catalogue.conflict_problem(name, other))
                in_the_way.append(other)
    limit, total = state.plan.max_modules, len(state.enabled) + len(new)
    if limit is not None and total > limit:
        problems.append(
            f"The {state.plan.name} plan allows {limit} modules and {len(state.enabled)} are enabled: "
            f"enabling {catalogue.titles(new)} would make {total}. Disable a module first, "
            "or ask for a larger plan."
        )
    if problems:
        raise ModuleChangeRefused(*problems, in_the_way=in_the_way)
    enabled_after = catalogue.resolve_modules(state.template, [*state.enabled, *new])
    return EnablePlan(
        requested=tuple(wanted),
        modules=tuple(name for name in enabled_after if name in adding),
        required=tuple(name for name in enabled_after if name in adding and name not in wanted),
        restored=tuple(name for name in enabled_after if name in adding and name in state.kept),
        after=replace(
            state,
            enabled=tuple(enabled_after),
            kept=tuple(name for name in state.kept if name not in adding),
        ),
    )


def plan_disable(catalogue: Catalogue, state: ModuleState, module: str, *, keep_data: bool) -> DisablePlan:
    """Disable `module` keeping its tables (hidden), or dropping its data; a kept module's data
    can be dropped too. Refused, for both reasons at once, while enabled modules require it and
    (dropping) while kept modules' data refers to it, naming which."""
    catalogue.check_known([module])
    title = catalogue.title_of(module)
    if module in state.enabled:
        was_kept = False
    elif module in state.kept and not keep_data:
        was_kept = True
    elif module in state.kept:
        raise ModuleChangeRefused(f"{title} is disabled already, its data kept.", in_the_way=[module])
    else:
        raise ModuleChangeRefused(f"{title} is not enabled.", in_the_way=[module])
    problems: list[str] = []
    needing = [
        name for name in state.enabled if name != module and module in catalogue.modules[name].requires
    ]
    if needing:
        problems.append(
            f"{title} is required by {catalogue.titles(needing)}, which {_is_or_are(needing)} enabled: "
            f"disable {catalogue.titles(needing)} first."
        )
    kept_needing = (
        []
        if keep_data
        else [
            name
            for name in state.kept
            if name != module and name in catalogue.modules and module in catalogue.modules[name].requires
        ]
    )
    if kept_needing:
        problems.append(
            f"The kept data of {catalogue.titles(kept_needing)} refers to the tables of {title}: "
            f"drop that data first, or keep the data of {title}."
        )
    if problems:
        raise ModuleChangeRefused(*problems, in_the_way=[*needing, *kept_needing])
    enabled = tuple(name for name in state.enabled if name != module)
    kept = tuple(name for name in state.kept if name != module) + ((module,) if keep_data else ())
    return DisablePlan(module, keep_data, was_kept, replace(state, enabled=enabled, kept=kept))


class RequirementsNotOffered(InvalidInput):
    """Enabling modules brings others along, and the asker has not said yes to them: a sentence
    for each requested module that brings some."""

    def __init__(self, catalogue: Catalogue, plan: EnablePlan) -> None:
        problems = []
        for name in plan.requested:
            if brings := [needed for needed in requirements(catalogue, name) if needed in plan.required]:
                title, needed = catalogue.title_of(name), catalogue.titles(brings)
                problems.append(
                    f"{title} needs {needed}, which {_is_or_are(brings)} not enabled: enable {needed} too, "
                    f"or leave {title} out."
                )
        super().__init__(one_per_line(problems), field="modules")
        self.plan = plan


# What is in the store -----------------------------------------------------------------------------


async def module_tables(catalogue: Catalogue, template: str, module: str) -> list[str]:
    """The tables `module` itself creates (not its requirements', nor its version table)."""
    before = catalogue.layers_for(template, requirements(catalogue, module))
    own = await layer_tables([*before, catalogue.modules[module]]) - await layer_tables(before)
    return sorted(name for name in own if not name.startswith(VERSION_TABLE_PREFIX))


async def visible_tables(settings: Settings, tenant: Tenant, tables: Iterable[str]) -> frozenset[str]:
    """Of the tables in a tenant's schema snapshot, those its data pages show: not the tables of
    its kept modules, which stay in the store, hidden, until the module is enabled again."""
    catalogue = load_catalogue(settings.layers_dir)
    hidden: set[str] = set()
    for module in tenant.kept_modules:
        if module in catalogue.modules:
            hidden.update(await module_tables(catalogue, tenant.template, module))
    return frozenset(tables) - hidden


# The overview ------------------------------------------------------------------------------------


class ModuleStatus(enum.StrEnum):
    ENABLED = "enabled"
    KEPT = "kept"
    AVAILABLE = "available"


@dataclass(frozen=True)
class ModuleLine:
    layer: Layer
    status: ModuleStatus
    #: The revision the tenant's store is at (its latest schema snapshot), and the layer's head.
    revision: str | None
    head: str | None
    #: Enabled modules that require this one: it cannot be disabled while they are enabled.
    required_by: tuple[str, ...] = ()
    #: The modules enabling this one brings along (its requirements not enabled yet).
    brings: tuple[str, ...] = ()
    #: Why it cannot be enabled now (a module not enabled), or None.
    refusal: str | None = None

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def behind(self) -> bool:
        return self.revision is not None and self.revision != self.head


@dataclass(frozen=True)
class ModulesOverview:
    tenant: Tenant
    plan: Plan
    lines: list[ModuleLine]
    #: A job of the tenant that has not finished: module changes wait until it is done.
    under_way: Job | None = None
    titles: dict[str, str] = field(default_factory=dict)

    def _with(self, status: ModuleStatus) -> list[ModuleLine]:
        return [line for line in self.lines if line.status == status]

    @property
    def enabled(self) -> list[ModuleLine]:
        return self._with(ModuleStatus.ENABLED)

    @property
    def kept(self) -> list[ModuleLine]:
        return self._with(ModuleStatus.KEPT)

    @property
    def available(self) -> list[ModuleLine]:
        return self._with(ModuleStatus.AVAILABLE)


async def unfinished_job(session: AsyncSession, tenant: Tenant) -> Job | None:
    """The tenant's oldest job that has not finished, of any kind."""
    statement = select(Job).where(Job.tenant_id == tenant.id, Job.status.in_(JobStatus.unfinished()))
    return await session.scalar(statement.order_by(Job.id).limit(1))


async def modules_overview(session: AsyncSession, settings: Settings, tenant: Tenant) -> ModulesOverview:
    catalogue = load_catalogue(settings.layers_dir)
    state = ModuleState.of(tenant)
    snapshot = await session.scalar(
        select(SchemaSnapshot)
        .where(SchemaSnapshot.tenant_id == tenant.id)
        .order_by(SchemaSnapshot.id.desc())
        .limit(1)
    )
    versions: dict[str, str | None] = snapshot.description.get("layer_versions", {}) if snapshot else {}

    modules = catalogue.modules

    def line(layer: Layer, status: ModuleStatus) -> ModuleLine:
        revision = versions.get(layer.version_table.removeprefix(VERSION_TABLE_PREFIX))
        made = ModuleLine(layer, status, revision, head(layer))
        if status == ModuleStatus.ENABLED:
            needing = tuple(
                name for name in state.enabled if name in modules and layer.name in modules[name].requires
            )
            return replace(made, required_by=needing)
        brings = tuple(name for name in requirements(catalogue, layer.name) if name not in state.enabled)
        try:
            plan_enable(catalogue, state, [layer.name])
        except ModuleChangeRefused as refused:
            return replace(made, brings=brings, refusal=refused.message)
        return replace(made, brings=brings)

    lines = [
        *(line(modules[name], ModuleStatus.ENABLED) for name in state.enabled if name in modules),
        *(line(modules[name], ModuleStatus.KEPT) for name in state.kept if name in modules),
        *(
            line(layer, ModuleStatus.AVAILABLE)
            for layer in sorted(modules.values(), key=lambda layer: layer.title)
            if layer.name not in state.enabled and layer.name not in state.kept
        ),
    ]
    return ModulesOverview(
        tenant,
        tenant.plan,
        lines,
        await unfinished_job(session, tenant),
        {name: layer.title for name, layer in modules.items()},
    )


# Asking for a change ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleJob:
    """A recorded module change: its job, and what the audit trail says of it."""

    job: Job
    action: str
    detail: dict[str, Any]


async def _check_ready(session: AsyncSession, tenant: Tenant) -> None:
    if tenant.status != TenantStatus.ACTIVE or not tenant.store_name:
        raise Conflict(f"{tenant.name} is {tenant.status}; modules change on an active tenant only.")
    if (busy := await unfinished_job(session, tenant)) is not None:
        raise Conflict(
            f"Job #{busy.id} ({busy.kind.replace('_', ' ')}) of {tenant.name} is under way: "
            "change modules once it is done."
        )


async def _record_enable(
    session: AsyncSession, tenant: Tenant, plan: EnablePlan, requested_by: str | None, after: list[int]
) -> ModuleJob:
    payload = {
        "modules": list(plan.modules),
        "requested": list(plan.requested),
        "requested_by": requested_by,
        "after": after,
    }
    job = await jobs.record_job(
        session, ENABLE_MODULES, tenant_id=tenant.id, payload=payload, steps=enable_steps(plan.modules)
    )
    detail = {"job": job.id, "modules": list(plan.modules), "required": list(plan.required)}
    return ModuleJob(job, "module.enable", detail)


async def _record_disable(
    session: AsyncSession, tenant: Tenant, plan: DisablePlan, requested_by: str | None, after: list[int]
) -> ModuleJob:
    payload = {
        "module": plan.module,
        "keep_data": plan.keep_data,
        "requested_by": requested_by,
        "after": after,
    }
    job = await jobs.record_job(
        session,
        DISABLE_MODULE,
        tenant_id=tenant.id,
        payload=payload,
        steps=disable_steps(keep_data=plan.keep_data),
    )
    detail = {"job": job.id, "module": plan.module, "keep_data": plan.keep_data}
    return ModuleJob(job, "module.disable", detail)


async def request_enable(
    session: AsyncSession,
    settings: Settings,
    tenant: Tenant,
    requested: Sequence[str],
    *,
    with_required: bool,
    requested_by: str | None = None,
) -> ModuleJob:
    """Record the job enabling `requested`. The requirements they bring come too only when
    `with_required` (the admin was offered them); otherwise a request that needs them is refused,
    naming them. Raises InvalidInput, ModuleChangeRefused or Conflict (a job under way)."""
    catalogue = load_catalogue(settings.layers_dir)
    plan = plan_enable(catalogue, ModuleState.of(tenant), requested)
    if plan.required and not with_required:
        raise RequirementsNotOffered(catalogue, plan)
    await _check_ready(session, tenant)
    return await _record_enable(session, tenant, plan, requested_by, [])


async def request_disable(
    session: AsyncSession,
    settings: Settings,
    tenant: Tenant,
    module: str,
    *,
    keep_data: bool,
    requested_by: str | None = None,
) -> ModuleJob:
    """Record the job disabling `module` (or dropping a kept module's data). Raises InvalidInput,
    ModuleChangeRefused or Conflict (a job under way)."""
    plan = plan_disable(
        load_catalogue(settings.layers_dir), ModuleState.of(tenant), module, keep_data=keep_data
    )
    await _check_ready(session, tenant)
    return await _record_disable(session, tenant, plan, requested_by, [])


async def request_modules(
    session: AsyncSession,
    settings: Settings,
    tenant: Tenant,
    wanted: Sequence[str],
    *,
    keep_data: bool | None,
    drop_kept: Sequence[str] = (),
    requested_by: str | None = None,
) -> list[ModuleJob]:
    """Make `wanted` the enabled modules: one job per module to disable (dependents first; their
    data kept or dropped as `keep_data` says), then one enabling the rest, and one per kept module
    in `drop_kept` whose data goes. Each job waits for the ones before it. The whole change is
    checked first; nothing is recorded when any part is refused. [] when nothing changes."""
    catalogue = load_catalogue(settings.layers_dir)
    catalogue.check_known([*wanted, *drop_kept])
    state = ModuleState.of(tenant)
    disabling = [name for name in reversed(state.enabled) if name not in wanted]
    enabling = [name for name in dict.fromkeys(wanted) if name not in state.enabled]
    if disabling and keep_data is None:
        raise InvalidInput(
            f"Say whether to keep the data of {catalogue.titles(disabling)}: keep_data true leaves "
            "its tables in place, hidden, until it is enabled again; false drops them, after a backup.",
            field="keep_data",
        )
    plans: list[EnablePlan | DisablePlan] = []
    for name in disabling:
        plans.append(plan_disable(catalogue, state, name, keep_data=bool(keep_data)))
        state = plans[-1].after
    if enabling:
        plans.append(plan_enable(catalogue, state, enabling))
        enable = plans[-1]
        assert isinstance(enable, EnablePlan)
        if enable.required:
            raise RequirementsNotOffered(catalogue, enable)
        state = enable.after
    for name in dict.fromkeys(drop_kept):
        if name in wanted:
            raise InvalidInput(
                f"{catalogue.title_of(name)} cannot be both enabled and dropped.", field="drop_kept"
            )
        plans.append(plan_disable(catalogue, state, name, keep_data=False))
        state = plans[-1].after
    if not plans:
        return []
    await _check_ready(session, tenant)
    recorded: list[ModuleJob] = []
    for plan in plans:
        after = [earlier.job.id for earlier in recorded]
        if isinstance(plan, EnablePlan):
            recorded.append(await _record_enable(session, tenant, plan, requested_by, after))
        else:
            recorded.append(await _record_disable(session, tenant, plan, requested_by, after))
    return recorded


async def module_job(session: AsyncSession, tenant: Tenant, job_id: int) -> Job:
    """One of the tenant's module jobs; another tenant's, or another kind, is not found. Asked
    within the tenant, so the two cost the same (another's would load its steps)."""
    job = await session.scalar(
        select(Job).where(Job.id == job_id, Job.tenant_id == tenant.id, Job.kind.in_(MODULE_JOB_KINDS))
    )
    if job is None:
        raise NotFound(f"{tenant.name} has no module change #{job_id}.")
    return job


def describe_module_job(job: Job, catalogue: Catalogue) -> str | None:
    """What a module job changes, in a few words ("enable Events and Volunteering"); None for
    other jobs."""
    if job.kind == ENABLE_MODULES:
        return f"enable {catalogue.titles(job.payload.get('modules', []))}"
    if job.kind == DISABLE_MODULE:
        title = catalogue.title_of(job.payload.get("module", ""))
        return (
            f"disable {title}, keeping its data"
            if job.payload.get("keep_data")
            else f"drop the data of {title}"
        )
    return None
