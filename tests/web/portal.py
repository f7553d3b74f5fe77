"""Setting up the people and tenants a web test needs, and looking at what a browser would see."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.tokens import create_token
from services.accounts.users import create_user, get_user
from services.models import StoreEntry, Tenant, User
from services.settings import Settings
from services.tenancy.tenants import register_tenant
from tests.support import Credentials, app_for, run_db

HTMX = {"HX-Request": "true"}
SESSION_COOKIE = "session"
#: What must never reach a visitor, whatever went wrong.
TRACE_MARKERS = ("Traceback", 'File "', "sqlalchemy", "litestar.", "Exception")
BASE_URL = "http://127.0.0.1:8000"


@contextmanager
def portal(settings: Settings) -> Iterator[TestClient[Any]]:
    """A browser on an app of its own, for settings other than the `app` fixture's."""
    with app_for(settings) as app, TestClient(app, base_url=BASE_URL) as client:
        yield client


def add_tenant(settings: Settings, slug: str, name: str | None = None) -> Tenant:
    async def work(session: AsyncSession) -> Tenant:
        return await register_tenant(
            session, slug=slug, name=name or slug.title(), template="community_group", isolation="database"
        )

    return run_db(settings, work)


def add_user(settings: Settings, email: str, role: str, tenant_slug: str | None = None) -> Credentials:
    """A user with the generated password they would have been shown."""

    async def work(session: AsyncSession) -> Credentials:
        new = await create_user(session, email=email, role=role, tenant_slug=tenant_slug)
        return Credentials(new.user.email, new.password)

    return run_db(settings, work)


def add_token(settings: Settings, email: str, tenant_slug: str | None = None) -> str:
    """The bearer secret of a new API token acting as `email`."""

    async def work(session: AsyncSession) -> str:
        return (await create_token(session, email=email, tenant_slug=tenant_slug)).secret

    return run_db(settings, work)


def find_user(settings: Settings, email: str) -> User | None:
    async def work(session: AsyncSession) -> User | None:
        return await session.scalar(select(User).where(User.email == email))

    return run_db(settings, work)


def set_active(settings: Settings, email: str, *, active: bool) -> None:
    async def work(session: AsyncSession) -> None:
        (await get_user(session, email)).is_active = active

    run_db(settings, work)


def count_users(settings: Settings) -> int:
    async def work(session: AsyncSession) -> int:
        return await session.scalar(select(func.count()).select_from(User)) or 0

    return run_db(settings, work)


def stored_sessions(settings: Settings) -> dict[str, bytes]:
    """The server-side sessions in the landlord database, by id."""

    async def work(session: AsyncSession) -> dict[str, bytes]:
        rows = await session.scalars(select(StoreEntry).where(StoreEntry.namespace == "sessions"))
        return {row.key: row.value for row in rows}

    return run_db(settings, work)


def session_id(client: TestClient[Any]) -> str | None:
    return client.cookies.get(SESSION_COOKIE)


def set_cookies(response: Any, name: str) -> list[str]:
    """The Set-Cookie headers of `response` that set the cookie `name`."""
    return [header for header in response.headers.get_list("set-cookie") if header.startswith(f"{name}=")]


def get_with_session(client: TestClient[Any], path: str, session: str) -> Any:
    """GET `path` carrying only the session cookie `session` (say, one kept from earlier)."""
    return client.get(path, headers={"Cookie": f"{SESSION_COOKIE}={session}"}, follow_redirects=False)


def is_partial(html: str) -> bool:
    """An HTMX fragment, not a whole page."""
    return "<html" not in html and "<body" not in html


def assert_no_trace(text: str) -> None:
    for marker in TRACE_MARKERS:
        assert marker not in text, f"{marker!r} leaked into the response"
