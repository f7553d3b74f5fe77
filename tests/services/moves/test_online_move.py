"""A tenant keeps serving while it moves: only the final catch-up holds its writes.

A writer inserts, updates and deletes rows the way a write request does (a tenant session holding
the tenant's write barrier, which asks the landlord whether the tenant is still open in the store
it entered), one write after another until the move ends; a write refused during the short freeze
is tried again. Then every acknowledged write is in the new store exactly once, and nothing else
came; no write was refused before the copy was validated. The move's change capture notes only
the moving tenant's rows in a shared store, and is gone from it afterwards."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text

from services.models import IsolationMode, JobStatus, Tenant
from services.models.types import utcnow
from services.moves.capture import captured_changes, start_capture, stop_capture
from services.moves.requests import CATCH_UP, MoveTarget
from services.tenancy.access import TenantUnderMaintenance
from services.tenancy.barrier import still_open_for_writes
from services.tenancy.connections import TenantConnections
from services.tenancy.entry import enter_tenant
from services.tenancy.stores import SQLITE, StoreLocation
from tests.services.backups.support import MODULES, TEMPLATE, add, execute, fill
from tests.services.moves.support import content_of
from tests.services.moves.test_moves import move
from tests.services.provisioning.installation import Installation, Landlord, query


@dataclass
class Writer:
    """Writes into one tenant as a request would, and keeps what was acknowledged: its settings
    (key → value) and the names of the units it added."""

    landlord: Landlord
    tenant_id: int
    root_unit: int
    connections: TenantConnections = field(default_factory=lambda: TenantConnections(2))
    settings: dict[str, str] = field(default_factory=dict)
    units: Counter[str] = field(default_factory=Counter)
    written: int = 0
    #: When each refused write was refused.
    refused: list[datetime] = field(default_factory=list)

    async def write(self, sql: str, **values: Any) -> bool:
        """One write in one transaction; False when the tenant refused it (the move's freeze)."""
        location = self.landlord.store(await self.landlord.tenant(self.tenant_id))

        async def still_open() -> None:
            await still_open_for_writes(
                self.landlord.database, self.landlord.settings, self.tenant_id, location
            )

        try:
            async with (
                enter_tenant(
                    self.tenant_id, location, connections=self.connections, still_open=still_open
                ) as entered,
                entered.session() as session,
            ):
                await session.execute(text(sql), {"tenant": self.tenant_id, **values})
        except TenantUnderMaintenance:
            self.refused.append(utcnow())
            return False
        self.written += 1
        return True

    async def next_write(self, number: int) -> None:
        """Insert a setting, add a unit, change the oldest setting or drop it, in turn."""
        oldest = next(iter(self.settings), None)
        if number % 4 == 0:
            if await self.write(
                "INSERT INTO settings (tenant_id, key, value) VALUES (:tenant, :key, :value)",
                key=f"w{number}",
                value=f"first {number}",
            ):
                self.settings[f"w{number}"] = f"first {number}"
        elif number % 4 == 1:
            name = f"Ward {number}"
            if await self.write(
                "INSERT INTO units (tenant_id, parent_id, name, kind, path) VALUES (:tenant, :root, :name, 'ward', '/w/')",
                root=self.root_unit,
                name=name,
            ):
                self.units[name] += 1
        elif number % 4 == 2 and oldest is not None:
            if await self.write(
                "UPDATE settings SET value = :value WHERE key = :key AND tenant_id = :tenant",
                key=oldest,
                value=f"changed {number}",
            ):
                self.settings[oldest] = f"changed {number}"
        elif (
            oldest is not None
            and len(self.settings) > 3
            and await self.write("DELETE FROM settings WHERE key = :key AND tenant_id = :tenant", key=oldest)
        ):
            del self.settings[oldest]

    async def write_until(self, done: asyncio.Event) -> None:
        number = 0
        while not done.is_set():
            await self.next_write(number)
            number += 1
        await self.connections.dispose()


async def written(location: StoreLocation, tenant: Tenant) -> tuple[dict[str, str], Counter[str]]:
    """The writer's settings and units as the tenant's store holds them."""
    settings = await query(
        location, f"SELECT key, value FROM settings WHERE key LIKE 'w%' AND tenant_id = {tenant.id}"
    )
    units = await query(
        location, f"SELECT name FROM units WHERE name LIKE 'Ward %' AND tenant_id = {tenant.id}"
    )
    return dict(settings), Counter(name for (name,) in units)


async def with_many_rows(location: StoreLocation, tenant: Tenant) -> None:
    """The dozen tables' rows, and enough venues (never written while the tenant moves) that the
    writer writes while they are copied."""
    await fill(location, tenant)
    await execute(
        location,
        "WITH RECURSIVE numbers(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < 2000) "
        f"INSERT INTO venues (tenant_id, name, city, seats) SELECT {tenant.id}, 'Hall ' || n, 'Hull', n FROM numbers",
    )


async def move_while_writing(landlord: Landlord, tenant: Tenant, target: MoveTarget) -> Writer:
    """Move the tenant while a writer writes into it, from before the move starts to its end."""
    root = await query(
        landlord.store(tenant), f"SELECT id FROM units WHERE parent_id IS NULL AND tenant_id = {tenant.id}"
    )
    writer = Writer(landlord, tenant.id, root[0][0])
    done = asyncio.Event()

    async def moving() -> tuple[Tenant, Any, Any]:
        try:
            return await move(landlord, tenant, target)
        finally:
            done.set()

    writing = asyncio.create_task(writer.write_until(done))
    moved_tenant, job, moved = await moving()
    await writing
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None), [(s.name, s.error) for s in job.steps]
    assert moved_tenant.isolation == target.isolation
    caught_up = next(step for step in job.steps if step.name == CATCH_UP).detail or ""
    assert not caught_up.startswith("0 "), f"rows were written during the copy: {caught_up}"
    assert moved.freeze_ms is not None and moved.copy_ms is not None
    validated = next(step for step in job.steps if step.name == "validate").finished_at
    assert validated is not None
    assert all(at > validated for at in writer.refused), "no write refused while the rows were copied"
    assert await written(landlord.store(moved_tenant), moved_tenant) == (writer.settings, writer.units)
    assert set(writer.units.values()) == {1}, "no acknowledged write twice"
    return writer


