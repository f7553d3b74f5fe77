"""Change capture: while a move copies a tenant's store and the tenant keeps serving, triggers on its
tables note the key of every row written (inserted, updated or deleted) in a change table of that
store, so the final catch-up copies just those rows again.

Triggers, not the application: every write reaches the store through some connection (a request, a
job, an operator's SQL), and a trigger sees them all in the writing transaction itself, so a write
committed after the capture started is noted exactly when it commits. Each move has its own change
table, trigger names and (PostgreSQL) trigger function, named after its job, so two tenants of one
shared store moving at once never meet; in a shared store the triggers note only the moving tenant's
rows. Starting the capture again (a worker killed and the step run again) replaces the triggers and
keeps what was noted; stopping it drops all of them, and is harmless when there is nothing to drop.

The change table is no tenant's data: dumps, measurements and schema snapshots leave it out
(services.layers.snapshot.CHANGE_TABLE_PREFIX)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.engine import Connection

from services.backups.content import tenant_tables
from services.layers.ownership import TENANT_COLUMN
from services.layers.snapshot import CHANGE_TABLE_PREFIX
from services.tenancy.sessions import write_barrier_key
from services.tenancy.stores import StoreLocation, in_store_transaction

#: Changed keys: table name -> the primary key values of each row written, as the store holds them.
Changes = dict[str, list[list[Any]]]


def _names(job_id: int) -> tuple[str, str]:
    """The move's change table, and its triggers' (and trigger function's) name."""
    return f"{CHANGE_TABLE_PREFIX}m{job_id}", f"tenantry_capture_m{job_id}"


def _quote(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def _keys(table: Table) -> list[str]:
    return [column.name for column in table.primary_key.columns]


async def start_capture(location: StoreLocation, job_id: int, tenant_id: int) -> int:
    """Note every write of the tenant's to the store's tables from now on; returns how many tables
    are watched. The tenant's write barrier is held meanwhile (services.tenancy.barrier): no write
    of the tenant's is half done when the triggers arrive."""
    return await in_store_transaction(location, _install, job_id, tenant_id, shared=location.is_shared)


def _install(connection: Connection, job_id: int, tenant_id: int, *, shared: bool) -> int:
    if connection.dialect.name == "postgresql":
        barrier = text("SELECT pg_advisory_xact_lock(hashtext(:key))")
        connection.execute(barrier, {"key": write_barrier_key(tenant_id)})
    changes, _ = _names(job_id)
    tables = [table for table in tenant_tables(connection) if _keys(table)]
    connection.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {_quote(connection, changes)} (table_name TEXT NOT NULL, row_key TEXT NOT NULL)"
    )
    install = _install_postgres if connection.dialect.name == "postgresql" else _install_sqlite
    install(connection, job_id, tenant_id if shared else None, tables)
    return len(tables)


def _install_sqlite(connection: Connection, job_id: int, tenant_id: int | None, tables: list[Table]) -> None:
    changes, trigger = _names(job_id)
    for table in tables:
        for event, rows in (("INSERT", ["NEW"]), ("UPDATE", ["OLD", "NEW"]), ("DELETE", ["OLD"])):
            name = _quote(connection, f"{trigger}_{table.name}_{event.lower()}")
            only = f" WHEN {rows[0]}.{TENANT_COLUMN} = {int(tenant_id)}" if tenant_id is not None else ""
            notes = " ".join(
                f"INSERT INTO {_quote(connection, changes)} VALUES ('{table.name}', json_array("
                + ", ".join(f"{row}.{_quote(connection, key)}" for key in _keys(table))
                + "));"
                for row in rows
            )
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
            connection.exec_driver_sql(
                f"CREATE TRIGGER {name} AFTER {event} ON {_quote(connection, table.name)}{only} BEGIN {notes} END"
            )


def _install_postgres(
    connection: Connection, job_id: int, tenant_id: int | None, tables: list[Table]
) -> None:
    """One trigger function for the move, told each table's key columns (and the tenant) by its
    trigger's arguments; it runs as the store's owner, so a tenant's role needs no right on the
    change table."""
    changes, trigger = _names(job_id)
    schema = _quote(connection, connection.exec_driver_sql("SELECT current_schema()").scalar_one())
    function = f"{schema}.{_quote(connection, trigger)}"
    connection.exec_driver_sql(
        f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
        DECLARE written jsonb;
        BEGIN
          FOREACH written IN ARRAY CASE TG_OP
            WHEN 'INSERT' THEN ARRAY[to_jsonb(NEW)] WHEN 'DELETE' THEN ARRAY[to_jsonb(OLD)]
            ELSE ARRAY[to_jsonb(OLD), to_jsonb(NEW)] END
          LOOP
            IF TG_ARGV[0] = '' OR written ->> '{TENANT_COLUMN}' = TG_ARGV[0] THEN
              INSERT INTO {schema}.{_quote(connection, changes)}
              SELECT TG_TABLE_NAME, jsonb_agg(written -> key ORDER BY position)::text
              FROM unnest(TG_ARGV[1:]) WITH ORDINALITY AS keys(key, position);
            END IF;
          END LOOP;
          RETURN NULL;
        END $$"""
    )
    only = "" if tenant_id is None else str(int(tenant_id))
    for table in tables:
        arguments = ", ".join(f"'{value}'" for value in [only, *_keys(table)])
        on = f"{schema}.{_quote(connection, table.name)}"
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {_quote(connection, trigger)} ON {on}")
        connection.exec_driver_sql(
            f"CREATE TRIGGER {_quote(connection, trigger)} AFTER INSERT OR UPDATE OR DELETE ON {on} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}({arguments})"
        )


async def captured_changes(location: StoreLocation, job_id: int) -> Changes:
    """The keys of the rows written since the capture started, each once, by table."""
    return await in_store_transaction(location, _read_changes, job_id)


def _read_changes(connection: Connection, job_id: int) -> Changes:
    changes, _ = _names(job_id)
    found = connection.exec_driver_sql(
        f"SELECT DISTINCT table_name, row_key FROM {_quote(connection, changes)}"
    )
    noted: Changes = {}
    for row in found:
        noted.setdefault(row.table_name, []).append(json.loads(row.row_key))
    return noted


async def stop_capture(location: StoreLocation, job_id: int) -> None:
    """The move's triggers, trigger function and change table dropped, where there are any."""
    await in_store_transaction(location, _remove, job_id)


def _remove(connection: Connection, job_id: int) -> None:
    changes, trigger = _names(job_id)
    if connection.dialect.name == "postgresql":
        # The triggers depend on the function: CASCADE drops them with it.
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {_quote(connection, trigger)}() CASCADE")
    else:
        triggers = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, ?) = ?",
            (len(trigger) + 1, f"{trigger}_"),
        )
        for (name,) in list(triggers):
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {_quote(connection, name)}")
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {_quote(connection, changes)}")
