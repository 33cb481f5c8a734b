"""takedown: the deadline sweep finds due notices by status and deadline together, and the
outbox publisher finds unpublished rows without scanning every row it ever published
(decision 0053: both queries read every row of their table at 10,000 takedowns)

Revision ID: takedown_0004
Revises: takedown_0003_traceparent
Create Date: 2026-11-30
"""

from alembic import op

revision = "takedown_0004"
down_revision = "takedown_0003_traceparent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_td_takedowns_status_deadline", "td_takedowns", ["status", "deadline_at"])
    op.create_index("ix_td_outbox_unpublished", "td_outbox", ["published_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_td_outbox_unpublished", "td_outbox")
    op.drop_index("ix_td_takedowns_status_deadline", "td_takedowns")
