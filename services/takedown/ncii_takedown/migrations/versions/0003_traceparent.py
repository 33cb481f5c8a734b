"""takedown: a traceparent on each row of work an event caused (outbox rows, deliveries), so the
worker that does it continues the event's trace after a restart too (decision 55)

Rows written before this revision have none: their work starts a trace of its own.

Revision ID: takedown_0003_traceparent
Revises: takedown_0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "takedown_0003_traceparent"
down_revision = "takedown_0002"
branch_labels = None
depends_on = None

TABLES = ("td_outbox", "td_deliveries")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("traceparent", sa.String(55)))


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("traceparent")
