"""Context switching: a superadmin, or a landlord admin granted it, acts as a tenant's admin for a
while and says why. The switch is kept in the switcher's session (see `Switch.to_session`); its
start, every write made under it and its end are entries in the audit trail."""

from __future__ import annotations

import enum
import math
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Actor, record
from services.errors import Conflict, DomainError, InvalidInput, NotFound
from services.models import AuditEntry, PlatformRole, TenantStatus, User
from services.models.types import utcnow
from services.tenancy.tenants import get_tenant

#: Where a session keeps the switch.
SESSION_KEY = "switch"
REASON_LIMIT = 500
#: Embeddings, overrides and isolates (U+202A to U+202E, U+2066 to U+2069): the audit trail must show a
#: reason in the order it was typed.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class SwitchNotAllowed(DomainError):
    """Only superadmins, and landlord admins a superadmin granted it, switch into tenants."""


class SwitchEnd(enum.StrEnum):
    """Why a switch ended."""

    EXIT = "exit"
    EXPIRED = "expired"
    #: The switcher signed out, or someone else signed in on the same browser.
    SESSION_ENDED = "session_ended"
    #: The switcher may no longer switch (the grant was revoked, the account deactivated).
    REVOKED = "revoked"


@dataclass(frozen=True)
class Switch:
    """Who switched into which tenant, why, and until when."""

    user_id: int
    user_email: str
    tenant_id: int
    tenant_slug: str
    tenant_name: str
    reason: str
    started_at: datetime
    expires_at: datetime

    @property
    def switcher(self) -> Actor:
        return Actor(email=self.user_email, user_id=self.user_id)

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def seconds_left(self, now: datetime) -> int:
        return max(0, math.ceil((self.expires_at - now).total_seconds()))

    def minutes_left(self, now: datetime) -> int:
        """Whole minutes, rounded up: "1 minute left" until the very end."""
        return math.ceil(self.seconds_left(now) / 60)

    def to_session(self) -> dict[str, Any]:
        """Plain JSON values, to store under `SESSION_KEY`."""
        return {
            "user_id": self.user_id,
            "user_email": self.user_email,
            "tenant_id": self.tenant_id,
            "tenant_slug": self.tenant_slug,
            "tenant_name": self.tenant_name,
            "reason": self.reason,
            "started_at": self.started_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }

    @classmethod
    def from_session(cls, stored: Any) -> Switch | None:
        """The switch stored under `SESSION_KEY`, or None when there is none or it is unreadable."""
        if not isinstance(stored, dict):
            return None
        try:
            started_at = datetime.fromisoformat(stored["started_at"])
            expires_at = datetime.fromisoformat(stored["expires_at"])
            if started_at.tzinfo is None or expires_at.tzinfo is None:
                return None
            return cls(
                user_id=int(stored["user_id"]),
                user_email=str(stored["user_email"]),
                tenant_id=int(stored["tenant_id"]),
                tenant_slug=str(stored["tenant_slug"]),
                tenant_name=str(stored["tenant_name"]),
                reason=str(stored["reason"]),
                started_at=started_at,
                expires_at=expires_at,
            )
        except (KeyError, TypeError, ValueError):
            return None


def _shows(character: str) -> bool:
    """Letters, digits, punctuation and symbols show; spaces, line and paragraph separators,
    control and format characters (zero-width ones among them) and combining marks alone do not."""
    return unicodedata.category(character)[0] in "LNPS"


def _is_control(character: str) -> bool:
    """Control characters other than the line breaks and tabs a textarea gives, lone surrogates, and
    the bidirectional overrides and isolates that make stored text read differently on screen."""
    if character in "\t\n\r":
        return False
    return unicodedata.category(character) in ("Cc", "Cs") or character in BIDI_CONTROLS


def check_reason(reason: str) -> str:
    """The reason, stripped; refused unless it shows something to read and hides nothing."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Say why you are switching into this tenant.", field="reason")
    if hidden := next((character for character in reason if _is_control(character)), None):
        raise InvalidInput(
            f"Type the reason as plain text: it holds a control character (U+{ord(hidden):04X}).",
            field="reason",
        )
    if not any(_shows(character) for character in reason):
        raise InvalidInput(
            "Say in words why you are switching into this tenant: this reason shows nothing.",
            field="reason",
        )
    if len(reason) > REASON_LIMIT:
        raise InvalidInput(
            f"Keep the reason within {REASON_LIMIT} characters (this one has {len(reason)}).",
            field="reason",
        )
    return reason


async def start_switch(
    session: AsyncSession,
    user: User,
    tenant_slug: str,
    reason: str,
    *,
    minutes: int,
    ip: str | None,
    now: datetime | None = None,
) -> Switch:
    """Check that `user` may switch into the active tenant `tenant_slug`, and record the start.
    Keeping the switch (in the session) is the caller's part."""
    if not user.can_switch_tenants:
        raise SwitchNotAllowed("Only superadmins, and landlord admins granted it, may switch into a tenant.")
    reason = check_reason(reason)
    tenant = await get_tenant(session, tenant_slug)
    if tenant.status != TenantStatus.ACTIVE:
        raise Conflict(
            f"{tenant.name} is {tenant.status}; only an active tenant can be switched into.", field="tenant"
        )
    started_at = now or utcnow()
    switch = Switch(
        user_id=user.id,
        user_email=user.email,
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        tenant_name=tenant.name,
        reason=reason,
        started_at=started_at,
        expires_at=started_at + timedelta(minutes=minutes),
    )
    await record(
        session,
        action="switch.start",
        actor=user,
        tenant_id=tenant.id,
        target=tenant.slug,
        detail={"reason": reason, "expires_at": switch.expires_at.isoformat()},
        ip=ip,
    )
    return switch


async def end_switch(
    session: AsyncSession, switch: Switch, cause: SwitchEnd, *, ip: str | None
) -> AuditEntry:
    """Record the end of `switch` ("switch.expire" when it ran out, "switch.end" otherwise), by its
    switcher whoever's request noticed it. Forgetting the switch is the caller's part."""
    return await record(
        session,
        action="switch.expire" if cause is SwitchEnd.EXPIRED else "switch.end",
        actor=switch.switcher,
        tenant_id=switch.tenant_id,
        target=switch.tenant_slug,
        detail={
            "cause": cause.value,
            "started_at": switch.started_at.isoformat(),
            "expires_at": switch.expires_at.isoformat(),
        },
        ip=ip,
    )


async def record_switched_write(
    session: AsyncSession, switch: Switch, *, method: str, path: str, ip: str | None
) -> AuditEntry:
    """A change the switcher made as the tenant's admin: both the person and the tenant are named."""
    return await record(
        session,
        action="switch.write",
        actor=switch.switcher,
        tenant_id=switch.tenant_id,
        target=switch.tenant_slug,
        detail={"method": method, "path": path},
        ip=ip,
    )


async def grant_switching(session: AsyncSession, user_id: int, *, granted: bool) -> User:
    """Let a landlord admin switch into tenants, or no longer. Superadmins always may."""
    user = await session.get(User, user_id)
    if user is None or not user.is_landlord_staff:
        raise NotFound(f"There is no landlord admin #{user_id}.", field="user")
    if user.platform_role == PlatformRole.SUPERADMIN:
        raise InvalidInput(f"{user.email} is a superadmin and always may switch into tenants.", field="user")
    user.may_switch_tenants = granted
    await session.flush()
    return user