def test_a_shared_tenant_moves_out_while_it_writes_and_its_neighbour_is_untouched(
    shared_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        neighbour, job = await landlord.provision("river-club", TEMPLATE, MODULES)
        assert job.error is None, job.error
        tenant, job = await landlord.provision("harbour-club", TEMPLATE, MODULES)
        assert job.error is None, job.error
        shared = landlord.store(tenant)
        await with_many_rows(shared, tenant)
        theirs = await content_of(shared, neighbour)

        writer = await move_while_writing(landlord, tenant, MoveTarget(IsolationMode.DATABASE))

        assert writer.written > 0
        assert await content_of(shared, neighbour) == theirs, "the neighbour is untouched"
        assert await capture_left_behind(shared) == [], "the capture is gone from the shared store"

    shared_installation.run(scenario)


def test_a_tenant_moves_into_the_shared_store_while_it_writes(sqlite_installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, job = await landlord.provision("harbour-club", TEMPLATE, MODULES)
        assert job.error is None, job.error
        left = landlord.store(tenant)
        await fill(left, tenant)

        await move_while_writing(landlord, tenant, MoveTarget(IsolationMode.SHARED))

        assert await capture_left_behind(left) == [], "the capture is gone from the store it left"

    sqlite_installation.run(scenario)


async def capture_left_behind(location: StoreLocation) -> list[str]:
    """Triggers, functions or tables of a move's change capture in the store."""
    if location.backend == SQLITE:
        sql = "SELECT name FROM sqlite_master WHERE name LIKE 'tenantry_c%'"
    else:
        sql = (
            "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'tenantry_capture%' "
            "UNION ALL SELECT tablename FROM pg_tables WHERE tablename LIKE 'tenantry_changes%'"
        )
    return [name for (name,) in await query(location, sql)]


@pytest.mark.parametrize("again", [False, True], ids=["once", "started-twice"])
def test_the_capture_notes_only_the_moving_tenants_rows_in_a_shared_store(
    shared_installation: Installation, again: bool
) -> None:
    async def scenario(landlord: Landlord) -> None:
        neighbour, _ = await landlord.provision("river-club", TEMPLATE, MODULES)
        tenant, _ = await landlord.provision("harbour-club", TEMPLATE, MODULES)
        shared = landlord.store(tenant)

        await start_capture(shared, 901, tenant.id)
        await add(shared, tenant, "settings", key="colour", value="teal")
        if again:  # a worker killed in the step, and the step run again: what was noted stays
            await start_capture(shared, 901, tenant.id)
        await add(shared, neighbour, "settings", key="colour", value="red")
        await add(shared, tenant, "settings", key="motto", value="Tide")

        noted = await captured_changes(shared, 901)
        assert set(noted) == {"settings"}, noted
        assert sorted(noted["settings"]) == [[tenant.id, "colour"], [tenant.id, "motto"]], noted
        await stop_capture(shared, 901)
        await stop_capture(shared, 901)  # nothing left to drop: harmless
        assert await capture_left_behind(shared) == []

    shared_installation.run(scenario)
