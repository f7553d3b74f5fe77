"""Accounts as people manage them: a superadmin's new landlord admin and whether an admin may
switch into tenants, and anyone's own password; each with its entry on the audit trail in the same
transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.users import NewUser, change_own_password, create_user
from services.audit import Caller, record_by
from services.models import PlatformRole, User
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
) -> User:
    """The caller's own new password (services.accounts.users.change_own_password), on the trail
    as `account.password_change`; a refusal writes nothing."""
    user = await change_own_password(session, user_id, current=current, new=new, repeated=repeated)
    await record_by(session, caller, "account.password_change", target=user.email)
    return user
