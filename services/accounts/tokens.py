"""API tokens: shown once at creation, stored as a SHA-256, scoped to the landlord or one tenant."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, contains_eager

from services.accounts.users import get_user
from services.errors import InvalidInput, NotFound
from services.limits import check_text, holds
from services.models import ApiToken, Membership, User
from services.models.types import utcnow
from services.tenancy.tenants import get_tenant

TOKEN_PREFIX = "tnt_"
#: How precisely a token's last use is kept. Writing it on every request would make every API call
#: a write transaction (on SQLite, each would wait for the one write lock); once a minute says as
#: much to whoever asks when a token was last used.
LAST_USE_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    #: The bearer secret; it is not stored and cannot be shown again.
    secret: str


_TOKENS_MEMBERSHIP = aliased(Membership)
_LIVE_TOKEN = (
    select(ApiToken)
    .join(ApiToken.user)
    .outerjoin(
        _TOKENS_MEMBERSHIP,
        (_TOKENS_MEMBERSHIP.user_id == User.id) & (_TOKENS_MEMBERSHIP.tenant_id == ApiToken.tenant_id),
    )
    .options(contains_eager(ApiToken.user).contains_eager(User.memberships.of_type(_TOKENS_MEMBERSHIP)))
)


def token_digest(secret: str) -> str:
    """What is stored of a token's secret, and what it is found by."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_token(
    session: AsyncSession,
    *,
    email: str,
    tenant_slug: str | None = None,
    name: str = "cli",
    expires_in: timedelta | None = None,
) -> NewToken:
    """A token acting as the user, for the landlord (staff only) or for one tenant they may act in,
    refused from `expires_in` after now on (None: it never expires)."""
    user = await get_user(session, email)
    if not user.is_active:
        raise InvalidInput(f"{user.email} is deactivated.", field="email")
    tenant = None
    if tenant_slug:
        tenant = await get_tenant(session, tenant_slug)
        member = any(membership.tenant_id == tenant.id for membership in user.memberships)
        if not (member or user.is_landlord_staff):
            raise InvalidInput(f"{user.email} is not a member of {tenant.slug}.", field="tenant")
    elif not user.is_landlord_staff:
        raise InvalidInput(
            f"{user.email} works inside a tenant; name the tenant with --tenant.", field="tenant"
        )
    name = name.strip()
    if not name:
        raise InvalidInput("Name the token, to tell it apart from your others later.", field="name")
    check_text(name, ApiToken.__table__.c.name, field="name")
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidInput("A token expires some time after it is made.", field="expires")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=user,
        tenant=tenant,
        name=name,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        token_hash=token_digest(secret),
        expires_at=utcnow() + expires_in if expires_in is not None else None,
    )
    session.add(token)
    await session.flush()
    return NewToken(token=token, secret=secret)


async def list_tokens(session: AsyncSession, email: str | None = None) -> list[ApiToken]:
    statement = select(ApiToken).order_by(ApiToken.id)
    if email:
        statement = statement.where(ApiToken.user_id == (await get_user(session, email)).id)
    return list(await session.scalars(statement))


async def find_token(session: AsyncSession, token_id: int, *, owner_id: int | None = None) -> ApiToken:
    """The token `token_id`; with `owner_id`, only if it is that user's: another's is "not found",
    as one that does not exist."""
    token = await session.get(ApiToken, token_id) if holds(ApiToken.id, token_id) else None
    if token is None or owner_id not in (None, token.user_id):
        raise NotFound(f"There is no token {token_id}.")
    return token


async def revoke_token(session: AsyncSession, token_id: int, *, owner_id: int | None = None) -> ApiToken:
    """Revoke the token `token_id` (see `find_token`)."""
    token = await find_token(session, token_id, owner_id=owner_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


async def authenticate_token(session: AsyncSession, secret: str) -> ApiToken | None:
    """The live token for this secret (not revoked, not expired, its user active), or None.

    One query loads the token, its user and, as the user's memberships, those the token can act
    in: the membership in the token's tenant, none for a landlord token (a token acts in its
    tenant only)."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token = await session.scalar(_LIVE_TOKEN.where(ApiToken.token_hash == token_digest(secret)))
    if token is None or token.revoked_at is not None or not token.user.is_active or has_expired(token):
        return None
    if not last_use_is_recorded(token):
        token.last_used_at = utcnow()
    return token


def has_expired(token: ApiToken) -> bool:
    return token.expires_at is not None and token.expires_at <= utcnow()


def last_use_is_recorded(token: ApiToken) -> bool:
    """Whether `last_used_at` says, to `LAST_USE_PRECISION`, that the token is being used now."""
    return token.last_used_at is not None and utcnow() - token.last_used_at < LAST_USE_PRECISION
