"""referral: the outbox publisher finds unpublished rows without scanning every row it ever
published (as takedown's migration 0004, decision 0053: each projection commit starts a round)

Revision ID: referral_0004_outbox_unpublished
Revises: referral_0003_traceparent
Create Date: 2026-11-30
"""

from alembic import op

revision = "referral_0004_outbox_unpublished"
down_revision = "referral_0003_traceparent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_rf_outbox_unpublished", "rf_outbox", ["published_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_rf_outbox_unpublished", "rf_outbox")
