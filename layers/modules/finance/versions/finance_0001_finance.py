"""Finance: accounts, budgets per account and period, transactions (money in and out, optionally
against a budget) and the receipts issued for them (e.g. for donations and membership fees).

Revision ID: finance_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "finance_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finance_accounts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_finance_accounts_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("code", name="uq_finance_accounts_code"),
        sa.CheckConstraint(
            "kind IN ('asset', 'liability', 'equity', 'income', 'expense')", name="ck_finance_accounts_kind"
        ),
    )
    op.create_index("ix_finance_accounts_unit_id", "finance_accounts", ["unit_id"])
    op.create_table(
        "budgets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("finance_accounts.id", name="fk_budgets_account", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("notes", sa.Text),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_budgets_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        # One budget per account and period; leads with account_id, so it serves the foreign key.
        sa.UniqueConstraint("account_id", "period_start", name="uq_budgets_account_period"),
        sa.CheckConstraint("period_end >= period_start", name="ck_budgets_period"),
        sa.CheckConstraint("amount >= 0", name="ck_budgets_amount"),
    )
    op.create_index("ix_budgets_unit_id", "budgets", ["unit_id"])
    op.create_table(
        "transactions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("finance_accounts.id", name="fk_transactions_account", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column(
            "budget_id",
            sa.Integer,
            sa.ForeignKey("budgets.id", name="fk_transactions_budget", ondelete="SET NULL"),
        ),
        sa.Column("occurred_on", sa.Date, nullable=False),
        sa.Column("direction", sa.String(6), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("counterparty", sa.String(200)),
        sa.Column("reference", sa.String(100)),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_transactions_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.CheckConstraint("direction IN ('debit', 'credit')", name="ck_transactions_direction"),
        sa.CheckConstraint("amount > 0", name="ck_transactions_amount"),
    )
    # An account's statement, in date order; leads with account_id, so it serves the foreign key.
    op.create_index("ix_transactions_account_id_occurred_on", "transactions", ["account_id", "occurred_on"])
    op.create_index("ix_transactions_budget_id", "transactions", ["budget_id"])
    op.create_index("ix_transactions_unit_id", "transactions", ["unit_id"])
    op.create_table(
        "receipts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column(
            "transaction_id",
            sa.Integer,
            sa.ForeignKey("transactions.id", name="fk_receipts_transaction", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("issued_to_name", sa.String(200), nullable=False),
        sa.Column("issued_to_email", sa.String(254)),
        sa.Column("issued_on", sa.Date, nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True)),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_receipts_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("number", name="uq_receipts_number"),
        sa.CheckConstraint("amount > 0", name="ck_receipts_amount"),
    )
    op.create_index("ix_receipts_transaction_id", "receipts", ["transaction_id"])
    op.create_index("ix_receipts_unit_id", "receipts", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_receipts_unit_id", table_name="receipts")
    op.drop_index("ix_receipts_transaction_id", table_name="receipts")
    op.drop_table("receipts")
    op.drop_index("ix_transactions_unit_id", table_name="transactions")
    op.drop_index("ix_transactions_budget_id", table_name="transactions")
    op.drop_index("ix_transactions_account_id_occurred_on", table_name="transactions")
    op.drop_table("transactions")
    op.drop_index("ix_budgets_unit_id", table_name="budgets")
    op.drop_table("budgets")
    op.drop_index("ix_finance_accounts_unit_id", table_name="finance_accounts")
    op.drop_table("finance_accounts")
