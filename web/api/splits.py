"""What the API takes and gives for a split and a merge (the handlers are on web.api.moves'
controller, beside the tenant's moves): a unit subtree and the new tenant's slug in, or the tenant
to merge into; the dry run and the job out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from msgspec import Meta

from services.moves.merge import MergePlan, RequestedMerge
from services.moves.split import RequestedSplit, SplitPlan, SplitTarget
from web.api.schemas import JobOut

NOT_SPLITTABLE = "The tenant is not active, has a custom layer, or a split of it is under way"
SPLIT_INPUT = (
    "No such unit (its id or its name), the tenant's root, several units of that name, or a slug "
    "that is taken or not a slug"
)
SPLIT_DESCRIPTION = (
    "The unit and every unit below it, with every row assigned to them (and the rows assigned to no "
    "unit that belong to one of those), become a new tenant with the source's template and modules; "
    "ids are renumbered and references follow. People follow their units. A verified portable safety "
    "backup of the source is taken first; the rows are removed from the source once the new tenant's "
    "store has been checked against them, in one transaction checked before it commits. The source "
    "shows a maintenance page, and its API answers 503, until the split is done."
)


@dataclass
class SplitIn:
    #: The unit whose subtree goes: its id, or its name when one unit has it.
    unit: Annotated[str, Meta(min_length=1, max_length=200)]
    #: The new tenant's slug.
    into: Annotated[str, Meta(min_length=1, max_length=63)]
    #: The new tenant's name; left out or null: the unit's.
    name: Annotated[str, Meta(max_length=200)] | None = None

    @property
    def target(self) -> SplitTarget:
        return SplitTarget(self.into, self.name)


@dataclass(frozen=True)
class SplitTableOut:
    table: str
    #: Rows that leave the source for the new tenant.
    moving: int
    #: Rows copied: the source keeps them too (roles, settings, profiles of people who follow).
    copied: int
    #: Rows the source keeps.
    staying: int


@dataclass(frozen=True)
class FollowerOut:
    email: str
    role: str
    #: Deactivated in the source: left with no unit there, and not its admin.
    leaves_source: bool


@dataclass(frozen=True)
class SplitPlanOut:
    tenant: str
    unit_id: int
    unit: str
    into: str
    name: str
    isolation: str
    rows_moving: int
    tables: list[SplitTableOut]
    people: list[FollowerOut]
    #: References across the cut, each with how it is resolved (cleared where it may be empty).
    conflicts: list[str]
    #: Why the split cannot go ahead; empty when it can.
    refusals: list[str]
    #: What becomes of the moved rows in the source.
    source: str
    people_follow: str

    @classmethod
    def of(cls, plan: SplitPlan) -> SplitPlanOut:
        return cls(
            tenant=plan.tenant.slug,
            unit_id=plan.unit_id,
            unit=plan.unit_name,
            into=plan.into,
            name=plan.name,
            isolation=plan.isolation,
            rows_moving=plan.rows_moving,
            tables=[SplitTableOut(t.name, t.moving, t.copied, t.staying) for t in plan.tables],
            people=[FollowerOut(f.email, f.role, f.leaves_source) for f in plan.followers],
            conflicts=[str(cleared) for cleared in plan.cleared],
            refusals=list(plan.refusals),
            source=plan.removed_from_source,
            people_follow=plan.people_follow,
        )


@dataclass(frozen=True)
class SplitRequestedOut:
    plan: SplitPlanOut
    job: JobOut
    #: The new tenant's slug; it is provisioning until the split is done.
    new_tenant: str
    message: str

    @classmethod
    def of(cls, requested: RequestedSplit, job: JobOut) -> SplitRequestedOut:
        return cls(SplitPlanOut.of(requested.plan), job, requested.new_tenant.slug, requested.message)


NOT_MERGEABLE = "Either tenant is not active, or they are of different templates"
MERGE_DESCRIPTION = (
    "Every row of this tenant goes into the tenant `into`, under a new unit for this tenant's root; "
    "ids are given after every id `into`'s store handed out and references follow; roles are matched "
    "by key and people by account or email. A unique value `into` holds already gets this tenant's "
    "slug added where it is text and fits, else the merge is refused. A verified portable safety "
    "backup of both is taken first; both show a maintenance page, and their APIs answer 503, until it "
    "is done. This tenant is left as it was."
)


@dataclass
class MergeIn:
    #: The slug of the tenant this one's rows go into.
    into: Annotated[str, Meta(min_length=1, max_length=63)]


@dataclass(frozen=True)
class MergePlanOut:
    tenant: str
    into: str
    rows_coming: int
    #: Rows per table this tenant brings.
    tables: dict[str, int]
    #: Unique values that clash, each with how it is resolved.
    conflicts: list[str]
    #: Why the merge cannot go ahead; empty when it can.
    refusals: list[str]
    #: This tenant's people who are `into`'s already, and those who come in.
    matched_people: int
    new_people: int
    #: What becomes of this tenant.
    source: str

    @classmethod
    def of(cls, plan: MergePlan) -> MergePlanOut:
        return cls(
            plan.source.slug,
            plan.target.slug,
            plan.rows_coming,
            dict(plan.tables),
            list(plan.renamed),
            list(plan.refusals),
            plan.matched_people,
            plan.new_people,
            plan.kept,
        )


@dataclass(frozen=True)
class MergeRequestedOut:
    plan: MergePlanOut
    job: JobOut

    @classmethod
    def of(cls, requested: RequestedMerge, job: JobOut) -> MergeRequestedOut:
        return cls(MergePlanOut.of(requested.plan), job)
