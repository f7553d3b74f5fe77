"""Ids are never handed out twice: on SQLite, every table of the store with an integer id of its
own that lacks AUTOINCREMENT is rebuilt with it, whichever layer created it. Stores made before
this revision gave the next row the largest id plus one, so a deleted newest row's id came back,
in a shared store to another tenant. New tables get AUTOINCREMENT when they are created
(services/layers/ownership.py), so on a store made since, and on PostgreSQL (whose sequences never
go back), there is nothing to do.

Each table is copied by Alembic's batch mode with its rows, ids, keys, indexes and CHECK
constraints; the migrator runs the revision with SQLite's foreign keys off, so dropping the old
table cascades nothing, and checks every foreign key before it commits. SQLite then continues
each table's ids after the largest one the table holds.

Revision ID: basic_0002
Revises: basic_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "basic_0002"
down_revision = "basic_0001"
branch_labels = None
depends_on = None

#: Tables in a tenant store that hold no tenant's rows: the layers' version tables, batch copies.
_NOT_TENANT_TABLES = ("layer_version_", "_alembic_tmp_")


def _tables_reusing_ids(connection: sa.engine.Connection) -> list[str]:
    inspector = sa.inspect(connection)
    found = []
    for name in inspector.get_table_names():
        if name.startswith(_NOT_TENANT_TABLES):
            continue
        keys = inspector.get_pk_constraint(name)["constrained_columns"]
        if len(keys) != 1:
            continue
        column = next(column for column in inspector.get_columns(name) if column["name"] == keys[0])
        references = {c for fk in inspector.get_foreign_keys(name) for c in fk["constrained_columns"]}
        if not isinstance(column["type"], sa.Integer) or keys[0] in references:
            continue  # a natural key, or an id borrowed from the row it extends: nothing to hand out
        sql = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).scalar_one()
        if "AUTOINCREMENT" not in sql.upper():
            found.append(name)
    return found


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    inspector = sa.inspect(connection)
    for name in _tables_reusing_ids(connection):
        # Batch mode leaves out a CHECK constraint it reflects without a name unless restated.
        unnamed_checks = tuple(
            sa.CheckConstraint(check["sqltext"])
            for check in inspector.get_check_constraints(name)
            if not check["name"]
        )
        with op.batch_alter_table(
            name,
            recreate="always",
            table_args=unnamed_checks,
            table_kwargs={"sqlite_autoincrement": True},
        ):
            pass


def downgrade() -> None:
    """Nothing to undo: ids that are never reused suit basic_0001's schema as well (its tables and
    columns are the same), and taking AUTOINCREMENT away would let ids be handed out twice again."""
