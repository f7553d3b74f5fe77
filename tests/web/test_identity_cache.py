"""Who is calling is remembered between requests (services.landlord_cache), and forgotten the moment
anything in the landlord database changes: a revoke, a deactivation, a membership or a tenant's
status, made by this process or any other, is seen by the very next request."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.tokens import list_tokens
from services.db import Database, is_sqlite
from services.landlord_cache import LandlordMarks, UnchangedSince
from services.models import Membership, Tenant, TenantStatus, User
from services.models.types import utcnow
from services.recently_used import LeastRecentlyUsed
from services.settings import Settings
from tests.services.running import run_tenantry, tenantry_env
from tests.support import Credentials, before_each_statement, run_db, signed_in
from tests.web.portal import add_token, portal
from tests.web.tenant_world import add_admin, provision


def alone_on_the_database(settings: Settings) -> bool:
    """Whether nothing but this test commits where the marks look. A SQLite landlord is this test's
    file; a PostgreSQL mark is the whole server's, where the suite's other processes commit too:
    there, only that a change moves the mark can be asserted, not that nothing else does."""
    return is_sqlite(settings.database_url)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@contextmanager
def identity_reads() -> Iterator[list[str]]:
    """The statements, on any database, that read who a token or a session's user is."""
    seen: list[str] = []

    def note(statement: str) -> None:
        if "FROM api_tokens" in statement or "FROM users" in statement:
            seen.append(statement)

    with before_each_statement(note):
        yield seen


def test_a_token_revoked_by_another_process_is_refused_on_the_very_next_request(
    settings: Settings, superadmin: Credentials
) -> None:
    secret = add_token(settings, superadmin.email)
    (token,) = run_db(settings, lambda session: list_tokens(session, superadmin.email))
    with portal(settings) as client:
        for _ in range(2):  # the first use is written down (its last use), then remembered
            assert client.get("/api/v1/tenants", headers=bearer(secret)).status_code == 200
        with identity_reads() as reads:
            assert client.get("/api/v1/tenants", headers=bearer(secret)).status_code == 200
        if alone_on_the_database(settings):
            assert reads == [], "the token was looked up again although nothing had changed"

        revoked = run_tenantry(["tokens", "revoke", str(token.id)], tenantry_env(settings))
        assert revoked.returncode == 0, revoked.stderr

        refused = client.get("/api/v1/tenants", headers=bearer(secret))
        assert refused.status_code == 401, refused.text


def test_a_member_whose_membership_ends_is_shut_out_of_an_open_session_at_once(settings: Settings) -> None:
    provision(settings, "otter-club", isolation="shared")
    admin = add_admin(settings, "otter-club", "ada@otter.example")
    with portal(settings) as client:
        signed_in(client, admin)
        assert client.get("/t/otter-club/").status_code == 200
        with identity_reads() as reads:
            assert client.get("/t/otter-club/").status_code == 200
        if alone_on_the_database(settings):
            assert reads == [], "the session's user was looked up again although nothing had changed"

        async def end_membership(session: AsyncSession) -> None:
            await session.execute(delete(Membership))

        run_db(settings, end_membership)

        assert client.get("/t/otter-club/").status_code == 404


def test_a_tenant_suspended_elsewhere_closes_to_its_remembered_token_at_once(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, "heron-club", isolation="shared")
    add_admin(settings, "heron-club", "bo@heron.example")
    secret = add_token(settings, "bo@heron.example", tenant_slug="heron-club")
    with portal(settings) as client:
        assert client.get("/api/v1/tenant/units", headers=bearer(secret)).status_code == 200
        assert client.get("/api/v1/tenant/units", headers=bearer(secret)).status_code == 200

        async def suspend(session: AsyncSession) -> None:  # a statement, as a job would write it
            await session.execute(update(Tenant).values(status=TenantStatus.SUSPENDED))

        run_db(settings, suspend)

        refused = client.get("/api/v1/tenant/units", headers=bearer(secret))
        assert refused.status_code == 403, refused.text
        assert "suspended" in refused.json()["detail"]


def test_a_mark_moves_with_every_commit_of_any_connection_and_only_then(
    settings: Settings, superadmin: Credentials
) -> None:
    async def marks_around_commits() -> list[object]:
        watched, other = Database(settings.database_url), Database(settings.database_url)
        marks = LandlordMarks(watched.engine)
        try:
            seen = [await marks.mark(), await marks.mark()]
            async with other.session() as session:  # another connection, as another process's
                await session.execute(update(User).values(last_sign_in_at=utcnow()))
            seen.append(await marks.mark())
            async with watched.session() as session:  # the watched engine's own connections
                await session.execute(update(User).values(last_sign_in_at=None))
            seen.append(await marks.mark())
            seen.append(await marks.mark())
            return seen
        finally:
            await marks.close()
            await watched.dispose()
            await other.dispose()

    first, unchanged, after_other, after_own, still = asyncio.run(marks_around_commits())

    if alone_on_the_database(settings):
        assert first == unchanged
    assert after_other != unchanged
    assert after_own != after_other
    if alone_on_the_database(settings):
        assert still == after_own


def test_marks_asked_at_once_share_one_question_asked_after_each_caller_came(
    settings: Settings, superadmin: Credentials
) -> None:
    async def ask_together() -> tuple[set[object], object]:
        database = Database(settings.database_url)
        marks = LandlordMarks(database.engine)
        try:
            together = set(await asyncio.gather(*(marks.mark() for _ in range(20))))
            async with database.session() as session:
                await session.execute(update(User).values(last_sign_in_at=utcnow()))
            return together, await marks.mark()
        finally:
            await marks.close()
            await database.dispose()

    together, after = asyncio.run(ask_together())

    assert len(together) == 1
    assert after not in together


def test_when_the_landlord_cannot_be_asked_every_answer_is_read_afresh(tmp_path: Any) -> None:
    async def read_twice() -> list[str]:
        database = Database("postgresql+asyncpg://nobody@127.0.0.1:9/nowhere")
        kept: UnchangedSince[str, str] = UnchangedSince(LandlordMarks(database.engine))
        reads: list[str] = []

        async def read() -> str:
            reads.append("read")
            return "answer"

        try:
            for _ in range(2):
                assert await kept.get("key", read) == "answer"
            return reads
        finally:
            await kept.marks.close()
            await database.dispose()

    assert asyncio.run(read_twice()) == ["read", "read"]


def test_what_is_remembered_is_bounded_dropping_the_least_recently_used() -> None:
    remembered: LeastRecentlyUsed[str, int] = LeastRecentlyUsed(2)
    remembered.put("a", 1)
    remembered.put("b", 2)
    assert remembered.get("a") == 1  # "b" is now the least recently used
    remembered.put("c", 3)

    assert len(remembered) == 2
    assert (remembered.get("a"), remembered.get("b"), remembered.get("c")) == (1, None, 3)
