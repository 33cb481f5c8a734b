"""referral read models: partners, cases, referrals, reports, guidance, outbox

Revision ID: referral_0001
Revises:
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "referral_0001"
down_revision = None
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rf_cases",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("organisation", sa.String(100), nullable=False),
        sa.Column("age_group", sa.String(10), nullable=False),
        sa.Column("consents_referral", sa.Boolean(), nullable=False),
        sa.Column("harm_categories", sa.String(300), nullable=False),
        sa.Column("spread_status", sa.String(20), nullable=False),
        sa.Column("on_social_platform", sa.Boolean(), nullable=False),
        sa.Column("offender_known", sa.Boolean(), nullable=False),
        sa.Column("learned_at", sa.String(40), nullable=False),
        sa.Column("closed", sa.String(20)),
        sa.Column("intake_report_filed_at", sa.String(40)),
    )
    op.create_table(
        "rf_guidance",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("item", sa.String(60), primary_key=True),
        sa.Column("ticked_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "rf_outbox",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("aggregate", sa.String(30), nullable=False),
        sa.Column("aggregate_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(60), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("causation_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("published_at", sa.String(40)),
    )
    op.create_table(
        "rf_partners",
        sa.Column("partner_id", sa.String(36), primary_key=True),
        sa.Column("organisation", sa.String(100), nullable=False, index=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("services", sa.String(200), nullable=False),
        sa.Column("regions", sa.String(400), nullable=False),
        sa.Column("languages", sa.String(100), nullable=False),
        sa.Column("taking_referrals", sa.Boolean(), nullable=False),
        sa.Column("registered_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "rf_referrals",
        sa.Column("referral_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False, index=True),
        sa.Column("partner_id", sa.String(36), nullable=False),
        sa.Column("partner_organisation", sa.String(100), nullable=False, index=True),
        sa.Column("service", sa.String(30), nullable=False),
        sa.Column("status", sa.String(12), nullable=False, index=True),
        sa.Column("consent_basis", sa.String(30), nullable=False),
        sa.Column("offered_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "rf_reports",
        sa.Column("report_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False, index=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("learned_at", sa.String(40), nullable=False),
        sa.Column("due_at", sa.String(40), nullable=False),
        sa.Column("filed_at", sa.String(40)),
        sa.Column("late", sa.Boolean()),
        sa.Column("overdue_at", sa.String(40)),
    )
    op.create_index("ix_rf_reports_status_due", "rf_reports", ["status", "due_at"])


def downgrade() -> None:
    op.drop_table("rf_reports")
    op.drop_table("rf_referrals")
    op.drop_table("rf_partners")
    op.drop_table("rf_outbox")
    op.drop_table("rf_guidance")
    op.drop_table("rf_cases")
