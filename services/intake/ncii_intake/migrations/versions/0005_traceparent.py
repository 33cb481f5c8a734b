"""intake: a traceparent on each row of work an event caused (the reopen queue), so the worker that
does it continues the event's trace after a restart too (decision 55)

Rows written before this revision have none: their work starts a trace of its own.

Revision ID: intake_0005_traceparent
Revises: intake_0004_art7_to_referral
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0005_traceparent"
down_revision = "intake_0004_art7_to_referral"
branch_labels = None
depends_on = None

TABLES = ("reopen_queue",)


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("traceparent", sa.String(55)))


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("traceparent")
