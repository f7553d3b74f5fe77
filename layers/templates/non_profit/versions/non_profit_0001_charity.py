"""Non-profit: the programmes the organisation runs, its donors and their donations (optionally
earmarked for a programme), and the beneficiaries enrolled in programmes.

Revision ID: non_profit_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "non_profit_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "programmes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("starts_on", sa.Date),
        sa.Column("ends_on", sa.Date),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_programmes_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("code", name="uq_programmes_code"),
        sa.CheckConstraint("status IN ('planned', 'active', 'closed')", name="ck_programmes_status"),
        sa.CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="ck_programmes_period"),
    )
    op.create_index("ix_programmes_unit_id", "programmes", ["unit_id"])
    op.create_table(
        "donors",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False, server_default="individual"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("phone", sa.String(32)),
        sa.Column("address", sa.Text),
        sa.Column("consents_to_contact", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_donors_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("email", name="uq_donors_email"),
        sa.CheckConstraint("kind IN ('individual', 'organisation')", name="ck_donors_kind"),
    )
    op.create_index("ix_donors_name", "donors", ["name"])
    op.create_index("ix_donors_unit_id", "donors", ["unit_id"])
    op.create_table(
        "donations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "donor_id",
            sa.Integer,
            sa.ForeignKey("donors.id", name="fk_donations_donor", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column(
            "programme_id",
            sa.Integer,
            sa.ForeignKey("programmes.id", name="fk_donations_programme", ondelete="SET NULL"),
        ),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("received_on", sa.Date, nullable=False),
        sa.Column("method", sa.String(32), nullable=False, server_default="bank_transfer"),
        sa.Column("reference", sa.String(100)),
        sa.Column("notes", sa.Text),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_donations_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.CheckConstraint("amount > 0", name="ck_donations_amount_positive"),
    )
    op.create_index("ix_donations_donor_id", "donations", ["donor_id"])
    op.create_index("ix_donations_programme_id", "donations", ["programme_id"])
    op.create_index("ix_donations_received_on", "donations", ["received_on"])
    op.create_index("ix_donations_unit_id", "donations", ["unit_id"])
    op.create_table(
        "beneficiaries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("reference", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("date_of_birth", sa.Date),
        sa.Column("email", sa.String(254)),
        sa.Column("phone", sa.String(32)),
        sa.Column("address", sa.Text),
        sa.Column("notes", sa.Text),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_beneficiaries_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("reference", name="uq_beneficiaries_reference"),
    )
    op.create_index("ix_beneficiaries_name", "beneficiaries", ["name"])
    op.create_index("ix_beneficiaries_unit_id", "beneficiaries", ["unit_id"])
    op.create_table(
        "programme_enrolments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "programme_id",
            sa.Integer,
            sa.ForeignKey("programmes.id", name="fk_programme_enrolments_programme", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "beneficiary_id",
            sa.Integer,
            sa.ForeignKey("beneficiaries.id", name="fk_programme_enrolments_beneficiary", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("enrolled_on", sa.Date, nullable=False),
        sa.Column("left_on", sa.Date),
        sa.Column("status", sa.String(16), nullable=False, server_default="enrolled"),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_programme_enrolments_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("programme_id", "beneficiary_id", name="uq_programme_enrolments_pair"),
        sa.CheckConstraint(
            "status IN ('enrolled', 'completed', 'withdrawn')", name="ck_programme_enrolments_status"
        ),
        sa.CheckConstraint(
            "left_on IS NULL OR left_on >= enrolled_on", name="ck_programme_enrolments_period"
        ),
    )
    op.create_index("ix_programme_enrolments_beneficiary_id", "programme_enrolments", ["beneficiary_id"])
    op.create_index("ix_programme_enrolments_unit_id", "programme_enrolments", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_programme_enrolments_unit_id", table_name="programme_enrolments")
    op.drop_index("ix_programme_enrolments_beneficiary_id", table_name="programme_enrolments")
    op.drop_table("programme_enrolments")
    op.drop_index("ix_beneficiaries_unit_id", table_name="beneficiaries")
    op.drop_index("ix_beneficiaries_name", table_name="beneficiaries")
    op.drop_table("beneficiaries")
    op.drop_index("ix_donations_unit_id", table_name="donations")
    op.drop_index("ix_donations_received_on", table_name="donations")
    op.drop_index("ix_donations_programme_id", table_name="donations")
    op.drop_index("ix_donations_donor_id", table_name="donations")
    op.drop_table("donations")
    op.drop_index("ix_donors_unit_id", table_name="donors")
    op.drop_index("ix_donors_name", table_name="donors")
    op.drop_table("donors")
    op.drop_index("ix_programmes_unit_id", table_name="programmes")
    op.drop_table("programmes")
