"""Election campaign: constituencies, their candidates and polling stations, and canvass visits
door to door, each optionally made during a canvassing event (the events module's events).

Revision ID: election_campaign_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "election_campaign_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "constituencies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False, server_default="parliamentary"),
        sa.Column("registered_voters", sa.Integer),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_constituencies_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("code", name="uq_constituencies_code"),
        sa.CheckConstraint(
            "registered_voters IS NULL OR registered_voters >= 0", name="ck_constituencies_registered_voters"
        ),
    )
    op.create_index("ix_constituencies_unit_id", "constituencies", ["unit_id"])
    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "constituency_id",
            sa.Integer,
            sa.ForeignKey("constituencies.id", name="fk_candidates_constituency", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column(
            "user_id", sa.Integer, sa.ForeignKey("users.id", name="fk_candidates_user", ondelete="SET NULL")
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("status", sa.String(16), nullable=False, server_default="prospective"),
        sa.Column("nominated_on", sa.Date),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_candidates_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("constituency_id", "name", name="uq_candidates_constituency_name"),
        sa.CheckConstraint(
            "status IN ('prospective', 'nominated', 'withdrawn', 'elected', 'defeated')",
            name="ck_candidates_status",
        ),
    )
    op.create_index("ix_candidates_user_id", "candidates", ["user_id"])
    op.create_index("ix_candidates_unit_id", "candidates", ["unit_id"])
    op.create_table(
        "polling_stations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "constituency_id",
            sa.Integer,
            sa.ForeignKey("constituencies.id", name="fk_polling_stations_constituency", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("address", sa.Text),
        sa.Column("registered_voters", sa.Integer),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_polling_stations_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("code", name="uq_polling_stations_code"),
        sa.CheckConstraint(
            "registered_voters IS NULL OR registered_voters >= 0",
            name="ck_polling_stations_registered_voters",
        ),
    )
    op.create_index("ix_polling_stations_constituency_id", "polling_stations", ["constituency_id"])
    op.create_index("ix_polling_stations_unit_id", "polling_stations", ["unit_id"])
    op.create_table(
        "canvass_visits",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "constituency_id",
            sa.Integer,
            sa.ForeignKey("constituencies.id", name="fk_canvass_visits_constituency", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column(
            "polling_station_id",
            sa.Integer,
            sa.ForeignKey(
                "polling_stations.id", name="fk_canvass_visits_polling_station", ondelete="SET NULL"
            ),
        ),
        sa.Column(
            "event_id",
            sa.Integer,
            sa.ForeignKey("events.id", name="fk_canvass_visits_event", ondelete="SET NULL"),
        ),
        sa.Column(
            "canvasser_id",
            sa.Integer,
            sa.ForeignKey("users.id", name="fk_canvass_visits_canvasser", ondelete="SET NULL"),
        ),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("visited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("notes", sa.Text),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_canvass_visits_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.CheckConstraint(
            "outcome IN ('not_home', 'supporter', 'undecided', 'opposed', 'refused', 'moved')",
            name="ck_canvass_visits_outcome",
        ),
    )
    # A constituency's canvassing, newest first; leads with constituency_id for the foreign key.
    op.create_index(
        "ix_canvass_visits_constituency_id_visited_at", "canvass_visits", ["constituency_id", "visited_at"]
    )
    op.create_index("ix_canvass_visits_polling_station_id", "canvass_visits", ["polling_station_id"])
    op.create_index("ix_canvass_visits_event_id", "canvass_visits", ["event_id"])
    op.create_index("ix_canvass_visits_canvasser_id", "canvass_visits", ["canvasser_id"])
    op.create_index("ix_canvass_visits_unit_id", "canvass_visits", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_canvass_visits_unit_id", table_name="canvass_visits")
    op.drop_index("ix_canvass_visits_canvasser_id", table_name="canvass_visits")
    op.drop_index("ix_canvass_visits_event_id", table_name="canvass_visits")
    op.drop_index("ix_canvass_visits_polling_station_id", table_name="canvass_visits")
    op.drop_index("ix_canvass_visits_constituency_id_visited_at", table_name="canvass_visits")
    op.drop_table("canvass_visits")
    op.drop_index("ix_polling_stations_unit_id", table_name="polling_stations")
    op.drop_index("ix_polling_stations_constituency_id", table_name="polling_stations")
    op.drop_table("polling_stations")
    op.drop_index("ix_candidates_unit_id", table_name="candidates")
    op.drop_index("ix_candidates_user_id", table_name="candidates")
    op.drop_table("candidates")
    op.drop_index("ix_constituencies_unit_id", table_name="constituencies")
    op.drop_table("constituencies")
