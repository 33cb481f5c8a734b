"""intake read model: the minor's art. 7 report moved to referral (decision 34): drop its columns

Revision ID: intake_0004_art7_to_referral
Revises: intake_0003_casework
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0004_art7_to_referral"
down_revision = "intake_0003_casework"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_cases_report_due_at", "cases")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("report_filed_at")
        batch.drop_column("report_due_at")


def downgrade() -> None:
    # the columns come back empty: a rebuild of the projection cannot fill them any more (the
    # art. 7 report is the referral service's read model, rf_reports)
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("report_due_at", sa.String(40)))
        batch.add_column(sa.Column("report_filed_at", sa.String(40)))
    op.create_index("ix_cases_report_due_at", "cases", ["report_due_at"])
