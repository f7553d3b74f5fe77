"""Splitting a tenant in the landlord portal ("Split…" on the tenant page): a unit and the new
tenant's slug chosen, the dry run shown (rows per table, the people who follow their units,
conflicts and how each is resolved, refusals), and the slug typed to confirm. Merging it into
another ("Merge…") likewise. The handlers are on web.landlord.moves' controller, beside the
tenant's moves; the split and the merge are services.moves.split's and services.moves.merge's."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import DomainError, InvalidInput
from services.models import Tenant
from services.moves.merge import A_IS_KEPT, MergePlan, merge_targets, plan_merge, target_named
from services.moves.split import (
    PEOPLE_FOLLOW,
    REMOVED_FROM_SOURCE,
    SplitPlan,
    SplitTarget,
    UnitChoice,
    plan_split,
    unit_choices,
)
from services.settings import Settings


@dataclass
class SplitForm:
    #: The unit whose subtree goes: its id.
    unit: str = ""
    #: The new tenant's slug.
    into: str = ""
    #: The new tenant's name; empty: the unit's.
    name: str = ""
    #: The source's slug typed again (only to start it).
    confirm: str = ""

    @property
    def target(self) -> SplitTarget:
        return SplitTarget(self.into, self.name or None)

    @property
    def asked(self) -> bool:
        """Whether the form was filled in: then the dry run is shown."""
        return bool(self.unit or self.into)


@dataclass
class SplitPage:
    tenant: Tenant
    units: list[UnitChoice]
    form: SplitForm
    plan: SplitPlan | None = None
    errors: dict[str, str] = field(default_factory=dict)
    #: A refusal that is no field's (not active, a split under way).
    refusal: str | None = None
    removed_from_source: str = REMOVED_FROM_SOURCE
    people_follow: str = PEOPLE_FOLLOW


async def split_page(
    session: AsyncSession, settings: Settings, tenant: Tenant, form: SplitForm, *, confirming: bool = False
) -> SplitPage:
    """The page, with the dry run of what the form asks when it asks something. Mistakes are said
    beside their fields, a refusal above the form."""
    page = SplitPage(tenant, await unit_choices(settings, tenant) if tenant.store_name else [], form)
    if not form.asked:
        return page
    try:
        page.plan = await plan_split(session, settings, tenant, form.unit, form.target)
    except DomainError as error:
        said_on(page, error, "unit")
    if confirming and form.confirm.strip() != tenant.slug:
        page.errors["confirm"] = confirm_message(tenant)
    return page


def confirm_message(tenant: Tenant, done: str = "split") -> str:
    return f"Type {tenant.slug} to confirm that it is to be {done}."


def page_status(page: SplitPage | MergePage) -> int:
    """A page with mistakes is a 422, one with a refusal a 409."""
    return 422 if page.errors else 409 if page.refusal else 200


def said_on(page: SplitPage | MergePage, error: DomainError, field: str) -> None:
    """A refused request said on its page: a mistake beside its field (`field` when it names none),
    a refusal above the form."""
    if isinstance(error, InvalidInput):
        page.errors = {**page.errors, **error.errors_by_field(field)}
    else:
        page.refusal = error.message


@dataclass
class MergeForm:
    #: The slug of the tenant the rows go into.
    into: str = ""
    #: This tenant's slug typed again (only to start it).
    confirm: str = ""


@dataclass
class MergePage:
    tenant: Tenant
    targets: list[Tenant]
    form: MergeForm
    plan: MergePlan | None = None
    errors: dict[str, str] = field(default_factory=dict)
    refusal: str | None = None
    kept: str = A_IS_KEPT


async def merge_page(
    session: AsyncSession, settings: Settings, tenant: Tenant, form: MergeForm, *, confirming: bool = False
) -> MergePage:
    """The page, with the dry run of the merge into the tenant the form names, when it names one."""
    page = MergePage(tenant, await merge_targets(session, tenant), form)
    if not form.into:
        return page
    try:
        page.plan = await plan_merge(session, settings, tenant, await target_named(session, form.into))
    except DomainError as error:
        said_on(page, error, "into")
    if confirming and form.confirm.strip() != tenant.slug:
        page.errors["confirm"] = confirm_message(tenant, "merged")
    return page
