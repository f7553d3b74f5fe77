"""What each caller may send in a minute, by request class.

- **In a tenant** (its portal and its API), the tenant's plan sets two sets of limits: the whole
  tenant's (every member and token together) and each caller's (one member, or one tenant token).
  The landlord may give one tenant limits of its own in place of its plan's.
- **Outside a tenant**, the installation's settings do: each address for anonymous requests
  (`TENANTRY_RATE_LIMITS_ANONYMOUS`), each signed-in person or token for everything else
  (`TENANTRY_RATE_LIMITS_STAFF`): the landlord's pages and API, and staff switched into a tenant,
  who are counted apart and never against the tenant's limits.

A class a set of limits leaves out is not limited."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from services.errors import InvalidFields, InvalidSetting

if TYPE_CHECKING:
    from services.models import Tenant


class RequestClass(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    #: CSV exports and backup downloads: one such request costs the server many reads.
    EXPORT = "export"
    SIGN_IN = "sign_in"


#: What each class is called on pages and in refusals.
CLASS_NAMES = {
    RequestClass.READ: "reads",
    RequestClass.WRITE: "changes",
    RequestClass.EXPORT: "exports and downloads",
    RequestClass.SIGN_IN: "sign-in attempts",
}
#: The classes a tenant's limits set (sign-in is the address's alone: no one is in a tenant yet).
TENANT_CLASSES = (RequestClass.READ, RequestClass.WRITE, RequestClass.EXPORT)
#: Those classes with what each is called, in the order the pages show them.
TENANT_CLASS_NAMES = [(kind, CLASS_NAMES[kind]) for kind in TENANT_CLASSES]
#: The most a limit may be: a thousand requests a second.
HIGHEST_RATE = 60_000


@dataclass(frozen=True)
class Rates:
    """Requests a minute, by class; None: that class is not limited."""

    read: int | None = None
    write: int | None = None
    export: int | None = None
    sign_in: int | None = None

    def of(self, kind: RequestClass) -> int | None:
        value: int | None = getattr(self, kind.value)
        return value

    def as_json(self) -> dict[str, int]:
        return {
            field.name: value for field in fields(self) if (value := getattr(self, field.name)) is not None
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> Rates:
        value = value or {}
        return cls(**{kind.value: value.get(kind.value) for kind in RequestClass})

    def as_setting(self) -> str:
        return ",".join(f"{kind}={number}" for kind, number in self.as_json().items())

    @classmethod
    def from_setting(cls, name: str, text: str) -> Rates:
        """`read=600,write=120,…` (requests a minute; a class left out is not limited)."""
        rates: dict[str, int] = {}
        for part in filter(None, (piece.strip() for piece in text.split(","))):
            kind, _, number = part.partition("=")
            if kind.strip() not in RequestClass.__members__.values() or not number.strip().isdigit():
                raise InvalidSetting(
                    f"{name} is a list like 'read=600,write=120,export=10,sign_in=20' "
                    f"(requests a minute); {part!r} is not one of those."
                )
            rates[kind.strip()] = int(number)
        return cls(**rates)


@dataclass(frozen=True)
class TenantRates:
    """A tenant's limits: all of its callers together, and each one of them."""

    tenant: Rates
    each: Rates

    def as_json(self) -> dict[str, dict[str, int]]:
        return {"tenant": self.tenant.as_json(), "each": self.each.as_json()}

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> TenantRates:
        value = value or {}
        return cls(Rates.from_json(value.get("tenant")), Rates.from_json(value.get("each")))

    def as_form(self) -> dict[str, str]:
        """The limits as the landlord's form shows them (`rates_from_form` reads them back)."""
        return {
            f"{whose}_{kind.value}": str(rates.of(kind) or "")
            for whose, rates in (("tenant", self.tenant), ("each", self.each))
            for kind in TENANT_CLASSES
        }


NOT_LIMITED = TenantRates(Rates(), Rates())


def tenant_rates(tenant: Tenant) -> TenantRates:
    """The limits `tenant` is held to: its own where the landlord set them, else its plan's."""
    own = tenant.rate_limits
    return TenantRates.from_json(own if own is not None else tenant.plan.rate_limits)


def rates_from_form(values: Mapping[str, str]) -> TenantRates:
    """A tenant's limits as the landlord typed them: `tenant_read`, `each_write`, … (blank: not
    limited). Every wrong field is named at once."""
    chosen: dict[str, dict[str, int]] = {"tenant": {}, "each": {}}
    errors = {}
    for whose in chosen:
        for kind in TENANT_CLASSES:
            field = f"{whose}_{kind.value}"
            text = str(values.get(field, "")).strip()
            if not text:
                continue
            if not text.isdigit() or not 1 <= int(text) <= HIGHEST_RATE:
                errors[field] = f"A whole number of requests a minute, from 1 to {HIGHEST_RATE:,}, or blank."
                continue
            chosen[whose][kind.value] = int(text)
    if errors:
        raise InvalidFields(errors)
    return TenantRates.from_json(chosen)
