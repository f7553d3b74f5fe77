"""Users and their roles. Platform staff carry a platform role; tenant people a membership."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.passwords import generate_password, hash_password, verify_password
from services.errors import Conflict, FieldErrors, InvalidInput, NotFound
from services.limits import text_length, text_problem
from services.models import Membership, PlatformRole, TenantRole, User
from services.models.types import utcnow
from services.tenancy.tenants import get_tenant

ROLES = [role.value for role in PlatformRole] + [role.value for role in TenantRole]
#: A password its owner chooses is at least this long: long enough that guessing it through the
#: sign-in form (throttled) is hopeless, short enough to type.
MIN_PASSWORD_LENGTH = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True)
class NewUser:
    user: User
    #: Shown once to whoever created the user; only its hash is stored.
    password: str


def normalise_email(email: str, *, field: str = "email") -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email) or text_problem(email, text_length(User.__table__.c.email)):
        raise InvalidInput("Enter a valid email address, like name@example.org.", field=field)
    return email


async def create_user(
    session: AsyncSession, *, email: str, role: str, tenant_slug: str | None = None
) -> NewUser:
    """Create a user with a generated password. Tenant roles need a tenant; platform roles refuse one."""
    email = normalise_email(email)
    if role not in ROLES:
        raise InvalidInput(f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.", field="role")
    if await find_user(session, email) is not None:
        raise Conflict(f"A user with the email {email} already exists.", field="email")
    password = generate_password()
    user = User(email=email, password_hash=hash_password(password), memberships=[])
    if role in TenantRole.__members__.values():
        if not tenant_slug:
            raise InvalidInput(f"A {role} belongs to a tenant; name it.", field="tenant")
        tenant = await get_tenant(session, tenant_slug)
        user.memberships.append(Membership(tenant=tenant, role=role))
    elif tenant_slug:
        raise InvalidInput(f"A {role} works for the whole platform, not for one tenant.", field="tenant")
    else:
        user.platform_role = role
    session.add(user)
    await session.flush()
    return NewUser(user=user, password=password)


async def add_account(session: AsyncSession, email: str, password_hash: str, *, one_time: bool) -> User:
    """An account for `email`, in no tenant yet. Its password is `one_time` when someone else is
    shown it (an invitation, a first admin): its owner then chooses their own at their first
    sign-in."""
    account = User(email=email, password_hash=password_hash, must_change_password=one_time, memberships=[])
    session.add(account)
    await session.flush()
    return account


async def find_user(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.strip().lower()))


async def get_active_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.scalar(select(User).where(User.id == user_id, User.is_active.is_(True)))


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    """The user whose email and password match, or None; the two failures look the same."""
    user = await find_user(session, email)
    password_hash = user.password_hash if user is not None and user.is_active else None
    if not verify_password(password_hash, password) or user is None:
        return None
    user.last_sign_in_at = utcnow()
    return user


async def seed_superadmin(session: AsyncSession, email: str) -> NewUser | None:
    """Create the first superadmin unless one exists; the password is returned only when created."""
    existing = await session.scalar(
        select(func.count()).select_from(User).where(User.platform_role == PlatformRole.SUPERADMIN)
    )
    if existing:
        return None
    try:
        async with session.begin_nested():
            return await create_user(session, email=email, role=PlatformRole.SUPERADMIN)
    except IntegrityError:
        return None  # another web process starting at the same moment seeded it first


async def list_landlord_staff(session: AsyncSession) -> list[User]:
    statement = select(User).where(User.platform_role.is_not(None)).order_by(User.email)
    return list(await session.scalars(statement))


async def get_user(session: AsyncSession, email: str) -> User:
    user = await find_user(session, email)
    if user is None:
        raise NotFound(f"No user has the email {email}.", field="email")
    return user


async def change_own_password(
    session: AsyncSession, user_id: int, *, current: str, new: str, repeated: str
) -> User:
    """Someone choosing their own password, proving the current one: refused, every mistake at once
    and each on its field, for a wrong current password, a new one shorter than
    MIN_PASSWORD_LENGTH or the same as the current one, and a repeat that differs. An account made
    with a password someone else was shown (`must_change_password`) is then its owner's alone."""
    user = await session.get_one(User, user_id)
    errors = FieldErrors()
    with errors.checking("current_password"):
        if not verify_password(user.password_hash, current):
            raise InvalidInput("That is not your current password.")
    with errors.checking("new_password"):
        if len(new) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.")
        if len(new) > 1_000:
            raise InvalidInput("A password is at most 1,000 characters.")
        if new == current:
            raise InvalidInput("Choose a password other than the one you were given.")
    with errors.checking("repeated_password"):
        if new != repeated:
            raise InvalidInput("The two new passwords differ: type the same one twice.")
    errors.raise_if_any()
    user.password_hash, user.must_change_password = hash_password(new), False
    await session.flush()
    return user


def end_sessions(user: User) -> datetime:
    """Every session `user` has open now is signed out on its next request (web.auth refuses a
    session signed in before `sessions_valid_after`). The moment, with which the one session that
    stays (the caller's own, when they ask) is stamped again."""
    user.sessions_valid_after = moment = utcnow()
    return moment
