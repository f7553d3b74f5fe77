"""What a rollout will do, worked out before it runs (its dry run): which tenants, which revisions
in which order, in which wave, how long it should take (from the durations the migration history
already holds), and which tenants it refuses and why. Read from the landlord alone."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import InvalidFields
from services.layers.catalogue import Catalogue, Layer, load_catalogue
from services.layers.migrator import DOWN, UP, head, revisions
from services.models import (
    DriftCheck,
    Job,
    MigrationHistory,
    Rollout,
    Tenant,
    TenantLayer,
    TenantLock,
    TenantStatus,
)
from services.rollouts.fleet import IN_SERVICE, latest_checks, layers_of
from services.selection import Selection
from services.settings import Settings
from services.tenancy.stores import location_of

#: What a revision is guessed to take when the history has never seen it run.
UNSEEN_REVISION_MS = 50.0


@dataclass(frozen=True)
class RolloutSpec:
    """What a landlord admin asks of a rollout."""

    #: One layer's key (basic, templates/x, modules/x, custom/slug), or None: every layer.
    layer: str | None = None
    #: The revision that layer goes to, up or down; None: its head.
    revision: str | None = None
    selection: Selection = field(default_factory=Selection)
    canary: int = 1
    wave_size: int = 10
    concurrency: int = 4
    per_server: int = 2
    halt_after_failures: int | None = 1
    halt_failure_percent: int | None = None
    lock_timeout_ms: int = 5_000
    statement_timeout_ms: int = 600_000
    backup_first: bool = False
    #: Take tenants whose schema has drifted too (refused otherwise).
    force: bool = False

    def check(self, catalogue: Catalogue) -> None:
        """Raise InvalidFields naming every field that is wrong."""
        errors: dict[str, str] = {}
        if self.revision and not self.layer:
            errors["revision"] = "A revision belongs to one layer: name the layer too."
        elif self.layer:
            layer = catalogue.named(self.layer)
            if layer is None:
                errors["layer"] = (
                    f"There is no layer {self.layer!r}; layers are named like basic, templates/x or modules/x."
                )
            elif self.revision and self.revision not in revisions(layer):
                errors["revision"] = (
                    f"{self.layer} has no revision {self.revision!r}; it has {', '.join(revisions(layer))}."
                )
        for name in (
            "canary",
            "wave_size",
            "concurrency",
            "per_server",
            "lock_timeout_ms",
            "statement_timeout_ms",
        ):
            value = getattr(self, name)
            least = 0 if name == "canary" else 1
            if value < least:
                errors[name] = f"{name.replace('_', ' ').capitalize()} must be at least {least}."
        if self.halt_after_failures is not None and self.halt_after_failures < 1:
            errors["halt_after_failures"] = "Halt after at least one failed tenant, or leave it empty."
        if self.halt_failure_percent is not None and not 1 <= self.halt_failure_percent <= 100:
            errors["halt_failure_percent"] = "Halt at a percentage from 1 to 100, or leave it empty."
        if errors:
            raise InvalidFields(errors)

    @classmethod
    def of(cls, rollout: Rollout) -> RolloutSpec:
        """The spec a recorded rollout ran with (its selection aside)."""
        return cls(**{name: getattr(rollout, name) for name in _kept_as_columns()})

    def settings(self) -> dict[str, Any]:
        """Everything but the selection, as a rollout's row keeps it: a column each."""
        return {name: getattr(self, name) for name in _kept_as_columns()}

    @property
    def target(self) -> str:
        if self.layer is None:
            return "every layer to its head"
        return f"{self.layer} to {self.revision or 'its head'}"


def _kept_as_columns() -> list[str]:
    return [spec_field.name for spec_field in fields(RolloutSpec) if spec_field.name != "selection"]


def describe_target(rollout: Rollout) -> str:
    """What a recorded rollout aims at, said for people."""
    if rollout.rollback_of:
        return f"its tenants back to where rollout #{rollout.rollback_of} found them"
    if rollout.layer is None:
        return "every layer to its head"
    return f"{rollout.layer} to {rollout.revision or 'its head'}"


@dataclass(frozen=True)
class Step:
    layer: str
    revision: str
    direction: str
    estimate_ms: float


@dataclass(frozen=True)
class PlannedTenant:
    tenant_id: int
    slug: str
    name: str
    server: str
    #: The shared store the tenant is in (its tenants move together), or None.
    shared_store: str | None
    start: dict[str, str | None]
    target: dict[str, str | None]
    steps: tuple[Step, ...]
    wave: int = 0

    @property
    def estimate_ms(self) -> float:
        return sum(step.estimate_ms for step in self.steps)


@dataclass(frozen=True)
class Refusal:
    tenant_id: int
    slug: str
    why: str


@dataclass(frozen=True)
class RolloutPlan:
    spec: RolloutSpec
    tenants: list[PlannedTenant]
    refused: list[Refusal]
    #: Selected tenants already at the target.
    at_target: int

    @property
    def waves(self) -> int:
        return 1 + max((tenant.wave for tenant in self.tenants), default=-1)

    @property
    def estimate_seconds(self) -> float:
        """Waves one after the other; within a wave, `concurrency` tenants at a time."""
        total = 0.0
        for wave in range(self.waves):
            durations = [tenant.estimate_ms for tenant in self.tenants if tenant.wave == wave]
            total += max(sum(durations) / self.spec.concurrency, max(durations, default=0.0))
        return total / 1000


