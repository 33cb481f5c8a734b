"""intake read model: closed cases, assignees, the list's indexes, the re-upload queue (0035)

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
        batch.add_column(sa.Column("assignee", sa.String(64)))
        batch.add_column(sa.Column("erasure_due_at", sa.String(40)))
    op.create_index("ix_cases_org_opened", "cases", ["organisation", "opened_at", "case_id"])
    op.create_index("ix_cases_org_updated", "cases", ["organisation", "updated_at", "case_id"])
    op.create_index("ix_cases_status_opened", "cases", ["status", "opened_at", "case_id"])
    op.create_index("ix_cases_assignee_opened", "cases", ["assignee", "opened_at", "case_id"])
    op.create_index("ix_cases_erasure_due_at", "cases", ["erasure_due_at"])
    op.create_index("ix_cases_opened", "cases", ["opened_at", "case_id"])
    op.create_index("ix_cases_updated", "cases", ["updated_at", "case_id"])
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
    op.drop_index("ix_cases_updated", "cases")
    op.drop_index("ix_cases_opened", "cases")
    op.drop_index("ix_cases_erasure_due_at", "cases")
    op.drop_index("ix_cases_assignee_opened", "cases")
    op.drop_index("ix_cases_status_opened", "cases")
    op.drop_index("ix_cases_org_updated", "cases")
    op.drop_index("ix_cases_org_opened", "cases")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("erasure_due_at")
        batch.drop_column("assignee")
        batch.drop_column("closed_at")
