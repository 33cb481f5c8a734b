"""intake read model: cases

Revision ID: intake_0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("organisation", sa.String(100), nullable=False, index=True),
        sa.Column("reference", sa.String(20), nullable=False, unique=True),
        sa.Column("age_group", sa.String(10), nullable=False),
        sa.Column("status", sa.String(30), nullable=False, index=True),
        sa.Column("harm_categories", sa.Text, nullable=False),
        sa.Column("spread_status", sa.String(20), nullable=False),
        sa.Column("intake_channel", sa.String(20), nullable=False),
        sa.Column("learned_at", sa.String(40), nullable=False),
        sa.Column("opened_at", sa.String(40), nullable=False),
        sa.Column("statement_recorded_at", sa.String(40)),
        sa.Column("report_due_at", sa.String(40), index=True),
        sa.Column("report_filed_at", sa.String(40)),
        sa.Column("withdrawn_at", sa.String(40)),
        sa.Column("erased_at", sa.String(40)),
        sa.Column("locations", sa.Integer, nullable=False),
        sa.Column("hashes", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cases")
