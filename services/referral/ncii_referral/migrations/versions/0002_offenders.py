"""referral read model: whether a case's offender is known; open reports read in index order
(decision 36)

Revision ID: referral_0002_offenders
Revises: referral_0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "referral_0002_offenders"
down_revision = "referral_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rf_offenders",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("known", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
    )
    op.drop_index("ix_rf_reports_status_due", "rf_reports")
    op.create_index("ix_rf_reports_status_due_id", "rf_reports", ["status", "due_at", "report_id"])


def downgrade() -> None:
    op.drop_index("ix_rf_reports_status_due_id", "rf_reports")
    op.create_index("ix_rf_reports_status_due", "rf_reports", ["status", "due_at"])
    op.drop_table("rf_offenders")
