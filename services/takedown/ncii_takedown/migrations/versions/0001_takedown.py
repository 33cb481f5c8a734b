"""takedown read models: platforms, cases, takedowns, outbox, deliveries

Revision ID: takedown_0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "takedown_0001"
down_revision = None
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "td_platforms",
        sa.Column("platform_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("name_key", sa.String(100), nullable=False, index=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("jurisdiction", sa.String(2), nullable=False),
        sa.Column("regimes", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("webhook_url", sa.String(2048)),
        sa.Column("email", sa.String(254)),
        sa.Column("form_url", sa.String(2048)),
        sa.Column("api_organisation", sa.String(100), index=True),
        sa.Column("takes_hash_lists", sa.Boolean, nullable=False),
        sa.Column("trusted_flagger", sa.Boolean, nullable=False),
        sa.Column("secret_version", sa.Integer, nullable=False),
        sa.Column("registered_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "td_cases",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("organisation", sa.String(100), nullable=False),
        sa.Column("age_group", sa.String(10), nullable=False),
        sa.Column("consents_takedown", sa.Boolean, nullable=False),
        sa.Column("statement_recorded", sa.Boolean, nullable=False),
        sa.Column("closed", sa.String(20)),
    )
    op.create_table(
        "td_takedowns",
        sa.Column("takedown_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False, index=True),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("location_id", sa.String(36)),
        sa.Column("match_id", sa.String(100)),
        sa.Column("entry_key", sa.String(36)),
        sa.Column("platform_id", sa.String(36), index=True),
        sa.Column("previous_takedown_id", sa.String(36)),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("evidence", sa.Integer, nullable=False),
        sa.Column("notice_id", sa.String(36), unique=True),
        sa.Column("channel", sa.String(10)),
        sa.Column("deadline_regime", sa.String(20)),
        sa.Column("deadline_hours", sa.Integer),
        sa.Column("legal", sa.Boolean),
        sa.Column("sent_at", sa.String(40)),
        sa.Column("deadline_at", sa.String(40), index=True),
        sa.Column("acknowledged_at", sa.String(40)),
        sa.Column("removed_at", sa.String(40)),
        sa.Column("refused_reason", sa.String(40)),
        sa.Column("opened_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "td_outbox",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("aggregate_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(60), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("causation_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("published_at", sa.String(40)),
    )
    op.create_table(
        "td_deliveries",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(60), nullable=False, unique=True),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("takedown_id", sa.String(36), nullable=False),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("notice_id", sa.String(36), nullable=False, index=True),
        sa.Column("platform_id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("cancel_reason", sa.String(20)),
        sa.Column("status", sa.String(10), nullable=False, index=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.String(40)),
        sa.Column("last_error", sa.String(60)),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("delivered_at", sa.String(40)),
    )


def downgrade() -> None:
    op.drop_table("td_deliveries")
    op.drop_table("td_outbox")
    op.drop_table("td_takedowns")
    op.drop_table("td_cases")
    op.drop_table("td_platforms")
