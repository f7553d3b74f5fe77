"""What the JSON API returns. Plain dataclasses; Litestar documents them in OpenAPI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from services.models import Tenant

T = TypeVar("T")


@dataclass(frozen=True)
class TenantOut:
    slug: str
    name: str
    status: str
    template: str
    isolation: str
    created_at: datetime

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        return cls(
            slug=tenant.slug,
            name=tenant.name,
            status=tenant.status,
            template=tenant.template,
            isolation=tenant.isolation,
            created_at=tenant.created_at,
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int


@dataclass(frozen=True)
class ErrorOut:
    status_code: int
    detail: str
