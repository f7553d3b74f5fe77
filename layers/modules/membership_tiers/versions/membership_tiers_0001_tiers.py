"""Membership tiers: the tiers and their fees, subscriptions of members to a tier, and payments.

A module works with any template, so a subscription names its member by email (and links the
tenant user when the member has an account), never by a template's own members table.

Revision ID: membership_tiers_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "membership_tiers_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tiers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("annual_fee", sa.Numeric(12, 2), nullable=False, server_default="0"),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("sort_order", sa.Integer, nullable=False, server_default="0"),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_tiers_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("code", name="uq_tiers_code"),
        sa.CheckConstraint("annual_fee >= 0", name="ck_tiers_annual_fee"),
    )
    op.create_index("ix_tiers_unit_id", "tiers", ["unit_id"])
    op.create_table(
        "member_subscriptions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "tier_id",
            sa.Integer,
            sa.ForeignKey("tiers.id", name="fk_member_subscriptions_tier", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("users.id", name="fk_member_subscriptions_user", ondelete="SET NULL"),
        ),
        sa.Column("member_name", sa.String(200), nullable=False),
        sa.Column("member_email", sa.String(254), nullable=False),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("ends_on", sa.Date),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("auto_renew", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_member_subscriptions_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("member_email", "starts_on", name="uq_member_subscriptions_member_start"),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'lapsed', 'cancelled')", name="ck_member_subscriptions_status"
        ),
        sa.CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="ck_member_subscriptions_period"),
    )
    op.create_index("ix_member_subscriptions_tier_id", "member_subscriptions", ["tier_id"])
    op.create_index("ix_member_subscriptions_user_id", "member_subscriptions", ["user_id"])
    # Renewal runs look for subscriptions ending soon.
    op.create_index("ix_member_subscriptions_ends_on", "member_subscriptions", ["ends_on"])
    op.create_index("ix_member_subscriptions_unit_id", "member_subscriptions", ["unit_id"])
    op.create_table(
        "subscription_payments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "subscription_id",
            sa.Integer,
            sa.ForeignKey(
                "member_subscriptions.id", name="fk_subscription_payments_subscription", ondelete="RESTRICT"
            ),
            nullable=False,
        ),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("paid_on", sa.Date, nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(100)),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_subscription_payments_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("reference", name="uq_subscription_payments_reference"),
        sa.CheckConstraint("amount > 0", name="ck_subscription_payments_amount"),
    )
    op.create_index("ix_subscription_payments_subscription_id", "subscription_payments", ["subscription_id"])
    op.create_index("ix_subscription_payments_paid_on", "subscription_payments", ["paid_on"])
    op.create_index("ix_subscription_payments_unit_id", "subscription_payments", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_subscription_payments_unit_id", table_name="subscription_payments")
    op.drop_index("ix_subscription_payments_paid_on", table_name="subscription_payments")
    op.drop_index("ix_subscription_payments_subscription_id", table_name="subscription_payments")
    op.drop_table("subscription_payments")
    op.drop_index("ix_member_subscriptions_unit_id", table_name="member_subscriptions")
    op.drop_index("ix_member_subscriptions_ends_on", table_name="member_subscriptions")
    op.drop_index("ix_member_subscriptions_user_id", table_name="member_subscriptions")
    op.drop_index("ix_member_subscriptions_tier_id", table_name="member_subscriptions")
    op.drop_table("member_subscriptions")
    op.drop_index("ix_tiers_unit_id", table_name="tiers")
    op.drop_table("tiers")
