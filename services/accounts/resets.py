"""Password resets: someone who forgot their password is given a new one by an admin, shown once
to that admin. The account then chooses its own before anything else (`must_change_password`), and
every session it had open ends. Each reset is on the audit trail (`account.password_reset`, naming
the account) in the same transaction.

Who may reset whom:
- the platform's staff, from the landlord's users page: any account, except that only a superadmin
  resets a superadmin's;
- a tenant's admin, from a person's page in the tenant's portal: one of that tenant's people whose
  account is theirs alone to manage, that is, no other tenant's and not staff. An account others
  rely on (another tenant's person, the platform's staff) must not be taken over from one tenant.

Nobody resets their own: they change it on their account page, knowing the current one."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.passwords import generate_password, hash_password
from services.accounts.users import end_sessions
from services.audit import Caller, record_by
from services.errors import Conflict, NotFound
from services.models import Tenant, User

OWN_ACCOUNT = "This is your own account: change your password on your account page."


class ResetRefused(Conflict):
    """This caller may not reset this account's password; the message says why."""


@dataclass(frozen=True)
class PasswordReset:
    user: User
    #: Shown once, to whoever reset it; only its hash is stored.
    password: str


def _caller_id(caller: Caller) -> int | None:
    actor = caller.actor
    return actor.id if isinstance(actor, User) else actor.user_id


async def account_of(session: AsyncSession, user_id: int) -> User:
    """The account `user_id` (its memberships loaded with it), or "not found"."""
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("There is no such account.")
    return user


def staff_reset_refusal(caller: Caller, user: User) -> str | None:
    """Why the staff member `caller` may not reset `user`'s password, or None."""
    actor = caller.actor
    if user.id == _caller_id(caller):
        return OWN_ACCOUNT
    if user.is_superadmin and not (isinstance(actor, User) and actor.is_superadmin):
        return f"{user.email} is a superadmin: only a superadmin may reset their password."
    return None


def tenant_reset_refusal(caller: Caller, tenant: Tenant, user: User) -> str | None:
    """Why an admin of `tenant` may not reset `user`'s password, or None."""
    if user.id == _caller_id(caller):
        return OWN_ACCOUNT
    tenants = {membership.tenant_id for membership in user.memberships}
    if tenant.id not in tenants:
        return f"{user.email} is not one of {tenant.name}'s active people: reactivate them first."
    if user.is_landlord_staff:
        return (
            f"{user.email} is also one of the platform's staff: only the platform may reset their password."
        )
    if tenants - {tenant.id}:
        return (
            f"{user.email} also signs in to other organisations with this account: ask the platform's "
            "staff to reset their password, so that no one organisation takes over an account others rely on."
        )
    return None


async def reset_by_staff(session: AsyncSession, caller: Caller, user_id: int) -> PasswordReset:
    """A new password for the account `user_id`, reset by the staff member `caller`."""
    user = await account_of(session, user_id)
    if refusal := staff_reset_refusal(caller, user):
        raise ResetRefused(refusal)
    return await _reset(session, caller, user, tenant=None)


async def reset_in_tenant(
    session: AsyncSession, caller: Caller, tenant: Tenant, user_id: int
) -> PasswordReset:
    """A new password for `tenant`'s person `user_id`, reset by one of its admins (on the trail
    against the tenant, where its admins read it)."""
    user = await account_of(session, user_id)
    if refusal := tenant_reset_refusal(caller, tenant, user):
        raise ResetRefused(refusal)
    return await _reset(session, caller, user, tenant=tenant)


async def _reset(
    session: AsyncSession, caller: Caller, user: User, *, tenant: Tenant | None
) -> PasswordReset:
    password = generate_password()
    user.password_hash, user.must_change_password = hash_password(password), True
    end_sessions(user)
    await session.flush()
    await record_by(
        session,
        caller,
        "account.password_reset",
        tenant=tenant,
        target=user.email,
        detail=caller.with_token({}),
    )
    return PasswordReset(user=user, password=password)
