"""intake read model: closed cases (not final) and the re-upload reactor's queue (decision 35)

Revision ID: intake_0003_casework
Revises: intake_0002_victim_access
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0003_casework"
down_revision = "intake_0002_victim_access"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("closed_at", sa.String(40)))
    op.create_table(
        "reopen_queue",
        sa.Column("match_event_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("match_id", sa.String(200), nullable=False),
        sa.Column("seen_at", sa.String(40), nullable=False),
        sa.Column("done", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_reopen_queue_done", "reopen_queue", ["done"])


def downgrade() -> None:
    op.drop_index("ix_reopen_queue_done", "reopen_queue")
    op.drop_table("reopen_queue")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("closed_at")
