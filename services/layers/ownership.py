"""Every table a tenant layer creates belongs to a tenant: it gets a `tenant_id` column.

Layer authors write plain migrations; while the migrator runs them, the table is completed
before it is created, the same way in every isolation mode:
- a `tenant_id` integer column (not null) and an index on it;
- on SQLite, ids that are never handed out twice (AUTOINCREMENT on an integer id): without it
  SQLite gives the next row the largest id plus one, so deleting the newest row frees its id for
  the next insert, of this tenant or, in a shared store, of another. PostgreSQL's sequences never
  go back by themselves;
- its unique constraints, and a primary key made of natural keys (no integer ids), start with
  `tenant_id`, so two tenants sharing a store may both have a role called "admin"; a foreign
  key those constraints indexed gets an index of its own;
- in a `shared` store on PostgreSQL, row-level security (enabled and FORCE'd): the application
  role sees and writes only the rows of the tenant named by the `tenantry.tenant_id` setting of
  its transaction. The owner (the migrator) keeps a policy of its own to run data migrations.

The same schema in every mode is what lets a tenant's rows move between modes unchanged.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Index, Integer, PrimaryKeyConstraint, Table, UniqueConstraint, event
from sqlalchemy.engine import Connection

from services.layers.snapshot import VERSION_TABLE_PREFIX

TENANT_COLUMN = "tenant_id"
UNIT_COLUMN = "unit_id"
#: connection.info keys the migrator sets while it runs a tenant layer's revision.
TENANT_LAYER = "tenantry.tenant_layer"
SHARED_STORE_ROLE = "tenantry.shared_store_role"
#: The PostgreSQL setting RLS policies read: the tenant of the current transaction.
TENANT_SETTING = "tenantry.tenant_id"


def owned_by_tenants(table: Table) -> bool:
    return not table.name.startswith(VERSION_TABLE_PREFIX) and not table.name.startswith("_alembic_tmp")


@event.listens_for(Table, "before_create")
def _add_tenant_column(table: Table, connection: Connection, **_: Any) -> None:
    if not connection.info.get(TENANT_LAYER) or not owned_by_tenants(table) or TENANT_COLUMN in table.c:
        return  # not a tenant layer, Alembic's own table, or a batch copy that already has it
    tenant_id = Column(TENANT_COLUMN, Integer, nullable=False)
    table.append_column(tenant_id)
    Index(f"ix_{table.name}_{TENANT_COLUMN}", tenant_id)  # attaches itself to the table
    # In a fixed order, not the set's (which varies from run to run): a revision then writes the
    # same CREATE TABLE for every tenant, and the stores of one recipe have one catalog.
    uniques = sorted(
        (c for c in table.constraints if isinstance(c, UniqueConstraint)),
        key=lambda unique: (str(unique.name), [column.name for column in unique.columns]),
    )
    led_by_unique = {next(iter(unique.columns)) for unique in uniques if unique.columns}
    for unique in uniques:
        table.constraints.remove(unique)
        table.append_constraint(UniqueConstraint(tenant_id, *unique.columns, name=unique.name))
    key_columns = list(table.primary_key.columns)
    # Integer keys are ids, unique in the store; a natural key (a setting's name) is per tenant.
    if key_columns and not any(isinstance(column.type, Integer) for column in key_columns):
        tenant_id.primary_key = True
        name = table.primary_key.name
        table.append_constraint(
            PrimaryKeyConstraint(tenant_id, *key_columns, name=name if isinstance(name, str) else None)
        )
    # A foreign key that a unique constraint indexed (now led by tenant_id) gets an index of its own.
    indexed = {next(iter(index.columns)) for index in table.indexes if index.columns}
    for foreign_key in table.foreign_key_constraints:
        column = next(iter(foreign_key.columns))
        if column in led_by_unique and column not in indexed:
            Index(f"ix_{table.name}_{column.name}", column)
            indexed.add(column)


@event.listens_for(Table, "before_create")
def _ids_never_reused(table: Table, connection: Connection, **_: Any) -> None:
    """SQLite AUTOINCREMENT for every table a tenant layer creates, batch mode's copies included
    (Alembic's `_alembic_tmp_` table becomes the table itself, and SQLAlchemy does not reflect the
    option, so the copy would lose it). SQLite applies it only to a single integer key that is no
    foreign key: an id of the table's own."""
    if connection.info.get(TENANT_LAYER) and connection.dialect.name == "sqlite":
        table.dialect_options["sqlite"]["autoincrement"] = True


@event.listens_for(Table, "after_create")
def _guard_shared_rows(table: Table, connection: Connection, **_: Any) -> None:
    """Row-level security on a shared PostgreSQL store: the second wall behind the ORM's filter."""
    app_role = connection.info.get(SHARED_STORE_ROLE)
    if not app_role or not connection.info.get(TENANT_LAYER) or not owned_by_tenants(table):
        return
    name = f'"{table.name}"'
    this_tenant = f"{TENANT_COLUMN} = NULLIF(current_setting('{TENANT_SETTING}', true), '')::integer"
    for statement in (
        f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY",
        f'CREATE POLICY tenant_rows ON {name} TO "{app_role}" USING ({this_tenant}) WITH CHECK ({this_tenant})',
        f"CREATE POLICY migrator_rows ON {name} TO CURRENT_USER USING (true) WITH CHECK (true)",
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON {name} TO "{app_role}"',
    ):
        connection.exec_driver_sql(statement)
