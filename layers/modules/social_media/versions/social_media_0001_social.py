"""Social media: the organisation's accounts, posts drafted, scheduled and published on them, and
each post's metrics captured over time.

Revision ID: social_media_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "social_media_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "social_accounts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("handle", sa.String(100), nullable=False),
        sa.Column("display_name", sa.String(200)),
        sa.Column("profile_url", sa.String(500)),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_social_accounts_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("platform", "handle", name="uq_social_accounts_platform_handle"),
    )
    op.create_index("ix_social_accounts_unit_id", "social_accounts", ["unit_id"])
    op.create_table(
        "social_posts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("social_accounts.id", name="fk_social_posts_account", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "author_id",
            sa.Integer,
            sa.ForeignKey("users.id", name="fk_social_posts_author", ondelete="SET NULL"),
        ),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="draft"),
        sa.Column("scheduled_at", sa.DateTime(timezone=True)),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        # The platform's own id once published; unique per account.
        sa.Column("external_id", sa.String(200)),
        sa.Column("url", sa.String(500)),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_social_posts_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("account_id", "external_id", name="uq_social_posts_account_external_id"),
        sa.CheckConstraint(
            "status IN ('draft', 'scheduled', 'published', 'failed')", name="ck_social_posts_status"
        ),
    )
    op.create_index("ix_social_posts_author_id", "social_posts", ["author_id"])
    # The publisher's queue: scheduled posts in time order.
    op.create_index("ix_social_posts_status_scheduled_at", "social_posts", ["status", "scheduled_at"])
    op.create_index("ix_social_posts_unit_id", "social_posts", ["unit_id"])
    op.create_table(
        "post_metrics",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "post_id",
            sa.Integer,
            sa.ForeignKey("social_posts.id", name="fk_post_metrics_post", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("impressions", sa.Integer, nullable=False, server_default="0"),
        sa.Column("likes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("shares", sa.Integer, nullable=False, server_default="0"),
        sa.Column("comments", sa.Integer, nullable=False, server_default="0"),
        sa.Column("clicks", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_post_metrics_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("post_id", "captured_at", name="uq_post_metrics_post_captured_at"),
        sa.CheckConstraint(
            "impressions >= 0 AND likes >= 0 AND shares >= 0 AND comments >= 0 AND clicks >= 0",
            name="ck_post_metrics_counts",
        ),
    )
    op.create_index("ix_post_metrics_unit_id", "post_metrics", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_post_metrics_unit_id", table_name="post_metrics")
    op.drop_table("post_metrics")
    op.drop_index("ix_social_posts_unit_id", table_name="social_posts")
    op.drop_index("ix_social_posts_status_scheduled_at", table_name="social_posts")
    op.drop_index("ix_social_posts_author_id", table_name="social_posts")
    op.drop_table("social_posts")
    op.drop_index("ix_social_accounts_unit_id", table_name="social_accounts")
    op.drop_table("social_accounts")
