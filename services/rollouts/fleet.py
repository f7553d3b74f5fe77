"""The fleet: for every layer, its head and how many tenants are at each revision; for every
tenant, the layers behind their head. Read from the landlord alone (tenant_layers, kept with the
migration history) and the layer scripts on disk: no tenant store is opened, so the answer for a
thousand tenants takes milliseconds."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import InvalidInput
from services.layers.catalogue import Catalogue, Layer
from services.layers.migrator import head
from services.models import DriftCheck, Tenant, TenantLayer, TenantStatus

#: Tenants whose store is in service: the fleet a rollout moves. Provisioning and failed tenants
#: are brought to head by their own jobs; archived ones are left as they are.
IN_SERVICE = (TenantStatus.ACTIVE, TenantStatus.SUSPENDED, TenantStatus.MAINTENANCE)


@dataclass(frozen=True)
class Lag:
    """One layer of one tenant that is not at its head."""

    layer: str
    at: str | None  #: None: none of its revisions applied
    head: str | None


@dataclass(frozen=True)
class TenantLag:
    tenant_id: int
    slug: str
    name: str
    layers: tuple[Lag, ...]


@dataclass
class LayerState:
    """One layer across the fleet: its head and how many tenants are at each revision."""

    key: str
    title: str
    head: str | None
    tenants_at: Counter[str | None] = field(default_factory=Counter)

    @property
    def tenants(self) -> int:
        return sum(self.tenants_at.values())

    @property
    def behind(self) -> int:
        return self.tenants - self.tenants_at[self.head]


@dataclass(frozen=True)
class DriftedTenant:
    tenant_id: int
    slug: str
    check: DriftCheck


@dataclass(frozen=True)
class Fleet:
    tenants: int
    layers: list[LayerState]
    behind: list[TenantLag]
    #: Tenants whose latest drift check found differences.
    drifted: list[DriftedTenant] = field(default_factory=list)

    @property
    def layers_behind(self) -> list[LayerState]:
        return [layer for layer in self.layers if layer.behind]


class _Heads(dict[str, str | None]):
    """Each layer's head, read from its scripts once per answer."""

    def of(self, layer: Layer) -> str | None:
        if layer.key not in self:
            self[layer.key] = head(layer)
        return self[layer.key]


def layers_of(catalogue: Catalogue, tenant: Tenant) -> list[Layer]:
    """The tenant's layers; a template or module no longer on disk is left out (it cannot move)."""
    try:
        return catalogue.layers_for(
            tenant.template, [name for name in tenant.modules if name in catalogue.modules], tenant.slug
        )
    except InvalidInput:
        return []


async def latest_checks(session: AsyncSession, tenant_id: int | None = None) -> dict[int, DriftCheck]:
    """Each tenant's latest drift check (or only `tenant_id`'s)."""
    latest = select(func.max(DriftCheck.id)).group_by(DriftCheck.tenant_id)
    if tenant_id is not None:
        latest = latest.where(DriftCheck.tenant_id == tenant_id)
    checks = await session.scalars(select(DriftCheck).where(DriftCheck.id.in_(latest)))
    return {check.tenant_id: check for check in checks}


async def read_fleet(session: AsyncSession, catalogue: Catalogue) -> Fleet:
    tenants = list(
        await session.scalars(select(Tenant).where(Tenant.status.in_(IN_SERVICE)).order_by(Tenant.slug))
    )
    revisions: dict[int, dict[str, str]] = defaultdict(dict)
    rows = await session.execute(
        select(TenantLayer.tenant_id, TenantLayer.layer, TenantLayer.revision)
        .join(Tenant, Tenant.id == TenantLayer.tenant_id)
        .where(Tenant.status.in_(IN_SERVICE))
    )
    for tenant_id, key, revision in rows:
        revisions[tenant_id][key] = revision
    heads = _Heads()
    states: dict[str, LayerState] = {}
    behind: list[TenantLag] = []
    for tenant in tenants:
        lags = []
        for layer in layers_of(catalogue, tenant):
            top = heads.of(layer)
            state = states.setdefault(layer.key, LayerState(layer.key, layer.title or layer.key, top))
            at = revisions[tenant.id].get(layer.key)
            state.tenants_at[at] += 1
            if at != top:
                lags.append(Lag(layer.key, at, top))
        if lags:
            behind.append(TenantLag(tenant.id, tenant.slug, tenant.name, tuple(lags)))
    checks = await latest_checks(session)
    drifted = [
        DriftedTenant(tenant.id, tenant.slug, check)
        for tenant in tenants
        if (check := checks.get(tenant.id)) is not None and check.drifted
    ]
    return Fleet(len(tenants), sorted(states.values(), key=_layer_order), behind, drifted)


def _layer_order(state: LayerState) -> tuple[int, str]:
    kind = state.key.split("/", 1)[0]
    return ({"basic": 0, "templates": 1, "modules": 2}.get(kind, 3), state.key)
