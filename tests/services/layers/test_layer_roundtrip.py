"""Every layer goes up and comes back down leaving the store exactly as it found it, revision by
revision, on SQLite and (when configured) on PostgreSQL in database mode and in schema mode."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import inspect, text

from services.db import Database
from services.layers.catalogue import Layer
from services.layers.migrator import (
    DOWN,
    UP,
    MigrationFailed,
    current_revision,
    downgrade_layer,
    move_layer,
    revisions,
    upgrade_layer,
)
from services.layers.snapshot import fingerprint, take_snapshot
from tests.services.layers.stores import (
    Runs,
    Store,
    business_tables,
    catalogue,
    down,
    every_layer,
    foundation,
    up,
    version_key,
)
from tests.support import fresh_postgres_database, requires_postgres


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("postgres-database", marks=requires_postgres),
        pytest.param("postgres-schema", marks=requires_postgres),
    ],
)
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One empty store per backend, shared by this module's tests: each leaves it empty again."""
    if request.param == "sqlite":
        yield Store(f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('store') / 'tenant.db'}")
        return
    with fresh_postgres_database() as url:
        yield Store(url) if request.param == "postgres-database" else Store.new_schema(url)


async def _public_tables(database: Database) -> list[str]:
    """Tables outside the tenant's schema, in the database's public schema (schema mode only)."""
    async with database.engine.connect() as connection:
        return await connection.run_sync(lambda sync: inspect(sync).get_table_names(schema="public"))


async def _leave_empty(database: Database, stack: list[Layer]) -> None:
    """After a failure, take the stack off anyway, so the next test starts on an empty store."""
    for layer in reversed(stack):
        try:
            if await current_revision(database, layer) is not None:
                await downgrade_layer(database, layer, Runs())
        except Exception:
            pass


def _assert_same(actual: dict[str, Any], expected: dict[str, Any], what: str) -> None:
    assert set(actual["tables"]) == set(expected["tables"]), what
    assert actual["layer_versions"] == expected["layer_versions"], what
    for table, shape in expected["tables"].items():
        assert actual["tables"][table] == shape, f"{what}: table {table} differs"
    assert actual == expected, what


@pytest.mark.parametrize("layer", every_layer(), ids=lambda layer: layer.key)
def test_layer_goes_up_and_down_revision_by_revision(store: Store, layer: Layer) -> None:
    """Each revision applied, then each reverted, gives back exactly the schema before it; a layer
    taken off entirely leaves no trace (not even its version table); and applying it again gives
    the same schema hash as the first time."""
    beneath = foundation(layer)
    ordered = revisions(layer)

    async def scenario(database: Database) -> None:
        try:
            empty, _ = await take_snapshot(database)
            assert empty["tables"] == {}, "the store starts empty"
            await up(database, beneath)
            before, _ = await take_snapshot(database)

            runs = Runs()
            states = [before]
            for revision in ordered:
                assert await upgrade_layer(database, layer, runs, target=revision) == 1
                state, _ = await take_snapshot(database)
                assert state["layer_versions"][version_key(layer)] == revision
                states.append(state)
            first_hash = fingerprint(states[-1])
            assert business_tables(states[-1]) - business_tables(before), f"{layer.key} creates tables"
            assert await upgrade_layer(database, layer, runs) == 0, "nothing left to apply at the head"

            for index in range(len(ordered) - 1, -1, -1):
                target = ordered[index - 1] if index else "base"
                assert await downgrade_layer(database, layer, runs, target=target) == 1
                after, _ = await take_snapshot(database)
                # At base this includes the version table: a layer taken off leaves no trace.
                _assert_same(after, states[index], f"{layer.key} down from {ordered[index]}")

            assert [(run.revision, run.direction) for run in runs.runs] == [
                *((revision, UP) for revision in ordered),
                *((revision, DOWN) for revision in reversed(ordered)),
            ]
            assert runs.failures() == []

            # up → down → up: the same schema, hash for hash.
            assert await upgrade_layer(database, layer, runs) == len(ordered)
            _, again_hash = await take_snapshot(database)
            assert again_hash == first_hash, f"{layer.key} applied twice gives different schemas"
            if store.schema:
                assert await _public_tables(database) == [], "schema mode writes only into its schema"
            assert await downgrade_layer(database, layer, runs) == len(ordered)
            _assert_same((await take_snapshot(database))[0], before, f"{layer.key} down again")

            await down(database, beneath)
            _assert_same((await take_snapshot(database))[0], empty, "every layer taken off")
        finally:
            await _leave_empty(database, [*beneath, layer])

    store.run(scenario)


def _stacks() -> list[Any]:
    found = catalogue()
    stacks = []
    for name, template in found.templates.items():
        defaults = found.resolve_modules(name, template.default_modules)
        stacks.append(pytest.param(name, defaults, id=f"{name}-defaults"))
    # Every module at once (finance and simple_ledger conflict: one stack each), on any template.
    for name, left_out in (("political_party", "simple_ledger"), ("community_group", "finance")):
        every = found.resolve_modules(name, [module for module in found.modules if module != left_out])
        stacks.append(pytest.param(name, every, id=f"{name}-every-module-but-{left_out}"))
    return stacks


