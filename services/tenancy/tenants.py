"""The tenant registry in the landlord database."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import Conflict, InvalidInput, NotFound
from services.models import Plan, Tenant
from services.models.landlord import DEFAULT_PLAN


async def get_tenant(session: AsyncSession, slug: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise NotFound(f"There is no tenant {slug!r}.", field="tenant")
    return tenant


_SLUG = re.compile(r"^[a-z][a-z0-9-]{1,61}[a-z0-9]$")
#: Slugs that would shadow a host name or a path of the portal.
RESERVED_SLUGS = frozenset(
    {"www", "api", "admin", "app", "static", "login", "logout", "healthz", "landlord", "t"}
)


def validate_slug(slug: str) -> str:
    if not _SLUG.match(slug) or "--" in slug:
        raise InvalidInput(
            "A slug is 3 to 63 lowercase letters, digits and single hyphens, starting with a letter.",
            field="slug",
        )
    if slug in RESERVED_SLUGS:
        raise InvalidInput(f"The slug {slug!r} is reserved.", field="slug")
    return slug


async def check_slug_free(session: AsyncSession, slug: str) -> None:
    if await session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise Conflict(f"The slug {slug!r} is taken.", field="slug")


async def register_tenant(
    session: AsyncSession,
    *,
    slug: str,
    name: str,
    template: str,
    isolation: str,
    modules: Sequence[str] = (),
    kept_modules: Sequence[str] = (),
    plan_key: str = DEFAULT_PLAN,
) -> Tenant:
    """Record a new tenant (status provisioning); building its store is the work of the job
    recorded with it. Its modules and plan go into the INSERT, not an UPDATE after it."""
    slug = validate_slug(slug.strip())
    name = name.strip()
    if not name:
        raise InvalidInput("Give the tenant a name.", field="name")
    await check_slug_free(session, slug)
    tenant = Tenant(
        slug=slug,
        name=name,
        template=template,
        isolation=isolation,
        modules=list(modules),
        kept_modules=list(kept_modules),
        plan_key=plan_key,
    )
    session.add(tenant)
    await session.flush()
    return tenant


async def plans(session: AsyncSession) -> list[Plan]:
    """Every plan, smallest first (by how many people it allows; unlimited last)."""
    found = list(await session.scalars(select(Plan)))
    return sorted(found, key=lambda plan: (plan.max_users is None, plan.max_users or 0, plan.key))


async def find_plan(session: AsyncSession, plan_key: str) -> Plan:
    plan = await session.get(Plan, plan_key)
    if plan is None:
        known = ", ".join(plan.key for plan in await plans(session))
        raise InvalidInput(f"There is no plan {plan_key!r}; the plans are {known}.", field="plan")
    return plan


#: Modules' names joined for a sentence, as people know them (services.layers.catalogue's titles).
Titles = Callable[[Sequence[str]], str]


def plan_problems(plan: Plan, modules: Sequence[str], titles: Titles) -> list[str]:
    """Everything about `modules` the plan does not allow, a sentence each: the modules it leaves
    out, and more modules than it allows."""
    problems = []
    if outside := [name for name in modules if not plan.allows_module(name)]:
        problems.append(f"The {plan.name} plan does not include {titles(outside)}.")
    if plan.max_modules is not None and len(modules) > plan.max_modules:
        problems.append(f"The {plan.name} plan allows {plan.max_modules} modules, not {len(modules)}.")
    return problems


async def change_plan(session: AsyncSession, tenant: Tenant, plan_key: str, titles: Titles) -> Plan:
    """Put the tenant on another plan. Refused, saying why, when its enabled modules do not fit
    the plan (it has to disable some first)."""
    plan = await find_plan(session, plan_key)
    if problems := plan_problems(plan, tenant.modules, titles):
        raise Conflict(f"{' '.join(problems)} {tenant.name} has to disable modules first.", field="plan")
    tenant.plan_key = plan.key
    tenant.plan = plan
    return plan
