"""The landlord audit trail: entries chained by hash, refused by the database when changed, and
`tenantry audit verify` naming the first entry an attacker with database access altered, removed,
moved or cut off."""

from __future__ import annotations

import asyncio
import itertools
import subprocess

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Actor, record, verify
from services.db import Database, is_sqlite
from services.layers.landlord import downgrade_landlord, migrate_landlord
from services.models import AuditEntry
from services.settings import Settings
from tests.services.running import migrate, run_tenantry, run_tenantry_here, tenantry_env
from tests.support import run_db

OPS = Actor(email="ops@example.org", user_id=7)


@pytest.fixture
def migrated(settings: Settings) -> Settings:
    return migrate(settings)


def tenantry(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_tenantry(args, tenantry_env(settings))


def audit_verify(settings: Settings) -> tuple[int, str]:
    result = run_tenantry_here(["audit", "verify"], tenantry_env(settings))
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout.strip()


def record_several(settings: Settings, count: int) -> None:
    async def work(session: AsyncSession) -> None:
        for number in range(1, count + 1):
            await record(
                session,
                action="tenant.request",
                actor=OPS,
                tenant_id=number,
                target=f"tenant-{number}",
                detail={"job": number, "modules": ["events"]},
                ip="192.0.2.1",
            )

    run_db(settings, work)


def entries(settings: Settings) -> list[AuditEntry]:
    async def work(session: AsyncSession) -> list[AuditEntry]:
        return list(await session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))

    return run_db(settings, work)


def execute(settings: Settings, *statements: str) -> None:
    async def go() -> None:
        database = Database(settings.database_url)
        try:
            async with database.engine.begin() as connection:
                for statement in statements:
                    await connection.execute(text(statement))
        finally:
            await database.dispose()

    asyncio.run(go())


def as_an_attacker(settings: Settings, *statements: str) -> None:
    """Take the append-only triggers out of the way first, as someone with database access can."""
    if is_sqlite(settings.database_url):
        unguard = ["DROP TRIGGER audit_entries_no_update", "DROP TRIGGER audit_entries_no_delete"]
    else:
        unguard = ["ALTER TABLE audit_entries DISABLE TRIGGER ALL"]
    execute(settings, *unguard, *statements)


def test_an_empty_trail_is_intact(migrated: Settings) -> None:
    assert audit_verify(migrated) == (0, "Audit trail intact: 0 entries")


def test_entries_are_numbered_and_chained_and_the_trail_verifies(migrated: Settings) -> None:
    record_several(migrated, 5)

    found = entries(migrated)
    assert [entry.seq for entry in found] == [1, 2, 3, 4, 5]
    assert found[0].prev_hash == "0" * 64
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(found))
    assert (found[2].actor_email, found[2].actor_user_id, found[2].ip) == ("ops@example.org", 7, "192.0.2.1")
    assert found[2].detail == {"job": 3, "modules": ["events"]}
    assert audit_verify(migrated) == (0, "Audit trail intact: 5 entries")


def test_an_entry_rolled_back_with_its_action_leaves_no_trace_and_no_gap(migrated: Settings) -> None:
    async def attempt(session: AsyncSession) -> None:
        await record(session, action="user.create", actor=OPS, target="lost@example.org")
        await session.rollback()

    run_db(migrated, attempt)
    record_several(migrated, 1)

    assert [(entry.seq, entry.target) for entry in entries(migrated)] == [(1, "tenant-1")]
    assert audit_verify(migrated) == (0, "Audit trail intact: 1 entries")


