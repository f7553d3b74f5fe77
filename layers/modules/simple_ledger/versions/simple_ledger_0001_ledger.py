"""Simple ledger: income and expense categories and the entries booked in them.

Revision ID: simple_ledger_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "simple_ledger_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_categories",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_ledger_categories_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("kind", "name", name="uq_ledger_categories_kind_name"),
        sa.CheckConstraint("kind IN ('income', 'expense')", name="ck_ledger_categories_kind"),
    )
    op.create_index("ix_ledger_categories_unit_id", "ledger_categories", ["unit_id"])
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "category_id",
            sa.Integer,
            sa.ForeignKey("ledger_categories.id", name="fk_ledger_entries_category", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("entry_date", sa.Date, nullable=False),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("reference", sa.String(100)),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_ledger_entries_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.CheckConstraint("amount > 0", name="ck_ledger_entries_amount"),
    )
    op.create_index("ix_ledger_entries_category_id", "ledger_entries", ["category_id"])
    op.create_index("ix_ledger_entries_entry_date", "ledger_entries", ["entry_date"])
    op.create_index("ix_ledger_entries_unit_id", "ledger_entries", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_unit_id", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_entry_date", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_category_id", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index("ix_ledger_categories_unit_id", table_name="ledger_categories")
    op.drop_table("ledger_categories")