def moves(layer: Layer, start: str | None, target: str | None) -> list[tuple[str, str]]:
    """The revisions from `start` to `target` in the order they run: (revision, direction)."""
    ordered = revisions(layer)
    begin = ordered.index(start) + 1 if start else 0
    end = ordered.index(target) + 1 if target else 0
    if end >= begin:
        return [(revision, UP) for revision in ordered[begin:end]]
    return [(revision, DOWN) for revision in reversed(ordered[end:begin])]


async def _durations(session: AsyncSession) -> dict[tuple[str, str, str], float]:
    rows = await session.execute(
        select(
            MigrationHistory.layer,
            MigrationHistory.revision,
            MigrationHistory.direction,
            func.avg(MigrationHistory.duration_ms),
        )
        .where(MigrationHistory.outcome == "succeeded", MigrationHistory.direction.in_((UP, DOWN)))
        .group_by(MigrationHistory.layer, MigrationHistory.revision, MigrationHistory.direction)
    )
    return {(layer, revision, direction): float(ms) for layer, revision, direction, ms in rows}


async def busy_tenants(session: AsyncSession) -> dict[int, Job]:
    """Tenants another job is working on (it holds their lock)."""
    rows = await session.execute(select(TenantLock.tenant_id, Job).join(Job, Job.id == TenantLock.job_id))
    return {tenant_id: job for tenant_id, job in rows if not job.finished}


def _why_not(
    tenant: Tenant, busy: dict[int, Job], drift: dict[int, DriftCheck], spec: RolloutSpec
) -> str | None:
    if tenant.status != TenantStatus.ACTIVE:
        return f"the tenant is {tenant.status}"
    if (job := busy.get(tenant.id)) is not None:
        return f"busy with {job.kind.replace('_', ' ')} job #{job.id}"
    if (check := drift.get(tenant.id)) is not None and check.drifted and not spec.force:
        return f"its schema has drifted (drift check #{check.id}: {check.differences[0]}); force it, or put it right"
    return None


def tenant_targets(
    catalogue: Catalogue,
    spec: RolloutSpec,
    tenant: Tenant,
    recorded: dict[str, str],
    head_of: Callable[[Layer], str | None] = head,
) -> list[tuple[Layer, str | None, str | None]]:
    """The tenant's layers the rollout moves: (layer, where it is, where it goes), in the order
    they apply. Only a rollout of one layer goes down, so the order of layers never has to turn."""
    chosen = [
        layer for layer in layers_of(catalogue, tenant) if spec.layer is None or layer.key == spec.layer
    ]
    return [(layer, recorded.get(layer.key), spec.revision or head_of(layer)) for layer in chosen]


async def plan_rollout(session: AsyncSession, settings: Settings, spec: RolloutSpec) -> RolloutPlan:
    """The rollout's dry run. Raises InvalidFields for a spec that cannot be run."""
    catalogue = load_catalogue(settings.layers_dir)
    spec.check(catalogue)
    tenants = list(
        await session.scalars(select(Tenant).where(Tenant.status.in_(IN_SERVICE)).order_by(Tenant.id))
    )
    recorded: dict[int, dict[str, str]] = defaultdict(dict)
    for row in await session.scalars(select(TenantLayer)):
        recorded[row.tenant_id][row.layer] = row.revision
    durations, busy, drift = (
        await _durations(session),
        await busy_tenants(session),
        await latest_checks(session),
    )
    planned: list[PlannedTenant] = []
    refused: list[Refusal] = []
    at_target = 0
    # Most tenants share each layer's head, start and target: each is worked out once per plan.
    head_of, between = functools.cache(head), functools.cache(moves)
    for tenant in tenants:
        location = location_of(settings, tenant)
        if not spec.selection.takes(tenant, location.server):
            continue
        targets = tenant_targets(catalogue, spec, tenant, recorded[tenant.id], head_of)
        steps = tuple(
            Step(
                layer.key,
                revision,
                direction,
                durations.get((layer.key, revision, direction), UNSEEN_REVISION_MS),
            )
            for layer, start, target in targets
            for revision, direction in between(layer, start, target)
        )
        if not steps:
            at_target += 1
            continue
        if why := _why_not(tenant, busy, drift, spec):
            refused.append(Refusal(tenant.id, tenant.slug, why))
            continue
        planned.append(
            PlannedTenant(
                tenant.id,
                tenant.slug,
                tenant.name,
                location.server,
                location.name if location.is_shared else None,
                {layer.key: start for layer, start, _ in targets},
                {layer.key: target for layer, _, target in targets},
                steps,
            )
        )
    return RolloutPlan(spec, in_waves(planned, spec.canary, spec.wave_size), refused, at_target)


def in_waves(tenants: list[PlannedTenant], canary: int, wave_size: int) -> list[PlannedTenant]:
    """The tenants with their waves: the canary (wave 0) of `canary` tenants first, then waves of
    `wave_size` (1, 2, …). Tenants of one shared store are one unit: they share a wave."""
    units: dict[str, list[PlannedTenant]] = {}
    for tenant in tenants:
        units.setdefault(tenant.shared_store or f"own:{tenant.tenant_id}", []).append(tenant)
    return [
        replace(tenant, wave=0 if index < canary else 1 + (index - canary) // wave_size)
        for index, unit in enumerate(units.values())
        for tenant in unit
    ]