@pytest.mark.parametrize(
    ("tampering", "expected"),
    [
        pytest.param(
            ["UPDATE audit_entries SET detail = '{\"job\": 99}' WHERE seq = 3"],
            "Audit trail broken at entry #3: altered",
            id="detail-altered",
        ),
        pytest.param(
            ["UPDATE audit_entries SET actor_email = 'someone@else.org' WHERE seq = 2"],
            "Audit trail broken at entry #2: altered",
            id="actor-altered",
        ),
        pytest.param(
            ["DELETE FROM audit_entries WHERE seq = 3"],
            "Audit trail broken at entry #3: missing",
            id="middle-removed",
        ),
        pytest.param(
            [
                "UPDATE audit_entries SET seq = -1 WHERE seq = 2",
                "UPDATE audit_entries SET seq = 2 WHERE seq = 4",
                "UPDATE audit_entries SET seq = 4 WHERE seq = -1",
            ],
            "Audit trail broken at entry #2: out of order",
            id="two-swapped",
        ),
        pytest.param(
            ["DELETE FROM audit_entries WHERE seq = 6"],
            "Audit trail broken at entry #6: missing",
            id="last-removed",
        ),
        pytest.param(
            [
                "DELETE FROM audit_entries WHERE seq = 3",
                "UPDATE audit_entries SET seq = seq - 1 WHERE seq > 3",
            ],
            "Audit trail broken at entry #3: out of order",
            id="removed-and-renumbered",
        ),
    ],
)
def test_verify_names_the_first_entry_tampered_with(
    migrated: Settings, tampering: list[str], expected: str
) -> None:
    record_several(migrated, 6)
    assert audit_verify(migrated) == (0, "Audit trail intact: 6 entries")

    as_an_attacker(migrated, *tampering)

    status, out = audit_verify(migrated)
    assert status == 1, out
    assert out.startswith(expected), out


def test_the_database_refuses_to_change_or_delete_an_entry(migrated: Settings) -> None:
    record_several(migrated, 2)

    for statement in (
        "UPDATE audit_entries SET target = 'changed' WHERE seq = 1",
        "DELETE FROM audit_entries WHERE seq = 2",
    ):
        with pytest.raises(DBAPIError, match="audit entries are append-only"):
            execute(migrated, statement)

    assert [entry.target for entry in entries(migrated)] == ["tenant-1", "tenant-2"]
    assert audit_verify(migrated) == (0, "Audit trail intact: 2 entries")


def test_concurrent_writers_keep_one_unbroken_chain(migrated: Settings) -> None:
    async def go() -> None:
        database = Database(migrated.database_url)

        async def one(number: int) -> None:
            async with database.session() as session:
                await record(session, action="sign_in", actor=Actor(email=f"user{number}@example.org"))
                await asyncio.sleep(0.01)  # hold the transaction open while others queue

        try:
            await asyncio.gather(*(one(number) for number in range(20)))
            async with database.session() as session:
                result = await verify(session)
        finally:
            await database.dispose()
        assert (result.ok, result.count) == (True, 20)

    asyncio.run(go())

    found = entries(migrated)
    assert [entry.seq for entry in found] == list(range(1, 21))
    assert len({entry.actor_email for entry in found}) == 20


def test_the_command_line_records_users_and_tokens(migrated: Settings) -> None:
    created = tenantry(migrated, "create-user", "--email", "ops@example.org", "--role", "landlord_admin")
    assert created.returncode == 0, created.stderr
    token = tenantry(migrated, "tokens", "create", "--email", "ops@example.org", "--name", "deploy")
    assert token.returncode == 0, token.stderr
    revoked = tenantry(migrated, "tokens", "revoke", "1")
    assert revoked.returncode == 0, revoked.stderr

    found = entries(migrated)
    assert [(entry.action, entry.target) for entry in found] == [
        ("user.create", "ops@example.org"),
        ("token.create", "ops@example.org"),
        ("token.revoke", "ops@example.org"),
    ]
    assert all(entry.actor_email.startswith("cli") and entry.actor_user_id is None for entry in found)
    assert found[1].detail["name"] == "deploy" and found[1].detail["token"] == 1
    assert audit_verify(migrated) == (0, "Audit trail intact: 3 entries")


def test_the_migration_goes_down_and_up_again(migrated: Settings) -> None:
    record_several(migrated, 1)

    async def down_and_up() -> None:
        database = Database(migrated.database_url)
        try:
            await downgrade_landlord(migrated, database, "0002")
            async with database.engine.connect() as connection:
                tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            assert "audit_entries" not in tables and "audit_chain" not in tables
            await migrate_landlord(migrated, database)
        finally:
            await database.dispose()

    asyncio.run(down_and_up())

    assert entries(migrated) == []
    record_several(migrated, 2)
    assert audit_verify(migrated) == (0, "Audit trail intact: 2 entries")
    with pytest.raises(DBAPIError, match="append-only"):
        execute(migrated, "DELETE FROM audit_entries")
