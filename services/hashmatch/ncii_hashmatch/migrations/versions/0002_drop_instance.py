"""hashmatch: drop hm_instance (durable consumers were named after it; projections now read
the log from their SQL checkpoint, and replicas share it by compare-and-set)

Revision ID: hashmatch_0002
Revises: hashmatch_0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "hashmatch_0002"
down_revision = "hashmatch_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("hm_instance")


def downgrade() -> None:
    op.create_table(
        "hm_instance",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
