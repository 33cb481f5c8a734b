"""hashmatch: a traceparent on each row of work an event caused (outbox rows, sighting windows), so
the worker that does it continues the event's trace after a restart too (decision 55)

Rows written before this revision have none: their work starts a trace of its own.

Revision ID: hashmatch_0006_traceparent
Revises: hashmatch_0005_programmes
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "hashmatch_0006_traceparent"
down_revision = "hashmatch_0005_programmes"
branch_labels = None
depends_on = None

TABLES = ("hm_outbox", "hm_sighting_windows")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("traceparent", sa.String(55)))


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("traceparent")
