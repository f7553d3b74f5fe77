"""Models, one module per side. Landlord and tenant tables never share a base or metadata."""

from services.models.landlord import (
    ApiToken,
    Job,
    JobStatus,
    LandlordBase,
    Membership,
    PlatformRole,
    StoreEntry,
    Tenant,
    TenantRole,
    TenantStatus,
    User,
)

__all__ = [
    "ApiToken",
    "Job",
    "JobStatus",
    "LandlordBase",
    "Membership",
    "PlatformRole",
    "StoreEntry",
    "Tenant",
    "TenantRole",
    "TenantStatus",
    "User",
]
