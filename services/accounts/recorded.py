"""Accounts as people manage them: a superadmin's new landlord admin and whether an admin may
switch into tenants, anyone's own password, and API tokens made and revoked (on the account's
page or at the command line); each with its entry on the audit trail in the same transaction."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.tokens import NewToken, create_token, find_token, revoke_token
from services.accounts.users import NewUser, change_own_password, create_user, end_sessions
from services.audit import Caller, record_by
from services.models import ApiToken, PlatformRole, User
from services.tenancy.switching import grant_switching


async def add_landlord_admin(session: AsyncSession, caller: Caller, email: str) -> NewUser:
    """A landlord admin with a generated password, for `caller` (`user.create`, naming the admin)."""
    created = await create_user(session, email=email, role=PlatformRole.LANDLORD_ADMIN)
    await record_by(session, caller, "user.create", target=created.user.email)
    return created


async def allow_switching(session: AsyncSession, caller: Caller, user_id: int, *, allowed: bool) -> User:
    """Let the landlord admin `user_id` switch into tenants, or no longer, for `caller`
    (`user.switch_grant` or `user.switch_revoke`, naming the admin)."""
    user = await grant_switching(session, user_id, granted=allowed)
    action = "user.switch_grant" if allowed else "user.switch_revoke"
    await record_by(session, caller, action, target=user.email)
    return user


async def change_password(
    session: AsyncSession, caller: Caller, user_id: int, *, current: str, new: str, repeated: str
) -> datetime:
    """The caller's own new password (services.accounts.users.change_own_password), on the trail
    as `account.password_change`; a refusal writes nothing. Every session of theirs then ends
    (services.accounts.users.end_sessions): the moment it did, to stamp again the one they keep."""
    user = await change_own_password(session, user_id, current=current, new=new, repeated=repeated)
    moment = end_sessions(user)
    await record_by(session, caller, "account.password_change", target=user.email)
    return moment


async def sign_out_elsewhere(session: AsyncSession, caller: Caller, user_id: int) -> datetime:
    """Every session of the caller's but the one they keep ends (`account.sign_out_elsewhere`): the
    moment it did, to stamp again the one they keep."""
    user = await session.get_one(User, user_id)
    moment = end_sessions(user)
    await record_by(session, caller, "account.sign_out_elsewhere", target=user.email)
    return moment


async def issue_token(
    session: AsyncSession,
    caller: Caller,
    *,
    email: str,
    tenant_slug: str | None,
    name: str,
    expires_in: timedelta | None,
) -> NewToken:
    """A new API token acting as `email` (services.accounts.tokens.create_token), for `caller`
    (`token.create`, naming the token but never its secret)."""
    created = await create_token(
        session, email=email, tenant_slug=tenant_slug, name=name, expires_in=expires_in
    )
    expires_at = created.token.expires_at
    until = {"expires_at": expires_at.isoformat()} if expires_at else {}
    await _record_token(session, caller, "token.create", created.token, **until)
    return created


async def withdraw_token(
    session: AsyncSession, caller: Caller, token_id: int, *, owner_id: int | None = None
) -> ApiToken:
    """Revoke a token for `caller` (`token.revoke`; one revoked already stays as it was, with
    nothing recorded); with `owner_id`, only one of that user's."""
    token = await find_token(session, token_id, owner_id=owner_id)
    if token.revoked_at is None:
        await revoke_token(session, token_id)
        await _record_token(session, caller, "token.revoke", token)
    return token


async def _record_token(
    session: AsyncSession, caller: Caller, action: str, token: ApiToken, **detail: object
) -> None:
    """`action` against the token's tenant (none for a landlord token), naming its user."""
    detail = {"token": token.id, "prefix": token.prefix, "name": token.name, **detail}
    await record_by(session, caller, action, tenant=token.tenant, target=token.user.email, detail=detail)
