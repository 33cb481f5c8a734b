"""referral: a traceparent on each row of work an event caused (outbox rows), so the worker that
does it continues the event's trace after a restart too (decision 55)

Rows written before this revision have none: their work starts a trace of its own.

Revision ID: referral_0003_traceparent
Revises: referral_0002_offenders
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "referral_0003_traceparent"
down_revision = "referral_0002_offenders"
branch_labels = None
depends_on = None

TABLES = ("rf_outbox",)


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("traceparent", sa.String(55)))


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("traceparent")
