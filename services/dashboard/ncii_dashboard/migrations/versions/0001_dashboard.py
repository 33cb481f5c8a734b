"""dashboard read models: platforms, cases, categories, locations, takedowns, reports,
referrals, matches, sighting windows, erasures

Revision ID: dashboard_0001
Revises:
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "dashboard_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dash_case_categories",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("category", sa.String(40), primary_key=True),
    )
    op.create_table(
        "dash_cases",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("organisation", sa.String(100), nullable=False),
        sa.Column("age_group", sa.String(10), nullable=False),
        sa.Column("intake_channel", sa.String(20), nullable=False),
        sa.Column("spread_status", sa.String(20), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("opened_at", sa.String(40), nullable=False),
        sa.Column("closed_at", sa.String(40)),
    )
    op.create_index("ix_dash_cases_opened_at", "dash_cases", ["opened_at"])
    op.create_index("ix_dash_cases_status", "dash_cases", ["status"])
    op.create_table(
        "dash_erasures",
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("erased", sa.Integer(), nullable=False),
    )
    op.create_table(
        "dash_locations",
        sa.Column("location_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("channel_kind", sa.String(20), nullable=False),
        sa.Column("reported_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_dash_locations_case_id", "dash_locations", ["case_id"])
    op.create_table(
        "dash_matches",
        sa.Column("match_id", sa.String(64), primary_key=True),
        sa.Column("case_id", sa.String(36)),
        sa.Column("platform", sa.String(100), nullable=False),
        sa.Column("seen_at", sa.String(40), nullable=False),
        sa.Column("sightings", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(20)),
    )
    op.create_index("ix_dash_matches_case_id", "dash_matches", ["case_id"])
    op.create_index("ix_dash_matches_seen_at", "dash_matches", ["seen_at"])
    op.create_table(
        "dash_platforms",
        sa.Column("platform_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("jurisdiction", sa.String(2), nullable=False),
        sa.Column("api_organisation", sa.String(100)),
    )
    op.create_index("ix_dash_platforms_api_organisation", "dash_platforms", ["api_organisation"])
    op.create_table(
        "dash_referrals",
        sa.Column("referral_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("partner_organisation", sa.String(100), nullable=False),
        sa.Column("service", sa.String(30), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("offered_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_dash_referrals_case_id", "dash_referrals", ["case_id"])
    op.create_index("ix_dash_referrals_offered_at", "dash_referrals", ["offered_at"])
    op.create_table(
        "dash_reports",
        sa.Column("report_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("due_at", sa.String(40), nullable=False),
        sa.Column("filed_at", sa.String(40)),
        sa.Column("late", sa.Boolean()),
    )
    op.create_index("ix_dash_reports_case_id", "dash_reports", ["case_id"])
    op.create_index("ix_dash_reports_due_at", "dash_reports", ["due_at"])
    op.create_table(
        "dash_sighting_windows",
        sa.Column("match_id", sa.String(64), primary_key=True),
        sa.Column("window_start", sa.String(40), primary_key=True),
        sa.Column("case_id", sa.String(36)),
        sa.Column("sightings", sa.Integer(), nullable=False),
    )
    op.create_index("ix_dash_sighting_windows_case_id", "dash_sighting_windows", ["case_id"])
    op.create_table(
        "dash_takedowns",
        sa.Column("takedown_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("platform_id", sa.String(36)),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("opened_at", sa.String(40), nullable=False),
        sa.Column("sent_at", sa.String(40)),
        sa.Column("deadline_at", sa.String(40)),
        sa.Column("deadline_regime", sa.String(20)),
        sa.Column("legal", sa.Boolean()),
        sa.Column("ended_at", sa.String(40)),
        sa.Column("in_time", sa.Boolean()),
        sa.Column("hours_to_end", sa.Float()),
        sa.Column("refusal_reason", sa.String(30)),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_dash_takedowns_case_id", "dash_takedowns", ["case_id"])
    op.create_index("ix_dash_takedowns_opened_at", "dash_takedowns", ["opened_at"])


def downgrade() -> None:
    op.drop_table("dash_takedowns")
    op.drop_table("dash_sighting_windows")
    op.drop_table("dash_reports")
    op.drop_table("dash_referrals")
    op.drop_table("dash_platforms")
    op.drop_table("dash_matches")
    op.drop_table("dash_locations")
    op.drop_table("dash_erasures")
    op.drop_table("dash_cases")
    op.drop_table("dash_case_categories")
