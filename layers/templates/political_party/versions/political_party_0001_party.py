"""Political party: provinces and their districts, a tree of committees (national down to branch,
each optionally tied to a district), the party's members and the office-holders of committees.

Revision ID: political_party_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "political_party_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provinces",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_provinces_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("code", name="uq_provinces_code"),
        sa.UniqueConstraint("name", name="uq_provinces_name"),
    )
    op.create_index("ix_provinces_unit_id", "provinces", ["unit_id"])
    op.create_table(
        "districts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "province_id",
            sa.Integer,
            sa.ForeignKey("provinces.id", name="fk_districts_province", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_districts_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("code", name="uq_districts_code"),
        # Leads with province_id, so it also serves the foreign key's lookups.
        sa.UniqueConstraint("province_id", "name", name="uq_districts_province_name"),
    )
    op.create_index("ix_districts_unit_id", "districts", ["unit_id"])
    op.create_table(
        "committees",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "parent_id",
            sa.Integer,
            sa.ForeignKey("committees.id", name="fk_committees_parent", ondelete="RESTRICT"),
        ),
        sa.Column(
            "district_id",
            sa.Integer,
            sa.ForeignKey("districts.id", name="fk_committees_district", ondelete="SET NULL"),
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("level", sa.String(16), nullable=False, server_default="branch"),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_committees_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("parent_id", "name", name="uq_committees_parent_name"),
        sa.CheckConstraint(
            "level IN ('national', 'provincial', 'district', 'branch')", name="ck_committees_level"
        ),
    )
    op.create_index("ix_committees_district_id", "committees", ["district_id"])
    op.create_index("ix_committees_unit_id", "committees", ["unit_id"])
    op.create_table(
        "party_members",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("membership_number", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("phone", sa.String(32)),
        sa.Column("joined_on", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column(
            "committee_id",
            sa.Integer,
            sa.ForeignKey("committees.id", name="fk_party_members_committee", ondelete="SET NULL"),
        ),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_party_members_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("membership_number", name="uq_party_members_membership_number"),
        sa.UniqueConstraint("email", name="uq_party_members_email"),
        sa.CheckConstraint(
            "status IN ('applicant', 'active', 'lapsed', 'suspended', 'expelled', 'resigned')",
            name="ck_party_members_status",
        ),
    )
    op.create_index("ix_party_members_committee_id", "party_members", ["committee_id"])
    op.create_index("ix_party_members_status", "party_members", ["status"])
    op.create_index("ix_party_members_unit_id", "party_members", ["unit_id"])
    op.create_table(
        "office_holders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "committee_id",
            sa.Integer,
            sa.ForeignKey("committees.id", name="fk_office_holders_committee", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "member_id",
            sa.Integer,
            sa.ForeignKey("party_members.id", name="fk_office_holders_member", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.String(100), nullable=False),
        sa.Column("started_on", sa.Date, nullable=False),
        sa.Column("ended_on", sa.Date),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_office_holders_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint(
            "committee_id", "position", "member_id", "started_on", name="uq_office_holders_term"
        ),
        sa.CheckConstraint("ended_on IS NULL OR ended_on >= started_on", name="ck_office_holders_term"),
    )
    op.create_index("ix_office_holders_member_id", "office_holders", ["member_id"])
    op.create_index("ix_office_holders_unit_id", "office_holders", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_office_holders_unit_id", table_name="office_holders")
    op.drop_index("ix_office_holders_member_id", table_name="office_holders")
    op.drop_table("office_holders")
    op.drop_index("ix_party_members_unit_id", table_name="party_members")
    op.drop_index("ix_party_members_status", table_name="party_members")
    op.drop_index("ix_party_members_committee_id", table_name="party_members")
    op.drop_table("party_members")
    op.drop_index("ix_committees_unit_id", table_name="committees")
    op.drop_index("ix_committees_district_id", table_name="committees")
    op.drop_table("committees")
    op.drop_index("ix_districts_unit_id", table_name="districts")
    op.drop_table("districts")
    op.drop_index("ix_provinces_unit_id", table_name="provinces")
    op.drop_table("provinces")
