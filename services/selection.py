"""Which tenants a fleet operation takes, as a landlord admin selects them: by template, module,
plan, isolation mode, database server or slug."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from services.models import Tenant


@dataclass(frozen=True)
class Selection:
    """Which tenants a fleet operation (a rollout, a move plan) takes: all of them, or those matching
    every criterion given."""

    templates: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    plans: tuple[str, ...] = ()
    isolation: tuple[str, ...] = ()
    servers: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()  #: slugs

    @classmethod
    def of(cls, criteria: dict[str, Any]) -> Selection:
        return cls(**{name: tuple(criteria.get(name) or ()) for name in cls.__dataclass_fields__})

    def as_json(self) -> dict[str, list[str]]:
        return {name: list(values) for name, values in asdict(self).items() if values}

    def takes(self, tenant: Tenant, server: str) -> bool:
        return (
            (not self.templates or tenant.template in self.templates)
            and (not self.modules or any(module in tenant.modules for module in self.modules))
            and (not self.plans or tenant.plan_key in self.plans)
            and (not self.isolation or tenant.isolation in self.isolation)
            and (not self.servers or server in self.servers)
            and (not self.tenants or tenant.slug in self.tenants)
        )

    def __str__(self) -> str:
        said = [f"{name} {', '.join(values)}" for name, values in self.as_json().items()]
        return "; ".join(said) or "every tenant"