@pytest.mark.parametrize(("template", "modules"), _stacks())
def test_a_whole_tenant_goes_up_and_down(store: Store, template: str, modules: list[str]) -> None:
    """Basic, a template and a module set together, in the resolved order, and back to nothing."""
    stack = catalogue().layers_for(template, modules)

    async def scenario(database: Database) -> None:
        try:
            empty, _ = await take_snapshot(database)
            runs = Runs()
            await up(database, stack, runs)
            full, _ = await take_snapshot(database)
            assert set(full["layer_versions"]) == {version_key(layer) for layer in stack}
            if store.schema:
                assert await _public_tables(database) == []
            await down(database, stack, runs)
            assert runs.failures() == []
            _assert_same((await take_snapshot(database))[0], empty, f"{template} + {modules} taken off")
        finally:
            await _leave_empty(database, stack)

    store.run(scenario)


def test_taking_events_back_to_its_first_revision_keeps_the_data(store: Store) -> None:
    """events_0002's down drops a column in place: registrations, and the volunteer shifts of
    another module that point at events, survive it (a SQLite copy-and-move would cascade)."""
    found = catalogue()
    events, volunteering = found.modules["events"], found.modules["volunteering"]
    stack = [found.basic, events, volunteering]

    async def count(database: Database, table: str) -> int:
        async with database.engine.connect() as connection:
            counted: int = (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
            return counted

    async def scenario(database: Database) -> None:
        try:
            await up(database, stack)
            async with database.engine.begin() as connection:
                for statement in (
                    "INSERT INTO venues (id, tenant_id, name) VALUES (1, 1, 'Town hall')",
                    "INSERT INTO events (id, tenant_id, venue_id, title, starts_at, capacity)"
                    " VALUES (1, 1, 1, 'Spring fair', '2030-05-01 09:00:00', 80)",
                    "INSERT INTO event_registrations (tenant_id, event_id, attendee_name, attendee_email)"
                    " VALUES (1, 1, 'Ada', 'ada@example.org')",
                    "INSERT INTO volunteer_roles (id, tenant_id, name) VALUES (1, 1, 'Steward')",
                    "INSERT INTO volunteer_shifts (id, tenant_id, event_id, role_id, starts_at, ends_at)"
                    " VALUES (1, 1, 1, 1, '2030-05-01 10:00:00', '2030-05-01 12:00:00')",
                    "INSERT INTO shift_signups (tenant_id, shift_id, volunteer_name, volunteer_email)"
                    " VALUES (1, 1, 'Grace', 'grace@example.org')",
                ):
                    await connection.execute(text(statement))

            assert await downgrade_layer(database, events, Runs(), target="events_0001") == 1
            description, _ = await take_snapshot(database)
            assert "capacity" not in {column["name"] for column in description["tables"]["events"]["columns"]}
            assert [await count(database, table) for table in ("events", "event_registrations")] == [1, 1]
            assert [await count(database, table) for table in ("volunteer_shifts", "shift_signups")] == [1, 1]

            assert await upgrade_layer(database, events, Runs()) == 1
            assert await count(database, "event_registrations") == 1
            async with database.engine.begin() as connection:
                for table in ("shift_signups", "volunteer_shifts", "volunteer_roles"):
                    await connection.execute(text(f"DELETE FROM {table}"))
                for table in ("event_registrations", "events", "venues"):
                    await connection.execute(text(f"DELETE FROM {table}"))
            await down(database, stack)
            assert (await take_snapshot(database))[0]["tables"] == {}
        finally:
            await _leave_empty(database, stack)

    store.run(scenario)


def test_a_revision_another_migrator_ran_meanwhile_is_skipped_not_run_or_recorded_twice(store: Store) -> None:
    """Two migrators of one store (two tenants of a shared store) both read events at its first
    revision; the second to get the store's lock finds the revision applied, and neither runs it
    again nor records it again. A layer found somewhere it cannot have come from is refused."""
    found = catalogue()
    basic, events = found.basic, found.modules["events"]
    first, second = revisions(events)[:2]

    async def scenario(database: Database) -> None:
        try:
            await up(database, [basic])
            await upgrade_layer(database, events, Runs(), target=first)
            read_by_both = await current_revision(database, events)
            earlier, later = Runs(), Runs()
            await move_layer(database, events, read_by_both, second, earlier)
            await move_layer(database, events, read_by_both, second, later)
            assert [run.revision for run in earlier.runs] == [second] and later.runs == []
            assert await current_revision(database, events) == second

            with pytest.raises(MigrationFailed, match=f"is at {second} in the store, not at {first}"):
                await move_layer(database, events, first, None, Runs())  # believed at its first
            assert await current_revision(database, events) == second
        finally:
            await _leave_empty(database, [basic, events])

    store.run(scenario)
