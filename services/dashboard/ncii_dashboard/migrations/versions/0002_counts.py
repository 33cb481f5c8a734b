"""dashboard: the counts kept by the projection (dash_counts) and the indexes the medians of
time to removal are read by (decision 0054); the counts of the rows already there are filled in

Revision ID: dashboard_0002
Revises: dashboard_0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from ncii_dashboard.read_models import counts

revision = "dashboard_0002"
down_revision = "dashboard_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dash_counts",
        sa.Column("counter", sa.String(40), primary_key=True),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("sub", sa.String(40), primary_key=True),
        sa.Column("n", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_dash_takedowns_platform_hours",
        "dash_takedowns",
        ["status", "platform_id", "hours_to_end"],
    )
    op.create_index(
        "ix_dash_takedowns_hours", "dash_takedowns", ["status", "hours_to_end", "platform_id"]
    )
    # the same transaction as the projections' next batch cannot be had here: the service
    # migrates before its runners start, so the rows do not move while they are counted
    counts.fill(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_dash_takedowns_hours", "dash_takedowns")
    op.drop_index("ix_dash_takedowns_platform_hours", "dash_takedowns")
    op.drop_table("dash_counts")
